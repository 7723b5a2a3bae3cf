"""In-doubt deliveries, ``/operator/in-doubt``: the list, oldest first, and the form that settles one.

A delivery is in doubt when the provider may have accepted it and herald cannot tell; herald
never sends it again by itself. An operator who checked with the provider settles it as sent or
not sent, with the reason recorded and the operator as "who" (as ``/v1/in-doubt`` does for
callers with an API key).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Form
from fastapi.responses import HTMLResponse, Response

from herald.api.operator.page import DONE, SignedIn, SignedInPost, Visit, page_router, redirect, render
from herald.api.operator.views import IN_DOUBT_PAGE, in_doubt_rows
from herald.delivery.indoubt import resolve
from herald.display.timefmt import display_zone

log = logging.getLogger("herald.operator")

router = page_router()


def _in_doubt_page(visit: Visit, offset: int, status: int = 200, **context: Any) -> Response:
    zone = display_zone(visit.settings)
    rows, total = in_doubt_rows(visit.redis, offset, zone)
    return render(
        visit,
        "in_doubt.html",
        status,
        rows=rows,
        total=total,
        offset=offset,
        page=IN_DOUBT_PAGE,
        **context,
    )


@router.get("/in-doubt", response_class=HTMLResponse)
def in_doubt(visit: SignedIn, offset: int = 0, done: str = "", key: str = "") -> Response:
    """Deliveries the provider may have accepted, oldest first, each with a form to settle it."""
    notice = f"{key}: {visit._(DONE[done])}" if done in ("sent", "not_sent") and key else ""
    return _in_doubt_page(visit, max(0, offset), notice=notice)


@router.post("/in-doubt/resolve")
def resolve_in_doubt(
    visit: SignedInPost,
    key: Annotated[str, Form()] = "",
    outcome: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Settle an in-doubt delivery as sent (the provider had it) or not sent (outcome failed)."""
    problem = ""
    if outcome not in ("sent", "not_sent"):
        problem = visit._("outcome: choose sent or not sent")
    elif not reason.strip():
        problem = visit._("reason: say what you checked (e.g. the provider's log)")
    if problem:
        return _in_doubt_page(visit, 0, 400, error=f"{key}: {problem}")
    settled = resolve(
        visit.redis,
        key,
        sent=outcome == "sent",
        by=visit.owner,
        reason=reason.strip(),
        events_maxlen=visit.settings.events_maxlen,
    )
    if not settled:
        return _in_doubt_page(
            visit, 0, 409, error=visit._("%(key)s is not in doubt (already resolved?)") % {"key": key}
        )
    log.info("operator page: %s resolved as %s by %s", key, outcome, visit.owner)
    return redirect(visit, "/in-doubt", done=outcome, key=key)
