"""One-click email unsubscribe (RFC 8058) behind the List-Unsubscribe links herald sends.

Borrowers read these pages: they speak English or Chinese (zh-CN) as the browser asks
(``Accept-Language``), or as ``?lang=`` chose (kept in a cookie), like the operator page.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from herald.api.deps import redis_of, settings_of
from herald.api.languages import answered_in, language_of
from herald.config import Settings
from herald.display.i18n import N_, Speaker, speaker
from herald.display.masking import mask_email
from herald.holds.optouts import OptOuts
from herald.rendering.links import UNSUBSCRIBE_PATH, read_unsubscribe_token

router = APIRouter(prefix=UNSUBSCRIBE_PATH, tags=["unsubscribe"])

STYLE = "body{font-family:sans-serif;max-width:32em;margin:3em auto}"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; "
        f"style-src 'sha256-{base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()}'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Every unsubscribe page: nothing but its own inline style (by hash), its form posting to
itself, never in a frame (a framed button could be clicked for the recipient); the token in
the address is sent to no other site, and no cache keeps the page."""


NOT_CONFIGURED = N_("unsubscribe links are not configured")
NOT_VALID = N_("this unsubscribe link is not valid")


def _speaker(request: Request) -> Speaker:
    return speaker(language_of(request))


def _page(request: Request, say: Speaker, title: str, body: str) -> HTMLResponse:
    """A page of ``body`` (HTML, escaped by the caller) in ``say``'s language, with :data:`HEADERS`."""
    html = (
        f'<!doctype html><html lang="{say.tag}"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>{body}</body></html>"
    )
    response = HTMLResponse(html, headers=HEADERS)
    answered_in(request, response, say.tag)
    return response


def _address(token: str, settings: Settings, say: Speaker) -> tuple[str, str]:
    if settings.secret_key is None:
        raise HTTPException(404, say._(NOT_CONFIGURED))
    try:
        return read_unsubscribe_token(settings.secret_key.get_secret_value(), token)
    except ValueError:
        raise HTTPException(404, say._(NOT_VALID)) from None


@router.get("/{token}", response_class=HTMLResponse, summary="Confirm unsubscribing")
def confirm(
    token: str, request: Request, settings: Annotated[Settings, Depends(settings_of)]
) -> HTMLResponse:
    """A page with one button; a GET never changes anything (mail scanners follow links)."""
    say = _speaker(request)
    _, address = _address(token, settings, say)
    title = say._("Unsubscribe")
    question = say._("Stop reminder emails to %(address)s?") % {"address": mask_email(address)}
    body = (
        f"<h1>{escape(title)}</h1><p>{escape(question)}</p>"
        f'<form method="post"><button type="submit" name="List-Unsubscribe" value="One-Click">'
        f"{escape(title)}</button></form>"
    )
    return _page(request, say, title, body)


@router.post("/{token}", response_class=HTMLResponse, summary="One-click unsubscribe (RFC 8058)")
def unsubscribe(
    token: str,
    request: Request,
    settings: Annotated[Settings, Depends(settings_of)],
    client: Annotated[redis.Redis, Depends(redis_of)],
) -> HTMLResponse:
    """Opt the address out of its channel."""
    say = _speaker(request)
    channel, address = _address(token, settings, say)
    OptOuts(client).add(channel, address, source="unsubscribe-link", by=address)
    title = say._("Unsubscribed")
    done = say._("%(address)s will receive no more reminder emails.") % {"address": mask_email(address)}
    body = f"<h1>{escape(title)}</h1><p>{escape(done)}</p>"
    return _page(request, say, title, body)
