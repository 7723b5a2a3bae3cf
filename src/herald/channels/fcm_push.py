"""Push through Firebase Cloud Messaging's HTTP v1 API, with aiohttp and google-auth.

One aiohttp session per process keeps many sends in flight. The OAuth access token comes from
the service account in ``GOOGLE_APPLICATION_CREDENTIALS`` (google-auth posts to the key's
``token_uri``), is cached, and is refreshed five minutes before it expires (in a thread: the
refresh is a blocking call). A delivery with several tokens sends to each; a token FCM reports
UNREGISTERED is dropped and never used again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
from google.auth.transport.requests import Request
from google.oauth2 import service_account

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
from herald.channels.http import make_session, retry_after, status_error, transport_error
from herald.models import FCM_PREFIX

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
REFRESH_MARGIN = timedelta(minutes=5)


def _fcm_error(status: int, body: str, after: float | None) -> ProviderError:
    try:
        error: Any = orjson.loads(body).get("error", {})
    except (orjson.JSONDecodeError, AttributeError):
        error = {}
    state = str(error.get("status", status))
    message = str(error.get("message", body[:200]))
    codes = [d.get("errorCode") for d in error.get("details", []) if isinstance(d, dict)]
    code = next((c for c in codes if c), state)
    if code == "UNREGISTERED":
        return RecipientOptedOut(message, code=code)
    if code in ("QUOTA_EXCEEDED", "UNAVAILABLE"):
        return RetryableError(message, code=code, retry_after=after)
    if code == "INTERNAL":
        return AmbiguousError(message, code=code)
    shared = status_error(status, code, message, after)
    return shared if shared is not None else PermanentError(message, code=code)


class FCMPushProvider(Provider):
    """Sends one FCM message per token of the delivery."""

    name = "fcm"
    _session: aiohttp.ClientSession | None = None
    _credentials: Any = None

    async def start(self) -> None:
        """Load the service account and open the HTTP session on this process's loop."""
        s = self.settings
        if not s.google_application_credentials or not s.fcm_project_id:
            raise RuntimeError("FCM needs GOOGLE_APPLICATION_CREDENTIALS and HERALD_FCM_PROJECT_ID")
        self._credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            str(s.google_application_credentials), scopes=[SCOPE]
        )
        self._refresh_lock = asyncio.Lock()
        self._session = make_session(s)
        self._url = f"{s.fcm_api_base.rstrip('/')}/v1/projects/{s.fcm_project_id}/messages:send"

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _fresh(self) -> bool:
        creds = self._credentials
        if not creds.token or creds.expiry is None:
            return False
        expiry = creds.expiry.replace(tzinfo=UTC) if creds.expiry.tzinfo is None else creds.expiry
        return bool(expiry - datetime.now(UTC) > REFRESH_MARGIN)

    async def access_token(self, *, force: bool = False) -> str:
        """The cached access token, refreshed before it expires (or when ``force``)."""
        if force or not self._fresh():
            async with self._refresh_lock:
                if force or not self._fresh():
                    try:
                        await asyncio.to_thread(self._credentials.refresh, Request())
                    except Exception as exc:  # google-auth raises its own and requests' errors
                        raise RetryableError(
                            f"fcm: could not get an access token ({type(exc).__name__})", code="oauth"
                        ) from None
        return str(self._credentials.token)

    def _body(self, message: Message, token: str) -> bytes:
        content = message.rendered.content()
        return orjson.dumps(
            {
                "message": {
                    "token": token.removeprefix(FCM_PREFIX),  # fcm: only says which service
                    "notification": {"title": content["title"], "body": content["body"]},
                    "data": {"reminder_id": message.reminder_id, "kind": message.kind},
                    "android": {"priority": "high"},
                    "apns": {"headers": {"apns-priority": "10"}},
                }
            }
        )

    async def _send_token(self, message: Message, token: str) -> tuple[str, SendResult | ProviderError]:
        assert self._session is not None
        access = await self.access_token()
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {access}", "Content-Type": "application/json"}
            try:
                async with self._session.post(
                    self._url, data=self._body(message, token), headers=headers
                ) as r:
                    text = await r.text()
                    status, after = r.status, retry_after(r.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                return token, transport_error(exc, "fcm")
            if status == 200:
                return token, SendResult(provider_ref=str(orjson.loads(text).get("name", "")))
            if status == 401 and attempt == 1:  # the token was revoked or expired early
                access = await self.access_token(force=True)
                continue
            error = _fcm_error(status, text, after)
            if isinstance(error, RecipientOptedOut):
                error.drop_addresses = (token,)
            return token, error
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(self, message: Message) -> SendResult:
        """Send to every token at once; sent if any accepted it; unregistered tokens are reported
        gone (``herald.channels.base.merge_results``)."""
        if self._session is None:
            await self.start()
        tokens = message.address if isinstance(message.address, list) else [message.address]
        return merge_results(await asyncio.gather(*(self._send_token(message, t) for t in tokens)))
