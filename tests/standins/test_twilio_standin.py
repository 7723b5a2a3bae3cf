"""FakeTwilio driven by the real ``twilio`` package (sync and async clients) and by raw HTTP.

What matters is that the fake answers the way Twilio answers the client herald uses: the
status, code and message of TwilioRestException, Retry-After on a 429, a message recorded
although the client timed out, and webhooks whose signatures RequestValidator accepts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest
import requests
from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.harness import wait_until
from tests.standins.base import serve_while
from tests.standins.twilio import FakeTwilio, count_segments

TO = "+8613800138000"
SENDER = "+15005550006"
SERVICE = "MG" + "0123456789abcdef" * 2

# The twilio package's async client still passes aiohttp a BasicAuth; aiohttp 3.14 warns on each call.
pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)

MAGIC_TO = [
    ("+15005550001", 21211),
    ("+15005550002", 21612),
    ("+15005550003", 21408),
    ("+15005550004", 21610),
    ("+15005550009", 21614),
]


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


def sync_client(fake: FakeTwilio, token: str | None = None, timeout: float | None = None) -> Client:
    client = Client(fake.account_sid, token or fake.auth_token, http_client=TwilioHttpClient(timeout=timeout))
    client.api.base_url = fake.url
    return client


class TimeoutAsyncHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio is untyped
    """AsyncTwilioHttpClient that applies its own timeout (the package's ignores it)."""

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the interface's own parameter
        allow_redirects: bool = False,
    ) -> Response:
        return await super().request(
            method, url, params, data, headers, auth, timeout or self.timeout, allow_redirects
        )


async def create_async(fake: FakeTwilio, client_timeout: float | None = None, **params: Any) -> Any:
    """One ``messages.create_async`` on a fresh async client, closed afterwards."""
    http = TimeoutAsyncHttpClient(timeout=client_timeout)
    client = Client(fake.account_sid, fake.auth_token, http_client=http)
    client.api.base_url = fake.url
    try:
        return await client.messages.create_async(**params)
    finally:
        await http.close()


def basic_auth(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def raw_post(
    fake: FakeTwilio, form: dict[str, str], *, auth: tuple[str, str] | None = None, path: str = ""
) -> Any:
    """POST a form with urllib; returns (status, headers, decoded JSON body)."""
    login, password = auth or (fake.account_sid, fake.auth_token)
    request = urllib.request.Request(
        fake.url + (path or f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"),
        data=urllib.parse.urlencode(form).encode(),
        method="POST",
        headers={"Authorization": basic_auth(login, password)},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


# -- success -----------------------------------------------------------------------------------


def test_sync_create_is_accepted_and_recorded(fake: FakeTwilio) -> None:
    callback = "https://herald.example/v1/providers/twilio/status"
    message = sync_client(fake).messages.create(
        to=TO, from_=SENDER, body="您好,李伟", status_callback=callback
    )

    assert message.sid is not None
    assert message.sid.startswith("SM")
    assert len(message.sid) == 34
    assert message.account_sid == fake.account_sid
    assert (message.to, message.from_, message.body) == (TO, SENDER, "您好,李伟")
    assert message.status == "queued"
    assert message.direction == "outbound-api"
    assert message.num_segments == "1"
    assert message.api_version == "2010-04-01"
    assert message.messaging_service_sid is None
    assert message.date_created is not None
    assert message.date_created.tzinfo is not None
    assert message.uri == f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{message.sid}.json"
    assert fake.requests == 1
    [record] = fake.accepted
    assert record["sid"] == message.sid
    assert (record["to"], record["from"], record["body"]) == (TO, SENDER, "您好,李伟")
    assert record["messaging_service_sid"] is None
    assert record["status_callback"] == callback
    assert isinstance(record["at"], float)
    assert fake.accepted_to(TO) == [record]
    assert fake.accepted_to("+15550001111") == []


def test_async_create_is_accepted(fake: FakeTwilio) -> None:
    message = asyncio.run(create_async(fake, to=TO, from_=SENDER, body="Payment due"))
    assert message.status == "queued"
    assert [record["sid"] for record in fake.accepted] == [message.sid]


def test_messaging_service_message_is_accepted_without_a_sender(fake: FakeTwilio) -> None:
    message = sync_client(fake).messages.create(to=TO, messaging_service_sid=SERVICE, body="Payment due")
    assert message.status == "accepted"
    assert message.from_ is None
    assert message.messaging_service_sid == SERVICE
    assert message.num_segments == "0"  # no sender chosen yet, as Twilio documents
    assert fake.accepted[0]["messaging_service_sid"] == SERVICE


def test_raw_success_body_has_twilio_fields(fake: FakeTwilio) -> None:
    body = "x" * 161
    status, headers, resource = raw_post(fake, {"To": TO, "From": SENDER, "Body": body})
    assert status == 201
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Twilio-Request-Id"].startswith("RQ")
    assert resource["num_segments"] == "2"
    assert resource["num_media"] == "0"
    assert resource["subresource_uris"] == {"media": resource["uri"].removesuffix(".json") + "/Media.json"}
    assert resource["date_sent"] is None
    assert resource["price"] is None
    assert parsedate_to_datetime(resource["date_created"]).utcoffset() is not None
    assert resource["date_created"].endswith(" +0000")


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),
        ("€" * 81, 2),
        ("中" * 70, 1),
        ("中" * 71, 2),
        ("中" * 134, 2),
        ("中" * 135, 3),
        ("😀" * 35, 1),
        ("a" * 66 + "😀" + "a" * 66, 3),  # 134 units, but the pair is not split across parts
    ],
)
def test_segment_count(body: str, segments: int) -> None:
    assert count_segments(body) == segments


# -- Twilio's errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(("to", "code"), MAGIC_TO)
def test_magic_numbers_sync(fake: FakeTwilio, to: str, code: int) -> None:
    with pytest.raises(TwilioRestException) as caught:
        sync_client(fake).messages.create(to=to, from_=SENDER, body="hello")
    assert (caught.value.status, caught.value.code) == (400, code)
    assert fake.accepted == []
    assert fake.requests == 1


@pytest.mark.parametrize(("to", "code"), MAGIC_TO)
def test_magic_numbers_async(fake: FakeTwilio, to: str, code: int) -> None:
    with pytest.raises(TwilioRestException) as caught:
        asyncio.run(create_async(fake, to=to, from_=SENDER, body="hello"))
    assert (caught.value.status, caught.value.code) == (400, code)
    assert fake.accepted == []


def test_invalid_to_message_and_body(fake: FakeTwilio) -> None:
    status, _, body = raw_post(fake, {"To": "+15005550001", "From": SENDER, "Body": "hello"})
    assert (status, body) == (
        400,
        {
            "code": 21211,
            "message": "The 'To' number +15005550001 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400,
        },
    )
    status, _, body = raw_post(fake, {"To": "13800138000", "From": SENDER, "Body": "hello"})
    assert (status, body["code"]) == (400, 21211)


def test_stop_set(fake: FakeTwilio) -> None:
    client = sync_client(fake)
    fake.block(TO)
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=TO, from_=SENDER, body="hello")
    assert (caught.value.status, caught.value.code) == (400, 21610)
    fake.unblock(TO)
    client.messages.create(to=TO, from_=SENDER, body="hello")
    assert len(fake.accepted_to(TO)) == 1


@pytest.mark.parametrize(
    ("from_", "code"), [("+15005550001", 21212), ("+15005550007", 21606), ("+15005550008", 21611)]
)
def test_magic_senders(fake: FakeTwilio, from_: str, code: int) -> None:
    with pytest.raises(TwilioRestException) as caught:
        sync_client(fake).messages.create(to=TO, from_=from_, body="hello")
    assert (caught.value.status, caught.value.code) == (400, code)


def test_missing_parameters(fake: FakeTwilio) -> None:
    client = sync_client(fake)
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=TO, from_=SENDER)
    assert (caught.value.status, caught.value.code) == (400, 21602)
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=TO, body="hello")
    assert (caught.value.status, caught.value.code) == (400, 21603)
    status, _, body = raw_post(fake, {"From": SENDER, "Body": "hello"})
    assert (status, body["code"], body["message"]) == (400, 21604, "A 'To' phone number is required.")
    status, _, body = raw_post(fake, {"To": TO, "From": SENDER, "Body": "x" * 1601})
    assert (status, body["code"]) == (400, 21617)
    status, _, body = raw_post(fake, {"To": TO, "MessagingServiceSid": "MG123", "Body": "hello"})
    assert (status, body["code"]) == (400, 21701)
    assert fake.accepted == []


def test_wrong_token_is_401(fake: FakeTwilio) -> None:
    with pytest.raises(TwilioRestException) as caught:
        sync_client(fake, token="0" * 32).messages.create(to=TO, from_=SENDER, body="hello")
    assert (caught.value.status, caught.value.code) == (401, 20003)
    status, headers, body = raw_post(
        fake, {"To": TO, "From": SENDER, "Body": "hello"}, auth=(fake.account_sid, "x")
    )
    assert status == 401
    assert body == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert fake.accepted == []
    assert fake.requests == 2


def test_missing_credentials_are_401(fake: FakeTwilio) -> None:
    request = urllib.request.Request(fake.messages_url, data=b"To=%2B8613800138000", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 401
    assert json.loads(caught.value.read())["code"] == 20003


def test_other_account_in_path_is_not_found(fake: FakeTwilio) -> None:
    other = "AC" + "f" * 32
    status, _, body = raw_post(
        fake,
        {"To": TO, "From": SENDER, "Body": "hello"},
        path=f"/2010-04-01/Accounts/{other}/Messages.json",
    )
    assert (status, body["code"], body["status"]) == (404, 20404, 404)
    assert fake.accepted == []


# -- faults ------------------------------------------------------------------------------------


def test_fail_next_429_carries_retry_after(fake: FakeTwilio) -> None:
    fake.fail_next(1, 429, retry_after=7)
    form = {"To": TO, "From": SENDER, "Body": "hello"}
    headers = {"Authorization": basic_auth(fake.account_sid, fake.auth_token)}

    async def post_twice() -> list[tuple[int, str | None, dict[str, Any]]]:
        answers = []
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                async with session.post(fake.messages_url, data=form, headers=headers) as response:
                    answers.append(
                        (response.status, response.headers.get("Retry-After"), await response.json())
                    )
        return answers

    refused, accepted = asyncio.run(post_twice())
    assert refused == (
        429,
        "7",
        {
            "code": 20429,
            "message": "Too Many Requests",
            "more_info": "https://www.twilio.com/docs/errors/20429",
            "status": 429,
        },
    )
    assert accepted[:2] == (201, None)
    assert len(fake.accepted) == 1
    assert fake.requests == 2


def test_fail_next_through_the_client(fake: FakeTwilio) -> None:
    client = sync_client(fake)
    fake.fail_next(2, 503)
    fake.fail_next(1, 429, code=20429, retry_after=0.2)
    for status, code in [(503, 20503), (503, 20503), (429, 20429)]:
        with pytest.raises(TwilioRestException) as caught:
            client.messages.create(to=TO, from_=SENDER, body="hello")
        assert (caught.value.status, caught.value.code) == (status, code)
    assert fake.accepted == []
    client.messages.create(to=TO, from_=SENDER, body="hello")
    assert len(fake.accepted) == 1


@pytest.mark.parametrize("status", [500, 502, 504])
def test_ambiguous_server_errors(fake: FakeTwilio, status: int) -> None:
    fake.fail_next(1, status)
    with pytest.raises(TwilioRestException) as caught:
        asyncio.run(create_async(fake, to=TO, from_=SENDER, body="hello"))
    assert (caught.value.status, caught.value.code) == (status, 20500)
    assert fake.accepted == []


def test_faults_apply_only_to_authenticated_requests(fake: FakeTwilio) -> None:
    fake.fail_next(1, 503)
    with pytest.raises(TwilioRestException) as caught:
        sync_client(fake, token="0" * 32).messages.create(to=TO, from_=SENDER, body="hello")
    assert caught.value.status == 401
    with pytest.raises(TwilioRestException) as caught:
        sync_client(fake).messages.create(to=TO, from_=SENDER, body="hello")
    assert caught.value.status == 503


def test_outage_until_lifted(fake: FakeTwilio) -> None:
    client = sync_client(fake)
    fake.set_outage(503, retry_after=30)
    for _ in range(3):
        with pytest.raises(TwilioRestException) as caught:
            client.messages.create(to=TO, from_=SENDER, body="hello")
        assert (caught.value.status, caught.value.code) == (503, 20503)
    status, headers, _ = raw_post(fake, {"To": TO, "From": SENDER, "Body": "hello"})
    assert (status, headers["Retry-After"]) == (503, "30")
    fake.set_outage(None)
    client.messages.create(to=TO, from_=SENDER, body="hello")
    assert len(fake.accepted) == 1
    assert fake.requests == 5


def test_hang_sync_times_out_after_acceptance(fake: FakeTwilio) -> None:
    fake.hang_next(1, 30)
    with pytest.raises(requests.exceptions.Timeout):
        sync_client(fake, timeout=0.3).messages.create(to=TO, from_=SENDER, body="hello")
    assert len(fake.accepted) == 1  # Twilio has it: the timeout is ambiguous
    message = sync_client(fake, timeout=5).messages.create(to=TO, from_=SENDER, body="hello")
    assert message.status == "queued"
    assert len(fake.accepted) == 2


def test_hang_async_times_out_after_acceptance(fake: FakeTwilio) -> None:
    fake.hang_next(1, 30)
    with pytest.raises(TimeoutError):
        asyncio.run(create_async(fake, client_timeout=0.3, to=TO, from_=SENDER, body="hello"))
    assert len(fake.accepted) == 1


def test_hang_then_answer(fake: FakeTwilio) -> None:
    fake.hang_next(1, 0.2)
    message = sync_client(fake, timeout=10).messages.create(to=TO, from_=SENDER, body="hello")
    assert message.sid == fake.accepted[0]["sid"]
    assert fake.accepted[0]["held_back"] == 0.2


def test_hang_all_until_lifted_records_each_request_and_counts_those_in_flight(fake: FakeTwilio) -> None:
    fake.hang_all(30)
    for to in (TO, "+8613800138001"):
        with pytest.raises(requests.exceptions.Timeout):
            sync_client(fake, timeout=0.3).messages.create(to=to, from_=SENDER, body="hello")
    assert [(r["to"], r["held_back"]) for r in fake.accepted] == [(TO, 30), ("+8613800138001", 30)]
    assert fake.in_flight == 2  # both answers are still held back
    fake.hang_all(None)
    sync_client(fake, timeout=5).messages.create(to=TO, from_=SENDER, body="again")
    assert fake.accepted[-1]["held_back"] == 0
    assert [r["to"] for r in fake.accepted].count(TO) == 2  # a second request to one recipient shows


def test_in_flight_counts_requests_being_answered() -> None:
    with FakeTwilio(latency=0.0) as fake:
        fake.pause_answers()
        client = sync_client(fake, timeout=0.3)
        with pytest.raises(requests.exceptions.Timeout):
            client.messages.create(to=TO, from_=SENDER, body="hello")
        assert fake.in_flight == 1
        fake.resume_answers()
        wait_until(lambda: fake.in_flight == 0, 10, "the released answer to be written")
        assert len(fake.accepted) == 1


def test_hundreds_of_concurrent_requests() -> None:
    with FakeTwilio(latency=0.05) as fake:

        async def burst() -> list[Any]:
            http = AsyncTwilioHttpClient()
            client = Client(fake.account_sid, fake.auth_token, http_client=http)
            client.api.base_url = fake.url
            try:
                return await asyncio.gather(
                    *(
                        client.messages.create_async(to=f"+1555000{i:04d}", from_=SENDER, body="hi")
                        for i in range(400)
                    )
                )
            finally:
                await http.close()

        messages = asyncio.run(burst())
        assert len({message.sid for message in messages}) == 400
        assert len(fake.wait_accepted(400, timeout=5)) == 400
        assert fake.requests == 400


def test_reset_and_restart_on_the_same_port(fake: FakeTwilio) -> None:
    client = sync_client(fake)
    client.messages.create(to=TO, from_=SENDER, body="hello")
    fake.fail_next(1, 503)
    fake.reset()
    assert (fake.accepted, fake.requests) == ([], 0)
    url = fake.url
    fake.stop()
    fake.start()
    assert fake.url == url
    client.messages.create(to=TO, from_=SENDER, body="hello")
    assert len(fake.accepted) == 1


# -- webhooks ----------------------------------------------------------------------------------


class Receiver:
    """A tiny webhook endpoint that checks X-Twilio-Signature as a Twilio user would."""

    def __init__(self, auth_token: str) -> None:
        self.validator = RequestValidator(auth_token)
        self.received: list[tuple[dict[str, str], bool]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        valid = self.validator.validate(str(request.url), form, request.headers.get("X-Twilio-Signature", ""))
        self.received.append((form, valid))
        return web.Response(status=204 if valid else 403)


def with_receiver(auth_token: str, action: Any) -> tuple[Any, Receiver]:
    """Run a receiver on this thread's loop while ``action(receiver)`` runs in a worker thread."""
    receiver = Receiver(auth_token)

    def run(base: str) -> Any:
        receiver.url = base
        return action(receiver)

    return serve_while("/hooks/{name}", receiver.handle, run), receiver


def test_status_callback_is_signed_as_twilio_signs(fake: FakeTwilio) -> None:
    client = sync_client(fake)

    def deliver(receiver: Receiver) -> list[int]:
        message = client.messages.create(
            to=TO, from_=SENDER, body="hello", status_callback=receiver.url + "/hooks/status?lane=a"
        )
        return [
            fake.send_status_callback(message.sid, "sent"),
            fake.send_status_callback(message.sid, "undelivered", error_code=30006),
            fake.send_status_callback(message.sid, tamper=True),
        ]

    statuses, receiver = with_receiver(fake.auth_token, deliver)
    assert statuses == [204, 204, 403]
    (sent, sent_ok), (undelivered, undelivered_ok), (tampered, tampered_ok) = receiver.received
    sid = fake.accepted[0]["sid"]
    assert (sent_ok, undelivered_ok, tampered_ok) == (True, True, False)
    assert sent == {
        "AccountSid": fake.account_sid,
        "ApiVersion": "2010-04-01",
        "From": SENDER,
        "MessageSid": sid,
        "MessageStatus": "sent",
        "SmsSid": sid,
        "SmsStatus": "sent",
        "To": TO,
    }
    assert (undelivered["MessageStatus"], undelivered["ErrorCode"]) == ("undelivered", "30006")
    assert tampered["MessageStatus"] != "delivered"


def test_status_callback_url_override_and_wrong_token(fake: FakeTwilio) -> None:
    sid = sync_client(fake).messages.create(to=TO, messaging_service_sid=SERVICE, body="hello").sid

    def deliver(receiver: Receiver) -> int:
        return fake.send_status_callback(sid, "delivered", url_override=receiver.url + "/hooks/status")

    assert with_receiver(fake.auth_token, deliver)[0] == 204
    status, receiver = with_receiver("f" * 32, deliver)  # a receiver holding another token
    assert status == 403
    [(form, _)] = receiver.received
    assert form["MessagingServiceSid"] == SERVICE


def test_status_callback_needs_a_url(fake: FakeTwilio) -> None:
    sid = sync_client(fake).messages.create(to=TO, from_=SENDER, body="hello").sid
    with pytest.raises(ValueError, match="StatusCallback"):
        fake.send_status_callback(sid)
    with pytest.raises(KeyError):
        fake.send_status_callback("SM" + "0" * 32, url_override="http://127.0.0.1:9/")


def test_inbound_message_is_signed(fake: FakeTwilio) -> None:
    def inbound(receiver: Receiver) -> list[int]:
        url = receiver.url + "/hooks/inbound"
        return [fake.send_inbound(url, TO, "STOP"), fake.send_inbound(url, TO, "START", tamper=True)]

    statuses, receiver = with_receiver(fake.auth_token, inbound)
    assert statuses == [204, 403]
    form, valid = receiver.received[0]
    assert valid
    assert (form["From"], form["To"], form["Body"], form["AccountSid"]) == (
        TO,
        SENDER,
        "STOP",
        fake.account_sid,
    )
    assert form["MessageSid"].startswith("SM")
    assert form["SmsStatus"] == "received"
