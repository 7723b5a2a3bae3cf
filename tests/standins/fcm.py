"""A local server that speaks FCM HTTP v1 and Google's OAuth token endpoint.

`FakeFCM` runs an aiohttp application on 127.0.0.1 in a background thread with its own
event loop, so the test process and worker subprocesses can all reach it. It plays two
roles:

* ``POST /token``: the OAuth 2.0 JWT-bearer grant that google-auth's service-account
  credentials send to the ``token_uri`` of their JSON key. The assertion is checked the way
  Google checks it: an RS256 signature by the key this fake generated (``kid`` naming it),
  ``iss`` the service account, ``aud`` ``https://oauth2.googleapis.com/token`` (google-auth
  always uses that audience, whatever ``token_uri`` says), a short-lived ``iat``/``exp``
  window and the ``firebase.messaging`` scope. Errors use the OAuth format
  (``{"error": "invalid_grant", "error_description": ...}``).
* ``POST /v1/projects/{project}/messages:send``: FCM HTTP v1, with a Bearer token this fake
  issued and that has not expired. Errors use Google's format
  (``{"error": {"code", "message", "status", "details": [FcmError ...]}}``).

Order of checks for a send: authentication (401) -> project (403) -> outage -> queued
faults (`fail_next`) -> JSON shape (400) -> magic tokens -> accepted (then `hang_next`).
A request refused by a fault is not validated and not recorded. Magic tokens: a token
starting with ``unregistered-`` is 404 UNREGISTERED, one starting with ``invalid-`` is
400 INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.standins.base import AiohttpServer, Recording

GOOGLE_TOKEN_AUDIENCE: Final = "https://oauth2.googleapis.com/token"
FCM_SCOPE: Final = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR_TYPE: Final = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE: Final = "type.googleapis.com/google.rpc.BadRequest"

# Google accepts assertions at most an hour long, with some clock skew.
_MAX_ASSERTION_LIFETIME: Final = 3600
_CLOCK_SKEW: Final = 300
# FCM's limit on the payload of one message (notification plus data), in bytes.
_MAX_PAYLOAD_BYTES: Final = 4096

_MESSAGE_FIELDS: Final = frozenset(
    {
        "name",
        "data",
        "notification",
        "android",
        "webpush",
        "apns",
        "fcm_options",
        "token",
        "topic",
        "condition",
    }
)
_NOTIFICATION_FIELDS: Final = frozenset({"title", "body", "image"})
_UNAUTHENTICATED_MESSAGE: Final = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_INVALID_TOKEN_CHALLENGE: Final = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
_MISSING_CREDENTIAL_MESSAGE: Final = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)

# FCM error code -> (google.rpc status, message). The HTTP status comes from the caller.
_FCM_ERRORS: Final[dict[str, tuple[str, str]]] = {
    "UNREGISTERED": ("NOT_FOUND", "Requested entity was not found."),
    "INVALID_ARGUMENT": ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    "SENDER_ID_MISMATCH": ("PERMISSION_DENIED", "SenderId mismatch"),
    "QUOTA_EXCEEDED": ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "UNAVAILABLE": ("UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": ("INTERNAL", "Internal error encountered."),
    "THIRD_PARTY_AUTH_ERROR": ("UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
}
# Google's wording for google.rpc statuses that carry no FCM error code.
_RPC_MESSAGES: Final[dict[str, str]] = {
    "UNAUTHENTICATED": _UNAUTHENTICATED_MESSAGE,
    "DEADLINE_EXCEEDED": "Deadline expired before operation could complete.",
    "UNKNOWN": "Unknown Error.",
}
# google.rpc status names that imply an FCM error code.
_RPC_TO_FCM: Final[dict[str, str]] = {
    "NOT_FOUND": "UNREGISTERED",
    "RESOURCE_EXHAUSTED": "QUOTA_EXCEEDED",
    "PERMISSION_DENIED": "SENDER_ID_MISMATCH",
}


@dataclass(frozen=True)
class _Fault:
    status: int
    error_status: str
    retry_after: float | None


class _Refused(Exception):
    """A request refused with a ready response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def google_error(
    status: int,
    message: str,
    rpc_status: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A response in the format of Google's APIs (google.rpc.Status as JSON)."""
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if details:
        error["details"] = details
    return web.json_response({"error": error}, status=status, headers=headers)


def fcm_error(
    status: int,
    error_status: str,
    *,
    message: str | None = None,
    retry_after: float | None = None,
    field_violations: list[dict[str, str]] | None = None,
) -> web.Response:
    """An FCM v1 error. `error_status` is an FCM error code or a google.rpc status name."""
    fcm_code = _RPC_TO_FCM.get(error_status, error_status)
    details: list[dict[str, Any]] = []
    if fcm_code in _FCM_ERRORS:
        rpc_status, default_message = _FCM_ERRORS[fcm_code]
        details.append({"@type": FCM_ERROR_TYPE, "errorCode": fcm_code})
    else:
        # A bare google.rpc status (UNAUTHENTICATED, DEADLINE_EXCEEDED, ...): no FcmError detail.
        rpc_status = error_status
        default_message = _RPC_MESSAGES.get(error_status, error_status.replace("_", " ").capitalize() + ".")
    if field_violations:
        details.append({"@type": BAD_REQUEST_TYPE, "fieldViolations": field_violations})
    headers: dict[str, str] = {}
    if retry_after is not None:
        # Retry-After is whole seconds (RFC 9110); a fraction rounds up.
        headers["Retry-After"] = str(math.ceil(retry_after))
    return google_error(status, message or default_message, rpc_status, details, headers)


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


class FakeFCM(AiohttpServer, Recording):
    """FCM HTTP v1 and its OAuth token endpoint on 127.0.0.1 (see the module docstring).

    `clock` (monotonic seconds) decides access-token expiry; it defaults to
    `time.monotonic`. JWT ``iat``/``exp`` are checked against wall time (`time.time`), as
    google-auth writes them. Note that google-auth refreshes a token 3 min 45 s before its
    expiry, so with `token_lifetime` below that it refreshes before every request.
    """

    name = "FakeFCM"
    thread_name = "fake-fcm"

    def __init__(
        self,
        project_id: str = "herald-test",
        token_lifetime: int = 3600,
        latency: float = 0.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.project_id = project_id
        self.token_lifetime = token_lifetime
        self.latency = latency
        self._clock = clock
        self._start_records()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key_id = secrets.token_hex(20)
        self.client_email = f"herald-push@{project_id}.iam.gserviceaccount.com"
        self.client_id = str(secrets.randbelow(10**21))
        self._tokens: dict[str, float] = {}
        self._token_grants = 0
        self._faults: deque[_Fault] = deque()
        self._outage: _Fault | None = None
        self._hangs: deque[float] = deque()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:40123`` (FCM's ``api base``)."""
        return super().url

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def send_url(self, project_id: str | None = None) -> str:
        return f"{self.url}/v1/projects/{project_id or self.project_id}/messages:send"

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/token", self._handle_token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._handle_send)

    async def _cleanup(self) -> None:
        await super()._cleanup()
        # Handlers whose client went away (a hung send) are no longer tracked by aiohttp.
        pending = asyncio.all_tasks() - {asyncio.current_task()}
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- service account ---------------------------------------------------------------------

    def service_account_info(self) -> dict[str, str]:
        """The service-account key as a dict (what `write_service_account` writes)."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self._key_id,
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": self.client_id,
            "auth_uri": f"{self.url}/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": f"{self.url}/oauth2/v1/certs",
            "client_x509_cert_url": f"{self.url}/robot/v1/metadata/x509/{self.client_email}",
            "universe_domain": "googleapis.com",
        }

    def write_service_account(self, path: Path) -> Path:
        """Write a service-account JSON key (token_uri pointing here) that google-auth loads."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.service_account_info(), indent=2), encoding="utf-8")
        path.chmod(0o600)
        return path

    # -- observations ------------------------------------------------------------------------

    @property
    def token_grants(self) -> int:
        """Access tokens issued by ``POST /token``."""
        with self._lock:
            return self._token_grants

    def accepted_for(self, token: str) -> list[dict[str, Any]]:
        with self._lock:
            return [record for record in self._accepted if record["token"] == token]

    def reset(self) -> None:
        """Forget records, counters and pending faults (issued tokens stay valid)."""
        with self._lock:
            self._accepted.clear()
            self._requests = 0
            self._token_grants = 0
            self._faults.clear()
            self._outage = None
            self._hangs.clear()

    # -- fault injection ---------------------------------------------------------------------

    def fail_next(self, n: int, status: int, error_status: str, *, retry_after: float | None = None) -> None:
        """Refuse the next `n` authenticated sends, e.g. ``(2, 503, "UNAVAILABLE", retry_after=1)``.

        `error_status` is an FCM error code (UNREGISTERED, INVALID_ARGUMENT, QUOTA_EXCEEDED,
        UNAVAILABLE, INTERNAL, SENDER_ID_MISMATCH, THIRD_PARTY_AUTH_ERROR) or a google.rpc
        status name (NOT_FOUND, RESOURCE_EXHAUSTED, ...).
        """
        with self._lock:
            self._faults.extend(_Fault(status, error_status, retry_after) for _ in range(n))

    def set_outage(
        self, status: int | None, error_status: str = "UNAVAILABLE", retry_after: float | None = None
    ) -> None:
        """Refuse every authenticated send until called with ``None``."""
        with self._lock:
            self._outage = None if status is None else _Fault(status, error_status, retry_after)

    def hang_next(self, n: int, seconds: float) -> None:
        """The next `n` sends are accepted (recorded) and answered only after `seconds`."""
        with self._lock:
            self._hangs.extend(seconds for _ in range(n))

    def expire_tokens(self) -> None:
        """Invalidate every access token issued so far: sends answer 401 until a refresh."""
        with self._lock:
            self._tokens.clear()

    # -- token endpoint ----------------------------------------------------------------------

    async def _handle_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER_GRANT:
            return _oauth_error(
                "unsupported_grant_type", "Invalid grant_type: " + str(form.get("grant_type"))
            )
        assertion = form.get("assertion")
        if not isinstance(assertion, str) or not assertion:
            return _oauth_error("invalid_request", "Missing required parameter: assertion")
        try:
            claims = self._verify_assertion(assertion)
        except _Refused as refused:
            return refused.response
        scopes = str(claims.get("scope", "")).split()
        if FCM_SCOPE not in scopes:
            return _oauth_error("invalid_scope", f"The scope {FCM_SCOPE} is required.")
        token = "ya29.fake-" + secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = self._clock() + self.token_lifetime
            self._token_grants += 1
        return web.json_response(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def _verify_assertion(self, assertion: str) -> dict[str, Any]:
        parts = assertion.split(".")
        if len(parts) != 3:
            raise _Refused(_oauth_error("invalid_grant", "Invalid JWT: malformed."))
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, binascii.Error):
            raise _Refused(_oauth_error("invalid_grant", "Invalid JWT: malformed.")) from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise _Refused(_oauth_error("invalid_grant", "Invalid JWT: malformed."))
        if header.get("alg") != "RS256" or header.get("kid") not in (None, self._key_id):
            raise _Refused(_oauth_error("invalid_grant", "Invalid JWT Signature."))
        try:
            self._key.public_key().verify(
                signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise _Refused(_oauth_error("invalid_grant", "Invalid JWT Signature.")) from None
        if claims.get("iss") != self.client_email:
            raise _Refused(_oauth_error("invalid_grant", "Invalid grant: account not found"))
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
            raise _Refused(_oauth_error("invalid_grant", "Invalid JWT: Failed audience check."))
        iat, exp = claims.get("iat"), claims.get("exp")
        now = time.time()
        if (
            not isinstance(iat, int | float)
            or not isinstance(exp, int | float)
            or exp <= iat
            or exp - iat > _MAX_ASSERTION_LIFETIME
            or iat > now + _CLOCK_SKEW
            or exp < now - _CLOCK_SKEW
        ):
            raise _Refused(
                _oauth_error(
                    "invalid_grant",
                    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                    "timeframe. Check your iat and exp values in the JWT claim.",
                )
            )
        return claims

    # -- FCM send ----------------------------------------------------------------------------

    async def _handle_send(self, request: web.Request) -> web.Response:
        with self._lock:
            self._requests += 1
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        try:
            self._authenticate(request)
            project = request.match_info["project"]
            if project != self.project_id:
                return google_error(
                    403,
                    f"Permission 'cloudmessaging.messages.create' denied on resource "
                    f"'//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not exist).",
                    "PERMISSION_DENIED",
                )
            with self._lock:
                fault = self._outage or (self._faults.popleft() if self._faults else None)
            if fault is not None:
                return fcm_error(fault.status, fault.error_status, retry_after=fault.retry_after)
            body = await self._read_json(request)
            validate_only, message = self._validate(body)
        except _Refused as refused:
            return refused.response
        token: str = message["token"]
        if token.startswith("unregistered-"):
            return fcm_error(404, "UNREGISTERED")
        if token.startswith("invalid-"):
            return fcm_error(
                400,
                "INVALID_ARGUMENT",
                message="The registration token is not a valid FCM registration token",
                field_violations=[
                    {
                        "field": "message.token",
                        "description": "The registration token is not a valid FCM registration token",
                    }
                ],
            )
        if validate_only:
            return web.json_response({"name": f"projects/{project}/messages/fake_message_id"})
        name = f"projects/{project}/messages/0:{time.time_ns() // 1000}%{secrets.token_hex(8)}"
        notification = message.get("notification") or {}
        record = {
            "token": token,
            "title": notification.get("title"),
            "body": notification.get("body"),
            "data": dict(message.get("data") or {}),
            "name": name,
            "at": time.time(),
            "message": message,
        }
        with self._lock:
            self._record(record)
            hang = self._hangs.popleft() if self._hangs else 0.0
        if hang > 0:
            await asyncio.sleep(hang)
        return web.json_response({"name": name})

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(
                google_error(
                    401,
                    _MISSING_CREDENTIAL_MESSAGE,
                    "UNAUTHENTICATED",
                    headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
                )
            )
        with self._lock:
            expires = self._tokens.get(token.strip())
        if expires is None or expires <= self._clock():
            raise _Refused(
                google_error(
                    401,
                    _UNAUTHENTICATED_MESSAGE,
                    "UNAUTHENTICATED",
                    headers={"WWW-Authenticate": _INVALID_TOKEN_CHALLENGE},
                )
            )

    @staticmethod
    async def _read_json(request: web.Request) -> Any:
        raw = await request.read()
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _Refused(google_error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")) from None

    @staticmethod
    def _invalid(field: str, description: str) -> _Refused:
        return _Refused(
            fcm_error(
                400,
                "INVALID_ARGUMENT",
                message=description,
                field_violations=[{"field": field, "description": description}],
            )
        )

    @classmethod
    def _validate(cls, body: Any) -> tuple[bool, dict[str, Any]]:
        if not isinstance(body, dict):
            raise cls._invalid("", "Invalid JSON payload received. Expected an object.")
        for key in body:
            if key not in ("message", "validate_only"):
                raise _Refused(
                    google_error(
                        400,
                        f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.',
                        "INVALID_ARGUMENT",
                        [{"@type": BAD_REQUEST_TYPE, "fieldViolations": [{"description": key}]}],
                    )
                )
        validate_only = body.get("validate_only", False)
        if not isinstance(validate_only, bool):
            raise cls._invalid("validate_only", "Invalid value at 'validate_only' (TYPE_BOOL)")
        message = body.get("message")
        if not isinstance(message, dict):
            raise cls._invalid("message", "Request contains an invalid argument.")
        for key in message:
            if key not in _MESSAGE_FIELDS:
                raise _Refused(
                    google_error(
                        400,
                        f"Invalid JSON payload received. Unknown name {json.dumps(key)} at 'message': "
                        "Cannot find field.",
                        "INVALID_ARGUMENT",
                        [
                            {
                                "@type": BAD_REQUEST_TYPE,
                                "fieldViolations": [{"field": "message", "description": key}],
                            }
                        ],
                    )
                )
        token = message.get("token")
        if not isinstance(token, str) or not token:
            raise cls._invalid("message.token", "Recipient of the message is not set.")
        notification = message.get("notification")
        if not isinstance(notification, dict):
            raise cls._invalid("message.notification", "Request contains an invalid argument.")
        for key, value in notification.items():
            if key not in _NOTIFICATION_FIELDS:
                raise cls._invalid(
                    "message.notification",
                    f"Invalid JSON payload received. Unknown name \"{key}\" at 'message.notification'.",
                )
            if not isinstance(value, str):
                raise cls._invalid(
                    f"message.notification.{key}",
                    f"Invalid value at 'message.notification.{key}' (TYPE_STRING), {json.dumps(value)}",
                )
        data = message.get("data", {})
        if not isinstance(data, dict):
            raise cls._invalid("message.data", "Invalid value at 'message.data' (type.googleapis.com/Map)")
        for index, value in enumerate(data.values()):
            if not isinstance(value, str):
                raise cls._invalid(
                    f"message.data[{index}].value",
                    f"Invalid value at 'message.data[{index}].value' (TYPE_STRING), {json.dumps(value)}",
                )
        for key in ("android", "apns", "webpush", "fcm_options"):
            if key in message and not isinstance(message[key], dict):
                raise cls._invalid(f"message.{key}", f"Invalid value at 'message.{key}'")
        payload = json.dumps({"notification": notification, "data": data}, ensure_ascii=False)
        if len(payload.encode()) > _MAX_PAYLOAD_BYTES:
            raise cls._invalid("message", "Request contains an invalid argument.")
        return validate_only, message
