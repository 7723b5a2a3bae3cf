"""What every area of the operator page shares: the visit, its gates, and how answers are made.

A route takes the :class:`Visit` (the request, the settings, Redis, and who is signed in) from
one of three gates, each a FastAPI dependency:

- :data:`WithSessions` (:func:`sessions_on`): sessions can be signed (HERALD_SECRET_KEY set
  and long enough); otherwise the "off" page, 503. The sign-in form and its post need no more.
- :data:`SignedIn` (:func:`signed_in`): a page (GET); signed out, a redirect to the sign-in
  form (with ``?ended=1`` when a session just ended: key revoked, expired, signed out elsewhere).
- :data:`SignedInPost` (:func:`signed_in_post`): a form's POST; signed out, or without the
  session's CSRF token (form field ``csrf``), 403 and nothing changes.

A dependency cannot answer with a response, so a gate that refuses raises :class:`Refused`
carrying its answer, and :class:`PageRoute`, the route class of every area's router
(:func:`page_router`), sends that answer instead of calling the route. Every answer the page
makes carries :data:`HEADERS` (:func:`finish`), and clears the session cookie of a session that
ended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

import redis
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined

from herald.access.apikeys import ApiKey, KeyStore
from herald.api.deps import redis_of, settings_of
from herald.api.languages import answered_in, language_of
from herald.api.operator.session import SESSION_COOKIE, Session, Sessions, SessionsUnavailable, alive
from herald.config import Settings
from herald.display.i18n import LANGUAGES, N_, Speaker, speaker

log = logging.getLogger("herald.operator")

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""The security headers of every answer (the static files' only relax the caching)."""
DONE = {
    "added": N_("Hold added."),
    "lifted": N_("Hold lifted."),
    "sent": N_("Resolved as sent."),
    "not_sent": N_("Resolved as not sent."),
}
"""The notice a page shows after a redirect with ``?done=<key>`` (translated when shown)."""

templates = Environment(
    loader=PackageLoader("herald.api.operator", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.i18n"],
)
templates.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
templates.policies["ext.i18n.trimmed"] = True  # a message is one line, however the template wraps it
"""The page's templates; each render passes the visit's language's gettext (:func:`render`)."""


@dataclass
class Visit:
    """One request as the page sees it: the sessions, and who is signed in (if anyone)."""

    request: Request
    settings: Settings
    redis: redis.Redis
    sessions: Sessions | None
    unavailable: str
    session: Session | None = None
    operator: ApiKey | None = None
    ended: bool = False
    language: str = "en"
    """The page's language (:func:`herald.display.i18n.choose`)."""

    @property
    def speaker(self) -> Speaker:
        """The visit's language: its gettext and number format."""
        return speaker(self.language)

    def _(self, message: str) -> str:
        """``message`` in the visit's language."""
        return self.speaker._(message)

    def tell(self, template: str, params: Mapping[str, object] | None = None) -> str:
        """A library message (``template % params``, its template marked for translation) in
        the visit's language."""
        said = self.speaker._(template)
        return said % dict(params) if params else said

    @property
    def base(self) -> str:
        """The page's root URL path (behind a proxy's root path too)."""
        return str(self.request.scope.get("root_path", "")).rstrip("/") + "/operator"

    @property
    def owner(self) -> str:
        """The signed-in operator's key owner: "who" of every change it makes (signed in only)."""
        assert self.operator is not None
        return self.operator.owner


def visit_of(request: Request) -> Visit:
    """The request as the page sees it: which session its cookie names, and whether it is over.

    A session is over (``ended``) when its cookie no longer names a live session of a key with
    the ``operator`` scope: expired, signed out elsewhere, signed with another secret, or its key
    revoked or narrowed. The dependency under every gate; FastAPI reads it once per request.
    """
    settings = settings_of(request)
    client = redis_of(request)
    try:
        sessions: Sessions | None = Sessions.from_settings(settings)
        unavailable = ""
    except SessionsUnavailable as exc:
        sessions, unavailable = None, str(exc)
    visit = Visit(request, settings, client, sessions, unavailable, language=language_of(request))
    if sessions is None:
        return visit
    cookie = request.cookies.get(SESSION_COOKIE)
    session = sessions.read(cookie)
    if session is not None and alive(client, session):
        key = KeyStore(client).get(session.key_id)
        if key is not None and key.allows("operator"):
            visit.session, visit.operator = session, key
        else:
            visit.ended = True
    elif cookie:
        visit.ended = True  # expired, signed out elsewhere, or signed with another secret
    return visit


# -- answers ----------------------------------------------------------------------------


def finish(visit: Visit, response: Response) -> Response:
    """``response`` with the page's security headers, and without the cookie of an ended session."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    answered_in(visit.request, response, visit.language)
    if visit.ended and visit.sessions is not None:
        visit.sessions.clear(response, path=visit.base)
    return response


def render(visit: Visit, template: str, status: int = 200, **context: Any) -> Response:
    """The page ``template`` (autoescaped) in the visit's language, with the base path, operator,
    CSRF token and language switch it needs."""
    values: dict[str, Any] = {
        "base": visit.base,
        "operator": visit.operator,
        "csrf": visit.session.csrf if visit.session else "",
        "notice": "",
        "error": "",
        "switch": switch_links(visit),
        "zone": visit.settings.default_timezone,
        **visit.speaker.template_globals(),
        **context,
    }
    html = templates.get_template(template).render(**values)
    return finish(visit, HTMLResponse(html, status_code=status))


def switch_links(visit: Visit) -> list[tuple[str, str, str, bool]]:
    """The language switch: (its tag, its own name, this page in it, whether it is the current)."""
    links = []
    get = visit.request.method == "GET"  # a form's answer links to the home page, not its POST
    path = visit.request.url.path if get else visit.base
    for tag, name in LANGUAGES.items():
        query = {k: v for k, v in visit.request.query_params.items() if k != "lang"} if get else {}
        url = path + "?" + urlencode({**query, "lang": tag})
        links.append((tag, name, url, tag == visit.language))
    return links


def redirect(visit: Visit, path: str, **query: str) -> Response:
    """A 303 to ``path`` under the page's base (``""``: the home page), with ``query``."""
    url = visit.base + path + (f"?{urlencode(query)}" if query else "")
    return finish(visit, RedirectResponse(url, status_code=303))


def off(visit: Visit) -> Response:
    """The page saying why it is off (sessions cannot be signed), 503."""
    return render(visit, "off.html", 503, message=visit.unavailable)


# -- gates ------------------------------------------------------------------------------


class Refused(Exception):
    """A gate's answer instead of the route's: raised by a gate, sent by :class:`PageRoute`."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class PageRoute(APIRoute):
    """A route of the operator page: when one of its gates raises :class:`Refused`, the answer
    is the refusal's response (a gate is a dependency, and a dependency cannot return one)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, answering a gate's refusal with its response."""
        handler = super().get_route_handler()

        async def gated(request: Request) -> Response:
            try:
                return await handler(request)
            except Refused as refused:
                return refused.response

        return gated


def page_router() -> APIRouter:
    """A router for one area of the page: its routes are :class:`PageRoute`, so its gates work."""
    return APIRouter(route_class=PageRoute)


def sessions_on(visit: Annotated[Visit, Depends(visit_of)]) -> Visit:
    """The gate of the sign-in form and its post: refused with the "off" page without sessions."""
    if visit.sessions is None:
        raise Refused(off(visit))
    return visit


def signed_in(visit: Annotated[Visit, Depends(sessions_on)]) -> Visit:
    """The gate of a page (GET): signed out, refused with a redirect to the sign-in form."""
    if visit.operator is None:
        raise Refused(redirect(visit, "", **({"ended": "1"} if visit.ended else {})))
    return visit


def signed_in_post(visit: Annotated[Visit, Depends(sessions_on)], csrf: Annotated[str, Form()] = "") -> Visit:
    """The gate of a form's POST: signed in, and the form's ``csrf`` field is the session's
    token; otherwise refused with 403, and nothing changes."""
    if visit.session is None or visit.operator is None:
        raise Refused(
            render(
                visit,
                "refused.html",
                403,
                message=visit._("You are not signed in (or your session ended). Nothing changed."),
            )
        )
    if not visit.session.csrf_ok(csrf):
        log.warning("operator page: a post to %s without its CSRF token was refused", visit.request.url.path)
        raise Refused(
            render(
                visit,
                "refused.html",
                403,
                message=visit._(
                    "This form is out of date or did not come from this page (its CSRF token does "
                    "not match your session). Nothing changed: reload the page and try again."
                ),
            )
        )
    return visit


WithSessions = Annotated[Visit, Depends(sessions_on)]
"""A visit to the sign-in form or its post: sessions can be signed."""
SignedIn = Annotated[Visit, Depends(signed_in)]
"""A visit to a page by a signed-in operator."""
SignedInPost = Annotated[Visit, Depends(signed_in_post)]
"""A form's post by a signed-in operator, with the session's CSRF token."""
