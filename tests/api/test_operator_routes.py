"""The operator's routes: holds, agreement events, in-doubt deliveries and opt-outs.

Every change records the caller's key owner as "who".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from herald.api.operator import attempts
from herald.config import Settings
from herald.holds.suppression import Hold, SuppressionStore
from tests.api.conftest import OWNERS, Keys, auth, build_app, fresh
from tests.harness import make_in_doubt

OPERATOR = OWNERS["operator"]


def _holds(client: TestClient, keys: Keys, account: str) -> list[dict[str, object]]:
    response = client.get(f"/v1/suppressions/{account}", headers=auth(keys.operator))
    assert response.status_code == 200, response.text
    holds: list[dict[str, object]] = response.json()["holds"]
    return holds


def test_put_adds_a_hold_recording_the_key_owner_as_who(
    client: TestClient, keys: Keys, rds: redis.Redis
) -> None:
    account = fresh("acct")
    body = {"reason": "hardship review", "until": "2099-12-31", "categories": ["collection", "agreement"]}
    response = client.put(f"/v1/suppressions/{account}", json=body, headers=auth(keys.operator))
    assert response.status_code == 201, response.text
    hold = response.json()["hold"]
    assert response.json()["action"] == "added"
    assert (hold["by"], hold["source"], hold["active"]) == (OPERATOR, "operator", True)
    assert hold["categories"] == ["collection", "agreement"]
    assert hold["until"].startswith("2099-12-31T16:00:00")  # end of that day in Asia/Shanghai
    assert _holds(client, keys, account) == [hold]
    audit = SuppressionStore(rds).audit(account)
    assert [(e["action"], e["by"]) for e in audit] == [("add", OPERATOR)]

    again = client.put(f"/v1/suppressions/{account}", json=body, headers=auth(keys.operator))
    assert (again.status_code, again.json()["action"]) == (200, "unchanged")
    assert len(_holds(client, keys, account)) == 1


def test_delete_lifts_one_agreement_or_all_recording_who(
    client: TestClient, keys: Keys, rds: redis.Redis
) -> None:
    account = fresh("acct")
    for agreement in ("AGR-1", "AGR-2"):
        body = {"reason": f"plan {agreement}", "agreement": agreement}
        assert (
            client.put(f"/v1/suppressions/{account}", json=body, headers=auth(keys.operator)).status_code
            == 201
        )
    client.put(f"/v1/suppressions/{account}", json={"reason": "complaint"}, headers=auth(keys.operator))

    one = client.delete(
        f"/v1/suppressions/{account}",
        params={"agreement": "AGR-1", "reason": "plan broken"},
        headers=auth(keys.operator),
    )
    assert one.status_code == 200, one.text
    assert [h["id"] for h in one.json()["lifted"]] == ["agreement:AGR-1"]
    assert sorted(str(h["id"]) for h in _holds(client, keys, account))[0] == "agreement:AGR-2"

    by_id = next(h for h in _holds(client, keys, account) if h["source"] == "operator")["id"]
    lifted = client.delete(
        f"/v1/suppressions/{account}",
        params={"hold": by_id, "reason": "resolved"},
        headers=auth(keys.operator),
    )
    assert [h["id"] for h in lifted.json()["lifted"]] == [by_id]

    rest = client.delete(
        f"/v1/suppressions/{account}", params={"reason": "done"}, headers=auth(keys.operator)
    )
    assert [h["id"] for h in rest.json()["lifted"]] == ["agreement:AGR-2"]
    assert _holds(client, keys, account) == []
    lifts = [e for e in SuppressionStore(rds).audit(account) if e["action"] == "lift"]
    assert [(e["by"], e["reason"]) for e in lifts] == [
        (OPERATOR, "done"),
        (OPERATOR, "resolved"),
        (OPERATOR, "plan broken"),
    ]
    nothing = client.delete(
        f"/v1/suppressions/{account}", params={"reason": "x"}, headers=auth(keys.operator)
    )
    assert nothing.status_code == 404


@pytest.mark.parametrize(
    ("body", "params", "field"),
    [
        ({"reason": "x", "until": "next tuesday"}, {}, "until"),
        ({"reason": "x", "until": "2099-01-01T10:00:00"}, {}, "until"),
        ({"reason": "   "}, {}, "reason"),
        ({"reason": "x", "categories": ["marketing"]}, {}, "categories"),
        ({"reason": "x", "agreement": "bad agreement!"}, {}, "agreement"),
        ({"reason": "x", "who": "me"}, {}, "who"),
    ],
)
def test_a_bad_hold_is_a_422_naming_the_field(
    client: TestClient, keys: Keys, body: dict[str, object], params: dict[str, str], field: str
) -> None:
    account = fresh("acct")
    response = client.put(
        f"/v1/suppressions/{account}", json=body, params=params, headers=auth(keys.operator)
    )
    assert response.status_code == 422, response.text
    assert field in [str(part) for e in response.json()["detail"] for part in e["loc"]]
    assert _holds(client, keys, account) == []


def test_lifting_needs_a_reason_and_one_selector(client: TestClient, keys: Keys) -> None:
    account = fresh("acct")
    no_reason = client.delete(f"/v1/suppressions/{account}", headers=auth(keys.operator))
    assert no_reason.status_code == 422
    assert no_reason.json()["detail"][0]["loc"] == ["query", "reason"]
    both = client.delete(
        f"/v1/suppressions/{account}",
        params={"reason": "x", "agreement": "A", "hold": "operator:1"},
        headers=auth(keys.operator),
    )
    assert both.status_code == 422
    assert both.json()["detail"][0]["loc"] == ["query", "hold"]


def test_the_held_accounts_page_by_prefix(client: TestClient, keys: Keys) -> None:
    prefix = fresh("page")
    accounts = [f"{prefix}-{i}" for i in range(5)]
    for account in accounts:
        client.put(f"/v1/suppressions/{account}", json={"reason": "paging"}, headers=auth(keys.operator))
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = client.get(
            "/v1/suppressions",
            params={"prefix": prefix, "limit": 2, "offset": offset},
            headers=auth(keys.operator),
        ).json()
        seen += [a["account_id"] for a in page["accounts"]]
        assert all(a["holds"][0]["reason"] == "paging" for a in page["accounts"])
        offset = page["next_offset"]
    assert seen == accounts
    bad = client.get("/v1/suppressions", params={"limit": 0}, headers=auth(keys.operator))
    assert bad.status_code == 422


def test_agreement_events_hold_and_lift(client: TestClient, keys: Keys, rds: redis.Redis) -> None:
    account = fresh("acct")
    event = {"account_id": account, "agreement": "AGR-9", "event": "signed"}
    signed = client.post("/v1/agreements/events", json=event, headers=auth(keys.operator))
    assert signed.status_code == 200, signed.text
    assert signed.json()["action"] == "added"
    assert [(h["id"], h["by"]) for h in signed.json()["holds"]] == [("agreement:AGR-9", OPERATOR)]
    replay = client.post("/v1/agreements/events", json=event, headers=auth(keys.operator))
    assert replay.json()["action"] == "unchanged"
    paid = client.post(
        "/v1/agreements/events", json={**event, "event": "installment_paid"}, headers=auth(keys.operator)
    )
    assert (paid.json()["action"], paid.json()["holds"]) == ("no change", [])
    broken = client.post(
        "/v1/agreements/events", json={**event, "event": "broken"}, headers=auth(keys.operator)
    )
    assert broken.json()["action"] == "lifted"
    assert _holds(client, keys, account) == []
    assert [e["by"] for e in SuppressionStore(rds).audit(account)] == [OPERATOR, OPERATOR]


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"event": "renegotiated"}, "event"),
        ({"event": "broken", "until": "2099-01-01"}, "until"),
        ({"event": "signed", "until": "soon"}, "until"),
        ({"event": "signed", "agreement": ""}, "agreement"),
    ],
)
def test_a_bad_agreement_event_is_a_422_naming_the_field(
    client: TestClient, keys: Keys, event: dict[str, str], field: str
) -> None:
    body = {"account_id": fresh("acct"), "agreement": "AGR-1", **event}
    response = client.post("/v1/agreements/events", json=body, headers=auth(keys.operator))
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", field]


def test_in_doubt_deliveries_are_listed_and_resolved_by_the_key_owner(
    client: TestClient, keys: Keys, settings: Settings, rds: redis.Redis
) -> None:
    key = make_in_doubt(settings)
    listed = client.get("/v1/in-doubt", params={"limit": 1000}, headers=auth(keys.operator))
    assert listed.status_code == 200
    row = {d["key"]: d for d in listed.json()["deliveries"]}[key]
    assert row["state"] == "in_doubt"
    assert "lease" in row["reason"]

    resolved = client.post(
        f"/v1/in-doubt/{key}/resolve",
        json={"sent": False, "reason": "not in Twilio's log"},
        headers=auth(keys.operator),
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json() == {"key": key, "outcome": "failed"}
    state = rds.hgetall(f"herald:d:{key}")
    assert state["outcome"] == "failed"
    assert OPERATOR in state["reason"]
    assert "not in Twilio's log" in state["reason"]
    listed = client.get("/v1/in-doubt", params={"limit": 1000}, headers=auth(keys.operator))
    assert key not in {d["key"] for d in listed.json()["deliveries"]}
    again = client.post(
        f"/v1/in-doubt/{key}/resolve", json={"sent": True, "reason": "x"}, headers=auth(keys.operator)
    )
    assert again.status_code == 404


def test_resolving_needs_a_delivery_key_and_a_reason(client: TestClient, keys: Keys) -> None:
    bad_key = client.post(
        "/v1/in-doubt/r1:fax/resolve", json={"sent": True, "reason": "x"}, headers=auth(keys.operator)
    )
    assert bad_key.status_code == 422
    assert bad_key.json()["detail"][0]["loc"] == ["path", "delivery"]
    no_reason = client.post("/v1/in-doubt/r1:sms/resolve", json={"sent": True}, headers=auth(keys.operator))
    assert no_reason.status_code == 422
    assert no_reason.json()["detail"][0]["loc"] == ["body", "reason"]


def test_opt_outs_are_added_listed_masked_and_removed(
    client: TestClient, keys: Keys, rds: redis.Redis
) -> None:
    address = f"opt.{fresh('x')}@example.cn"
    added = client.post("/v1/optouts/email", json={"address": address.upper()}, headers=auth(keys.operator))
    assert added.status_code == 201, added.text
    assert added.json()["changed"] is True
    assert address not in added.text  # masked in the answer
    assert rds.sismember("herald:optout:email", address)  # stored normalized (lower case)
    again = client.post("/v1/optouts/email", json={"address": address}, headers=auth(keys.operator))
    assert (again.status_code, again.json()["changed"]) == (200, False)

    def listing(**params: object) -> list[str]:
        found: list[str] = []
        cursor: int | None = 0
        while cursor is not None:
            page = client.get(
                "/v1/optouts/email", params={"cursor": cursor, **params}, headers=auth(keys.operator)
            ).json()
            found += page["addresses"]
            cursor = page["next_cursor"]
        return found

    assert address in listing(unmasked=True)
    assert address not in listing()
    entry = rds.xrevrange("herald:optout:audit", count=1)[0][1]
    assert (entry["by"], entry["source"], entry["action"]) == (OPERATOR, "operator", "add")

    removed = client.post("/v1/optouts/email/remove", json={"address": address}, headers=auth(keys.operator))
    assert (removed.status_code, removed.json()["changed"], removed.json()["opted_out"]) == (200, True, False)
    assert not rds.sismember("herald:optout:email", address)


@pytest.mark.parametrize(
    ("channel", "body", "loc"),
    [
        ("sms", {"address": "12345"}, ["body", "address"]),
        ("email", {"address": "nobody"}, ["body", "address"]),
        ("push", {"address": "  "}, ["body", "address"]),
        ("fax", {"address": "+8613800138000"}, ["path", "channel"]),
    ],
)
def test_a_bad_opt_out_is_a_422_naming_the_field(
    client: TestClient, keys: Keys, channel: str, body: dict[str, str], loc: list[str]
) -> None:
    response = client.post(f"/v1/optouts/{channel}", json=body, headers=auth(keys.operator))
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc


def test_hold_until_in_the_past_is_shown_lapsed(client: TestClient, keys: Keys) -> None:
    account = fresh("acct")
    yesterday = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    response = client.put(
        f"/v1/suppressions/{account}", json={"reason": "old", "until": yesterday}, headers=auth(keys.operator)
    )
    assert response.status_code == 201
    assert response.json()["hold"]["active"] is False


def _signed_in(client: TestClient, key: str) -> None:
    """Sign in to the operator page through its form (CSRF token and cookies as a browser would)."""
    form = client.get("/operator")
    assert form.status_code == 200, form.text
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    done = client.post("/operator/signin", data={"key": key, "csrf": token.group(1)})
    assert done.status_code == 200, done.text
    assert 'id="who"' in done.text


def test_the_operator_page_shows_a_holds_times_in_the_default_zone_named_without_milliseconds(
    settings: Settings, keys: Keys, rds: redis.Redis
) -> None:
    account = fresh("acct")
    since = datetime(2026, 12, 6, 14, 47, 3, 456_000, tzinfo=UTC)
    until = datetime(2099, 12, 31, 16, 0, tzinfo=UTC)  # the end of 2099-12-31 in Asia/Shanghai
    hold = Hold(
        id="operator:zone",
        account_id=account,
        source="operator",
        reason="hardship review",
        by="ops-li",
        created_at=since.timestamp(),
        until=until.timestamp(),
    )
    SuppressionStore(rds).add(hold)
    app = build_app(
        settings.model_copy(update={"secret_key": SecretStr("operator-page-test-secret-0123456789")})
    )
    with TestClient(app) as page:
        _signed_in(page, keys.operator)
        response = page.get("/operator/account", params={"account": account})
    assert response.status_code == 200, response.text
    html = response.text
    holds = html[html.index('<table id="holds">') : html.index("</table>", html.index('<table id="holds">'))]
    assert '<caption class="zone">times in Asia/Shanghai</caption>' in holds
    assert '<td class="time">2026-12-06 22:47:03 +08:00</td>' in holds  # since
    assert '<td class="time">2100-01-01 00:00:00 +08:00</td>' in holds  # until
    assert "(UTC)" not in html
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", html)  # no milliseconds anywhere on the page
    audit = html[html.index('<table id="audit">') :]
    assert "times in Asia/Shanghai" in audit
    assert re.search(r'<td class="time">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+08:00</td>', audit)


def test_the_operator_page_masks_phone_numbers_in_reasons_in_any_written_form(
    settings: Settings, keys: Keys, rds: redis.Redis
) -> None:
    account = fresh("acct")
    reason = "borrower asked (13800138000, also +86 138 0013 8001, US (415) 555-0123)"
    SuppressionStore(rds).add(
        Hold(id="operator:mask", account_id=account, source="operator", reason=reason, by="t")
    )
    app = build_app(
        settings.model_copy(update={"secret_key": SecretStr("operator-page-test-secret-0123456789")})
    )
    with TestClient(app) as page:
        _signed_in(page, keys.operator)
        html = page.get("/operator/account", params={"account": account}).text
    assert "borrower asked" in html
    for shown in ("13800138000", "0013 8001", "555-0123", "0013800"):
        assert shown not in html
    assert "+86138****8000" in html
    assert "+86138****8001" in html


def test_operator_sign_in_is_refused_for_a_while_after_ten_wrong_keys(
    settings: Settings, keys: Keys, rds: redis.Redis
) -> None:
    for name in rds.scan_iter(match=f"{attempts.PREFIX}*"):
        rds.delete(name)
    app = build_app(
        settings.model_copy(update={"secret_key": SecretStr("operator-page-test-secret-0123456789")})
    )
    wrong = keys.operator[:-4] + "xxxx"  # the operator's key id, a wrong secret
    with TestClient(app) as page:
        form = page.get("/operator")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        answers = [
            page.post("/operator/signin", data={"key": wrong, "csrf": csrf.group(1)}).status_code
            for _ in range(attempts.MAX_FAILURES + 2)
        ]
        assert answers == [401] * attempts.MAX_FAILURES + [429, 429]
        # the right key is not even looked at now: neither from this client nor for this key id
        locked = page.post("/operator/signin", data={"key": keys.operator, "csrf": csrf.group(1)})
        assert locked.status_code == 429
        assert "too many wrong keys" in locked.text
        assert 0 < int(locked.headers["Retry-After"]) <= attempts.WINDOW
    for name in rds.scan_iter(match=f"{attempts.PREFIX}addr:*"):
        rds.delete(name)  # another client, same key id: still refused
    with TestClient(app) as other:
        form = other.get("/operator")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        assert (
            other.post("/operator/signin", data={"key": keys.operator, "csrf": csrf.group(1)}).status_code
            == 429
        )
    for name in rds.scan_iter(match=f"{attempts.PREFIX}*"):
        rds.delete(name)  # the window over
    with TestClient(app) as later:
        _signed_in(later, keys.operator)
