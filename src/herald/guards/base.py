"""What a guard is: one send-time check over a whole batch of deliveries.

Guards run in the order of DESIGN.md's flow. Each looks at the deliveries still going and
returns a verdict for those that must not be sent now; the others go on to the next guard.
A guard that cannot decide (Redis unreachable, store not populated) raises: the batch is then
not sent at all (fail closed) and the message is redelivered later.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from herald.config import Settings
from herald.models import Channel, Outcome


@dataclass(frozen=True)
class Seen:
    """What the guards read, read already with the delivery when its batch was taken
    (``lua/load.lua``), so that they need no Redis call of their own.

    ``holds``: its account's holds hash; ``mark``: its duplicate mark (None when none, or
    when the duplicate window is off); ``cap``: its cap set's recent entries as (member, time),
    None when no cap applies to its channel and category.
    """

    holds: dict[bytes, bytes]
    mark: bytes | None
    cap: list[tuple[bytes, float]] | None
    marker: bool
    """Whether the suppression store's marker was there (the same for the whole batch)."""


@dataclass
class Delivery:
    """One delivery of a batch, as loaded from Redis for the guards and the pipeline.

    ``state`` is the delivery's hash, ``reminder`` the stored reminder body and ``record``
    the reminder's record fields other than the body.
    """

    key: str
    channel: Channel
    state: dict[str, str]
    reminder: dict[str, Any]
    record: dict[str, str] = field(default_factory=dict)
    addresses: list[str] = field(default_factory=list)
    seen: Seen | None = None
    """The guards' reads, when taken with the batch (else each guard reads Redis itself)."""

    def __post_init__(self) -> None:
        if not self.addresses:
            to = self.reminder.get("to", {})
            if self.channel == "sms":
                self.addresses = [to["phone"]] if to.get("phone") else []
            elif self.channel == "email":
                self.addresses = [str(to["email"]).lower()] if to.get("email") else []
            else:
                self.addresses = list(to.get("push_tokens", []))

    @property
    def category(self) -> str:
        """The kind's category, as stored at intake."""
        return self.state.get("category", "")

    def time(self, name: str) -> float | None:
        """An epoch time stored on the delivery (``expires_at``, ``not_before``...), or None."""
        value = self.state.get(name, "")
        return float(value) if value else None


@dataclass(frozen=True)
class Skip:
    """Do not send: finish the delivery with ``outcome`` and ``reason``."""

    outcome: Outcome
    reason: str


@dataclass(frozen=True)
class Defer:
    """Not now: hand the delivery to the scheduler until ``until`` (epoch seconds)."""

    until: float
    reason: str


Verdict = Skip | Defer


@dataclass(frozen=True)
class GuardContext:
    """What every guard may use: the settings, async Redis and the batch's ``now``."""

    settings: Settings
    redis: aioredis.Redis
    now: float


class Guard(ABC):
    """A send-time check. Subclasses set ``name`` and implement ``check``."""

    name: str = "guard"

    @abstractmethod
    async def check(self, batch: list[Delivery], ctx: GuardContext) -> dict[str, Verdict]:
        """Verdicts, by delivery key, for the deliveries that must not be sent now."""
