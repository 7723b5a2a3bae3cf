"""FakeAPNs against Apple's documented contract, spoken to by httpx's HTTP/2 client directly.

Provider tokens here are signed with PyJWT; the fake checks them with `cryptography` alone,
so the two sides do not share a JWT implementation.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.standins.apns import MAX_PAYLOAD_BYTES, FakeAPNs

PAYLOAD = {
    "aps": {"alert": {"title": "还款提醒", "body": "您的还款 1234.50 元将于明天到期"}},
    "kind": "repayment_due",
}


@pytest.fixture
def apns() -> Iterator[FakeAPNs]:
    with FakeAPNs() as fake:
        yield fake


def device() -> str:
    """A device token of the form APNs issues today: 64 hexadecimal digits."""
    return uuid.uuid4().hex + uuid.uuid4().hex


def sign(
    fake: FakeAPNs,
    *,
    iat: float | None = None,
    kid: str | None = None,
    iss: str | None = None,
    key: Any = None,
    algorithm: str = "ES256",
) -> str:
    """A provider token; by default one APNs accepts from the fake's team, key and clock."""
    signing_key: Any = key if key is not None else serialization.load_pem_private_key(fake.key_pem(), None)
    claims = {"iss": iss or fake.team_id, "iat": int(time.time() if iat is None else iat)}
    return jwt.encode(claims, signing_key, algorithm=algorithm, headers={"kid": kid or fake.key_id})


def headers(fake: FakeAPNs, token: str | None = None, **extra: str) -> dict[str, str]:
    base = {
        "authorization": f"bearer {token or sign(fake)}",
        "apns-topic": fake.topic,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-expiration": "0",
    }
    base.update({name.replace("_", "-"): value for name, value in extra.items()})
    return {name: value for name, value in base.items() if value}


def body_of(payload: Any = PAYLOAD) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def client(fake: FakeAPNs, *, http2: bool = True, read: float = 10.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        http1=not http2,
        http2=http2,
        verify=fake.client_context(),
        timeout=httpx.Timeout(10.0, read=read),
        trust_env=False,
    )


async def _post(
    fake: FakeAPNs, path: str, head: dict[str, str], content: bytes, method: str = "POST"
) -> httpx.Response:
    async with client(fake) as c:
        return await c.request(method, f"{fake.url}{path}", headers=head, content=content)


def post(
    fake: FakeAPNs,
    token: str | None = None,
    head: dict[str, str] | None = None,
    content: bytes | None = None,
    *,
    path: str | None = None,
    method: str = "POST",
) -> httpx.Response:
    """One request on a new connection."""
    target = path if path is not None else f"/3/device/{token or device()}"
    return asyncio.run(
        _post(
            fake,
            target,
            head if head is not None else headers(fake),
            body_of() if content is None else content,
            method,
        )
    )


def reason(response: httpx.Response) -> str:
    value = response.json()["reason"]
    assert isinstance(value, str)
    return value


def test_a_notification_is_accepted_with_a_new_apns_id(apns: FakeAPNs) -> None:
    token = device()
    provider_token = sign(apns)
    response = post(apns, token, headers(apns, provider_token, apns_collapse_id="r-1"))
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    assert response.content == b""
    apns_id = response.headers["apns-id"]
    assert str(uuid.UUID(apns_id)) == apns_id
    (record,) = apns.accepted_for("apns:" + token.upper())
    assert record["apns_id"] == apns_id
    assert (record["title"], record["body"]) == ("还款提醒", "您的还款 1234.50 元将于明天到期")
    assert record["payload"]["kind"] == "repayment_due"
    assert (record["topic"], record["push_type"], record["priority"], record["expiration"]) == (
        apns.topic,
        "alert",
        "10",
        "0",
    )
    assert record["collapse_id"] == "r-1"
    assert record["provider_token"] == provider_token
    assert apns.provider_tokens == [provider_token]
    assert apns.requests == 1


def test_the_requests_own_apns_id_is_echoed(apns: FakeAPNs) -> None:
    mine = str(uuid.uuid4())
    response = post(apns, head=headers(apns, apns_id=mine))
    assert (response.status_code, response.headers["apns-id"]) == (200, mine)


def test_http_1_1_is_refused_and_nothing_is_recorded(apns: FakeAPNs) -> None:
    async def http1() -> None:
        async with client(apns, http2=False) as c:
            await c.post(f"{apns.url}/3/device/{device()}", headers=headers(apns), content=body_of())

    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(http1())
    assert apns.accepted == []
    assert apns.requests == 0


def test_a_connection_carries_one_stream_until_a_provider_token_is_valid(apns: FakeAPNs) -> None:
    async def burst(provider_token: str) -> list[int]:
        async with client(apns) as c:
            responses = await asyncio.gather(
                *(
                    c.post(
                        f"{apns.url}/3/device/{device()}",
                        headers=headers(apns, provider_token),
                        content=body_of(),
                    )
                    for _ in range(40)
                )
            )
        return [r.status_code for r in responses]

    forged = sign(apns, key=ec.generate_private_key(ec.SECP256R1()))
    assert set(asyncio.run(burst(forged))) == {403}
    assert apns.max_streams_seen == 1

    apns.reset()
    assert set(asyncio.run(burst(sign(apns)))) == {200}
    assert apns.max_streams_seen > 1
    assert apns.connections == 1


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda fake: "", "MissingProviderToken"),
        (lambda fake: "not.a.jwt", "InvalidProviderToken"),
        (lambda fake: sign(fake, kid="OTHERKEY00"), "InvalidProviderToken"),
        (lambda fake: sign(fake, iss="OTHERTEAM0"), "InvalidProviderToken"),
        (lambda fake: sign(fake, key=ec.generate_private_key(ec.SECP256R1())), "InvalidProviderToken"),
        (
            lambda fake: sign(
                fake, key=rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256"
            ),
            "InvalidProviderToken",
        ),
        (
            lambda fake: sign(fake, key="shared-secret-of-at-least-32-bytes!", algorithm="HS256"),
            "InvalidProviderToken",
        ),
        (lambda fake: sign(fake, iat=time.time() + 3600), "InvalidProviderToken"),
        (lambda fake: sign(fake, iat=time.time() - 3601), "ExpiredProviderToken"),
    ],
    ids=[
        "missing",
        "malformed",
        "other-kid",
        "other-team",
        "other-key",
        "rs256",
        "hs256",
        "from-the-future",
        "stale",
    ],
)
def test_provider_tokens_are_checked(apns: FakeAPNs, make: Any, expected: str) -> None:
    provider_token = make(apns)
    head = headers(apns)
    if provider_token:
        head["authorization"] = f"bearer {provider_token}"
    else:
        del head["authorization"]
    response = post(apns, head=head)
    assert response.status_code == 403
    assert reason(response) == expected
    assert apns.accepted == []


def test_a_token_almost_an_hour_old_is_still_accepted(apns: FakeAPNs) -> None:
    assert post(apns, head=headers(apns, sign(apns, iat=time.time() - 3500))).status_code == 200


def test_expire_tokens_refuses_the_tokens_seen_so_far_and_accepts_a_new_one(apns: FakeAPNs) -> None:
    old = sign(apns)
    assert post(apns, head=headers(apns, old)).status_code == 200
    apns.expire_tokens()
    refused = post(apns, head=headers(apns, old))
    assert (refused.status_code, reason(refused)) == (403, "ExpiredProviderToken")
    assert post(apns, head=headers(apns, sign(apns))).status_code == 200


def test_a_new_token_on_a_connection_within_20_minutes_is_too_many_updates(apns: FakeAPNs) -> None:
    first, second = sign(apns, iat=time.time() - 60), sign(apns)

    async def on_one_connection(*tokens: str) -> list[httpx.Response]:
        async with client(apns) as c:
            return [
                await c.post(f"{apns.url}/3/device/{device()}", headers=headers(apns, t), content=body_of())
                for t in tokens
            ]

    ok, too_soon, again = asyncio.run(on_one_connection(first, second, first))
    assert ok.status_code == 200
    assert (too_soon.status_code, reason(too_soon)) == (429, "TooManyProviderTokenUpdates")
    assert again.status_code == 200
    # a new connection may start with any token; an old one may move on after 20 minutes
    assert post(apns, head=headers(apns, second)).status_code == 200
    statuses = [
        r.status_code for r in asyncio.run(on_one_connection(sign(apns, iat=time.time() - 1300), first))
    ]
    assert statuses == [200, 200]


def test_a_new_token_right_after_a_refused_one_is_accepted(apns: FakeAPNs) -> None:
    old = sign(apns, iat=time.time() - 30)

    async def refreshed() -> list[int]:
        async with client(apns) as c:
            url = f"{apns.url}/3/device/{device()}"
            codes = [(await c.post(url, headers=headers(apns, old), content=body_of())).status_code]
            apns.expire_tokens()
            codes.append((await c.post(url, headers=headers(apns, old), content=body_of())).status_code)
            codes.append(
                (await c.post(url, headers=headers(apns, sign(apns)), content=body_of())).status_code
            )
            return codes

    assert asyncio.run(refreshed()) == [200, 403, 200]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"apns_topic": ""}, "MissingTopic"),
        ({"apns_topic": "com.example.other"}, "BadTopic"),
        ({"apns_push_type": "banner"}, "InvalidPushType"),
        ({"apns_priority": "7"}, "BadPriority"),
        ({"apns_expiration": "tomorrow"}, "BadExpirationDate"),
        ({"apns_id": "not-a-uuid"}, "BadMessageId"),
        ({"apns_collapse_id": "c" * 65}, "BadCollapseId"),
    ],
)
def test_request_headers_are_checked(apns: FakeAPNs, extra: dict[str, str], expected: str) -> None:
    response = post(apns, head=headers(apns, **extra))
    assert (response.status_code, reason(response)) == (400, expected)
    assert apns.accepted == []


def test_a_collapse_id_of_64_bytes_is_accepted(apns: FakeAPNs) -> None:
    assert post(apns, head=headers(apns, apns_collapse_id="c" * 64)).status_code == 200


@pytest.mark.parametrize(
    ("path", "method", "status", "expected"),
    [
        ("/3/device/" + "a" * 63, "POST", 400, "BadDeviceToken"),
        ("/3/device/" + "a" * 66, "POST", 400, "BadDeviceToken"),
        ("/3/device/" + "g" * 64, "POST", 400, "BadDeviceToken"),
        ("/3/device/", "POST", 400, "MissingDeviceToken"),
        ("/2/device/" + "a" * 64, "POST", 404, "BadPath"),
        ("/3/device/" + "a" * 64, "PUT", 405, "MethodNotAllowed"),
    ],
)
def test_the_path_and_method_are_checked(
    apns: FakeAPNs, path: str, method: str, status: int, expected: str
) -> None:
    response = post(apns, path=path, method=method)
    assert (response.status_code, reason(response)) == (status, expected)


def test_repeated_headers_are_refused(apns: FakeAPNs) -> None:
    raw = [*headers(apns).items(), ("apns-topic", apns.topic)]

    async def twice() -> httpx.Response:
        async with client(apns) as c:
            return await c.post(f"{apns.url}/3/device/{device()}", headers=raw, content=body_of())

    response = asyncio.run(twice())
    assert (response.status_code, reason(response)) == (400, "DuplicateHeaders")


def test_unregistered_devices_are_410_with_a_timestamp(apns: FakeAPNs) -> None:
    marked = "deadbeef" + device()[8:]
    later = device()
    apns.unregister("apns:" + later)
    before = int(time.time() * 1000)
    for token in (marked, later):
        response = post(apns, token)
        assert (response.status_code, reason(response)) == (410, "Unregistered")
        assert before <= response.json()["timestamp"] <= int(time.time() * 1000)
    assert apns.accepted == []
    apns.reset()
    assert post(apns, later).status_code == 200  # reset forgets unregister()


def test_payload_size_and_shape_are_checked(apns: FakeAPNs) -> None:
    empty = post(apns, content=b"")
    assert (empty.status_code, reason(empty)) == (400, "PayloadEmpty")
    padding = "x" * (MAX_PAYLOAD_BYTES - len(body_of({"aps": {}, "p": ""})))
    exactly = body_of({"aps": {}, "p": padding})
    assert len(exactly) == MAX_PAYLOAD_BYTES
    assert post(apns, content=exactly).status_code == 200
    large = post(apns, content=body_of({"aps": {}, "p": padding + "x"}))
    assert (large.status_code, reason(large)) == (413, "PayloadTooLarge")
    for bad in (b"{not json", b"[1, 2]", body_of({"alert": "no aps"})):
        response = post(apns, content=bad)
        assert (response.status_code, reason(response)) == (400, "BadPayload")


@pytest.mark.parametrize(
    ("status", "why", "after"),
    [(429, "TooManyRequests", 3.0), (503, "ServiceUnavailable", None), (500, "InternalServerError", None)],
)
def test_fail_next_answers_with_apples_format(
    apns: FakeAPNs, status: int, why: str, after: float | None
) -> None:
    apns.fail_next(2, status, why, retry_after=after)
    for _ in range(2):
        response = post(apns)
        assert (response.status_code, reason(response)) == (status, why)
        assert response.headers.get("retry-after") == (None if after is None else "3")
        assert response.headers["apns-id"]
    assert post(apns).status_code == 200
    assert len(apns.accepted) == 1
    assert apns.requests == 3


def test_a_fault_for_one_device_waits_for_that_device(apns: FakeAPNs) -> None:
    target = device()
    apns.fail_next(1, 500, "InternalServerError", token="apns:" + target)
    assert post(apns).status_code == 200  # another device is not refused
    response = post(apns, target)
    assert (response.status_code, reason(response)) == (500, "InternalServerError")
    assert post(apns, target).status_code == 200


def test_faults_come_after_authentication(apns: FakeAPNs) -> None:
    apns.fail_next(1, 503, "ServiceUnavailable")
    forged = post(apns, head=headers(apns, sign(apns, kid="OTHERKEY00")))
    assert (forged.status_code, reason(forged)) == (403, "InvalidProviderToken")
    assert post(apns).status_code == 503


def test_an_outage_lasts_until_cleared(apns: FakeAPNs) -> None:
    apns.set_outage(503, "Shutdown", retry_after=2)
    for _ in range(3):
        response = post(apns)
        assert (response.status_code, reason(response), response.headers["retry-after"]) == (
            503,
            "Shutdown",
            "2",
        )
    apns.set_outage(None)
    assert post(apns).status_code == 200


def test_hang_next_accepts_then_answers_late(apns: FakeAPNs) -> None:
    apns.hang_next(1, 5.0)
    slow = device()

    async def impatient() -> None:
        async with client(apns, read=0.3) as c:
            await c.post(f"{apns.url}/3/device/{slow}", headers=headers(apns), content=body_of())

    with pytest.raises(httpx.ReadTimeout):
        asyncio.run(impatient())
    assert len(apns.accepted_for(slow)) == 1  # accepted although the client never heard so
    assert post(apns).status_code == 200


def test_stopping_says_goaway_and_a_restart_keeps_the_port(apns: FakeAPNs) -> None:
    async def across_a_restart() -> None:
        async with client(apns) as c:
            url = f"{apns.url}/3/device/{device()}"
            assert (await c.post(url, headers=headers(apns), content=body_of())).status_code == 200
            await asyncio.to_thread(apns.stop)
            # the GOAWAY told the client its next request was not taken: it tried a new connection
            with pytest.raises(httpx.ConnectError):
                await c.post(url, headers=headers(apns), content=body_of())
            await asyncio.to_thread(apns.start)
            assert (await c.post(url, headers=headers(apns), content=body_of())).status_code == 200

    url = apns.url
    asyncio.run(across_a_restart())
    assert apns.url == url


def test_wait_accepted_waits_for_the_count_or_times_out(apns: FakeAPNs) -> None:
    async def both() -> list[dict[str, Any]]:
        waiting = asyncio.create_task(asyncio.to_thread(apns.wait_accepted, 1, 10.0))
        await _post(apns, f"/3/device/{device()}", headers(apns), body_of())
        return await waiting

    assert len(asyncio.run(both())) == 1
    with pytest.raises(TimeoutError):
        apns.wait_accepted(2, timeout=0.2)


def test_write_key_writes_a_p8_signing_key(apns: FakeAPNs, tmp_path: Path) -> None:
    path = apns.write_key(tmp_path / f"AuthKey_{apns.key_id}.p8")
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert path.stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert post(apns, head=headers(apns, sign(apns, key=key))).status_code == 200
