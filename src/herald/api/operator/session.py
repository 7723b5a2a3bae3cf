"""The operator page's sessions: signed cookies that name an API key, and CSRF tokens.

Two cookies, both signed with HERALD_SECRET_KEY (each with its own salt, so one cannot stand
in for the other), HttpOnly, SameSite=Strict, limited to ``/operator`` and Secure when
HERALD_PUBLIC_URL is https:

- ``herald_operator``: a signed-in session — the operator key's id (never the key), a session
  id and the session's CSRF token. The key is looked up again on every request, so revoking
  it, or taking away its ``operator`` scope, signs the session out at once. The session id is
  also kept in Redis (``herald:operator:session:<id>``, expiring with the cookie): signing out
  deletes it, so a copy of the cookie stops working too.
- ``herald_operator_signin``: the sign-in form's CSRF token, so that the sign-in post is
  protected too. It is separate so that showing the sign-in form never overwrites a session
  (with SameSite=Strict a link from another site arrives without the session cookie).

Every POST carries the token in a hidden ``csrf`` field; it is compared in constant time.
Times come from :mod:`herald.clock`.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

import redis
from fastapi import Response
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from herald import clock
from herald.config import MIN_SECRET_BYTES, Settings
from herald.state import store

SESSION_COOKIE = "herald_operator"
SIGNIN_COOKIE = "herald_operator_signin"
COOKIE_PATH = "/operator"
SESSION_SECONDS = 8 * 3600
SIGNIN_SECONDS = 3600
MIN_SECRET = MIN_SECRET_BYTES
LIVE = store.PREFIX + "operator:session:"


class SessionsUnavailable(RuntimeError):
    """The page cannot sign sessions (no HERALD_SECRET_KEY, or too short a one)."""


class _ClockSigner(TimestampSigner):
    """Timestamps from herald's clock (tests move it across processes)."""

    def get_timestamp(self) -> int:
        """Now, in whole seconds."""
        return int(clock.time())


@dataclass(frozen=True)
class Session:
    """One browser's session: the signed-in key id and session id (both empty on the sign-in
    form) and its CSRF token."""

    key_id: str
    csrf: str
    sid: str = ""

    def csrf_ok(self, token: str | None) -> bool:
        """Whether ``token`` is this session's CSRF token (constant-time comparison)."""
        return bool(token) and hmac.compare_digest(self.csrf.encode(), (token or "").encode())


class Sessions:
    """Issues, reads and clears the page's cookies with one secret."""

    def __init__(self, secret: str, *, secure: bool) -> None:
        self.secure = secure
        self._session = URLSafeTimedSerializer(secret, salt="herald.operator.session", signer=_ClockSigner)
        self._signin = URLSafeTimedSerializer(secret, salt="herald.operator.signin", signer=_ClockSigner)

    @classmethod
    def from_settings(cls, settings: Settings) -> Sessions:
        """Sessions on HERALD_SECRET_KEY; raises :class:`SessionsUnavailable` without a usable one."""
        secret = settings.secret_key.get_secret_value() if settings.secret_key else ""
        if len(secret.strip().encode()) < MIN_SECRET:
            raise SessionsUnavailable(
                "The operator page is off: it signs its sessions with HERALD_SECRET_KEY, which is "
                + ("not set" if not secret.strip() else f"shorter than {MIN_SECRET} bytes")
                + ". Set it to a long random value (e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`), the same for every "
                "`herald api` process, and restart."
            )
        return cls(secret, secure=(settings.public_url or "").startswith("https://"))

    @staticmethod
    def new(key_id: str = "") -> Session:
        """A fresh session (a fresh CSRF token) for ``key_id``, or for the sign-in form."""
        return Session(key_id, secrets.token_urlsafe(32), secrets.token_urlsafe(16) if key_id else "")

    def read(self, raw: str | None, *, signin: bool = False) -> Session | None:
        """The session a cookie holds, or None (absent, forged, expired or malformed)."""
        if not raw:
            return None
        serializer, max_age = (self._signin, SIGNIN_SECONDS) if signin else (self._session, SESSION_SECONDS)
        try:
            data = serializer.loads(raw, max_age=max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        key_id, csrf, sid = data.get("k"), data.get("c"), data.get("s", "")
        if not isinstance(key_id, str) or not isinstance(csrf, str) or not isinstance(sid, str) or not csrf:
            return None
        if not signin and not (key_id and sid):
            return None
        return Session(key_id, csrf, sid)

    def write(
        self, response: Response, session: Session, *, signin: bool = False, path: str = COOKIE_PATH
    ) -> None:
        """Set the cookie that carries ``session`` on ``response`` (for the page under ``path``)."""
        serializer, name, max_age = (
            (self._signin, SIGNIN_COOKIE, SIGNIN_SECONDS)
            if signin
            else (self._session, SESSION_COOKIE, SESSION_SECONDS)
        )
        response.set_cookie(
            name,
            serializer.dumps({"k": session.key_id, "c": session.csrf, "s": session.sid}),
            max_age=max_age,
            path=path,
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    def clear(self, response: Response, *, signin: bool = False, path: str = COOKIE_PATH) -> None:
        """Delete a cookie (the session's, or the sign-in form's) in the browser."""
        response.delete_cookie(
            SIGNIN_COOKIE if signin else SESSION_COOKIE,
            path=path,
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )


def remember(client: redis.Redis, session: Session) -> None:
    """Record a signed-in session as live (until it would expire anyway)."""
    client.set(LIVE + session.sid, session.key_id, ex=SESSION_SECONDS)


def alive(client: redis.Redis, session: Session) -> bool:
    """Whether the session was started here and not signed out since."""
    live = client.get(LIVE + session.sid)
    return live is not None and (live.decode() if isinstance(live, bytes) else str(live)) == session.key_id


def forget(client: redis.Redis, session: Session) -> None:
    """End a session everywhere (sign-out): a copy of its cookie no longer works."""
    client.delete(LIVE + session.sid)
