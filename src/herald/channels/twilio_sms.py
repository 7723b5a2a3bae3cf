"""SMS through Twilio's Messages API, with the ``twilio`` package's async client.

Many requests are in flight from one process on one aiohttp session. The REST base comes from
``HERALD_TWILIO_API_BASE``. The package's async HTTP client ignores its timeout
(twilio-python#925) and drops response headers from its errors (Retry-After), so herald uses
its own subclass that enforces herald's timeouts and classifies transport failures and
429 / 5xx itself; Twilio's own error codes are classified from ``TwilioRestException``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import aiohttp
import orjson
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from herald.channels.base import (
    Message,
    PermanentError,
    Provider,
    RecipientOptedOut,
    RetryableError,
    SendResult,
)
from herald.channels.http import make_session, retry_after, status_error, transport_error

logging.getLogger("twilio").setLevel(logging.WARNING)  # its INFO lines carry request details

OPTED_OUT = {21610}
RETRYABLE = {20429, 21611, 30001}
STATUS_PATH = "/v1/providers/twilio/status"


class _HttpClient(AsyncTwilioHttpClient):
    """Twilio's async HTTP client on herald's session, timeouts and error classes."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__(pool_connections=False)
        self.session = session

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the interface's; herald's timeouts apply
        allow_redirects: bool = False,
    ) -> Response:
        """One request; transport failures and 429 / 5xx raise herald's errors."""
        headers = dict(headers or {})
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        try:
            async with self.session.request(
                method.upper(),
                url,
                params=params,  # type: ignore[arg-type]
                data=data,
                headers=headers,
                allow_redirects=allow_redirects,
            ) as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, "twilio") from None
        code, message = _error_fields(text)
        error = status_error(response.status, code, message, retry_after(response.headers.get("Retry-After")))
        if error is not None:
            raise error
        return Response(response.status, text, response.headers)


def _error_fields(text: str) -> tuple[int | None, str]:
    try:
        body: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None, text[:200]
    if isinstance(body, dict):
        code = body.get("code")
        return (code if isinstance(code, int) else None), str(body.get("message", ""))[:300]
    return None, text[:200]


class TwilioSMSProvider(Provider):
    """Sends SMS with ``client.messages.create_async``; a From number or a Messaging Service."""

    name = "twilio"
    receipts = True
    _client: Client | None = None
    _session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Build the client on this process's loop; check the configuration is complete."""
        s = self.settings
        if not s.twilio_account_sid or not s.twilio_auth_token:
            raise RuntimeError("Twilio needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        if not s.twilio_from and not s.twilio_messaging_service_sid:
            raise RuntimeError("Twilio needs HERALD_TWILIO_FROM or HERALD_TWILIO_MESSAGING_SERVICE_SID")
        self._session = make_session(s)
        client = Client(
            s.twilio_account_sid,
            s.twilio_auth_token.get_secret_value(),
            http_client=_HttpClient(self._session),
        )
        client.api.base_url = s.twilio_api_base.rstrip("/")
        self._client = client

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _params(self, message: Message) -> dict[str, Any]:
        s = self.settings
        params: dict[str, Any] = {"to": message.address, "body": message.rendered.text}
        if s.twilio_messaging_service_sid:
            params["messaging_service_sid"] = s.twilio_messaging_service_sid
        else:
            params["from_"] = s.twilio_from
        if s.public_url:
            params["status_callback"] = s.public_url + STATUS_PATH
        return params

    async def send(self, message: Message) -> SendResult:
        """Create the message; Twilio's codes decide the error class."""
        if self._client is None:
            await self.start()
        assert self._client is not None
        try:
            created = await asyncio.wait_for(
                self._client.messages.create_async(**self._params(message)),
                timeout=self.settings.connect_timeout + self.settings.provider_timeout + 5,
            )
        except TimeoutError as exc:
            raise transport_error(exc, "twilio") from None
        except TwilioRestException as exc:
            raise _classify(exc) from None
        return SendResult(provider_ref=str(created.sid), detail={"segments": created.num_segments})


def _classify(exc: TwilioRestException) -> Exception:
    code = exc.code
    message = str(exc.msg)
    if code in OPTED_OUT:
        return RecipientOptedOut(message, code=code)
    if code in RETRYABLE:
        return RetryableError(message, code=code)
    return PermanentError(message, code=code if code is not None else exc.status)
