"""The consumption watchdog's decision, with time passed in: when a worker process has stalled."""

from __future__ import annotations

from herald.ops.reconciler import RateBudget
from herald.ops.watchdog import StallDetector, TaskTracker

STALL = 120.0


def test_work_waiting_and_none_taken_for_the_stall_time_is_a_stall() -> None:
    detector = StallDetector(STALL, started_at=1000.0, confirm=1)
    assert not detector.observe(1010.0, 3, consumed_at=0.0, busy=False).stalled  # first seen waiting
    almost = detector.observe(1129.0, 3, consumed_at=0.0, busy=False)
    assert (almost.stalled, almost.idle_since, almost.idle_seconds) == (False, 1010.0, 119.0)
    verdict = detector.observe(1130.0, 5, consumed_at=0.0, busy=False)
    assert verdict.stalled
    assert (verdict.queued, verdict.idle_seconds) == (5, 120.0)


def test_a_backlog_that_appears_after_a_long_idle_time_is_not_a_stall_at_once() -> None:
    detector = StallDetector(STALL, started_at=0.0, confirm=1)
    assert not detector.observe(86_400.0, 0, consumed_at=50.0, busy=False).stalled  # idle, empty: fine
    first = detector.observe(90_000.0, 2, consumed_at=50.0, busy=False)  # work arrives hours later
    assert (first.stalled, first.idle_seconds) == (False, 0.0)
    assert detector.observe(90_000.0 + STALL, 2, consumed_at=50.0, busy=False).stalled


def test_taking_a_task_restarts_the_count() -> None:
    detector = StallDetector(STALL, started_at=0.0, confirm=1)
    detector.observe(100.0, 4, consumed_at=0.0, busy=False)
    verdict = detector.observe(230.0, 4, consumed_at=200.0, busy=False)  # it took one at 200
    assert (verdict.stalled, verdict.idle_seconds) == (False, 30.0)
    assert detector.observe(320.0, 4, consumed_at=200.0, busy=False).stalled


def test_a_process_busy_with_a_long_batch_is_not_stalled() -> None:
    detector = StallDetector(STALL, started_at=0.0, confirm=1)
    for now in (100.0, 500.0, 1000.0):
        assert not detector.observe(now, 9, consumed_at=50.0, busy=True).stalled
    # the batch ended at 1000; the backlog is seen waiting again from 1001
    assert not detector.observe(1001.0, 9, consumed_at=1000.0, busy=False).stalled
    assert not detector.observe(1000.0 + STALL, 9, consumed_at=1000.0, busy=False).stalled
    assert detector.observe(1001.0 + STALL, 9, consumed_at=1000.0, busy=False).stalled


def test_a_process_just_started_gets_the_whole_stall_time() -> None:
    detector = StallDetector(STALL, started_at=5000.0, confirm=1)
    detector.observe(4000.0, 1, consumed_at=0.0, busy=False)  # seen waiting before its start (clock)
    assert not detector.observe(5000.0 + STALL - 1, 1, consumed_at=0.0, busy=False).stalled
    assert detector.observe(5000.0 + STALL, 1, consumed_at=0.0, busy=False).stalled


def test_unreadable_queues_decide_nothing_and_restart_the_count() -> None:
    detector = StallDetector(STALL, started_at=0.0, confirm=1)
    detector.observe(100.0, 3, consumed_at=0.0, busy=False)
    outage = detector.observe(300.0, None, consumed_at=0.0, busy=False)  # Redis unreachable
    assert (outage.stalled, outage.idle_since) == (False, None)
    assert not detector.observe(310.0, 3, consumed_at=0.0, busy=False).stalled  # counted from 310
    assert detector.observe(310.0 + STALL, 3, consumed_at=0.0, busy=False).stalled


def test_emptied_queues_restart_the_count() -> None:
    detector = StallDetector(STALL, started_at=0.0, confirm=1)
    detector.observe(100.0, 3, consumed_at=0.0, busy=False)
    assert detector.observe(150.0, 0, consumed_at=0.0, busy=False).idle_since is None
    assert not detector.observe(200.0 + STALL - 1, 3, consumed_at=0.0, busy=False).stalled


def test_zero_turns_the_watchdog_off() -> None:
    detector = StallDetector(0.0, started_at=0.0, confirm=1)
    detector.observe(0.0, 3, consumed_at=0.0, busy=False)
    verdict = detector.observe(10 * 86_400.0, 3, consumed_at=0.0, busy=False)
    assert not verdict.stalled
    assert verdict.idle_seconds == 10 * 86_400.0  # still reported, for /healthz


def test_a_stall_must_be_seen_at_three_looks_in_a_row() -> None:
    detector = StallDetector(STALL, started_at=0.0)  # confirm=3
    detector.observe(10.0, 2, consumed_at=0.0, busy=False)
    assert not detector.observe(10.0 + STALL, 2, consumed_at=0.0, busy=False).stalled
    assert not detector.observe(11.0 + STALL, 2, consumed_at=0.0, busy=False).stalled
    assert detector.observe(12.0 + STALL, 2, consumed_at=0.0, busy=False).stalled


def test_a_clock_jump_does_not_restart_a_process_that_consumes() -> None:
    detector = StallDetector(STALL, started_at=0.0)  # confirm=3
    detector.observe(100.0, 5, consumed_at=99.0, busy=False)  # a backlog it is working through
    jumped = 100.0 + 7200  # the clock moves two hours at once: one look sees a long wait
    assert detector.observe(jumped, 5, consumed_at=99.0, busy=False).idle_seconds >= STALL
    # ...but it takes a task before the next look: no stall, and the count starts again
    after = detector.observe(jumped + 5, 4, consumed_at=jumped + 2, busy=False)
    assert (after.stalled, after.idle_seconds) == (False, 3.0)
    assert not detector.observe(jumped + 10, 4, consumed_at=jumped + 8, busy=False).stalled
    assert detector.strikes == 0


def test_the_tracker_counts_task_starts_and_ends_and_forgets_hung_tasks() -> None:
    now = [100.0]
    tracker = TaskTracker(hung_after=900.0, now=lambda: now[0])
    assert (tracker.busy(), tracker.consumed_at) == (False, 0.0)
    tracker.started("a")
    tracker.started("b")
    now[0] = 200.0
    tracker.finished("a")
    assert (tracker.busy(), tracker.consumed_at) == (True, 200.0)  # b still runs
    now[0] = 100.0 + 900.0
    assert not tracker.busy()  # b started 900 s ago: hung, no longer keeps the watchdog quiet
    tracker.finished("b")
    tracker.finished("never-started")  # a postrun without its prerun changes nothing else
    assert (tracker.busy(), tracker.consumed_at) == (False, 1000.0)


def test_the_reconcile_rate_refills_with_time_up_to_its_burst() -> None:
    now = [0.0]
    budget = RateBudget(rate=10.0, burst=20.0, clock=lambda: now[0])
    assert budget.available() == 20  # starts full
    budget.spend(20)
    assert budget.available() == 0
    assert budget.seconds_until(5) == 0.5
    now[0] = 0.5
    assert budget.available() == 5
    now[0] = 3600.0  # a long pause never adds more than one burst
    assert budget.available() == 20
    now[0] = 10.0  # a clock that went back adds nothing
    budget.spend(20)
    assert budget.available() == 0
