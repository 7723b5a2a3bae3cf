"""The steady load: an upstream service enqueueing reminders at a fixed pace while faults happen.

Every reminder has its own phone number, so the Twilio stand-in's records by recipient map
back to reminders. The load keeps its own record of each enqueue result: that record, not
herald, says what was accepted. An enqueue that fails (Redis down) is tried again with the same
reminder, as an upstream service would: the reminder id is the idempotency key, so a retry of
one that was stored after all answers ``duplicate`` and is still one reminder.

Most reminders are overdue notices (collection, the bulk lane); one in seven is an instalment
reminder of a repayment plan (agreement, the priority lane); one in ten waits for a
``not_before`` a little ahead (the scheduler's work); one in twenty goes to an account on hold,
and must end ``suppressed``.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from herald import clock
from herald.intake.producer import Producer
from herald.rendering.catalog import cached_catalog

TICK = 0.25  # seconds between two enqueue calls
NOT_BEFORE = 20.0  # seconds ahead for the reminders that wait in the scheduler


@dataclass
class Planned:
    """One reminder of the load and what its enqueue answered."""

    reminder: dict[str, Any]
    held: bool
    status: str = ""
    attempts: int = 0

    @property
    def phone(self) -> str:
        return str(self.reminder["to"]["phone"])

    @property
    def key(self) -> str:
        return f"{self.reminder['id']}:sms"


class Load:
    """Enqueues ``count`` reminders at ``rate`` a second in a thread; see the module docstring.

    ``code`` (0-99) makes the scenario's phone numbers and ids its own; ``held_accounts`` are
    accounts the scenario put on hold.
    """

    def __init__(
        self,
        producer: Producer,
        templates: Path,
        *,
        code: int,
        count: int,
        rate: float,
        held_accounts: list[str],
    ) -> None:
        self.producer = producer
        self.catalog = cached_catalog(templates)
        self.code = code
        self.count = count
        self.per_tick = max(1, round(rate * TICK))
        self.held_accounts = held_accounts
        self.planned: list[Planned] = []
        self.pending: list[Planned] = []
        self.refused: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._go = threading.Event()
        self._go.set()
        self._parked = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{code}", daemon=True)
        self.error: BaseException | None = None

    # -- reminders ------------------------------------------------------------------------

    def _reminder(self, i: int) -> Planned:
        now = clock.now()
        held = i % 20 == 7 and bool(self.held_accounts)
        kind = "installment_due" if i % 7 == 3 and not held else "overdue_notice"
        account = self.held_accounts[i % len(self.held_accounts)] if held else f"acct-f{self.code}-{i}"
        reminder: dict[str, Any] = {
            "id": f"fault-{self.code:02d}-{i:05d}",
            "account_id": account,
            "kind": kind,
            "channels": ["sms"],
            "to": {"phone": f"+86139{self.code:02d}{i:06d}", "locale": "zh-CN", "timezone": "Asia/Shanghai"},
            "data": self.catalog.get(kind).example_data(now.date()),
        }
        if i % 10 == 5:
            reminder["not_before"] = (now + timedelta(seconds=NOT_BEFORE)).isoformat()
        return Planned(reminder, held)

    # -- the thread -----------------------------------------------------------------------

    def start(self) -> Load:
        self._thread.start()
        return self

    def pause(self) -> None:
        """Stop enqueueing; returns once the call in progress has its answer."""
        self._go.clear()
        if self._thread.is_alive():
            self._parked.wait(timeout=60)

    def resume(self) -> None:
        self._parked.clear()
        self._go.set()

    def stop(self) -> None:
        """Stop enqueueing and release the producer's connections."""
        self._stop.set()
        self._go.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.producer.close()

    def _run(self) -> None:
        made = 0
        try:
            while not self._stop.is_set():
                if not self._go.is_set():
                    self._parked.set()
                    self._go.wait()
                    self._parked.clear()
                if self._stop.is_set():
                    return
                with self._lock:
                    batch = self.pending[: self.per_tick]
                    while len(batch) < self.per_tick and made < self.count:
                        planned = self._reminder(made)
                        self.planned.append(planned)
                        self.pending.append(planned)
                        batch.append(planned)
                        made += 1
                if not batch:
                    return  # everything planned has its answer
                self._enqueue(batch)
                self._stop.wait(TICK)  # the load's pace
        except BaseException as exc:  # reported by `done`
            self.error = exc

    def _enqueue(self, batch: list[Planned]) -> None:
        for planned in batch:
            planned.attempts += 1
        try:
            results = self.producer.enqueue_many([p.reminder for p in batch])
        except Exception as exc:  # Redis unreachable: the same reminders go again next tick
            self.refused[type(exc).__name__] += 1
            return
        for planned, result in zip(batch, results, strict=True):
            if result.status not in ("accepted", "duplicate"):
                raise AssertionError(f"{planned.reminder['id']}: {result.status} {result.reason}")
            planned.status = result.status
        with self._lock:
            done = {id(p) for p in batch}
            self.pending = [p for p in self.pending if id(p) not in done]

    # -- reading --------------------------------------------------------------------------

    def made(self) -> int:
        with self._lock:
            return len(self.planned)

    def answered(self) -> int:
        with self._lock:
            return sum(1 for p in self.planned if p.status)

    def done(self) -> bool:
        if self.error is not None:
            raise AssertionError(f"the load failed: {self.error!r}") from self.error
        return not self._thread.is_alive()

    def accepted(self) -> list[Planned]:
        """Reminders whose enqueue answered accepted (or duplicate, on a retry)."""
        with self._lock:
            return [p for p in self.planned if p.status]
