"""Push through Apple Push Notification service (APNs), over HTTP/2 with httpx.

APNs speaks HTTP/2 only and refuses HTTP/1.1, which is all aiohttp speaks: this provider,
unlike the others, uses httpx's HTTP/2 client (``httpx[http2]``). One request per device
token, ``POST {HERALD_APNS_API_BASE}/3/device/<hex token>``, with the app's topic and an alert
payload. Sends share connections as concurrent streams, as Apple asks; httpx opens at most
100 streams on one connection, so the provider keeps ``ceil(HERALD_IN_FLIGHT / 100)``
connections and gives each send to the least busy one.

Authentication is Apple's token-based one: an ES256 JWT (``kid`` the key's id, ``iss`` the
team, ``iat`` when it was made) signed with the ``.p8`` key. APNs refuses a token older than
an hour (403 ExpiredProviderToken) and a provider that changes its token more often than every
20 minutes (429 TooManyProviderTokenUpdates), so one token serves every send of the process
and is renewed once it is 50 minutes old. A request refused with ExpiredProviderToken or
InvalidProviderToken is sent once more with a new token, made once however many sends the
old one failed.

Tokens are stored as ``apns:<hex>``: the prefix is stripped for the URL and kept in every
address reported back (``drop_addresses``, detail keys), so that an unregistered token is
opted out in the form herald stored it.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import ssl
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from herald.channels.base import (
    AmbiguousError,
    Message,
    PermanentError,
    Provider,
    ProviderError,
    RecipientOptedOut,
    RetryableError,
    SendResult,
    merge_results,
)
from herald.channels.http import retry_after
from herald.config import Settings
from herald.models import APNS_PREFIX, Channel

RENEW_AFTER = 50 * 60.0
"""Seconds a provider token serves: inside APNs's hour, and well apart from its 20 minutes."""
STREAMS_PER_CONNECTION = 100
"""The most streams httpx (httpcore) opens at once on one HTTP/2 connection."""
CLOCK_SLACK = 60.0
"""Seconds the wall clock may step back before the token's ``iat`` counts as in the future."""
IDLE_EXPIRY = 30.0
"""Seconds an idle connection is kept: long enough to carry steady traffic, short enough that
a connection the network dropped silently is rarely reused (a send on it would end ambiguous)."""
MAX_COLLAPSE_ID_BYTES = 64

_HEX = frozenset("0123456789abcdef")
_TOKEN_GONE = frozenset({"Unregistered", "ExpiredToken"})
"""Reasons that mean the device is gone: the token becomes an opt-out. ``BadDeviceToken`` and
``DeviceTokenNotForTopic`` are only ``failed``: APNs also answers them for every token when
``HERALD_APNS_API_BASE`` names the wrong environment (sandbox for production builds) or
``HERALD_APNS_TOPIC`` the wrong app, and a configuration mistake must not opt every iPhone out."""
_PROVIDER_TOKEN_REFUSED = frozenset({"ExpiredProviderToken", "InvalidProviderToken"})


def device_token(token: str) -> str | None:
    """The hexadecimal device token (lower case) of a stored ``apns:`` token, or None when the
    token is not one: it is then never sent, since APNs would call it BadDeviceToken and herald
    would drop a token that belongs to another service."""
    if not token.startswith(APNS_PREFIX):
        return None
    device = token[len(APNS_PREFIX) :].lower()
    return device if device and set(device) <= _HEX else None


def collapse_id(reminder_id: str) -> str:
    """``apns-collapse-id`` for a reminder: its id, or the id's SHA-256 when longer than APNs's 64
    bytes. A notification sent again for the same reminder then replaces the first on the
    device instead of showing twice."""
    raw = reminder_id.encode()
    return reminder_id if len(raw) <= MAX_COLLAPSE_ID_BYTES else hashlib.sha256(raw).hexdigest()


def load_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Apple's ``AuthKey_<key id>.p8`` (a P-256 key in PKCS#8 PEM); RuntimeError saying what is wrong."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise RuntimeError(f"HERALD_APNS_KEY_FILE={path}: not a readable .p8 signing key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise RuntimeError(f"HERALD_APNS_KEY_FILE={path}: APNs signs with ES256, a P-256 key (AuthKey_*.p8)")
    return key


def _reason(content: bytes) -> tuple[str, int | None]:
    """``reason`` and ``timestamp`` (ms) of an APNs error body; empty when it has none."""
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError:
        return "", None
    if not isinstance(document, dict):
        return "", None
    stamp = document.get("timestamp")
    return str(document.get("reason") or ""), stamp if isinstance(stamp, int) else None


def apns_error(
    status: int, reason: str, timestamp: int | None = None, after: float | None = None
) -> ProviderError:
    """The taxonomy class of an APNs refusal (Apple's status and reason; see ``herald.channels.base``)."""
    code: str | int = reason or status
    message = f"APNs answered {status}"
    if timestamp is not None:
        since = datetime.fromtimestamp(timestamp / 1000, UTC).isoformat(timespec="seconds")
        message += f"; the device token was no longer valid for the topic from {since}"
    if status == 410 or reason in _TOKEN_GONE:
        return RecipientOptedOut(message, code=code)
    if status in (429, 503):
        return RetryableError(message, code=code, retry_after=after)
    if status >= 500:
        return AmbiguousError(message, code=code)
    if status == 403 and reason != "Forbidden":
        return RetryableError(f"credentials refused ({message}); check the HERALD_APNS_* settings", code=code)
    return PermanentError(message, code=code)


def transport_error(exc: BaseException) -> ProviderError:
    """The taxonomy class of an httpx failure: before the request left it is safe to retry,
    after it (or when that cannot be told) it is ambiguous."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        why = " ".join(str(exc).split())[:200]
        return RetryableError(f"apns: could not connect ({type(exc).__name__}: {why})", code="connect")
    if isinstance(exc, httpx.PoolTimeout):
        return RetryableError("apns: no connection free in time", code="pool")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return AmbiguousError("apns: no answer in time after sending", code="timeout")
    return AmbiguousError(f"apns: connection lost after sending ({type(exc).__name__})", code="io")


class APNsPushProvider(Provider):
    """Sends one APNs notification per ``apns:`` token of the delivery."""

    name = "apns"

    def __init__(self, channel: Channel, settings: Settings) -> None:
        super().__init__(channel, settings)
        self._clients: list[httpx.AsyncClient] = []
        self._busy: list[int] = []
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._jwt = ""
        self._jwt_iat = 0.0
        self._base = ""
        self._deadline = 0.0

    async def start(self) -> None:
        """Check the settings, load the key, sign a first token, and make the HTTP/2 clients.

        Nothing here awaits: sends that start the provider lazily, at once, make one set of clients.
        """
        s = self.settings
        needed = {
            "HERALD_APNS_KEY_FILE": s.apns_key_file,
            "HERALD_APNS_KEY_ID": s.apns_key_id,
            "HERALD_APNS_TEAM_ID": s.apns_team_id,
            "HERALD_APNS_TOPIC": s.apns_topic,
        }
        missing = [name for name, value in needed.items() if not value]
        if missing:
            raise RuntimeError(f"APNs needs {', '.join(missing)}")
        assert s.apns_key_file is not None
        base = s.apns_api_base.rstrip("/")
        if not base.startswith("https://"):
            raise RuntimeError(f"HERALD_APNS_API_BASE={base}: APNs speaks HTTP/2 over TLS, an https:// URL")
        self._key = load_signing_key(s.apns_key_file)
        try:
            context = ssl.create_default_context(cafile=str(s.apns_ca_file) if s.apns_ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise RuntimeError(f"HERALD_APNS_CA_FILE={s.apns_ca_file}: not a CA bundle ({exc})") from None
        timeout = httpx.Timeout(
            connect=s.connect_timeout,
            read=s.provider_timeout,
            write=s.provider_timeout,
            pool=s.connect_timeout,
        )
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=1, keepalive_expiry=IDLE_EXPIRY)
        count = max(1, math.ceil(s.in_flight / STREAMS_PER_CONNECTION))
        self._clients = [
            httpx.AsyncClient(
                http1=False, http2=True, verify=context, timeout=timeout, limits=limits, trust_env=False
            )
            for _ in range(count)
        ]
        self._busy = [0] * count
        self._base = base
        # httpx's read timeout counts from the last bytes of the connection, which other streams
        # keep arriving: this bounds one send as the worker's stop deadline assumes.
        self._deadline = s.connect_timeout + s.provider_timeout
        self.provider_token()

    async def close(self) -> None:
        """Close the HTTP/2 clients."""
        clients, self._clients = self._clients, []
        await asyncio.gather(*(client.aclose() for client in clients))

    def provider_token(self, *, refused: str | None = None) -> str:
        """The cached provider token (JWT): made on first use, renewed once 50 minutes old or when
        the clock went back a minute or more, and made anew when APNs refused ``refused`` (unless another send
        already replaced it)."""
        if self._key is None:
            raise RuntimeError("APNs: start() loads the signing key first")
        now = time.time()
        age = now - self._jwt_iat
        if (
            not self._jwt
            or not -CLOCK_SLACK <= age < RENEW_AFTER
            or (refused is not None and refused == self._jwt)
        ):
            s = self.settings
            iat = int(now)
            self._jwt = jwt.encode(
                {"iss": s.apns_team_id, "iat": iat},
                self._key,
                algorithm="ES256",
                headers={"kid": s.apns_key_id},
            )
            self._jwt_iat = float(iat)
        return self._jwt

    def _payload(self, message: Message) -> bytes:
        content = message.rendered.content()
        return orjson.dumps(
            {
                "aps": {"alert": {"title": content["title"], "body": content["body"]}},
                "reminder_id": message.reminder_id,
                "kind": message.kind,
            }
        )

    def _headers(self, message: Message, provider_token: str) -> dict[str, str]:
        return {
            "authorization": f"bearer {provider_token}",
            "apns-topic": str(self.settings.apns_topic),
            "apns-push-type": "alert",
            "apns-priority": "10",
            # APNs keeps it for an offline device until the reminder expires (0: try once)
            "apns-expiration": str(int(message.expires_at)) if message.expires_at else "0",
            "apns-collapse-id": collapse_id(message.reminder_id),
        }

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        index = min(range(len(self._clients)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            async with asyncio.timeout(self._deadline):
                return await self._clients[index].post(url, content=body, headers=headers)
        finally:
            self._busy[index] -= 1

    async def _send_token(
        self, message: Message, token: str, body: bytes
    ) -> tuple[str, SendResult | ProviderError]:
        device = device_token(token)
        if device is None:
            return token, PermanentError("not an APNs token (apns: and hexadecimal digits)", code="not_apns")
        url = f"{self._base}/3/device/{device}"
        provider_token = self.provider_token()
        for attempt in (1, 2):
            try:
                response = await self._post(url, self._headers(message, provider_token), body)
            except (httpx.RequestError, TimeoutError) as exc:
                return token, transport_error(exc)
            if response.status_code == 200:
                return token, SendResult(provider_ref=response.headers.get("apns-id", ""))
            reason, timestamp = _reason(response.content)
            if response.status_code == 403 and reason in _PROVIDER_TOKEN_REFUSED and attempt == 1:
                provider_token = self.provider_token(refused=provider_token)
                continue
            after = retry_after(response.headers.get("retry-after"))
            error = apns_error(response.status_code, reason, timestamp, after)
            if isinstance(error, RecipientOptedOut):
                error.drop_addresses = (token,)
            return token, error
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(self, message: Message) -> SendResult:
        """Send to every token at once; sent if any accepted it; gone tokens are reported (see
        ``herald.channels.base.merge_results``)."""
        if not self._clients:
            await self.start()
        tokens = message.address if isinstance(message.address, list) else [message.address]
        body = self._payload(message)
        results = await asyncio.gather(*(self._send_token(message, token, body) for token in tokens))
        return merge_results(results)
