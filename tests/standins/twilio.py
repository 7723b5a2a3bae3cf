"""A local server that speaks Twilio's Messages API (REST API v2010) and sends its webhooks.

`FakeTwilio` runs an aiohttp application on 127.0.0.1 in a background thread with its own
event loop, so the test process and worker subprocesses can all reach it. Point the real
``twilio`` client at it with ``client.api.base_url = fake.url`` (or herald with
``HERALD_TWILIO_API_BASE``).

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` behaves as Twilio's does, as far as
herald can tell: HTTP Basic auth with the account SID and auth token, form-encoded parameters,
a ``201`` with a Message resource shaped like Twilio's (``api.v2010.account.message`` in
Twilio's OpenAPI description; tests/contract checks it against that description), and
errors as Twilio writes them: ``{"code", "message", "more_info", "status"}``.

Order of checks: authentication (401, code 20003) -> account in the path (404, 20404) ->
outage -> queued faults (`fail_next`) -> faults queued for the recipient (`fail_to`) ->
parameters (400: 21604 no To, 21603 no From nor
MessagingServiceSid, 21602 no Body nor MediaUrl, 21211 To not a phone number, 21701 bad
MessagingServiceSid, 21617 Body over 1600 characters) -> magic numbers and the STOP set ->
accepted (then `hang_to`, `hang_next` or `hang_all`). A request refused by a fault is not
validated and not recorded.

Magic numbers, as with Twilio's test credentials (all answer 400):

* To +15005550001: 21211, not a valid phone number
* To +15005550002: 21612, not reachable
* To +15005550003: 21408, no permission for the region
* To +15005550004: 21610, unsubscribed recipient (replied STOP); `block(number)` does the same
* To +15005550009: 21614, not a mobile number
* From +15005550001: 21212, not a valid sender
* From +15005550007: 21606, not a message-capable number of this account
* From +15005550008: 21611, the sender's queue is full (transient)

Twilio accepts both From and MessagingServiceSid in one request (the From must then belong to
the service); so does this fake. With a Messaging Service and no From, the message is
``accepted`` with ``from`` null and ``num_segments`` ``"0"`` until a sender is chosen, as
Twilio documents; otherwise it is ``queued`` with its segment count.

Webhooks: `send_status_callback` and `send_inbound` POST form-encoded parameters signed in
``X-Twilio-Signature`` exactly as Twilio signs them (HMAC-SHA1 of the URL and the sorted
parameters with the auth token, via ``twilio.request_validator.RequestValidator``). They are
synchronous; from a coroutine whose loop also runs the receiver, call them through
``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import math
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any, Final

from aiohttp import web
from twilio.request_validator import RequestValidator

from tests.standins.base import AiohttpServer, Recording

API_VERSION: Final = "2010-04-01"
MESSAGES_PATH: Final = "/2010-04-01/Accounts/{account_sid}/Messages.json"
# The number Twilio's test credentials treat as a valid sender; also the sender this fake
# reports for messages sent through a Messaging Service.
TEST_SENDER: Final = "+15005550006"
MAX_BODY_CHARACTERS: Final = 1600

_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_CHANNEL_ADDRESS = re.compile(r"^[a-z]+:\S+$")  # whatsapp:+1555..., messenger:..., rcs:...
_MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

_MAGIC_TO: Final[dict[str, tuple[int, str]]] = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: +15005550002, is not currently reachable via SMS."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: "
        "+15005550003.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
_MAGIC_FROM: Final[dict[str, tuple[int, str]]] = {
    "+15005550001": (
        21212,
        "The 'From' number +15005550001 is not a valid phone number, shortcode, or alphanumeric sender ID.",
    ),
    "+15005550007": (
        21606,
        "The 'From' phone number provided is not a valid message-capable Twilio phone number for this "
        "destination/account.",
    ),
    "+15005550008": (21611, "This 'From' number has exceeded the maximum number of queued messages."),
}
# Messages for codes a test may ask `fail_next` for without spelling the message out.
_MESSAGES: Final[dict[int, str]] = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service is unavailable. Please try again",
    21610: "Attempt to send to unsubscribed recipient",
    21611: "This 'From' number has exceeded the maximum number of queued messages.",
    21614: "'To' number is not a valid mobile number",
    30001: "Queue overflow",
}
# The code Twilio puts in the body of an HTTP-level error when nothing more specific applies.
_STATUS_CODES: Final[dict[int, int]] = {
    401: 20003,
    403: 20403,
    404: 20404,
    429: 20429,
    500: 20500,
    502: 20500,
    503: 20503,
    504: 20500,
}

# GSM 03.38: the basic set (one septet each) and the extension table (an escape plus a septet).
_GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION: Final = frozenset("^{}\\[~]|€\f")


def count_segments(body: str) -> int:
    """SMS parts for `body`: GSM-7 160/153 septets, else UCS-2 70/67 UTF-16 units.

    An escaped GSM character or a surrogate pair is never split across two parts.
    """
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in body):
        costs = [2 if ch in _GSM7_EXTENSION else 1 for ch in body]
        single, per_part = 160, 153
    else:
        costs = [2 if ord(ch) > 0xFFFF else 1 for ch in body]
        single, per_part = 70, 67
    if sum(costs) <= single:
        return 1
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:
            parts += 1
            used = 0
        used += cost
    return parts


def rfc2822(moment: datetime) -> str:
    """Twilio's date format: ``Thu, 24 Aug 2023 05:01:45 +0000``."""
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0))


def twilio_error(
    status: int,
    code: int | None = None,
    message: str | None = None,
    *,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An error answer in Twilio's format, e.g. ``twilio_error(429, retry_after=2)``."""
    if code is None:
        code = _STATUS_CODES.get(status, 20000 + status if 400 <= status < 600 else 20500)
    if message is None:
        message = _MESSAGES.get(code) or _phrase(status)
    all_headers = {"Twilio-Request-Id": _request_id(), **(headers or {})}
    if retry_after is not None:
        # Retry-After is whole seconds (RFC 9110); a fraction rounds up.
        all_headers["Retry-After"] = str(math.ceil(retry_after))
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status, headers=all_headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _request_id() -> str:
    return "RQ" + secrets.token_hex(16)


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True)
class _Fault:
    status: int
    code: int | None
    retry_after: float | None


class _Refused(Exception):
    """A request refused with a ready response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class FakeTwilio(AiohttpServer, Recording):
    """Twilio's Messages API on 127.0.0.1 (see the module docstring).

    `accepted` lists the messages answered ``201``, oldest first, as dicts with ``sid``,
    ``to``, ``from``, ``messaging_service_sid``, ``body``, ``status_callback``, ``at`` (epoch
    seconds), ``num_segments`` (int), ``media_url`` (list) and ``held_back`` (seconds its answer
    was kept back by a hang; 0 for none). Every accepted request is recorded, so the records by
    ``to`` count what each recipient was sent (duplicates too). `requests` counts every
    Messages POST received, refused ones included; `in_flight` those not answered yet. All are
    safe to read from any thread.
    """

    name = "FakeTwilio"
    thread_name = "fake-twilio"

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        latency: float = 0.0,
    ) -> None:
        super().__init__()
        self.account_sid = account_sid or _sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.latency = latency
        self._validator = RequestValidator(self.auth_token)
        self._start_records()
        self._blocked: set[str] = set()
        self._faults: deque[_Fault] = deque()
        self._outage: _Fault | None = None
        self._hangs: deque[float] = deque()
        self._faults_to: dict[str, deque[_Fault]] = {}
        self._hangs_to: dict[str, float] = {}
        self._hang_all = 0.0
        self._in_flight = 0
        self._answering = threading.Event()
        self._answering.set()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The REST base, e.g. ``http://127.0.0.1:40123`` (Twilio's ``https://api.twilio.com``)."""
        return super().url

    def herald_env(self, sender: str) -> dict[str, str]:
        """The settings that point herald's Twilio provider here, sending from ``sender``."""
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "HERALD_TWILIO_FROM": sender,
            "HERALD_TWILIO_API_BASE": self.url,
        }

    @property
    def messages_url(self) -> str:
        return self.url + MESSAGES_PATH.format(account_sid=self.account_sid)

    def _before_stop(self) -> None:
        # Release the answers `pause_answers` holds back.
        self._answering.set()

    backlog = 1024  # a deep backlog: hundreds of clients may connect at once

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/2010-04-01/Accounts/{account_sid}/Messages.json", self._handle_create)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)

    # -- observations ------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Messages POSTs received and not answered yet (held-back answers included)."""
        with self._lock:
            return self._in_flight

    def accepted_to(self, to: str) -> list[dict[str, Any]]:
        with self._lock:
            return [record for record in self._accepted if record["to"] == to]

    def message(self, sid: str) -> dict[str, Any]:
        """The accepted message with this SID (KeyError if there is none)."""
        with self._lock:
            for record in self._accepted:
                if record["sid"] == sid:
                    return record
        raise KeyError(sid)

    def reset(self) -> None:
        """Forget records, counters, pending faults and the STOP set."""
        with self._lock:
            self._accepted.clear()
            self._requests = 0
            self._blocked.clear()
            self._faults.clear()
            self._outage = None
            self._hangs.clear()
            self._faults_to.clear()
            self._hangs_to.clear()
            self._hang_all = 0.0
        self._answering.set()

    # -- recipients and fault injection ------------------------------------------------------

    def block(self, number: str) -> None:
        """`number` replied STOP: sends to it answer 400 with code 21610 until `unblock`."""
        with self._lock:
            self._blocked.add(number)

    def unblock(self, number: str) -> None:
        """`number` replied START."""
        with self._lock:
            self._blocked.discard(number)

    def fail_next(
        self, n: int, status: int, *, code: int | None = None, retry_after: float | None = None
    ) -> None:
        """Refuse the next `n` authenticated requests, e.g. ``(2, 429, retry_after=1)``.

        The code defaults from the status (429 -> 20429, 503 -> 20503, 500/502/504 -> 20500);
        `retry_after` sets the ``Retry-After`` header (whole seconds, rounded up).
        """
        with self._lock:
            self._faults.extend(_Fault(status, code, retry_after) for _ in range(n))

    def set_outage(
        self, status: int | None, retry_after: float | None = None, *, code: int | None = None
    ) -> None:
        """Refuse every authenticated request with `status` until called with ``None``."""
        with self._lock:
            self._outage = None if status is None else _Fault(status, code, retry_after)

    def hang_next(self, n: int, seconds: float) -> None:
        """The next `n` messages are accepted (recorded) and answered only after `seconds`.

        The client sees a timeout although Twilio has the message: the ambiguous case.
        """
        with self._lock:
            self._hangs.extend(seconds for _ in range(n))

    def fail_to(self, number: str, n: int, status: int, *, code: int | None = None) -> None:
        """Refuse the next `n` messages to `number` with `status` (after parameters are read)."""
        with self._lock:
            self._faults_to.setdefault(number, deque()).extend(_Fault(status, code, None) for _ in range(n))

    def hang_to(self, number: str, seconds: float) -> None:
        """Accept (record) the next message to `number`, and answer only after `seconds`."""
        with self._lock:
            self._hangs_to[number] = seconds

    def hang_all(self, seconds: float | None) -> None:
        """Accept (record) every message and answer each only after `seconds`, until called
        with ``None``: a provider that hangs for a while."""
        with self._lock:
            self._hang_all = seconds or 0.0

    def pause_answers(self) -> None:
        """Accept (record) messages but keep every answer back until `resume_answers`."""
        self._answering.clear()

    def resume_answers(self) -> None:
        """Send the answers kept back, and answer at once again."""
        self._answering.set()

    # -- webhooks ----------------------------------------------------------------------------

    def send_status_callback(
        self,
        sid: str,
        status: str = "delivered",
        error_code: int | None = None,
        url_override: str | None = None,
        tamper: bool = False,
    ) -> int:
        """POST a signed status callback for an accepted message; returns the HTTP status.

        Goes to the message's StatusCallback, or `url_override`. With `tamper`, MessageStatus is
        changed after signing (the receiver must then refuse it).
        """
        record = self.message(sid)
        url = url_override or record["status_callback"]
        if not url:
            raise ValueError(f"message {sid} has no StatusCallback; pass url_override")
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "From": record["from"] or TEST_SENDER,
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": record["to"],
        }
        if record["messaging_service_sid"]:
            params["MessagingServiceSid"] = record["messaging_service_sid"]
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        tampered = ("MessageStatus", "failed" if status == "delivered" else "delivered") if tamper else None
        return self._post_signed(url, params, tampered)

    def send_inbound(
        self, url: str, from_: str, body: str, to: str = TEST_SENDER, *, tamper: bool = False
    ) -> int:
        """POST a signed incoming-message webhook (an SMS from `from_` to `to`); returns the status.

        With `tamper`, Body is changed after signing.
        """
        sid = _sid("SM")
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "Body": body,
            "From": from_,
            "MessageSid": sid,
            "NumMedia": "0",
            "NumSegments": str(count_segments(body)),
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": to,
        }
        tampered = ("Body", body + " (changed)") if tamper else None
        return self._post_signed(url, params, tampered)

    def sign(self, url: str, params: dict[str, str]) -> str:
        """The X-Twilio-Signature Twilio would send with `params` posted to `url`."""
        signature: str = self._validator.compute_signature(url, params)
        return signature

    def _post_signed(self, url: str, params: dict[str, str], tampered: tuple[str, str] | None) -> int:
        signature = self.sign(url, params)
        if tampered is not None:
            params = {**params, tampered[0]: tampered[1]}
        request = urllib.request.Request(
            url,
            data=urllib.parse.urlencode(params).encode(),
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "User-Agent": "TwilioProxy/1.1",
                "X-Twilio-Signature": signature,
                "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as error:
            error.read()
            return int(error.code)

    # -- the Messages API --------------------------------------------------------------------

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        return twilio_error(404, 20404, f"The requested resource {request.path} was not found")

    async def _handle_create(self, request: web.Request) -> web.Response:
        with self._lock:
            self._requests += 1
            self._in_flight += 1
        try:
            return await self._create(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _create(self, request: web.Request) -> web.Response:
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        try:
            self._authenticate(request)
            if request.match_info["account_sid"] != self.account_sid:
                return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
            with self._lock:
                fault = self._outage or (self._faults.popleft() if self._faults else None)
            if fault is not None:
                return twilio_error(fault.status, fault.code, retry_after=fault.retry_after)
            form = await request.post()
            with self._lock:
                queued = self._faults_to.get(str(form.get("To", "")))
                fault = queued.popleft() if queued else None
            if fault is not None:
                return twilio_error(fault.status, fault.code, retry_after=fault.retry_after)
            record = self._validate(form)
        except _Refused as refused:
            return refused.response
        payload = self._resource(record)
        with self._changed:
            self._record(record)
            hang = self._hangs_to.pop(record["to"], 0.0) or (self._hangs.popleft() if self._hangs else 0.0)
            hang = hang or self._hang_all
            record["held_back"] = hang
        if hang > 0:
            await asyncio.sleep(hang)
        if not self._answering.is_set():
            await asyncio.to_thread(self._answering.wait)
        return web.json_response(payload, status=201, headers={"Twilio-Request-Id": _request_id()})

    def _authenticate(self, request: web.Request) -> None:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            login, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (ValueError, binascii.Error):
            login = password = ""
        valid = (
            scheme.lower() == "basic"
            and hmac.compare_digest(login.encode(), self.account_sid.encode())
            and hmac.compare_digest(password.encode(), self.auth_token.encode())
        )
        if not valid:
            raise _Refused(
                twilio_error(
                    401, 20003, "Authenticate", headers={"WWW-Authenticate": 'Basic realm="Twilio API"'}
                )
            )

    def _validate(self, form: Any) -> dict[str, Any]:
        """Check the parameters as Twilio does; the record of the message to accept."""

        def field(name: str) -> str | None:
            value = form.get(name)
            return value if isinstance(value, str) and value != "" else None

        to = field("To")
        from_ = field("From")
        service = field("MessagingServiceSid")
        body = field("Body")
        media = [value for value in form.getall("MediaUrl", []) if isinstance(value, str) and value]
        if to is None:
            raise _Refused(twilio_error(400, 21604, "A 'To' phone number is required."))
        if from_ is None and service is None:
            raise _Refused(
                twilio_error(
                    400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message"
                )
            )
        if body is None and not media and field("ContentSid") is None:
            raise _Refused(twilio_error(400, 21602, "Message body is required."))
        if not (_E164.match(to) or _CHANNEL_ADDRESS.match(to)):
            raise _Refused(twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number."))
        if service is not None and not _MESSAGING_SERVICE_SID.match(service):
            raise _Refused(twilio_error(400, 21701, f"The Messaging Service Sid {service} is invalid."))
        if from_ in _MAGIC_FROM:
            code, message = _MAGIC_FROM[from_]
            raise _Refused(twilio_error(400, code, message))
        if body is not None and len(body) > MAX_BODY_CHARACTERS:
            raise _Refused(
                twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
            )
        with self._lock:
            blocked = to in self._blocked
        if blocked:
            raise _Refused(twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"))
        if to in _MAGIC_TO:
            code, message = _MAGIC_TO[to]
            raise _Refused(twilio_error(400, code, message))
        callback = field("StatusCallback")
        return {
            "sid": _sid("MM" if media else "SM"),
            "to": to,
            "from": from_,
            "messaging_service_sid": service,
            "body": body or "",
            "status_callback": callback,
            "at": time.time(),
            "num_segments": count_segments(body or ""),
            "media_url": media,
        }

    def _resource(self, record: dict[str, Any]) -> dict[str, Any]:
        """The Message resource Twilio answers a create with (``api.v2010.account.message``)."""
        sid = record["sid"]
        created = rfc2822(datetime.fromtimestamp(record["at"], UTC))
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        pending_sender = record["from"] is None
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": record["body"],
            "date_created": created,
            "date_sent": None,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": record["from"],
            "messaging_service_sid": record["messaging_service_sid"],
            "num_media": str(len(record["media_url"])),
            "num_segments": "0" if pending_sender else str(record["num_segments"]),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if pending_sender else "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": record["to"],
            "uri": f"{uri}.json",
        }
