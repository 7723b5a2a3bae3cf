"""The page's front door, ``/operator``: the sign-in form, signing in and out, and the home page.

Signed out, ``/operator`` shows the sign-in form (an API key with the ``operator`` scope); the
form carries a token of its own (a short-lived sign-in cookie), since there is no session yet.
Signed in, it shows the overview (:mod:`~herald.api.operator.summary`) and the account lookup.
Signing in starts a session that names the key (never the key itself); signing out ends it for
every copy of its cookie.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Form
from fastapi.responses import HTMLResponse, Response

from herald.access.apikeys import KeyStore
from herald.api.operator.attempts import SignInAttempts
from herald.api.operator.page import (
    SignedInPost,
    Visit,
    WithSessions,
    page_router,
    redirect,
    render,
)
from herald.api.operator.session import SIGNIN_COOKIE, Sessions, forget, remember
from herald.api.operator.summary import summary
from herald.display.i18n import N_

log = logging.getLogger("herald.operator")

router = page_router()

ENDED = N_("You were signed out: your key was revoked or no longer has the operator scope.")


def _signin_page(visit: Visit, status: int = 200, *, error: str = "", notice: str = "") -> Response:
    assert visit.sessions is not None
    pending = visit.sessions.read(visit.request.cookies.get(SIGNIN_COOKIE), signin=True) or Sessions.new()
    if visit.ended and not notice:
        notice = visit._(ENDED)
    response = render(visit, "signin.html", status, csrf=pending.csrf, error=error, notice=notice)
    visit.sessions.write(response, pending, signin=True, path=visit.base)
    return response


@router.get("", response_class=HTMLResponse)
def home(visit: WithSessions, ended: str = "") -> Response:
    """The sign-in form, or the overview once signed in."""
    if visit.operator is None:
        return _signin_page(visit, notice=visit._(ENDED) if ended or visit.ended else "")
    return render(visit, "home.html", summary=summary(visit.settings, visit.redis, visit.speaker), account="")


@router.post("/signin")
def signin(
    visit: WithSessions, key: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = ""
) -> Response:
    """Check an operator key and start a session that names it."""
    assert visit.sessions is not None
    pending = visit.sessions.read(visit.request.cookies.get(SIGNIN_COOKIE), signin=True)
    if pending is None or not pending.csrf_ok(csrf):
        return _signin_page(
            visit, 403, error=visit._("The sign-in form expired or did not come from this page.")
        )
    attempts = SignInAttempts(visit.redis)
    address = visit.request.client.host if visit.request.client else ""
    wait = attempts.retry_after(address, key)
    if wait:
        log.warning("operator page: sign-in refused for %d s after too many wrong keys", wait)
        response = _signin_page(
            visit,
            429,
            error=visit._("key: too many wrong keys; try again in %(minutes)s minutes.")
            % {"minutes": max(1, round(wait / 60))},
        )
        response.headers["Retry-After"] = str(wait)
        return response
    found = KeyStore(visit.redis).verify(key) if key.strip() else None
    if found is None or not found.allows("operator"):
        attempts.failed(address, key)
        return _signin_page(
            visit,
            401,
            error=visit._("key: not a valid operator key (unknown, revoked, or without the operator scope)."),
        )
    attempts.succeeded(address, key)
    visit.ended = False
    response = redirect(visit, "")
    session = Sessions.new(found.key_id)
    remember(visit.redis, session)
    visit.sessions.write(response, session, path=visit.base)
    visit.sessions.clear(response, signin=True, path=visit.base)
    log.info("operator page: key %s (%s) signed in", found.key_id, found.owner)
    return response


@router.post("/signout")
def signout(visit: SignedInPost) -> Response:
    """End the session."""
    assert visit.sessions is not None
    assert visit.session is not None
    forget(visit.redis, visit.session)
    response = redirect(visit, "")
    visit.sessions.clear(response, path=visit.base)
    return response
