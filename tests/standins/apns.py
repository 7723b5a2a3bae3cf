"""A local server that speaks Apple Push Notification service's provider API (HTTP/2 over TLS).

`FakeAPNs` runs an asyncio server on 127.0.0.1 in a background thread (see `ThreadedServer`)
and speaks HTTP/2 itself, on the `h2` package, as Apple documents its service in "Sending
notification requests to APNs", "Handling notification responses from APNs" and
"Establishing a token-based connection to APNs":

* TLS only (1.2 or later), with a fresh self-signed certificate for 127.0.0.1 / localhost that
  clients trust through `cert_path`. ALPN offers ``h2`` alone, and the server speaks HTTP/2
  whatever the client negotiated: an HTTP/1.1 request is not an HTTP/2 preface, so it gets
  a GOAWAY and the connection is closed (an HTTP/1.1 client reads binary frames, not a
  response).
* A new connection allows one stream at a time (``SETTINGS_MAX_CONCURRENT_STREAMS`` 1) until a
  request carries a valid provider token; the server then raises the limit to
  `max_concurrent_streams`.
* ``POST /3/device/<device token>`` with ``authorization: bearer <JWT>``: an ES256 JWT whose
  header names `key_id` (``kid``) and whose claims carry ``iss`` = `team_id` and ``iat``,
  signed by the key this fake generated (`write_key` writes it as Apple's ``.p8`` file).

Order of checks: method (405 MethodNotAllowed) -> path (404 BadPath, 400 MissingDeviceToken)
-> repeated headers (400 DuplicateHeaders) -> provider token (403 MissingProviderToken,
InvalidProviderToken, ExpiredProviderToken; 429 TooManyProviderTokenUpdates) -> outage and
queued faults (`set_outage`, `fail_next`) -> headers (400 MissingTopic, BadTopic,
InvalidPushType, BadPriority, BadExpirationDate, BadMessageId, BadCollapseId) -> device token
(400 BadDeviceToken unless exactly 64 hexadecimal digits) -> unregistered devices (410
Unregistered with a ``timestamp``) -> payload (400 PayloadEmpty, 413 PayloadTooLarge over 4096
bytes) -> accepted: 200 with an ``apns-id`` header (the request's own, or a new UUID) and an
empty body. A request refused by a fault is not validated and not recorded; a fault given a
``token`` waits for a request to that device, whatever order concurrent requests arrive in.

Errors are JSON bodies ``{"reason": "..."}`` as Apple documents them. One check is this
fake's own, for catching client bugs: a payload that is not a JSON object holding an ``aps``
dictionary is refused with 400 ``BadPayload`` (Apple's table names no reason for it).

Provider tokens: older than an hour is 403 ExpiredProviderToken; ``iat`` more than five
minutes ahead of this fake's clock is InvalidProviderToken (a sender whose clock runs ahead).
On one connection, a new token less than `token_update_interval` seconds (20 minutes by
default) younger than the one it replaces is 429 TooManyProviderTokenUpdates, unless the one
it replaces was refused (expired, invalid, or invalidated by `expire_tokens`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import re
import ssl
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.standins.base import ThreadedServer
from tests.standins.smtp import write_self_signed_certificate

MAX_PAYLOAD_BYTES: Final = 4096
"""The largest payload APNs accepts for a regular remote notification."""
MAX_COLLAPSE_ID_BYTES: Final = 64
PROVIDER_TOKEN_LIFETIME: Final = 3600
"""APNs refuses provider tokens whose ``iat`` is more than an hour old."""
TOKEN_UPDATE_INTERVAL: Final = 20 * 60
"""APNs refuses a provider that changes its token more often than every 20 minutes."""
PUSH_TYPES: Final = frozenset(
    {
        "alert",
        "background",
        "location",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "liveactivity",
        "pushtokens",
        "widgets",
    }
)

_CLOCK_SKEW: Final = 300
_DEVICE_TOKEN = re.compile(r"[0-9a-fA-F]{64}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PATH = re.compile(r"/3/device/(?P<token>[^/?]*)")


@dataclass(frozen=True)
class _Fault:
    status: int
    reason: str
    retry_after: float | None
    device: str | None = None


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str = ""
    apns_id: str = ""
    retry_after: float | None = None
    timestamp: int | None = None
    delay: float = 0.0

    def headers(self) -> list[tuple[str, str]]:
        headers = [(":status", str(self.status))]
        if self.apns_id:
            headers.append(("apns-id", self.apns_id))
        if self.retry_after is not None:
            headers.append(("retry-after", str(max(0, round(self.retry_after)))))
        return headers

    def body(self) -> bytes:
        if self.status == 200:
            return b""
        document: dict[str, Any] = {"reason": self.reason}
        if self.timestamp is not None:
            document["timestamp"] = self.timestamp
        return json.dumps(document).encode()


class _Refused(Exception):
    def __init__(self, status: int, reason: str, **extra: Any) -> None:
        super().__init__(f"{status} {reason}")
        self.answer = _Answer(status, reason, **extra)


@dataclass
class _Stream:
    headers: list[tuple[str, str]]
    body: bytearray = field(default_factory=bytearray)


@dataclass
class _Connection:
    number: int
    h2: h2.connection.H2Connection
    writer: asyncio.StreamWriter
    streams: dict[int, _Stream] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    window: asyncio.Event = field(default_factory=asyncio.Event)
    open_streams: int = 0
    opened_up: bool = False
    token: str | None = None
    token_iat: int = 0
    token_refused: bool = False


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class FakeAPNs(ThreadedServer):
    """APNs's provider API on 127.0.0.1 over HTTP/2 and TLS (see the module docstring).

    `clock` (epoch seconds, default `time.time`) is what provider-token ``iat`` values are
    checked against. Device tokens starting with `unregistered_marker`, or passed to
    `unregister`, answer 410 Unregistered.
    """

    name = "FakeAPNs"
    thread_name = "fake-apns"

    def __init__(
        self,
        topic: str = "cn.herald-credit.app",
        team_id: str = "HRLDTEAM01",
        key_id: str = "HRLDKEY001",
        *,
        unregistered_marker: str = "deadbeef",
        max_concurrent_streams: int = 1000,
        token_update_interval: float = TOKEN_UPDATE_INTERVAL,
        latency: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.topic = topic
        self.team_id = team_id
        self.key_id = key_id
        self.unregistered_marker = unregistered_marker.lower()
        self.max_concurrent_streams = max_concurrent_streams
        self.token_update_interval = token_update_interval
        self.latency = latency
        self._clock = clock
        self._lock = threading.Condition()
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._tmp = tempfile.TemporaryDirectory(prefix="herald-fake-apns-")
        self.cert_path, self._cert_key_path = write_self_signed_certificate(Path(self._tmp.name))
        self._accepted: list[dict[str, Any]] = []
        self._requests = 0
        self._connections = 0
        self._max_streams_seen = 0
        self._provider_tokens: list[str] = []
        self._verified: dict[str, int] = {}  # provider token -> its iat, once its signature checked out
        self._expired: set[str] = set()
        self._unregistered: set[str] = set()
        self._faults: deque[_Fault] = deque()
        self._outage: _Fault | None = None
        self._hangs: deque[float] = deque()
        self._server: asyncio.Server | None = None
        self._open: dict[int, _Connection] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._numbers = itertools.count(1)
        self.errors: list[BaseException] = []
        """Exceptions the fake raised while deciding an answer (each answered 500): a bug in it."""

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``https://127.0.0.1:40123`` (what ``HERALD_APNS_API_BASE`` names)."""
        return f"https://127.0.0.1:{self.port}"

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this fake's certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def _server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self._cert_key_path)
        context.set_alpn_protocols(["h2"])
        return context

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self._port or 0, ssl=self._server_context()
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def _cleanup(self) -> None:
        """Say GOAWAY on every open connection (naming the last stream it took), then close."""
        if self._server is not None:
            self._server.close()
        await asyncio.gather(*(self._goaway(conn) for conn in list(self._open.values())))
        tasks = [*self._handlers, *(t for c in self._open.values() for t in c.tasks)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._server = None
        self._open.clear()
        self._handlers.clear()

    @staticmethod
    async def _goaway(conn: _Connection) -> None:
        try:
            conn.h2.close_connection()
            conn.writer.write(conn.h2.data_to_send())
            await asyncio.wait_for(conn.writer.drain(), 1.0)
        except (h2.exceptions.ProtocolError, RuntimeError, OSError, TimeoutError):
            pass
        conn.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(conn.writer.wait_closed(), 1.0)

    # -- the key and the JWTs ----------------------------------------------------------------

    def key_pem(self) -> bytes:
        """The signing key in the form of Apple's ``AuthKey_<key id>.p8`` (PKCS#8 PEM)."""
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def write_key(self, path: Path) -> Path:
        """Write the ``.p8`` signing key for herald (``HERALD_APNS_KEY_FILE``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.key_pem())
        path.chmod(0o600)
        return path

    def expire_tokens(self) -> None:
        """Refuse every provider token seen so far as 403 ExpiredProviderToken; new ones pass."""
        with self._lock:
            self._expired.update(self._verified)

    # -- observations ------------------------------------------------------------------------

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """Accepted notifications, oldest first: token (the device token of the path), apns_id,
        topic, push_type, priority, expiration, collapse_id, payload, title, body,
        provider_token, connection (its number) and at (epoch seconds)."""
        with self._lock:
            return list(self._accepted)

    def accepted_for(self, token: str) -> list[dict[str, Any]]:
        """The accepted notifications for one device (``apns:`` prefix and case ignored)."""
        device = token.removeprefix("apns:").lower()
        with self._lock:
            return [r for r in self._accepted if r["token"].lower() == device]

    def wait_accepted(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least `count` notifications were accepted; TimeoutError if not in time."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._accepted) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: {len(self._accepted)} of {count} accepted")
                self._lock.wait(left)
            return list(self._accepted)

    @property
    def requests(self) -> int:
        """Requests received (refused ones included)."""
        with self._lock:
            return self._requests

    @property
    def connections(self) -> int:
        """TLS connections accepted since the last `reset`."""
        with self._lock:
            return self._connections

    @property
    def max_streams_seen(self) -> int:
        """The most requests one connection had open at once since the last `reset`."""
        with self._lock:
            return self._max_streams_seen

    @property
    def provider_tokens(self) -> list[str]:
        """The distinct provider tokens (JWTs) accepted, in the order first seen."""
        with self._lock:
            return list(self._provider_tokens)

    def reset(self) -> None:
        """Forget records, counters, faults and unregistered devices (provider tokens keep their state)."""
        with self._lock:
            self._accepted.clear()
            self._requests = 0
            self._connections = 0
            self._max_streams_seen = 0
            self._provider_tokens.clear()
            self._faults.clear()
            self._outage = None
            self._hangs.clear()
            self._unregistered.clear()

    # -- fault injection ---------------------------------------------------------------------

    def fail_next(
        self, n: int, status: int, reason: str, *, retry_after: float | None = None, token: str | None = None
    ) -> None:
        """Refuse the next `n` authenticated requests, e.g. ``(1, 503, "ServiceUnavailable")``;
        with `token`, only requests for that device (``apns:`` prefix ignored), whatever the order
        in which concurrent requests arrive."""
        device = None if token is None else token.removeprefix("apns:").lower()
        with self._lock:
            self._faults.extend(_Fault(status, reason, retry_after, device) for _ in range(n))

    def set_outage(
        self, status: int | None, reason: str = "ServiceUnavailable", retry_after: float | None = None
    ) -> None:
        """Refuse every authenticated request until called with ``None``."""
        with self._lock:
            self._outage = None if status is None else _Fault(status, reason, retry_after)

    def hang_next(self, n: int, seconds: float) -> None:
        """The next `n` notifications are accepted (recorded) and answered only after `seconds`."""
        with self._lock:
            self._hangs.extend(seconds for _ in range(n))

    def unregister(self, token: str) -> None:
        """Make a device answer 410 Unregistered from now on (``apns:`` prefix ignored)."""
        with self._lock:
            self._unregistered.add(token.removeprefix("apns:").lower())

    # -- HTTP/2 ------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        conn = _Connection(next(self._numbers), h2.connection.H2Connection(config=config), writer)
        # Apple allows one stream until a request carries a valid provider token.
        conn.h2.local_settings = h2.settings.Settings(
            client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1}
        )
        self._open[conn.number] = conn
        with self._lock:
            self._connections += 1
        try:
            conn.h2.initiate_connection()
            await self._flush(conn)
            await self._read_loop(reader, conn)
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        except asyncio.CancelledError:  # stopping: end quietly (asyncio logs a cancelled handler)
            pass
        finally:
            for stream_task in list(conn.tasks):
                stream_task.cancel()
            self._open.pop(conn.number, None)
            writer.close()
            self._handlers.discard(task)

    async def _read_loop(self, reader: asyncio.StreamReader, conn: _Connection) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            try:
                events = conn.h2.receive_data(data)
            except h2.exceptions.ProtocolError:  # not HTTP/2 (e.g. an HTTP/1.1 request): GOAWAY
                await self._flush(conn)
                return
            for event in events:
                if isinstance(event, h2.events.RequestReceived):
                    headers = [(_text(k), _text(v)) for k, v in event.headers or []]
                    conn.streams[event.stream_id] = _Stream(headers)
                    conn.open_streams += 1
                    with self._lock:
                        self._requests += 1
                        self._max_streams_seen = max(self._max_streams_seen, conn.open_streams)
                elif isinstance(event, h2.events.DataReceived):
                    stream = conn.streams.get(event.stream_id)
                    if stream is not None and event.data:
                        stream.body += event.data
                    conn.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    stream = conn.streams.get(event.stream_id)
                    if stream is not None:
                        task = asyncio.create_task(self._respond(conn, event.stream_id, stream))
                        conn.tasks.add(task)
                        task.add_done_callback(conn.tasks.discard)
                elif isinstance(event, h2.events.StreamReset):
                    if conn.streams.pop(event.stream_id, None) is not None:
                        conn.open_streams -= 1
                elif isinstance(event, h2.events.WindowUpdated):
                    conn.window.set()
                elif isinstance(event, h2.events.ConnectionTerminated):
                    await self._flush(conn)
                    return
            await self._flush(conn)

    async def _flush(self, conn: _Connection) -> None:
        async with conn.write_lock:
            data = conn.h2.data_to_send()
            if data:
                conn.writer.write(data)
                await conn.writer.drain()

    async def _respond(self, conn: _Connection, stream_id: int, stream: _Stream) -> None:
        try:
            answer = self._decide(conn, stream)
        except _Refused as refused:
            answer = refused.answer
        except Exception as exc:  # a bug here: answer, and keep it for the test to see
            self.errors.append(exc)
            answer = _Answer(500, "InternalServerError")
        if not conn.opened_up and conn.token is not None:
            conn.opened_up = True
            conn.h2.update_settings(
                {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_concurrent_streams}
            )
            await self._flush(conn)
        if answer.delay > 0:
            await asyncio.sleep(answer.delay)
        if conn.streams.pop(stream_id, None) is None:
            return  # reset by the client meanwhile
        conn.open_streams -= 1
        body = answer.body()
        try:
            conn.h2.send_headers(stream_id, answer.headers(), end_stream=not body)
            if body:
                while conn.h2.local_flow_control_window(stream_id) < len(body):
                    conn.window.clear()
                    await self._flush(conn)
                    await conn.window.wait()
                conn.h2.send_data(stream_id, body, end_stream=True)
            await self._flush(conn)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, ConnectionError, OSError):
            return

    # -- the API -----------------------------------------------------------------------------

    def _decide(self, conn: _Connection, stream: _Stream) -> _Answer:
        pseudo = {k: v for k, v in stream.headers if k.startswith(":")}
        regular = [(k.lower(), v) for k, v in stream.headers if not k.startswith(":")]
        headers = dict(regular)
        apns_id = headers.get("apns-id", "")
        if apns_id and not _UUID.fullmatch(apns_id):
            apns_id = ""
        apns_id = apns_id or str(uuid.uuid4())
        if pseudo.get(":method") != "POST":
            raise _Refused(405, "MethodNotAllowed", apns_id=apns_id)
        match = _PATH.fullmatch(pseudo.get(":path", ""))
        if match is None:
            raise _Refused(404, "BadPath", apns_id=apns_id)
        device = match["token"]
        if not device:
            raise _Refused(400, "MissingDeviceToken", apns_id=apns_id)
        if len(headers) != len(regular):
            raise _Refused(400, "DuplicateHeaders", apns_id=apns_id)
        provider_token = self._authenticate(conn, headers.get("authorization"), apns_id)
        with self._lock:
            fault = self._outage or self._take_fault(device.lower())
        if fault is not None:
            if fault.status == 403 and fault.reason in ("ExpiredProviderToken", "InvalidProviderToken"):
                conn.token_refused = True  # as if the token itself had been refused
            raise _Refused(fault.status, fault.reason, apns_id=apns_id, retry_after=fault.retry_after)
        self._check_headers(headers, apns_id)
        if not _DEVICE_TOKEN.fullmatch(device):
            raise _Refused(400, "BadDeviceToken", apns_id=apns_id)
        device = device.lower()
        with self._lock:
            gone = device in self._unregistered
        if gone or device.startswith(self.unregistered_marker):
            raise _Refused(410, "Unregistered", apns_id=apns_id, timestamp=int(self._clock() * 1000))
        payload = self._payload(bytes(stream.body), apns_id)
        alert = payload["aps"].get("alert")
        alert = alert if isinstance(alert, dict) else {"body": alert}
        record = {
            "token": device,
            "apns_id": apns_id,
            "topic": headers.get("apns-topic"),
            "push_type": headers.get("apns-push-type"),
            "priority": headers.get("apns-priority"),
            "expiration": headers.get("apns-expiration"),
            "collapse_id": headers.get("apns-collapse-id"),
            "payload": payload,
            "title": alert.get("title"),
            "body": alert.get("body"),
            "provider_token": provider_token,
            "connection": conn.number,
            "at": time.time(),
        }
        with self._lock:
            self._accepted.append(record)
            hang = self._hangs.popleft() if self._hangs else 0.0
            self._lock.notify_all()
        return _Answer(200, apns_id=apns_id, delay=max(hang, self.latency))

    def _take_fault(self, device: str) -> _Fault | None:
        """The first queued fault for any device or for this one (under the lock)."""
        for fault in self._faults:
            if fault.device is None or fault.device == device:
                self._faults.remove(fault)
                return fault
        return None

    def _authenticate(self, conn: _Connection, authorization: str | None, apns_id: str) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _Refused(403, "MissingProviderToken", apns_id=apns_id)
        try:
            iat = self._verify(token, apns_id)
        except _Refused:
            conn.token_refused = True
            raise
        now = self._clock()
        with self._lock:
            expired = token in self._expired
        if expired or iat < now - PROVIDER_TOKEN_LIFETIME:
            conn.token_refused = True
            raise _Refused(403, "ExpiredProviderToken", apns_id=apns_id)
        if token != conn.token:
            with self._lock:
                replaced_stale = conn.token in self._expired
            too_soon = iat - conn.token_iat < self.token_update_interval
            if conn.token is not None and too_soon and not (conn.token_refused or replaced_stale):
                raise _Refused(429, "TooManyProviderTokenUpdates", apns_id=apns_id)
            conn.token, conn.token_iat, conn.token_refused = token, iat, False
        with self._lock:
            if token not in self._provider_tokens:
                self._provider_tokens.append(token)
        return token

    def _verify(self, token: str, apns_id: str) -> int:
        """The token's ``iat`` once its header, signature and issuer check out."""
        with self._lock:
            known = self._verified.get(token)
        if known is not None:
            return known
        invalid = _Refused(403, "InvalidProviderToken", apns_id=apns_id)
        parts = token.split(".")
        if len(parts) != 3:
            raise invalid
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, binascii.Error):
            raise invalid from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise invalid
        if header.get("alg") != "ES256" or header.get("kid") != self.key_id or len(signature) != 64:
            raise invalid
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        try:
            self._key.public_key().verify(
                encode_dss_signature(r, s), f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            raise invalid from None
        iat = claims.get("iat")
        if claims.get("iss") != self.team_id or not isinstance(iat, int) or isinstance(iat, bool):
            raise invalid
        if iat > self._clock() + _CLOCK_SKEW:
            raise invalid
        with self._lock:
            self._verified[token] = iat
        return iat

    def _check_headers(self, headers: dict[str, str], apns_id: str) -> None:
        topic = headers.get("apns-topic")
        if not topic:
            raise _Refused(400, "MissingTopic", apns_id=apns_id)
        if topic != self.topic:
            raise _Refused(400, "BadTopic", apns_id=apns_id)
        push_type = headers.get("apns-push-type")
        if push_type is not None and push_type not in PUSH_TYPES:
            raise _Refused(400, "InvalidPushType", apns_id=apns_id)
        priority = headers.get("apns-priority")
        if priority is not None and priority not in ("1", "5", "10"):
            raise _Refused(400, "BadPriority", apns_id=apns_id)
        expiration = headers.get("apns-expiration")
        if expiration is not None and not expiration.isdigit():
            raise _Refused(400, "BadExpirationDate", apns_id=apns_id)
        sent_id = headers.get("apns-id")
        if sent_id is not None and not _UUID.fullmatch(sent_id):
            raise _Refused(400, "BadMessageId", apns_id=apns_id)
        collapse_id = headers.get("apns-collapse-id")
        if collapse_id is not None and len(collapse_id.encode()) > MAX_COLLAPSE_ID_BYTES:
            raise _Refused(400, "BadCollapseId", apns_id=apns_id)

    @staticmethod
    def _payload(body: bytes, apns_id: str) -> dict[str, Any]:
        if not body:
            raise _Refused(400, "PayloadEmpty", apns_id=apns_id)
        if len(body) > MAX_PAYLOAD_BYTES:
            raise _Refused(413, "PayloadTooLarge", apns_id=apns_id)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _Refused(400, "BadPayload", apns_id=apns_id) from None
        if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
            raise _Refused(400, "BadPayload", apns_id=apns_id)
        return payload
