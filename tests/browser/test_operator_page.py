"""The operator page in a real headless Chromium, against ``herald api`` and a real redis-server.

Every wait is Playwright's: it polls the page for a condition until a deadline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import expect

from herald.config import Settings
from herald.holds.suppression import SuppressionStore
from tests.browser.conftest import fresh_account
from tests.browser.support import make_in_doubt, sign_in

pytestmark = pytest.mark.browser

SCARY = "<script>alert(1)</script> <b>x</b> & more"


def open_account(page: Any, account: str) -> None:
    page.fill("#lookup input[name=account]", account)
    page.click("#lookup button[type=submit]")
    expect(page.locator("#account")).to_have_text(account)


def test_sign_in_add_a_hold_see_it_audited_lift_it(
    page: Any, client: redis.Redis, operator: tuple[str, str]
) -> None:
    key, owner = operator
    page.goto("/operator")
    expect(page.locator("#signin")).to_be_visible()
    sign_in(page, key)
    expect(page.locator("#who")).to_have_text(owner)

    account = fresh_account()
    open_account(page, account)
    expect(page.locator("#no-holds")).to_be_visible()
    form = page.locator("#add-hold")
    form.locator("input[name=reason]").fill(SCARY)
    form.locator("input[name=until]").fill("2099-12-31")
    form.locator("input[name=categories][value=agreement]").check()
    form.locator("button[type=submit]").click()

    expect(page.locator("#notice")).to_have_text("Hold added.")
    row = page.locator("#holds tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td.reason")).to_have_text(SCARY)  # shown as text, not markup
    expect(row).to_contain_text("collection, agreement")
    expect(row).to_contain_text("2100-01-01 00:00:00 +08:00")  # the end of that day, in Asia/Shanghai
    expect(page.locator("#holds caption")).to_have_text("times in Asia/Shanghai")
    assert page.locator("#holds b, main script").count() == 0
    audit = page.locator("#audit tbody tr").first
    expect(audit.locator("td.action")).to_have_text("add")
    expect(audit.locator("td.who")).to_have_text(owner)
    expect(audit.locator("td.reason")).to_have_text(SCARY)
    [held] = SuppressionStore(client).holds(account)
    assert (held.reason, held.by, held.categories) == (SCARY, owner, ("collection", "agreement"))

    lift = row.locator("form.lift")
    lift.locator("input[name=reason]").fill("plan signed <i>today</i>")
    lift.locator("button[type=submit]").click()
    expect(page.locator("#notice")).to_have_text("Hold lifted.")
    expect(page.locator("#no-holds")).to_be_visible()
    first = page.locator("#audit tbody tr").first
    expect(first.locator("td.action")).to_have_text("lift")
    expect(first.locator("td.who")).to_have_text(owner)
    expect(first.locator("td.reason")).to_have_text("plan signed <i>today</i>")
    expect(page.locator("#audit tbody tr")).to_have_count(2)
    expect(page.locator("#history")).to_contain_text("lift")
    assert SuppressionStore(client).holds(account) == []
    assert page.dialogs == []  # no script from a reason ever ran

    page.click("header form.signout button")
    expect(page.locator("#signin")).to_be_visible()
    page.goto(f"/operator/account?account={account}")
    expect(page.locator("#signin")).to_be_visible()  # signed out: the account page is not shown


def test_forged_posts_with_the_session_cookie_are_refused(
    page: Any, client: redis.Redis, operator: tuple[str, str], page_server: str
) -> None:
    sign_in(page, operator[0])
    account = fresh_account()
    open_account(page, account)
    page.locator("#add-hold input[name=reason]").fill("kept")
    page.locator("#add-hold button[type=submit]").click()
    expect(page.locator("#holds tbody tr")).to_have_count(1)
    [held] = SuppressionStore(client).holds(account)
    audit = SuppressionStore(client).audit(account)

    cookies = {c["name"]: c["value"] for c in page.context.cookies() if c["name"] == "herald_operator"}
    assert cookies, "the browser holds the session cookie"
    with httpx.Client(base_url=page_server, cookies=cookies) as forger:
        for token in ({}, {"csrf": "not-the-token"}):
            added = forger.post(
                "/operator/account/hold", data={"account": account, "reason": "forged", **token}
            )
            lifted = forger.post(
                "/operator/account/lift",
                data={"account": account, "hold": held.id, "reason": "forged", **token},
            )
            assert (added.status_code, lifted.status_code) == (403, 403)
        assert (
            forger.get(f"/operator/account?account={account}").status_code == 200
        )  # the cookie itself works
    assert SuppressionStore(client).holds(account) == [held]
    assert SuppressionStore(client).audit(account) == audit
    page.reload()
    expect(page.locator("#holds tbody tr")).to_have_count(1)


def test_a_csv_upload_shows_its_bad_line_and_applies_the_good_ones(
    page: Any, client: redis.Redis, operator: tuple[str, str], tmp_path: Path
) -> None:
    sign_in(page, operator[0])
    prefix = fresh_account()
    lines = ["account_id,reason,until,agreement,categories,by"]
    lines += [f"{prefix}-{i},plan signed,,AGR-{prefix}-{i},collection;agreement," for i in range(2400)]
    lines[1500] = f"{prefix}-1499,paused,,,marketing,"  # line 1501 of the file: not a category
    path = tmp_path / "holds.csv"
    path.write_text("\n".join(lines) + "\n")

    page.click("nav >> text=Import holds")
    page.set_input_files("#import-form input[name=file]", str(path))
    page.click("#import-form button[type=submit]")
    expect(page.locator("#import-summary")).to_have_text(
        "2399 added, 0 replaced, 0 unchanged, 1 bad lines (2400 lines)"
    )
    expect(page.locator("#import-progress-text")).to_have_text("done: 2400 lines")
    assert page.eval_on_selector("#import-progress", "p => [p.value, p.max]") == [2400, 2400]
    error = page.locator("#import-errors tbody tr")
    expect(error).to_have_count(1)
    expect(error.locator("td")).to_have_text(
        ["1501", "categories", re.compile(r"unknown categories marketing")]
    )
    holds = SuppressionStore(client)
    assert [h.agreement for h in holds.holds(f"{prefix}-0")] == [f"AGR-{prefix}-0"]
    assert [h.by for h in holds.holds(f"{prefix}-2399")] == [operator[1]]
    assert holds.holds(f"{prefix}-1499") == []


def test_resolving_an_in_doubt_delivery(
    page: Any, client: redis.Redis, operator: tuple[str, str], page_settings: Settings
) -> None:
    account = fresh_account()
    key = make_in_doubt(page_settings, account)
    sign_in(page, operator[0])
    page.click("nav >> text=In doubt")
    row = page.locator(f'#in-doubt tr[data-key="{key}"]')
    expect(row.locator("td.reason")).to_contain_text("lease ended")
    row.locator("input[name=reason]").fill("not in Twilio's log")
    row.locator("button[value=not_sent]").click()
    expect(page.locator("#notice")).to_have_text(f"{key}: Resolved as not sent.")
    expect(page.locator(f'#in-doubt tr[data-key="{key}"]')).to_have_count(0)
    state = {k.decode(): v.decode() for k, v in client.hgetall(f"herald:d:{key}").items()}
    assert state["outcome"] == "failed"
    assert f"resolved by {operator[1]}" in state["reason"]

    page.click("nav >> text=Overview")
    open_account(page, account)
    delivery = page.locator("#history tbody tr", has_text=key.rsplit(":", 1)[0]).first
    expect(delivery.locator("td.outcome")).to_have_text("failed")
    expect(delivery.locator("td.reason")).to_contain_text("not in Twilio's log")


def test_a_revoked_key_is_signed_out_on_its_next_page(
    page: Any, client: redis.Redis, operator: tuple[str, str]
) -> None:
    from herald.access.apikeys import KeyStore

    sign_in(page, operator[0])
    found = KeyStore(client).verify(operator[0])
    assert found is not None
    KeyStore(client).revoke(found.key_id)
    page.click("nav >> text=In doubt")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#notice")).to_contain_text("revoked")
