"""What the overview (the first screen after sign-in) shows: the last 24 hours, today, and what
waits for an operator.

The figures are :func:`herald.ledger.overview.overview`'s (the ledger plus Redis's uncopied
tail), drawn as small multiples (:func:`herald.display.chart.small_multiples`): one row per
outcome, each with its own scale. Beside them: today's counts, the deliveries in doubt and the
dead letters (with links), and whether the hold store is populated (without its marker nothing
is sent). The ledger being unreadable leaves the rest of the page working.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import redis
from sqlalchemy.exc import SQLAlchemyError

from herald.api.operator.views import in_doubt_count
from herald.config import Settings
from herald.delivery.deadletter import length as deadletter_length
from herald.display.chart import Chart, small_multiples
from herald.display.i18n import N_, Speaker
from herald.display.timefmt import display_zone, local_time
from herald.holds.suppression import SuppressionStore
from herald.ledger.db import LedgerUnavailable
from herald.ledger.overview import CHARTED, Overview, overview

log = logging.getLogger("herald.operator")

LABELS = {
    "sent": N_("sent"),
    "suppressed": N_("suppressed"),
    "cancelled": N_("cancelled"),
    "failed": N_("failed"),
    "in_doubt": N_("in doubt"),
    "duplicate": N_("duplicate"),
    "expired": N_("expired"),
    "opted_out": N_("opted out"),
    "capped": N_("capped"),
    "invalid": N_("invalid"),
}
"""What each outcome is called on the page (translated when shown)."""


@dataclass(frozen=True)
class Count:
    """One line of a table of counts."""

    outcome: str
    label: str
    count: int
    shown: str
    """The count in the page's number format."""


@dataclass(frozen=True)
class Summary:
    """Everything the overview shows."""

    chart: Chart | None
    today: list[Count]
    totals: list[Count]
    since: str
    midnight: str
    in_doubt: int
    dead_letters: int
    populated: bool
    partial: bool = False
    ledger_error: str = ""


def _hour(overview_: Overview, zone: ZoneInfo) -> list[str]:
    return [h.start.astimezone(zone).strftime("%H:%M") for h in overview_.hours]


def summary(settings: Settings, client: redis.Redis, speaker: Speaker) -> Summary:
    """The overview's figures, worded in ``speaker``'s language; raises ``redis.RedisError``
    when Redis cannot be read."""
    zone = display_zone(settings)
    populated = SuppressionStore(client).initialized()
    in_doubt = in_doubt_count(client)
    dead = deadletter_length(client)
    try:
        figures = overview(client, settings.ledger_url, zone)
    except (LedgerUnavailable, SQLAlchemyError) as exc:
        log.warning("operator overview: the ledger cannot be read: %s", type(exc).__name__)
        return Summary(
            chart=None,
            today=[],
            totals=[],
            since="",
            midnight="",
            in_doubt=in_doubt,
            dead_letters=dead,
            populated=populated,
            ledger_error=speaker._(
                "The ledger cannot be read right now, so the last 24 hours cannot be shown."
            ),
        )
    hours = _hour(figures, zone)
    series = [(o, speaker._(LABELS[o]), [h.counts[o] for h in figures.hours]) for o in CHARTED]

    def count(outcome: str, n: int) -> Count:
        label = speaker._(LABELS[outcome]) if outcome in LABELS else outcome.replace("_", " ")
        return Count(outcome, label, n, speaker.number(n))

    return Summary(
        chart=small_multiples(series, hours, tooltip="{slot} {label}: {value}"),
        today=[count(o, n) for o, n in figures.today.items()],
        totals=[count(o, figures.totals[o]) for o in CHARTED],
        since=local_time(figures.since, zone),
        midnight=local_time(figures.midnight, zone),
        in_doubt=in_doubt,
        dead_letters=dead,
        populated=populated,
        partial=figures.partial,
    )
