"""Every route of an app, however FastAPI nests included routers."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI, routing


def api_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """``(method, path)`` of every FastAPI route of ``app`` (HEAD left out)."""
    iterate = getattr(routing, "iter_route_contexts", None)
    if iterate is not None:  # FastAPI keeps included routers as branches, not copied routes
        pairs = [(ctx.original_route, ctx.path) for ctx in iterate(app.routes)]
    else:
        pairs = [(r, getattr(r, "path", "")) for r in app.routes]
    for route, path in pairs:
        if isinstance(route, routing.APIRoute):
            for method in sorted(route.methods - {"HEAD"}):
                yield method, str(path)
