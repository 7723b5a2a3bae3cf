"""The API's own documentation (/docs and /redoc) is served whole by herald: no CDN.

herald runs in networks with no way out to the internet; documentation that loads its scripts
from a CDN is a blank page there.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


def _references(html: str) -> list[str]:
    return [a or b for a, b in ASSET.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_documentation_pages_reference_only_herald_itself(client: TestClient, page: str) -> None:
    answer = client.get(page)
    assert answer.status_code == 200
    refs = _references(answer.text)
    assert refs, f"{page} references no asset at all"
    outside = [r for r in refs if re.match(r"^(?:[a-z]+:)?//", r)]
    assert outside == [], f"{page} loads from outside herald: {outside}"
    assert "openapi.json" in answer.text


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_every_script_and_style_of_the_documentation_is_served(client: TestClient, page: str) -> None:
    refs = [r for r in _references(client.get(page).text) if r.endswith((".js", ".css", ".png"))]
    assert refs
    for ref in refs:
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        assert len(asset.content) > 1000, f"{ref} is suspiciously small"
        kind = asset.headers["content-type"]
        expected = {"js": "javascript", "css": "text/css", "png": "image/png"}[ref.rsplit(".", 1)[1]]
        assert expected in kind, f"{ref}: {kind}"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs-assets/swagger-ui-bundle.js"])
def test_the_documentation_may_fetch_from_herald_only(client: TestClient, path: str) -> None:
    policy = client.get(path).headers["content-security-policy"]
    sources = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    assert sources["default-src"] == ["'none'"]
    for directive, allowed in sources.items():
        others = [s for s in allowed if s not in ("'self'", "'none'", "'unsafe-inline'", "data:", "blob:")]
        assert others == [], f"{directive} allows {others}"


def test_the_rest_of_the_api_is_left_to_its_own_headers(client: TestClient) -> None:
    assert "content-security-policy" not in client.get("/openapi.json").headers
