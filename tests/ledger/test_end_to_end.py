"""The ledger in the running system: real workers, ``herald ledger``, ``herald history``, the
history API and ``herald suppress rebuild``, each as its own process."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from herald.access.apikeys import KeyStore
from herald.holds import optouts, suppression
from herald.holds.agreements import apply_event
from herald.holds.optouts import OptOuts
from herald.holds.suppression import Hold, SuppressionStore
from herald.ledger.db import close_ledgers, open_ledger
from herald.ledger.schema import delivery_events
from herald.state import store
from tests.harness import HeldBackProducer, Herald, make_reminder, running_herald, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Herald]:
    with running_herald(tmp_path_factory.mktemp("herald-ledger"), repo_root, api=True) as herald:
        yield herald
    close_ledgers()


def _get(system: Herald, path: str, key: str | None) -> tuple[int, Any]:
    request = urllib.request.Request(system.api_url + path)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _history(system: Herald, account: str, *extra: str) -> list[dict[str, Any]]:
    done = system.cli("history", account, "--json", *extra)
    assert done.returncode == 0, done.stderr
    entries: list[dict[str, Any]] = json.loads(done.stdout)["entries"]
    return entries


def test_outcomes_reach_the_ledger_history_and_the_api(system: Herald) -> None:
    account = "acct-e2e-history"
    reminder = make_reminder(account_id=account)
    assert system.producer().enqueue(reminder).status == "accepted"
    for channel in ("sms", "email", "push"):
        assert system.wait_outcome(f"{reminder['id']}:{channel}")["outcome"] == "sent"
    holds = SuppressionStore(system.redis())
    apply_event(holds, account, "AGR-E1", "signed", by="agreements-service")
    apply_event(holds, account, "AGR-E1", "completed", by="agreements-service")

    from_streams = _history(system, account)  # nothing copied yet: all from Redis
    assert sorted(e["outcome"] for e in from_streams) == ["add", "lift", "sent", "sent", "sent"]

    done = system.cli("ledger", "--once")
    assert done.returncode == 0, done.stderr
    assert "copied" in done.stdout
    assert "trimmed" in done.stdout
    events = system.redis().xrange(store.EVENTS) or []
    left = [f for _, f in events if (f or {}).get("reminder_id") == reminder["id"]]
    assert left == []  # in the ledger, so trimmed from Redis
    assert _history(system, account) == from_streams  # the same entries, now from the ledger

    admin = KeyStore(system.redis())
    operator_key, _ = admin.create("ops-desk", ["operator"])
    producer_key, _ = admin.create("billing", ["producer"])
    status, page = _get(system, f"/v1/accounts/{account}/history?limit=3", operator_key)
    assert status == 200
    assert [e["event_id"] for e in page["entries"]] == [e["event_id"] for e in from_streams[:3]]
    assert page["next_before"] == from_streams[2]["event_id"]
    status, rest = _get(system, f"/v1/accounts/{account}/history?before={page['next_before']}", operator_key)
    assert status == 200
    assert rest["next_before"] is None
    assert [e["event_id"] for e in rest["entries"]] == [e["event_id"] for e in from_streams[3:]]
    assert _get(system, f"/v1/accounts/{account}/history", producer_key)[0] == 403
    assert _get(system, f"/v1/accounts/{account}/history", None)[0] == 401
    status, error = _get(system, f"/v1/accounts/{account}/history?before=last-week", operator_key)
    assert status == 422
    assert error["detail"][0]["loc"] == ["query", "before"]


def test_the_writer_runs_until_sigterm_and_stops_cleanly(system: Herald) -> None:
    system.stack.spawn("ledger", ["ledger"])
    try:
        reminder = make_reminder(account_id="acct-e2e-writer", channels=["sms"])
        system.producer().enqueue(reminder)
        system.wait_outcome(f"{reminder['id']}:sms")
        engine = open_ledger(system.env["HERALD_LEDGER_URL"])

        def copied() -> bool:
            query = select(delivery_events.c.outcome).where(delivery_events.c.reminder_id == reminder["id"])
            with engine.connect() as conn:
                return conn.execute(query).first() is not None

        wait_until(copied, 30, "the running writer to copy the outcome")
    finally:
        code = system.stack.stop_process("ledger", signal.SIGTERM, timeout=30)
    assert code == 0
    assert "ledger writer stopped" in system.stack.log("ledger")


def test_rebuild_restores_holds_and_marks_and_the_workers_honour_them(system: Herald) -> None:
    client = system.redis()
    holds = SuppressionStore(client)
    producer = HeldBackProducer(system.settings())
    before_agreement = make_reminder(account_id="acct-e2e-s", channels=["sms"])
    assert producer.enqueue(before_agreement).status == "accepted"  # decided, waiting in a queue
    apply_event(holds, "acct-e2e-s", "AGR-E2", "signed")
    apply_event(holds, "acct-e2e-s", "AGR-E2", "completed")
    holds.add(
        Hold(id="operator:e2e", account_id="acct-e2e-h", source="operator", reason="complaint", by="ops")
    )

    refused = system.cli("suppress", "rebuild")
    assert refused.returncode == 1
    assert "herald ledger --once" in refused.stderr
    assert system.cli("ledger", "--once").returncode == 0

    # The suppression store is lost (the workers' queues are not, so the system keeps running).
    client.delete(suppression.holds_key("acct-e2e-s"), suppression.holds_key("acct-e2e-h"), suppression.INDEX)
    client.delete(suppression.MARKER, suppression.AUDIT)

    done = system.cli("suppress", "rebuild")
    assert done.returncode == 0, done.stderr
    assert "marked as populated" in done.stdout
    assert "restored" in done.stdout
    assert holds.initialized()
    assert [h.id for h in holds.holds("acct-e2e-h")] == ["operator:e2e"]
    assert holds.marks("acct-e2e-s")["collection"][1] == "agreement:AGR-E2"
    again = system.cli("suppress", "rebuild")
    assert again.returncode == 0
    assert "holds: 0 restored" in again.stdout

    producer.release()
    after_lift = make_reminder(account_id="acct-e2e-s", channels=["sms"])
    held = make_reminder(account_id="acct-e2e-h", channels=["sms"])
    system.producer().enqueue(after_lift)
    system.producer().enqueue(held)
    state = system.wait_outcome(f"{before_agreement['id']}:sms")
    assert state["outcome"] == "suppressed"
    assert state["reason"].startswith("superseded: ")
    assert "agreement:AGR-E2" in state["reason"]
    assert system.wait_outcome(f"{after_lift['id']}:sms")["outcome"] == "sent"
    state = system.wait_outcome(f"{held['id']}:sms")
    assert state["outcome"] == "suppressed"
    assert "operator:e2e" in state["reason"]
    assert system.outbox_lines("sms", before_agreement["id"]) == []


def test_rebuild_restores_opt_outs_and_the_workers_honour_them(system: Herald) -> None:
    client = system.redis()
    out_phone, back_phone = "+8613900139001", "+8613900139002"
    book = OptOuts(client)
    book.add("sms", out_phone, source="sms-keyword", by=out_phone)  # replied STOP
    assert system.cli("ledger", "--once").returncode == 0
    book.add("sms", back_phone, source="sms-keyword", by=back_phone)  # replied STOP,
    assert book.remove("sms", back_phone, source="sms-keyword", by=back_phone)  # then START
    producer = HeldBackProducer(system.settings())
    to = {"locale": "zh-CN", "timezone": "Asia/Shanghai"}
    opted_out = make_reminder(account_id="acct-e2e-o", channels=["sms"], to={**to, "phone": out_phone})
    back_in = make_reminder(account_id="acct-e2e-i", channels=["sms"], to={**to, "phone": back_phone})
    assert [producer.enqueue(r).status for r in (opted_out, back_in)] == ["accepted", "accepted"]

    refused = system.cli("suppress", "rebuild")
    assert refused.returncode == 1
    assert optouts.AUDIT in " ".join(refused.stderr.split())
    copied = system.cli("ledger", "--once")
    assert copied.returncode == 0, copied.stderr
    assert "2 opt-out changes" in copied.stdout

    # Redis lost the opt-outs, their audit stream and the marker.
    client.delete(store.optout_key("sms"), optouts.AUDIT, suppression.MARKER)
    init = system.cli("suppress", "init")
    assert init.returncode == 1
    assert "opt-out changes" in " ".join(init.stderr.split())

    done = system.cli("suppress", "rebuild")
    assert done.returncode == 0, done.stderr
    assert "opt-outs: 1 restored, 0 already in Redis, 1 opted back in" in done.stdout
    assert OptOuts(client).contains("sms", out_phone)
    assert not OptOuts(client).contains("sms", back_phone)

    producer.release()
    assert system.wait_outcome(f"{opted_out['id']}:sms")["outcome"] == "opted_out"
    assert system.wait_outcome(f"{back_in['id']}:sms")["outcome"] == "sent"
    assert system.outbox_lines("sms", opted_out["id"]) == []
