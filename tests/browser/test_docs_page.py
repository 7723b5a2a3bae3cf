"""/docs and /redoc in a real headless Chromium that cannot reach anything but herald.

Every request to another host is aborted, as on a production network with no way out: the
pages must still draw herald's operations from herald's own assets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def cut_off(page: Any, page_server: str) -> Iterator[Any]:
    """The page, with every request to a host other than herald's aborted; none may be tried."""
    local = urlsplit(page_server).netloc
    refused: list[str] = []

    def only_herald(route: Any) -> None:
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_herald)
    yield page
    assert refused == [], f"the page tried to reach outside herald: {refused}"


def test_swagger_ui_draws_the_api_with_the_internet_unreachable(cut_off: Any) -> None:
    cut_off.goto("/docs")
    expect(cut_off.locator(".swagger-ui .info .title")).to_contain_text("herald")
    expect(cut_off.locator(".opblock-summary-path", has_text="/v1/reminders").first).to_be_visible()


def test_redoc_draws_the_api_with_the_internet_unreachable(cut_off: Any) -> None:
    cut_off.goto("/redoc")
    expect(cut_off.locator("h1", has_text="herald").first).to_be_visible()
    expect(cut_off.get_by_text("/v1/reminders").first).to_be_attached()
