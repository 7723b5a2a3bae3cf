"""No unwanted contact: holds, superseded reminders, cancellation, fail closed — real workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from herald.holds.agreements import apply_event
from herald.holds.suppression import MARKER, Hold, SuppressionStore, compactness_advice
from herald.state import store
from tests.harness import OUTCOME_TIMEOUT, HeldBackProducer, Herald, make_reminder, wait_until

pytestmark = pytest.mark.integration


def _holds(system: Herald) -> SuppressionStore:
    return SuppressionStore(system.redis())


def _account() -> str:
    return f"acct-{datetime.now(UTC).timestamp():.6f}".replace(".", "-")


def test_a_reminder_that_sat_in_the_queue_is_suppressed_when_its_account_got_held(system: Herald) -> None:
    account = _account()
    reminder = make_reminder(account_id=account)
    producer = HeldBackProducer(system.settings())
    assert producer.enqueue(reminder).status == "accepted"

    apply_event(_holds(system), account, "AGR-1", "signed", by="agreements-service")
    producer.release()  # the workers get to it only now
    for channel in ("sms", "email", "push"):
        state = system.wait_outcome(f"{reminder['id']}:{channel}")
        assert state["outcome"] == "suppressed"
        assert "agreement AGR-1" in state["reason"]
    assert system.outbox_lines("sms", reminder["id"]) == []
    events = [
        f
        for _, f in system.redis().xrevrange("herald:events", count=500)
        if f["reminder_id"] == reminder["id"]
    ]
    assert {e["outcome"] for e in events} == {"suppressed"}
    assert all("AGR-1" in e["reason"] for e in events)


def test_a_reminder_waiting_for_not_before_is_suppressed_when_it_comes_due(system: Herald) -> None:
    account = _account()
    start = datetime.now(UTC) + timedelta(hours=1)
    reminder = make_reminder(account_id=account, channels=["sms"], not_before=start.isoformat())
    system.producer().enqueue(reminder)
    key = f"{reminder['id']}:sms"
    system.wait_state(key, "scheduled")

    apply_event(_holds(system), account, "AGR-2", "signed")
    system.shift_clock(2 * 3600)
    state = system.wait_outcome(key)
    assert state["outcome"] == "suppressed"
    assert system.outbox_lines("sms", reminder["id"]) == []


def test_superseded_reminders_stay_unsent_after_the_hold_is_lifted(system: Herald) -> None:
    account = _account()
    old = make_reminder(account_id=account, channels=["sms"])
    producer = HeldBackProducer(system.settings())
    producer.enqueue(old)
    holds = _holds(system)
    apply_event(holds, account, "AGR-3", "signed")
    apply_event(holds, account, "AGR-3", "broken")  # the agreement failed: collection resumes
    assert holds.holds(account) == []

    producer.release()
    state = system.wait_outcome(f"{old['id']}:sms")
    assert state["outcome"] == "suppressed"
    assert state["reason"].startswith("superseded")
    assert "agreement:AGR-3" in state["reason"]

    decided_later = make_reminder(account_id=account, channels=["sms"])
    system.producer().enqueue(decided_later)
    assert system.wait_outcome(f"{decided_later['id']}:sms")["outcome"] == "sent"


def test_agreement_reminders_reach_a_held_account_and_one_lifted_hold_leaves_the_other(
    system: Herald,
) -> None:
    account = _account()
    holds = _holds(system)
    apply_event(holds, account, "AGR-4", "signed")
    holds.add(
        Hold(
            id="operator:complaint",
            account_id=account,
            source="operator",
            reason="complaint under review",
            by="ops-li",
        )
    )
    today = datetime.now(UTC).date()
    plan = make_reminder(
        account_id=account,
        kind="installment_due",
        channels=["sms"],
        data={
            "borrower_name": "李伟",
            "agreement_ref": "AGR-4",
            "loan_ref": "HL-1",
            "installment_no": 1,
            "installment_count": 6,
            "amount_due": "800.00",
            "plan_balance": "4800.00",
            "currency": "CNY",
            "due_date": (today + timedelta(days=3)).isoformat(),
            "service_phone": "95188",
        },
    )
    system.producer().enqueue(plan)
    assert system.wait_outcome(f"{plan['id']}:sms")["outcome"] == "sent"

    apply_event(holds, account, "AGR-4", "completed")
    assert [h.id for h in holds.holds(account)] == ["operator:complaint"]
    collection = make_reminder(account_id=account, channels=["sms"])
    system.producer().enqueue(collection)
    state = system.wait_outcome(f"{collection['id']}:sms")
    assert state["outcome"] == "suppressed"
    assert "complaint under review" in state["reason"]


def test_a_hold_whose_until_has_passed_no_longer_applies(system: Herald) -> None:
    account = _account()
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    added = system.cli(
        "suppress", "add", account, "--reason", "hardship pause", "--until", until, "--by", "ops-wang"
    )
    assert added.returncode == 0, added.stderr
    system.shift_clock(2 * 3600)
    reminder = make_reminder(account_id=account, channels=["sms"])
    system.producer().enqueue(reminder)
    assert system.wait_outcome(f"{reminder['id']}:sms")["outcome"] == "sent"
    shown = system.cli("suppress", "show", account)
    assert "lapsed" in shown.stdout
    assert "ops-wang" in shown.stdout


def test_cancellation_ends_pending_deliveries(system: Herald) -> None:
    start = datetime.now(UTC) + timedelta(hours=1)
    reminder = make_reminder(channels=["sms", "email"], not_before=start.isoformat())
    system.producer().enqueue(reminder)
    for channel in ("sms", "email"):
        system.wait_state(f"{reminder['id']}:{channel}", "scheduled")

    done = system.cli("cancel", reminder["id"])
    assert done.returncode == 0, done.stderr
    system.shift_clock(2 * 3600)  # past not_before: had they stayed scheduled, they would go now
    keys = [f"{reminder['id']}:{channel}" for channel in ("sms", "email")]
    client = system.redis()
    wait_until(
        lambda: all(client.zscore(store.SCHEDULED, k) is None for k in keys),
        OUTCOME_TIMEOUT,
        "both deliveries to be off the scheduler",
    )
    system.wait_idle()  # whatever the scheduler published for them has been handled
    for key in keys:
        state = system.delivery(key)
        assert (state["state"], state["outcome"]) == ("cancelled", "cancelled")
    assert system.outbox_lines("sms", reminder["id"]) == []
    assert system.outbox_lines("email", reminder["id"]) == []
    assert system.cli("cancel", "no-such-reminder").returncode == 1


def test_the_same_reminder_five_times_and_a_message_twice_send_once(system: Herald) -> None:
    reminder = make_reminder(channels=["sms"])
    producer = system.producer()
    statuses = [producer.enqueue(reminder).status for _ in range(5)]
    assert statuses == ["accepted"] + ["duplicate"] * 4
    key = f"{reminder['id']}:sms"
    producer.publish([key])
    producer.publish([key])
    assert system.wait_outcome(key)["outcome"] == "sent"
    system.wait_idle()  # both messages, and the channel messages they fanned out, are handled
    assert len(system.outbox_lines("sms", reminder["id"])) == 1
    assert system.delivery(key)["attempts"] == "1"


def test_without_the_marker_nothing_is_sent_and_the_reason_says_why(system: Herald) -> None:
    client = system.redis()
    client.delete(MARKER)  # as after a Redis that restarted empty
    try:
        reminder = make_reminder(channels=["sms"])
        system.producer().enqueue(reminder)
        key = f"{reminder['id']}:sms"
        waiting = system.wait_state(key, "scheduled")
        assert "marker missing" in waiting["reason"]
        assert system.outbox_lines("sms", reminder["id"]) == []
    finally:
        assert system.cli("suppress", "init").returncode == 0
    system.shift_clock(120)
    assert system.wait_outcome(key)["outcome"] == "sent"


def test_csv_import_of_100000_holds_reports_bad_lines_and_is_idempotent(system: Herald, tmp_path) -> None:
    lines = ["account_id,reason,until,agreement,categories,by"]
    bad = {}
    for i in range(100_000):
        if i % 10_000 == 7:
            lines.append(f"imp-{i},,,,collection,ops")  # no reason
            bad[len(lines)] = "reason is required"
        elif i % 10_000 == 8:
            lines.append(f"imp-{i},paused,2026-13-40,,collection,ops")  # not a date
            bad[len(lines)] = "neither a date"
        elif i % 10_000 == 9:
            lines.append(f"imp-{i},paused,,,marketing,ops")  # not a category
            bad[len(lines)] = "unknown categories"
        else:
            lines.append(f"imp-{i},agreement signed,,IMP-{i},collection,import")
    path = tmp_path / "holds.csv"
    path.write_text("\n".join(lines) + "\n")

    first = system.cli("suppress", "import", str(path))
    assert first.returncode == 1
    assert f"{100_000 - len(bad)} added" in first.stdout
    for number, message in bad.items():
        assert f"line {number}: " in first.stdout
        assert message in first.stdout.split(f"line {number}: ")[1].splitlines()[0]
    again = system.cli("suppress", "import", str(path))
    assert f"0 added, 0 replaced, {100_000 - len(bad)} unchanged" in again.stdout
    assert [h.agreement for h in _holds(system).holds("imp-12345")] == ["IMP-12345"]


def test_holds_are_stored_compactly_with_their_marks_beside_them(system: Herald) -> None:
    account = _account()
    store = _holds(system)
    store.add(
        Hold(
            id="agreement:AGR-9",
            account_id=account,
            source="agreement",
            reason="signed",
            agreement="AGR-9",
            by="ops",
        )
    )
    raw = system.redis().hgetall(f"herald:hold:{account}")
    assert set(raw) == {"agreement:AGR-9", "^collection"}
    stored = raw["agreement:AGR-9"]
    for implied in (account, "categories", "until", "source"):
        assert implied not in stored
    assert raw["^collection"].endswith(" agreement:AGR-9")
    [hold] = store.holds(account)
    assert (hold.account_id, hold.source, hold.categories) == (account, "agreement", ("collection",))
    assert store.marks(account)["collection"][1] == "agreement:AGR-9"
    assert system.redis().object("encoding", f"herald:hold:{account}") == "listpack"


def test_init_advises_when_redis_would_store_holds_as_full_hash_tables(system: Herald) -> None:
    client = system.redis()
    assert compactness_advice(client) is None
    client.config_set("hash-max-listpack-value", 64)
    try:
        assert "hash-max-listpack-value 64" in (compactness_advice(client) or "")
        assert "hash-max-listpack-value 64" in system.cli("suppress", "init").stderr
    finally:
        client.config_set("hash-max-listpack-value", 256)


def test_list_and_export_show_every_hold_in_the_import_format(system: Herald) -> None:
    account = _account()
    store = _holds(system)
    apply_event(store, account, "AGR-LIST", "signed")
    store.add(Hold(id="operator:x1", account_id=account, source="operator", reason="dispute", by="ops"))
    listed = system.cli("suppress", "list", "--prefix", account)
    assert listed.returncode == 0
    assert "agreement:AGR-LIST" in listed.stdout
    assert "operator:x1" in listed.stdout
    exported = system.cli("suppress", "export")
    assert exported.returncode == 0
    rows = [line for line in exported.stdout.splitlines() if line.startswith(account + ",")]
    assert sorted(r.split(",")[3] for r in rows) == ["", "AGR-LIST"]  # the agreement column
    assert exported.stdout.splitlines()[0] == "account_id,reason,until,agreement,categories,by"
