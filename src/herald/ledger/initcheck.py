"""Whether ``herald suppress init`` may mark the hold store populated: only on a new Redis.

The marker tells every worker that the holds and opt-outs in Redis are complete. On a new
deployment that is true once the holds are loaded. On a Redis that lost its data it is false:
the holds and opt-outs are gone, and marking the store populated would resume sending to every
held borrower and to everyone who opted out. The two look the same from Redis alone (no
marker); the ledger tells them apart. If the ledger has hold changes or opt-out changes, this
deployment had them before, and ``herald suppress rebuild`` is the command that brings them back
and then sets the marker.

So init goes ahead only when the marker is already there (nothing to do) or the ledger has
neither hold changes nor opt-out changes; otherwise it is refused with what to run instead.
``--force`` skips the check, for an operator who knows the ledger is not this deployment's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import orjson
import redis
from sqlalchemy import Engine

from herald.holds.suppression import LEGACY_MARKER, MARKER
from herald.ledger.rebuild import hold_changes_count, optout_changes_count
from herald.state import store
from herald.values.ledger_urls import display_url


class InitRefused(RuntimeError):
    """The ledger says this deployment had holds or opt-outs that Redis no longer has."""


@dataclass(frozen=True)
class InitCheck:
    """What init should do: ``mark`` the store, ``migrate`` one marked in the earlier layout,
    or nothing (``present``: already marked)."""

    action: Literal["mark", "migrate", "present"]
    marked_by: str = ""
    marked_at: str = ""


def _marked(raw: bytes | str) -> tuple[str, str]:
    """Who marked the store and when, as the marker says (blanks for a marker not understood)."""
    try:
        marker = orjson.loads(raw)
    except orjson.JSONDecodeError:
        marker = {}
    if not isinstance(marker, dict):
        marker = {}
    try:
        when = store.iso(marker.get("at"))
    except (TypeError, ValueError):
        when = ""
    return str(marker.get("by", "")), when


def check_init(client: redis.Redis, engine: Engine) -> InitCheck:
    """Decide whether init may set the marker; ``InitRefused`` when it must not.

    A store marked in the earlier layout (before accounts had their own namespace) was
    populated: init moves it and carries its mark over."""
    current, legacy = client.get(MARKER), client.get(LEGACY_MARKER)
    if current is not None:
        return InitCheck("present", *_marked(current))
    if legacy is not None:
        return InitCheck("migrate", *_marked(legacy))
    holds, opted = hold_changes_count(engine), optout_changes_count(engine)
    if holds or opted:
        raise InitRefused(
            f"the ledger at {display_url(str(engine.url))} has {holds} hold changes and {opted} "
            "opt-out changes but this Redis has no marker: it lost its holds and opt-outs (or they "
            "were loaded before init). Marking it populated now would send to held borrowers and "
            "to people who opted out. Run `herald ledger --once` (if herald:holds:audit or "
            "herald:optout:audit survived in part), then `herald suppress rebuild`: it restores "
            "the holds and opt-outs in force and sets the marker. `--force` skips this check"
        )
    return InitCheck("mark")
