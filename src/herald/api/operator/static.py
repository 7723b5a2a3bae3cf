"""The page's stylesheet and script, ``/operator/static/<name>``: shipped in the package.

Only the two files named here are served (nothing else of the package, nothing from another
site), with the page's security headers; the browser checks back with us before reusing them.
No gate: the sign-in form needs them too.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from herald.api.operator.page import HEADERS

router = APIRouter()

_STATIC = {"operator.css": "text/css; charset=utf-8", "operator.js": "text/javascript; charset=utf-8"}


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The page's stylesheet and script (shipped in the package; nothing from elsewhere)."""
    media = _STATIC.get(name)
    if media is None:
        return Response("not found", 404, media_type="text/plain")
    body = (resources.files("herald.api.operator") / "static" / name).read_bytes()
    headers = {**HEADERS, "Cache-Control": "no-cache"}
    return Response(body, media_type=media, headers=headers)
