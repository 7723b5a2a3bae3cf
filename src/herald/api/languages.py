"""Which language a page answers in, and what the answer says of it: one rule for the operator
page and the unsubscribe pages (:mod:`herald.display.i18n` has the languages themselves)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from herald.display.i18n import COOKIE, COOKIE_AGE, choose, supported


def language_of(request: Request) -> str:
    """The page's language: ``?lang=``, else the kept choice (cookie), else ``Accept-Language``."""
    return choose(
        request.query_params.get("lang"), request.cookies.get(COOKIE), request.headers.get("accept-language")
    )


def answered_in(request: Request, response: Response, tag: str) -> None:
    """Say ``response``'s language, and keep a choice just made with ``?lang=`` (the switch)."""
    response.headers.setdefault("Content-Language", tag)
    response.headers.setdefault("Vary", "Accept-Language, Cookie")
    if supported(request.query_params.get("lang")):
        response.set_cookie(COOKIE, tag, max_age=COOKIE_AGE, path="/", samesite="lax")
