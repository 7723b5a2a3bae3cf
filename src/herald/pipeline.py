"""A batch of deliveries of one channel: load -> guards -> render -> claim -> send -> record.

Everything before the claim is a pre-filter; the claim (one atomic Lua call per delivery,
immediately before the provider call) is the decision. Redis calls are pipelined per batch.
Each delivery keeps its own outcome: one delivery's failure never affects another's.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field

import orjson

from herald import clock, store
from herald.channels.base import (
    AmbiguousError,
    Message,
    PermanentError,
    RecipientOptedOut,
    RetryableError,
)
from herald.guards import Defer, Delivery, GuardContext, Skip
from herald.models import PENDING_STATES, Channel, Outcome, split_delivery_key
from herald.rendering import RenderError
from herald.runtime import Runtime

log = logging.getLogger("herald.pipeline")

RETRY_DELAY = 60.0  # until the retry policy of the real providers lands


@dataclass
class BatchReport:
    """What happened to a batch, by delivery key (for logs and tests)."""

    outcomes: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, float] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)


def _address(delivery: Delivery) -> str | list[str]:
    to = delivery.reminder.get("to", {})
    if delivery.channel == "sms":
        return str(to.get("phone", ""))
    if delivery.channel == "email":
        return str(to.get("email", ""))
    return list(to.get("push_tokens", []))


async def load(rt: Runtime, channel: Channel, keys: list[str], report: BatchReport) -> list[Delivery]:
    """Read the batch's delivery states and reminder records in one pipeline.

    Keys that are malformed, of another channel, missing (expired from Redis) or no longer
    pending (already claimed or finished: a redelivered message) are dropped here.
    """
    wanted: list[tuple[str, str]] = []
    for key in dict.fromkeys(keys):
        try:
            reminder_id, key_channel = split_delivery_key(key)
        except ValueError:
            report.dropped[key] = "not a delivery key"
            continue
        if key_channel != channel:
            report.dropped[key] = f"not a {channel} delivery"
            continue
        wanted.append((key, reminder_id))
    async with rt.redis.pipeline(transaction=False) as pipe:
        for key, reminder_id in wanted:
            pipe.hgetall(store.delivery_redis_key(key))
            pipe.hmget(store.reminder_key(reminder_id), "body", "cancelled_at")
        raw = await pipe.execute()
    batch: list[Delivery] = []
    for i, (key, _) in enumerate(wanted):
        state = store.decode_hash(raw[2 * i])
        body, cancelled_at = raw[2 * i + 1]
        if not state or body is None:
            report.dropped[key] = "no such delivery (expired or never accepted)"
        elif state.get("state") not in PENDING_STATES:
            report.dropped[key] = f"already {state.get('state')}"
        else:
            record = {"cancelled_at": cancelled_at.decode()} if cancelled_at else {}
            batch.append(Delivery(key, channel, state, orjson.loads(body), record))
    return batch


async def settle(rt: Runtime, items: list[tuple[str, Outcome, str, str, dict[str, str]]]) -> list[bool]:
    """Record outcomes: (key, outcome, reason, token, extra fields), pipelined."""
    now = clock.time()
    now_iso = store.iso(now)
    script = rt.scripts["settle"]
    async with rt.redis.pipeline(transaction=False) as pipe:
        for key, outcome, reason, token, extra in items:
            flat = [v for pair in extra.items() for v in pair]
            await script(
                keys=[store.delivery_redis_key(key), store.EVENTS, store.DEADLINES],
                args=[
                    store.PREFIX,
                    key,
                    now,
                    now_iso,
                    rt.settings.events_maxlen,
                    outcome.value,
                    reason[:500],
                    token,
                    *flat,
                ],
                client=pipe,
            )
        results = await pipe.execute()
    return [bool(r) for r in results]


async def defer(rt: Runtime, items: list[tuple[str, float, str, str]]) -> list[bool]:
    """Hand deliveries to the scheduler: (key, until, reason, token), pipelined."""
    now = clock.time()
    script = rt.scripts["defer"]
    grace = rt.settings.visibility_timeout
    async with rt.redis.pipeline(transaction=False) as pipe:
        for key, until, reason, token in items:
            await script(
                keys=[store.delivery_redis_key(key), store.SCHEDULED, store.DEADLINES],
                args=[store.PREFIX, key, f"{until:.3f}", reason[:500], now, grace, token],
                client=pipe,
            )
        results = await pipe.execute()
    return [bool(r) for r in results]


async def claim(rt: Runtime, batch: list[Delivery]) -> dict[str, tuple[str, str]]:
    """The atomic claim of each delivery, pipelined: verdict and token, by key."""
    now = clock.time()
    now_iso = store.iso(now)
    lease = now + rt.settings.lease_seconds
    tokens = {d.key: secrets.token_hex(8) for d in batch}
    script = rt.scripts["claim"]
    async with rt.redis.pipeline(transaction=False) as pipe:
        for d in batch:
            reminder_id = d.state.get("reminder_id", "")
            await script(
                keys=[
                    store.delivery_redis_key(d.key),
                    store.reminder_key(reminder_id),
                    store.EVENTS,
                    store.DEADLINES,
                ],
                args=[
                    store.PREFIX,
                    d.key,
                    now,
                    now_iso,
                    tokens[d.key],
                    lease,
                    rt.settings.events_maxlen,
                ],
                client=pipe,
            )
        results = await pipe.execute()
    return {d.key: (r[0].decode(), tokens[d.key]) for d, r in zip(batch, results, strict=True)}


async def _send_one(
    rt: Runtime, message: Message, token: str
) -> tuple[str, Outcome | None, str, str, dict[str, str], float | None]:
    """Send one message; returns key, outcome (None when retried), reason, token, extra, retry."""
    provider = await rt.provider(message.channel)
    async with rt.in_flight:
        try:
            result = await provider.send(message)
        except RecipientOptedOut as exc:
            return message.key, Outcome.OPTED_OUT, exc.reason(), token, {}, None
        except PermanentError as exc:
            return message.key, Outcome.FAILED, exc.reason(), token, {}, None
        except RetryableError as exc:
            delay = exc.retry_after if exc.retry_after is not None else RETRY_DELAY
            return message.key, None, exc.reason(), token, {}, delay
        except AmbiguousError as exc:
            return message.key, Outcome.IN_DOUBT, exc.reason(), token, {}, None
        except Exception as exc:  # unknown: the provider may have accepted it
            log.exception("provider %s raised for %s", provider.name, message.key)
            return message.key, Outcome.IN_DOUBT, f"unexpected error: {exc!r}", token, {}, None
    extra = {"provider": provider.name, "provider_ref": result.provider_ref}
    return message.key, Outcome.SENT, "", token, extra, None


async def process_batch(rt: Runtime, channel: Channel, keys: list[str]) -> BatchReport:
    """Take one batch of delivery keys of ``channel`` through the whole flow."""
    report = BatchReport()
    batch = await load(rt, channel, keys, report)
    if not batch:
        return report

    ctx = GuardContext(rt.settings, rt.redis, clock.time())
    skips: list[tuple[str, Outcome, str, str, dict[str, str]]] = []
    defers: list[tuple[str, float, str, str]] = []
    for guard in rt.guards:
        verdicts = await guard.check(batch, ctx)
        for key, verdict in verdicts.items():
            if isinstance(verdict, Skip):
                skips.append((key, verdict.outcome, verdict.reason, "", {}))
            elif isinstance(verdict, Defer):
                defers.append((key, verdict.until, verdict.reason, ""))
        batch = [d for d in batch if d.key not in verdicts]

    messages: list[Message] = []
    for d in batch:
        try:
            context = rt.renderer.context(d.reminder, d.category)
            rendered = rt.renderer.render(d.reminder["kind"], channel, context)
        except (RenderError, KeyError) as exc:
            reason = str(exc).strip("'\"")
            skips.append((d.key, Outcome.INVALID, f"template: {reason}", "", {}))
            continue
        messages.append(
            Message(
                key=d.key,
                reminder_id=d.reminder["id"],
                account_id=d.reminder["account_id"],
                kind=d.reminder["kind"],
                category=d.category,
                channel=channel,
                address=_address(d),
                rendered=rendered,
            )
        )

    if skips:
        for (key, outcome, reason, _, _), done in zip(skips, await settle(rt, skips), strict=True):
            if done:
                report.outcomes[key] = outcome.value
                log.info("%s %s %s", key, outcome.value, reason)
    if defers:
        for (key, until, _, _), done in zip(defers, await defer(rt, defers), strict=True):
            if done:
                report.deferred[key] = until

    if not messages:
        return report
    by_key = {d.key: d for d in batch}
    claims = await claim(rt, [by_key[m.key] for m in messages])
    claimed: list[tuple[Message, str]] = []
    early: list[tuple[str, float, str, str]] = []
    for m in messages:
        answer, token = claims[m.key]
        if answer == "claimed":
            claimed.append((m, token))
        elif answer in ("cancelled", "expired"):
            report.outcomes[m.key] = answer
        elif answer == "early":
            start = by_key[m.key].time("not_before") or clock.time()
            early.append((m.key, start, "not before its time (at claim)", ""))
        else:
            report.dropped[m.key] = f"claim refused: {answer}"

    sent = await asyncio.gather(*(_send_one(rt, m, token) for m, token in claimed))
    finals = [(k, o, r, t, e) for k, o, r, t, e, _ in sent if o is not None]
    retries = [(k, clock.time() + (d or 0.0), f"retrying: {r}", t) for k, o, r, t, _, d in sent if o is None]
    if finals:
        for (key, outcome, reason, _, _), done in zip(finals, await settle(rt, finals), strict=True):
            report.outcomes[key] = outcome.value if done else "lost-lease"
            log.info("%s %s %s%s", key, outcome.value, "" if done else "(lease lost) ", reason)
    if retries or early:
        later = retries + early
        for (key, until, _, _), done in zip(later, await defer(rt, later), strict=True):
            if done:
                report.deferred[key] = until
    return report
