"""Counting a scenario from outside herald, and the table the suite prints.

- **accepted**: the load's own record of enqueue results (`tests.faults.load`);
- **sent** and **duplicated**: the Twilio stand-in's records, by recipient (one phone number
  per reminder): a reminder whose number the stand-in accepted a request for was sent, one
  with more than one request was duplicated;
- every other outcome from herald (the delivery's state hash), cross-checked against the
  stand-in: herald may not record ``sent`` for a message the stand-in never got, nor
  ``suppressed`` (or any outcome but ``in_doubt``) for one it did;
- **lost**: accepted, never at the stand-in, and no final outcome in herald.

``in_doubt`` is counted in its own column whether or not the stand-in got the request, and
each one must be explained: the delivery was under a lease right after a crash the test
caused, or its request was held back by the stand-in longer than herald waits.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis

from herald.models import Outcome
from herald.state import store
from tests.faults.load import Planned
from tests.standins.twilio import FakeTwilio

OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
COLUMNS: tuple[str, ...] = ("sent", "in_doubt", *(o for o in OUTCOMES if o not in ("sent", "in_doubt")))


@dataclass
class Row:
    """One fault's counts."""

    fault: str
    accepted: int
    outcomes: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    duplicated: int = 0
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def counted(self) -> int:
        """Deliveries in some column: equals ``accepted`` when every one was counted once."""
        return sum(self.outcomes.values()) + self.lost


def tally(
    fault: str,
    planned: list[Planned],
    twilio: FakeTwilio,
    client: redis.Redis,
    *,
    explained_in_doubt: set[str],
    earlier: dict[str, dict[str, str]] | None = None,
) -> Row:
    """Count one scenario after its drain (see the module docstring).

    ``earlier``: delivery states read before Redis lost its data, for the deliveries it no
    longer knows.
    """
    accepted = [p for p in planned if p.status]
    row = Row(fault, len(accepted))
    requests = Counter(str(r["to"]) for r in twilio.accepted)
    with client.pipeline(transaction=False) as pipe:
        for p in accepted:
            pipe.hgetall(store.delivery_redis_key(p.key))
        states = [s or (earlier or {}).get(p.key, {}) for p, s in zip(accepted, pipe.execute(), strict=True)]
    problems: Counter[str] = Counter()
    for p, state in zip(accepted, states, strict=True):
        got = requests.get(p.phone, 0)
        outcome = state.get("outcome", "")
        if got > 1:
            row.duplicated += 1
        if outcome == "in_doubt":
            row.outcomes["in_doubt"] += 1
            if p.key not in explained_in_doubt:
                problems["in_doubt with no crash between its claim and its record"] += 1
        elif got:
            row.outcomes["sent"] += 1
            if outcome != "sent":
                problems[
                    f"the stand-in got it but herald says {outcome or state.get('state') or 'nothing'}"
                ] += 1
        elif outcome in OUTCOMES:
            row.outcomes[outcome] += 1
            if outcome == "sent":
                problems["herald says sent but the stand-in never got it"] += 1
        else:
            row.lost += 1
        expected = ("suppressed",) if p.held else ("sent", "in_doubt")
        if outcome and outcome not in expected:
            problems[f"{'a held account' if p.held else 'an open account'} ended {outcome}"] += 1
    planned_phones = {p.phone for p in planned}
    strangers = [to for to in requests if to not in planned_phones]
    if strangers:
        problems["requests at the stand-in for numbers the load never used"] += len(strangers)
    unanswered = len(planned) - len(accepted)
    if unanswered:
        row.notes.append(f"{unanswered} reminders never got an enqueue answer")
    in_doubt_at_provider = sum(
        1
        for p, s in zip(accepted, states, strict=True)
        if s.get("outcome") == "in_doubt" and requests.get(p.phone)
    )
    if row.outcomes["in_doubt"]:
        row.notes.append(f"{in_doubt_at_provider} of the in_doubt reached the stand-in")
    row.problems = [f"{n} × {what}" for what, n in problems.items()]
    if row.counted != row.accepted:  # pragma: no cover - a counting mistake in this module
        row.problems.append(f"counted {row.counted} of {row.accepted}")
    return row


def render(rows: list[Row]) -> str:
    """The table as Markdown: fault, accepted, one column per outcome, lost, duplicated, notes."""
    head = ["fault", "accepted", *COLUMNS, "lost", "duplicated", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for r in rows:
        cells = [r.fault, str(r.accepted), *(str(r.outcomes.get(c, 0)) for c in COLUMNS)]
        cells += [str(r.lost), str(r.duplicated), "; ".join([*r.notes, *r.problems]) or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    total = sum(r.accepted for r in rows)
    lines.append("")
    lines.append(f"{len(rows)} faults, {total} reminders accepted in all.")
    return "\n".join(lines)


def write(rows: list[Row], *paths: Path) -> None:
    """Write the table to each of ``paths`` (directories are created)."""
    text = render(rows) + "\n"
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
