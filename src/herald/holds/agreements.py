"""Agreement events from the agreement-management service, and what each does to the holds.

| event | effect |
| --- | --- |
| ``signed`` | hold collection contact, source = the agreement |
| ``installment_paid`` | nothing |
| ``installment_missed`` | nothing (upstream sends ``early_warning``, an agreement-category kind) |
| ``broken`` | lift that agreement's hold: collection resumes, for reminders decided from now on |
| ``completed`` | lift that agreement's hold |

Reminders decided before the agreement stay unsent after a lift (``superseded``).
"""

from __future__ import annotations

from typing import Literal

from herald.holds.suppression import Change, Hold, SuppressionStore, hold_id

Event = Literal["signed", "installment_paid", "installment_missed", "broken", "completed"]
EVENTS: tuple[str, ...] = ("signed", "installment_paid", "installment_missed", "broken", "completed")


def apply_event(
    holds: SuppressionStore,
    account_id: str,
    agreement: str,
    event: str,
    *,
    by: str = "agreements",
    until: float | None = None,
) -> Change:
    """Apply one agreement event to ``account_id``'s holds; returns what changed."""
    if event not in EVENTS:
        raise ValueError(f"event must be one of {', '.join(EVENTS)}")
    if not agreement:
        raise ValueError("agreement is required")
    if event == "signed":
        hold = Hold(
            id=hold_id("agreement", agreement),
            account_id=account_id,
            source="agreement",
            reason=f"repayment agreement {agreement} signed",
            agreement=agreement,
            until=until,
            by=by,
        )
        return holds.add(hold)
    if event in ("broken", "completed"):
        return holds.remove(account_id, by=by, reason=f"agreement {agreement} {event}", agreement=agreement)
    return Change("no change", account_id)
