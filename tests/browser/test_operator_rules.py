"""The operator page's rules, fast, without a browser: sign-in, sessions, CSRF, escaping, import.

The app runs in-process (FastAPI's TestClient) on the session's real redis-server.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import orjson
import pytest
import redis
from fastapi import Response
from fastapi.testclient import TestClient
from pydantic import SecretStr

from herald.access.apikeys import KeyStore
from herald.api.app import create_app
from herald.api.operator.session import SESSION_COOKIE, SESSION_SECONDS, Sessions, remember
from herald.config import Settings
from herald.holds.suppression import Hold, SuppressionStore
from tests.browser.conftest import fresh_account
from tests.browser.support import make_in_doubt

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@pytest.fixture
def app_client(page_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(page_settings)) as tc:
        yield tc


def sign_in(tc: TestClient, key: str) -> str:
    """Sign in through the form; the signed-in page's CSRF token."""
    form = tc.get("/operator")
    assert form.status_code == 200
    done = tc.post("/operator/signin", data={"key": key, "csrf": csrf_of(form.text)}, follow_redirects=False)
    assert done.status_code == 303, done.text
    page = tc.get("/operator")
    assert 'id="who"' in page.text
    return csrf_of(page.text)


def _hold(account: str, reason: str = "hardship review") -> Hold:
    return Hold(
        id=f"operator:{uuid.uuid4().hex[:8]}", account_id=account, source="operator", reason=reason, by="t"
    )


@pytest.mark.parametrize(("secret", "says"), [(None, "not set"), ("short", "shorter than 32")])
def test_without_a_usable_secret_key_the_page_starts_no_session(
    page_settings: Settings, operator: tuple[str, str], secret: str | None, says: str
) -> None:
    settings = page_settings.model_copy(update={"secret_key": SecretStr(secret) if secret else None})
    with TestClient(create_app(settings)) as tc:
        page = tc.get("/operator")
        assert page.status_code == 503
        assert "HERALD_SECRET_KEY" in page.text
        assert says in page.text
        assert "set-cookie" not in page.headers
        posted = tc.post("/operator/signin", data={"key": operator[0], "csrf": "x"}, follow_redirects=False)
        assert posted.status_code == 503
        assert "set-cookie" not in posted.headers


def test_cookies_are_httponly_strict_and_secure_behind_https(
    page_settings: Settings, operator: tuple[str, str]
) -> None:
    settings = page_settings.model_copy(update={"public_url": "https://herald.example.com"})
    with TestClient(create_app(settings), base_url="https://testserver") as tc:
        form = tc.get("/operator")
        cookie = form.headers["set-cookie"].lower()
        for attribute in ("httponly", "samesite=strict", "secure", "path=/operator"):
            assert attribute in cookie
        done = tc.post(
            "/operator/signin", data={"key": operator[0], "csrf": csrf_of(form.text)}, follow_redirects=False
        )
        assert done.status_code == 303
        session = next(c for c in done.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
        for attribute in ("httponly", "samesite=strict", "secure", "path=/operator"):
            assert attribute in session.lower()
        assert operator[0] not in session
        assert operator[0].rsplit("_", 1)[1] not in session
    with TestClient(create_app(page_settings)) as tc:
        assert "secure" not in tc.get("/operator").headers["set-cookie"].lower()


def test_only_a_valid_operator_key_signs_in(app_client: TestClient, client: redis.Redis) -> None:
    producer_key, _ = KeyStore(client).create("upstream-billing", ["producer"])
    revoked_key, revoked = KeyStore(client).create("ops-gone", ["operator"])
    KeyStore(client).revoke(revoked.key_id)
    for key in (producer_key, revoked_key, "hk_nope_nope", "", "<b>x</b>"):
        token = csrf_of(app_client.get("/operator").text)
        answer = app_client.post("/operator/signin", data={"key": key, "csrf": token}, follow_redirects=False)
        assert answer.status_code == 401, key
        assert "not a valid operator key" in answer.text
        assert SESSION_COOKIE not in app_client.cookies
        assert "<b>x</b>" not in answer.text


def test_the_sign_in_post_needs_its_forms_token(app_client: TestClient, operator: tuple[str, str]) -> None:
    no_form = app_client.post("/operator/signin", data={"key": operator[0]}, follow_redirects=False)
    assert no_form.status_code == 403
    app_client.get("/operator")  # the form's cookie is set, but the post carries a wrong token
    wrong = app_client.post(
        "/operator/signin", data={"key": operator[0], "csrf": "forged"}, follow_redirects=False
    )
    assert wrong.status_code == 403
    assert SESSION_COOKIE not in app_client.cookies
    assert 'id="who"' not in app_client.get("/operator").text


def test_forged_posts_are_refused_and_change_nothing(
    app_client: TestClient, client: redis.Redis, operator: tuple[str, str], page_settings: Settings
) -> None:
    token = sign_in(app_client, operator[0])
    other_raw, _ = KeyStore(client).create("ops-other", ["operator"])
    with TestClient(create_app(page_settings)) as other:
        other_token = sign_in(other, other_raw)  # a real token, of another session
    account = fresh_account()
    in_doubt = make_in_doubt(page_settings, account)  # before the hold, which would stop its claim
    holds = SuppressionStore(client)
    existing = _hold(account)
    holds.add(existing)
    audit_before = holds.audit(account)
    posts = [
        ("/operator/account/hold", {"account": account, "reason": "forged", "categories": "collection"}),
        ("/operator/account/lift", {"account": account, "hold": existing.id, "reason": "forged"}),
        ("/operator/in-doubt/resolve", {"key": in_doubt, "outcome": "sent", "reason": "forged"}),
        ("/operator/signout", {}),
    ]
    for path, fields in posts:
        for forged in (
            {},
            {"csrf": ""},
            {"csrf": "A" * len(token)},
            {"csrf": other_token},
            {"csrf": token[:-1]},
        ):
            answer = app_client.post(path, data={**fields, **forged}, follow_redirects=False)
            assert answer.status_code == 403, (path, forged)
            assert "Nothing changed" in answer.text
    assert [h.id for h in holds.holds(account)] == [existing.id]
    assert holds.audit(account) == audit_before
    assert client.hget(f"herald:d:{in_doubt}", "outcome") == b"in_doubt"
    assert 'id="who"' in app_client.get("/operator").text  # still signed in: the forged sign-out did nothing

    added = app_client.post(
        "/operator/account/hold",
        data={"account": account, "reason": "with the token", "categories": "collection", "csrf": token},
        follow_redirects=False,
    )
    assert added.status_code == 303
    assert len(holds.holds(account)) == 2


def test_a_revoked_key_signs_its_session_out(
    app_client: TestClient, client: redis.Redis, operator: tuple[str, str]
) -> None:
    token = sign_in(app_client, operator[0])
    key = KeyStore(client).verify(operator[0])
    assert key is not None
    KeyStore(client).revoke(key.key_id)
    page = app_client.get(f"/operator/account?account={fresh_account()}", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/operator?ended=1"
    assert any(c.startswith(f'{SESSION_COOKIE}=""') for c in page.headers.get_list("set-cookie"))
    account = fresh_account()
    posted = app_client.post(
        "/operator/account/hold",
        data={"account": account, "reason": "after revocation", "categories": "collection", "csrf": token},
    )
    assert posted.status_code == 403
    assert SuppressionStore(client).holds(account) == []
    assert "revoked" in app_client.get("/operator?ended=1").text


def test_signing_out_ends_the_session_for_a_copy_of_its_cookie_too(
    app_client: TestClient, page_settings: Settings, operator: tuple[str, str]
) -> None:
    token = sign_in(app_client, operator[0])
    copied = app_client.cookies[SESSION_COOKIE]
    with TestClient(create_app(page_settings)) as thief:
        thief.cookies.set(SESSION_COOKIE, copied, path="/operator")
        assert thief.get("/operator/import", follow_redirects=False).status_code == 200
        out = app_client.post("/operator/signout", data={"csrf": token}, follow_redirects=False)
        assert out.status_code == 303
        assert SESSION_COOKIE not in app_client.cookies
        assert thief.get("/operator/import", follow_redirects=False).status_code == 303


def test_a_session_ends_after_its_time(
    app_client: TestClient, operator: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_in(app_client, operator[0])
    assert app_client.get("/operator/import", follow_redirects=False).status_code == 200
    monkeypatch.setenv("HERALD_CLOCK_OFFSET", str(SESSION_SECONDS + 60))
    assert app_client.get("/operator/import", follow_redirects=False).status_code == 303


def test_a_tampered_or_foreign_cookie_is_no_session(
    app_client: TestClient, client: redis.Redis, operator: tuple[str, str]
) -> None:
    sign_in(app_client, operator[0])
    value = app_client.cookies[SESSION_COOKIE]
    key = KeyStore(client).verify(operator[0])
    assert key is not None
    foreign = Response()  # a live session for the same key, but signed with another secret
    session = Sessions.new(key.key_id)
    remember(client, session)
    Sessions("another-secret-of-enough-length", secure=False).write(foreign, session)
    foreign_value = foreign.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    for forged in (value[:-2] + ("AA" if not value.endswith("AA") else "BB"), foreign_value, "x"):
        app_client.cookies.clear()
        app_client.cookies.set(SESSION_COOKIE, forged, path="/operator")
        assert app_client.get("/operator/import", follow_redirects=False).status_code == 303
    app_client.cookies.clear()
    app_client.cookies.set(SESSION_COOKIE, value, path="/operator")
    assert app_client.get("/operator/import", follow_redirects=False).status_code == 200


def test_form_errors_name_the_field_and_store_nothing(
    app_client: TestClient, client: redis.Redis, operator: tuple[str, str]
) -> None:
    token = sign_in(app_client, operator[0])
    account = fresh_account()
    cases = [
        ({"reason": "", "categories": "collection"}, "reason", "reason is required"),
        ({"reason": "r", "until": "2026-13-40", "categories": "collection"}, "until", "neither a date"),
        ({"reason": "r", "until": "2026-12-31T18:00:00", "categories": "collection"}, "until", "offset"),
        ({"reason": "r"}, "categories", "choose at least one"),
        ({"reason": "r", "categories": "marketing"}, "categories", "unknown categories marketing"),
        ({"reason": "r", "categories": "collection", "agreement": "AGR 7"}, "agreement", "agreement"),
    ]
    for fields, field, message in cases:
        answer = app_client.post("/operator/account/hold", data={"account": account, "csrf": token, **fields})
        assert answer.status_code == 400, fields
        assert f'data-field="{field}"' in answer.text
        assert message in answer.text
    bad_account = app_client.post(
        "/operator/account/hold",
        data={"account": "a b", "reason": "r", "categories": "collection", "csrf": token},
    )
    assert bad_account.status_code == 400
    assert "account_id" in bad_account.text
    assert SuppressionStore(client).holds(account) == []


def test_what_the_page_shows_is_escaped_and_addresses_are_masked(
    app_client: TestClient, client: redis.Redis, operator: tuple[str, str], page_settings: Settings
) -> None:
    token = sign_in(app_client, operator[0])
    account = fresh_account()
    key = make_in_doubt(page_settings, account)  # before the hold, which would stop its claim
    reason = '<script>alert(1)</script><b>x</b> "quoted" & more'
    app_client.post(
        "/operator/account/hold",
        data={"account": account, "reason": reason, "categories": ["collection", "agreement"], "csrf": token},
    )
    resolved = app_client.post(
        "/operator/in-doubt/resolve",
        data={"key": key, "outcome": "not_sent", "reason": "no trace for +8613800138000", "csrf": token},
        follow_redirects=False,
    )
    assert resolved.status_code == 303
    page = app_client.get(f"/operator/account?account={account}")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in page.text
    assert "<script>alert" not in page.text
    assert "<b>x</b>" not in page.text
    assert "+8613800138000" not in page.text
    assert "+86138****8000" in page.text
    assert "resolved by " + operator[1] in page.text  # the history shows the delivery's outcome and reason
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


def test_an_import_streams_its_progress_then_the_result(
    app_client: TestClient, client: redis.Redis, operator: tuple[str, str]
) -> None:
    token = sign_in(app_client, operator[0])
    prefix = fresh_account()
    lines = ["account_id,reason,until,agreement,categories,by"]
    lines += [f"{prefix}-{i},plan signed,,AGR-{prefix}-{i},collection,someone-else" for i in range(2500)]
    lines[1001] = f"{prefix}-1000,paused,2026-13-40,,collection,"  # line 1002 of the file
    body = ("\n".join(lines) + "\n").encode()

    def upload() -> list[dict[str, object]]:
        answer = app_client.post(
            "/operator/import",
            data={"csrf": token},
            files={"file": ("holds.csv", body, "text/csv")},
            headers={"Accept": "application/x-ndjson"},
        )
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/x-ndjson")
        return [orjson.loads(line) for line in answer.content.splitlines()]

    first = upload()
    progress = [m["progress"] for m in first if "progress" in m]
    assert [p["done"] for p in progress] == [0, 1000, 2000, 2500]  # type: ignore[index]
    result = first[-1]["result"]
    assert result["counts"] == {"added": 2499, "replaced": 0, "unchanged": 0}  # type: ignore[index]
    assert result["errors"] == [  # type: ignore[index]
        {
            "line": 1002,
            "field": "until",
            "message": "until: '2026-13-40' is neither a date (2026-12-31) nor a time with an offset",
        }
    ]
    held = SuppressionStore(client).holds(f"{prefix}-7")
    assert [(h.agreement, h.by) for h in held] == [(f"AGR-{prefix}-7", operator[1])]  # who: the operator
    again = upload()[-1]["result"]
    assert again["counts"] == {"added": 0, "replaced": 0, "unchanged": 2499}  # type: ignore[index]


def test_an_import_without_the_required_columns_applies_nothing(
    app_client: TestClient, operator: tuple[str, str]
) -> None:
    token = sign_in(app_client, operator[0])
    answer = app_client.post(
        "/operator/import",
        data={"csrf": token},
        files={"file": ("holds.csv", b"account,why\na,b\n", "text/csv")},
    )
    assert answer.status_code == 400
    assert "the header must name account_id, reason" in answer.text


def test_an_import_without_script_answers_with_the_result_page(
    app_client: TestClient, client: redis.Redis, operator: tuple[str, str]
) -> None:
    token = sign_in(app_client, operator[0])
    account = fresh_account()
    body = (
        f"account_id,reason,categories\n{account},<i>paused</i>,collection\n,no account,collection\n".encode()
    )
    answer = app_client.post(
        "/operator/import", data={"csrf": token}, files={"file": ("holds.csv", body, "text/csv")}
    )
    assert answer.status_code == 200
    assert "1 added, 0 replaced, 0 unchanged, 1 bad lines (2 lines)" in answer.text
    assert "<td>3</td><td>account_id</td><td>account_id is required</td>" in answer.text
    assert [h.reason for h in SuppressionStore(client).holds(account)] == ["<i>paused</i>"]


def test_an_unreadable_ledger_still_shows_the_holds_and_says_so(
    page_settings: Settings, operator: tuple[str, str], client: redis.Redis
) -> None:
    from herald.ops.embedded import free_port

    account = fresh_account()
    SuppressionStore(client).add(_hold(account, "plan under review"))
    nowhere = f"postgresql+psycopg://herald@127.0.0.1:{free_port()}/ledger?connect_timeout=2"
    with TestClient(create_app(page_settings.model_copy(update={"ledger_url": nowhere}))) as tc:
        sign_in(tc, operator[0])
        page = tc.get(f"/operator/account?account={account}")
    assert page.status_code == 200
    assert 'id="history-error"' in page.text
    assert "plan under review" in page.text  # the holds come from Redis and are current
