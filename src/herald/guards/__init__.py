"""Send-time guards, in the order of DESIGN.md's flow."""

from __future__ import annotations

from herald.guards.base import Defer, Delivery, Guard, GuardContext, Seen, Skip, Verdict
from herald.guards.cancelled import CancelledGuard
from herald.guards.capped import CapGuard
from herald.guards.duplicate import DuplicateGuard
from herald.guards.expired import ExpiredGuard
from herald.guards.not_before import NotBeforeGuard
from herald.guards.opted_out import OptedOutGuard
from herald.guards.send_window import SendWindowGuard
from herald.guards.suppressed import SuppressedGuard, SuppressionUnknown


def default_guards() -> list[Guard]:
    """The guards every batch passes through, in order."""
    return [
        CancelledGuard(),
        ExpiredGuard(),
        SuppressedGuard(),
        OptedOutGuard(),
        DuplicateGuard(),
        NotBeforeGuard(),
        SendWindowGuard(),
        CapGuard(),
    ]


__all__ = [
    "Defer",
    "Delivery",
    "Guard",
    "GuardContext",
    "Seen",
    "Skip",
    "SuppressionUnknown",
    "Verdict",
    "default_guards",
]
