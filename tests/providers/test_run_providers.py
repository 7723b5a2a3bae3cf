"""``herald run`` (what ``./run.sh`` starts) pointed at real SMS providers by configuration:
the samples go through Aliyun and Twilio stand-ins instead of the outbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from herald.ops.embedded import free_port
from tests.standins.aliyun import FakeAliyunSMS
from tests.standins.twilio import FakeTwilio

pytestmark = pytest.mark.integration


def test_herald_run_sends_the_samples_through_the_sms_providers_its_environment_names(
    tmp_path: Path, repo_root: Path
) -> None:
    with FakeAliyunSMS(sign_name="赫拉德信贷") as aliyun, FakeTwilio() as twilio:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("HERALD_", "TWILIO_", "ALIBABA_"))},
            "HERALD_SMS_PROVIDER": "aliyun,twilio",
            "HERALD_SMS_ROUTES": "86=aliyun,twilio;*=twilio",
            **aliyun.herald_env(),
            **twilio.herald_env("+15005550006"),
            "COLUMNS": "200",
        }
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "herald.cli",
                "run",
                "--once",
                "--home",
                str(tmp_path),
                "--redis-port",
                str(free_port()),
                "--api-port",
                str(free_port()),
            ],
            cwd=repo_root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

        assert done.returncode == 0, done.stdout + done.stderr
        assert "sent (aliyun)" in done.stdout
        assert "sent (twilio)" in done.stdout
        assert "every sample delivery was sent (SMS through aliyun, twilio)" in done.stdout
        assert aliyun.accepted
        assert all(m["to"].startswith("+86") for m in aliyun.accepted)
        assert twilio.accepted
        assert not any(m["to"].startswith("+86") for m in twilio.accepted)
        assert not (tmp_path / "outbox" / "sms.jsonl").exists()
