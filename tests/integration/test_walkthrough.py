"""The README's first ten minutes, command for command, against a running herald.

The example files ship in the repository: when a template starts to need a field they lack,
this fails before a newcomer finds out.
"""

from __future__ import annotations

import json

import pytest

from tests.harness import Herald

pytestmark = pytest.mark.integration


def test_the_readme_walkthrough_enqueues_holds_and_suppresses(system: Herald) -> None:
    root = system.root
    enqueued = system.cli("enqueue", str(root / "examples" / "reminders.jsonl"))
    assert enqueued.returncode == 0, enqueued.stdout + enqueued.stderr
    assert "3 accepted, 0 duplicate, 0 rejected, 0 conflict" in " ".join(enqueued.stdout.split())
    for key in ("demo-installment-1:sms", "demo-installment-1:push", "demo-overdue-1:sms"):
        assert system.wait_outcome(key)["outcome"] == "sent"
    status = system.cli("status", "demo-installment-1")
    assert status.returncode == 0
    assert "sent" in status.stdout

    held = system.cli(
        "suppress", "add", "acct-demo-1", "--agreement", "AGR-2026-0042", "--reason", "repayment plan signed"
    )
    assert held.returncode == 0, held.stderr
    after = system.cli("enqueue", str(root / "examples" / "after-agreement.jsonl"))
    assert after.returncode == 0, after.stdout + after.stderr
    suppressed = system.wait_outcome("demo-overdue-2:sms")
    assert suppressed["outcome"] == "suppressed"
    assert "AGR-2026-0042" in suppressed["reason"]

    history = system.cli("history", "acct-demo-1", "--json")
    assert history.returncode == 0, history.stderr
    seen = {
        (e["type"], e["outcome"], e["reminder_id"] or e["hold_id"])
        for e in json.loads(history.stdout)["entries"]
    }
    assert ("delivery", "suppressed", "demo-overdue-2") in seen
    assert ("delivery", "sent", "demo-overdue-1") in seen
    assert ("hold", "add", "agreement:AGR-2026-0042") in seen
