"""The yardsticks herald is measured against, as a Celery app of their own (``-A bench.yardstick``).

* ``noop``: a bare Celery task that does nothing: Celery's own cost per message.
* ``naive``: the design herald replaces: one Celery task per delivery that renders its text and
  sends it synchronously to the provider (here the Twilio stand-in), one request at a time per
  worker slot.

Both use the same broker settings as herald's workers (acks_late, prefetch 1, task events).
"""

from __future__ import annotations

import base64
import os
import urllib.parse
import urllib.request

from celery import Celery
from jinja2.sandbox import ImmutableSandboxedEnvironment

from herald.config import Settings
from herald.state.queues import celery_config

NOOP_QUEUE = "bench.noop"
NAIVE_QUEUE = "bench.naive"

_config = celery_config(Settings(redis_url=os.environ.get("HERALD_REDIS_URL", "redis://127.0.0.1:6379/0")))
_config.pop("task_queues")
_config.pop("task_routes")
_config["task_default_queue"] = NOOP_QUEUE
_config["task_create_missing_queues"] = True
app = Celery("yardstick")
app.conf.update(_config)

_template = ImmutableSandboxedEnvironment().from_string(
    "【{{ lender }}】{{ name }}，您的借款 {{ amount }} 元已逾期 {{ days }} 天，请尽快还款。"
)


@app.task(name="bench.noop")
def noop() -> None:
    """Nothing at all."""


@app.task(name="bench.naive")
def naive(to: str, data: dict[str, str]) -> None:
    """Render and send one SMS, synchronously."""
    base = os.environ["HERALD_TWILIO_API_BASE"]
    sid, token = os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"]
    body = urllib.parse.urlencode(
        {"To": to, "From": os.environ["HERALD_TWILIO_FROM"], "Body": _template.render(**data)}
    )
    request = urllib.request.Request(
        f"{base}/2010-04-01/Accounts/{sid}/Messages.json",
        data=body.encode(),
        headers={"Authorization": "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
