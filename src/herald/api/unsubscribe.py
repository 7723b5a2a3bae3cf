"""One-click email unsubscribe (RFC 8058) behind the List-Unsubscribe links herald sends."""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import HTMLResponse

from herald.api.deps import redis_of, settings_of
from herald.config import Settings
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


def _page(title: str, body: str) -> HTMLResponse:
    """A page of ``body`` (HTML, escaped by the caller) with :data:`HEADERS`."""
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head>\n<body>{body}</body></html>"
    )
    return HTMLResponse(html, headers=HEADERS)


def _address(token: str, settings: Settings) -> tuple[str, str]:
    if settings.secret_key is None:
        raise HTTPException(404, "unsubscribe links are not configured")
    try:
        return read_unsubscribe_token(settings.secret_key.get_secret_value(), token)
    except ValueError:
        raise HTTPException(404, "this unsubscribe link is not valid") from None


@router.get("/{token}", response_class=HTMLResponse, summary="Confirm unsubscribing")
def confirm(token: str, settings: Annotated[Settings, Depends(settings_of)]) -> HTMLResponse:
    """A page with one button; a GET never changes anything (mail scanners follow links)."""
    _, address = _address(token, settings)
    body = (
        f"<h1>Unsubscribe</h1><p>Stop reminder emails to {escape(mask_email(address))}?</p>"
        f'<form method="post"><button type="submit" name="List-Unsubscribe" value="One-Click">'
        "Unsubscribe</button></form>"
    )
    return _page("Unsubscribe", body)


@router.post("/{token}", response_class=HTMLResponse, summary="One-click unsubscribe (RFC 8058)")
def unsubscribe(
    token: str,
    settings: Annotated[Settings, Depends(settings_of)],
    client: Annotated[redis.Redis, Depends(redis_of)],
) -> HTMLResponse:
    """Opt the address out of its channel."""
    channel, address = _address(token, settings)
    OptOuts(client).add(channel, address, source="unsubscribe-link", by=address)
    body = f"<h1>Unsubscribed</h1><p>{escape(mask_email(address))} will receive no more reminder emails.</p>"
    return _page("Unsubscribed", body)
