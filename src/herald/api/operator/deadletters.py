"""Dead letters, ``/operator/dead-letters``: deliveries whose retries ran out, and messages herald
could not read, oldest first, a page at a time.

Read only: putting a delivery back to work re-runs every send-time check, and is done with
``herald deadletter replay`` (the page says so), by someone who looked at why it died.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi.responses import HTMLResponse, Response

from herald.api.operator.page import SignedIn, page_router, render
from herald.delivery.deadletter import length, list_dead
from herald.display.masking import scrub
from herald.display.timefmt import display_zone, local_time

router = page_router()
PAGE = 100
_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


@dataclass(frozen=True)
class DeadRow:
    """One dead letter as the page shows it."""

    entry_id: str
    what: str
    channel: str
    attempts: str
    reason: str
    at: str


@router.get("/dead-letters", response_class=HTMLResponse)
def dead_letters(visit: SignedIn, after: str = "-") -> Response:
    """A page of dead letters, oldest first; ``after`` (an entry id) asks for the next page."""
    zone = display_zone(visit.settings)
    start = "(" + after if _ENTRY_ID.match(after) else "-"  # anything else: the first page
    letters = list_dead(visit.redis, count=PAGE, after=start)
    rows = [
        DeadRow(
            entry_id=d.entry_id,
            what=d.key if not d.is_message else visit._("message on %(queue)s") % {"queue": d.queue or "?"},
            channel=d.channel,
            attempts=d.attempts,
            reason=scrub(d.reason or d.message),
            at=local_time(d.at, zone),
        )
        for d in letters
    ]
    more = rows[-1].entry_id if len(rows) == PAGE else ""
    return render(visit, "dead_letters.html", rows=rows, total=length(visit.redis), more=more)
