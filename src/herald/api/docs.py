"""The API's own documentation, whole on herald: Swagger UI at /docs, ReDoc at /redoc.

herald runs on networks with no way out to the internet. FastAPI's default pages load their
scripts from a CDN and are blank there; these load them from herald (fastapi-offline ships
them), and a Content-Security-Policy keeps the pages from fetching anything elsewhere (ReDoc's
footer logo, for one, points at its vendor's CDN).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_PATHS = ("/docs", "/redoc")
ASSETS = "/docs-assets"
"""Where the API serves Swagger UI's and ReDoc's scripts and styles."""

POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""Only herald: the pages' own inline bootstrap scripts run (FastAPI writes them), nothing is
fetched from another origin."""


def documented_app(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose /docs and /redoc load their assets from ``ASSETS`` on the app itself."""
    app = FastAPIOffline(static_url=ASSETS, **kwargs)
    app.add_middleware(DocsPolicy)
    return app


class DocsPolicy:
    """ASGI middleware: the documentation pages and their assets carry ``POLICY``.

    Parameters: none. Hook: ``__call__``, which adds the header to the response of a request for
    /docs, /redoc or anything under ``ASSETS``, and passes every other request through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the policy to a documentation response."""
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path in DOCS_PATHS or path.startswith(ASSETS + "/")):
            await self.app(scope, receive, send)
            return

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = POLICY
                headers["X-Content-Type-Options"] = "nosniff"
            await send(message)

        await self.app(scope, receive, with_policy)
