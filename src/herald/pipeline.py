"""A batch of deliveries of one channel: load -> guards -> render -> claim -> send -> record.

Everything before the claim is a pre-filter; the claim (one atomic Lua call per delivery,
immediately before the provider call) is the decision. Redis calls are pipelined per batch.
Each delivery keeps its own outcome, retries and state: one delivery's failure never affects
another's.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field

import orjson

from herald import clock, metrics, optouts, store, suppression
from herald.caps import cap_key, rules_arg
from herald.channels.base import (
    AmbiguousError,
    Message,
    PermanentError,
    Provider,
    RecipientOptedOut,
    RetryableError,
    SendResult,
)
from herald.guards import Defer, Delivery, GuardContext, Skip, SuppressionUnknown
from herald.guards.duplicate import recent_key
from herald.links import unsubscribe_url
from herald.masking import mask_address
from herald.models import PENDING_STATES, Channel, Outcome, split_delivery_key
from herald.ratelimit import cost_of
from herald.rendering import RenderError
from herald.retry import next_delay, quick_retrying, redis_patience
from herald.runtime import Runtime

log = logging.getLogger("herald.pipeline")

IMMEDIATE = 0.005  # seconds: a token due this soon is taken with the batch's pipelined claim
UNKNOWN_SUPPRESSION_WAIT = 30.0  # seconds before a batch set aside by a failed-closed guard is tried again


@dataclass(frozen=True)
class Finish:
    """Record ``outcome`` on a delivery (``token`` when it was claimed)."""

    key: str
    outcome: Outcome
    reason: str = ""
    token: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Later:
    """Set a delivery aside until ``until``, waiting in ``state`` (scheduled or retrying)."""

    key: str
    until: float
    reason: str
    token: str = ""
    state: str = "scheduled"


@dataclass
class BatchReport:
    """What happened to a batch, by delivery key (for logs and tests)."""

    outcomes: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, float] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)


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


async def settle(rt: Runtime, items: list[Finish]) -> list[bool]:
    """Record outcomes, pipelined; True where recorded (False: the delivery had moved on)."""
    now = clock.time()
    now_iso = store.iso(now)
    script = rt.scripts["settle"]
    keys_after = [store.EVENTS, store.DEADLINES, store.DEADLETTER]
    async with rt.redis.pipeline(transaction=False) as pipe:
        for f in items:
            flat = [v for pair in f.extra.items() for v in pair]
            args: list[str | float] = [store.PREFIX, f.key, now, now_iso, rt.settings.events_maxlen]
            args += [f.outcome.value, f.reason[:500], f.token, *flat]
            await script(keys=[store.delivery_redis_key(f.key), *keys_after], args=args, client=pipe)
        results = await pipe.execute()
    return [bool(r) for r in results]


async def defer(rt: Runtime, items: list[Later]) -> list[bool]:
    """Hand deliveries to the scheduler, pipelined; True where set aside."""
    now = clock.time()
    script = rt.scripts["defer"]
    grace = rt.settings.visibility_timeout
    async with rt.redis.pipeline(transaction=False) as pipe:
        for item in items:
            args: list[str | float] = [store.PREFIX, item.key, f"{item.until:.3f}", item.reason[:500], now]
            args.append(grace)
            args += [item.token, item.state]
            keys = [store.delivery_redis_key(item.key), store.SCHEDULED, store.DEADLINES]
            await script(keys=keys, args=args, client=pipe)
        results = await pipe.execute()
    return [bool(r) for r in results]


async def claim(rt: Runtime, batch: list[Delivery]) -> dict[str, tuple[str, str]]:
    """The atomic claim of each delivery, pipelined: verdict and token (else the detail), by key."""
    now = clock.time()
    now_iso = store.iso(now)
    lease = now + rt.settings.lease_seconds
    tokens = {d.key: secrets.token_hex(8) for d in batch}
    script = rt.scripts["claim"]
    async with rt.redis.pipeline(transaction=False) as pipe:
        for d in batch:
            keys = [
                store.delivery_redis_key(d.key),
                store.reminder_key(d.state.get("reminder_id", "")),
                store.EVENTS,
                store.DEADLINES,
                store.optout_key(d.channel),
                suppression.holds_key(d.state.get("account_id", "")),
                suppression.MARKER,
                cap_key(d.state.get("account_id", ""), d.channel, d.category),
                recent_key(d.state.get("account_id", ""), d.state.get("kind", ""), d.channel),
            ]
            args: list[str | float] = [store.PREFIX, d.key, now, now_iso, tokens[d.key], lease]
            rules = rules_arg(rt.settings.caps, d.channel, d.category)
            args += [rt.settings.events_maxlen, rules, rt.settings.cap_action, rt.settings.duplicate_window]
            args += d.addresses
            await script(keys=keys, args=args, client=pipe)
        results = await pipe.execute()
    return {
        d.key: (r[0].decode(), tokens[d.key] if r[0] == b"claimed" else r[1].decode())
        for d, r in zip(batch, results, strict=True)
    }


async def _attempt(rt: Runtime, provider: Provider, message: Message) -> SendResult:
    async for attempt in quick_retrying(rt.settings):
        with attempt:
            if attempt.retry_state.attempt_number > 1:
                metrics.record_retry(message.key, "quick")
            return await provider.timed_send(message)
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


def _retry_or_give_up(
    rt: Runtime, d: Delivery, token: str, reason: str, retry_after: float | None
) -> Finish | Later:
    """The slow tier: reschedule with a growing delay, or ``dead`` past the retry deadline."""
    now = clock.time()
    retries = int(d.state.get("retries", "0") or 0)
    first_failure = float(d.state.get("first_failed_at") or now)
    until = now + next_delay(rt.settings, retries, retry_after)
    expires = d.time("expires_at")
    if expires is not None and until >= expires:
        return Finish(d.key, Outcome.EXPIRED, f"expires before the next attempt; last error {reason}", token)
    if until > first_failure + rt.settings.retry_deadline:
        attempts = int(d.state.get("attempts", "0") or 0) + 1
        return Finish(d.key, Outcome.DEAD, f"retries exhausted after {attempts} attempts: {reason}", token)
    return Later(d.key, until, f"retrying: {reason}", token, "retrying")


async def _send_one(
    rt: Runtime, d: Delivery, message: Message, token: str
) -> tuple[Finish | Later, list[str]]:
    """Send one message; returns what to record and addresses the provider says are gone."""
    provider = await rt.provider(message.channel)
    async with rt.in_flight:
        try:
            result = await _attempt(rt, provider, message)
        except RecipientOptedOut as exc:
            gone = list(exc.drop_addresses) or list(d.addresses)
            return Finish(d.key, Outcome.OPTED_OUT, exc.reason(), token), gone
        except PermanentError as exc:
            return Finish(d.key, Outcome.FAILED, exc.reason(), token), list(exc.drop_addresses)
        except RetryableError as exc:
            return _retry_or_give_up(rt, d, token, exc.reason(), exc.retry_after), list(exc.drop_addresses)
        except AmbiguousError as exc:
            return _ambiguous(rt, d, token, exc.reason()), list(exc.drop_addresses)
        except Exception as exc:  # unknown: the provider may have accepted it
            log.exception("provider %s raised for %s", provider.name, message.key)
            return _ambiguous(rt, d, token, f"unexpected error: {type(exc).__name__}"), []
    extra = {"provider": provider.name, "provider_ref": result.provider_ref}
    return Finish(d.key, Outcome.SENT, "", token, extra), list(result.drop_addresses)


def _ambiguous(rt: Runtime, d: Delivery, token: str, reason: str) -> Finish | Later:
    if rt.settings.in_doubt_for(d.category):
        return Finish(d.key, Outcome.IN_DOUBT, f"the provider may have accepted it: {reason}", token)
    return _retry_or_give_up(rt, d, token, f"ambiguous, resent by policy: {reason}", None)


def _message(d: Delivery, rendered_channel: Channel, rt: Runtime) -> Message:
    opt_out = unsubscribe_url(rt.settings, d.channel, d.addresses[0]) if d.channel == "email" else None
    context = rt.renderer.context(d.reminder, d.category, opt_out)
    rendered = rt.renderer.render(d.reminder["kind"], rendered_channel, context)
    address: str | list[str] = d.addresses if d.channel == "push" else d.addresses[0]
    return Message(
        key=d.key,
        reminder_id=d.reminder["id"],
        account_id=d.reminder["account_id"],
        kind=d.reminder["kind"],
        category=d.category,
        channel=d.channel,
        address=address,
        rendered=rendered,
    )


async def _record(rt: Runtime, report: BatchReport, finishes: list[Finish], laters: list[Later]) -> None:
    """Record outcomes and waits; a Redis outage is waited out, so a provider's answer is kept."""
    if finishes:
        async for attempt in redis_patience(rt.settings, "recording outcomes"):
            with attempt:
                settled = await settle(rt, finishes)
        for f, done in zip(finishes, settled, strict=True):
            if done:
                report.outcomes[f.key] = f.outcome.value
                metrics.record_outcome(f.key, f.outcome.value)
                log.info("%s %s %s", f.key, f.outcome.value, f.reason)
            elif f.token:
                report.outcomes[f.key] = "lease-lost"
                log.warning("%s: lease lost before recording %s", f.key, f.outcome.value)
    if laters:
        async for attempt in redis_patience(rt.settings, "setting deliveries aside"):
            with attempt:
                deferred = await defer(rt, laters)
        for item, done in zip(laters, deferred, strict=True):
            if done:
                report.deferred[item.key] = item.until
                if item.state == "retrying":
                    metrics.record_retry(item.key, "scheduled")
                log.info("%s %s until %s: %s", item.key, item.state, store.iso(item.until), item.reason)


async def process_batch(rt: Runtime, channel: Channel, keys: list[str]) -> BatchReport:
    """Take one batch through the flow; while Redis is unreachable, wait and start it again.

    Starting again is safe: what was recorded is skipped at load, what was claimed is no longer
    pending, and no provider call happens without a claim, which needs Redis. Nothing is sent
    while Redis is unreachable (fail closed).
    """
    async for attempt in redis_patience(rt.settings, f"processing a {channel} batch"):
        with attempt:
            return await _process_batch(rt, channel, keys)
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


async def _process_batch(rt: Runtime, channel: Channel, keys: list[str]) -> BatchReport:
    report = BatchReport()
    batch = await load(rt, channel, keys, report)
    if not batch:
        return report

    ctx = GuardContext(rt.settings, rt.redis, clock.time())
    finishes: list[Finish] = []
    laters: list[Later] = []
    for guard in rt.guards:
        try:
            verdicts = await guard.check(batch, ctx)
        except SuppressionUnknown as exc:  # fail closed: set the whole batch aside
            log.error("%s: nothing sent: %s", guard.name, exc)
            later = clock.time() + UNKNOWN_SUPPRESSION_WAIT
            await _record(rt, report, finishes, [*laters, *(Later(d.key, later, str(exc)) for d in batch)])
            return report
        for key, verdict in verdicts.items():
            if isinstance(verdict, Skip):
                finishes.append(Finish(key, verdict.outcome, verdict.reason))
            elif isinstance(verdict, Defer):
                laters.append(Later(key, verdict.until, verdict.reason))
        batch = [d for d in batch if d.key not in verdicts]

    ready: list[tuple[Delivery, Message]] = []
    for d in batch:
        try:
            ready.append((d, _message(d, channel, rt)))
        except (RenderError, KeyError) as exc:
            finishes.append(Finish(d.key, Outcome.INVALID, f"template: {str(exc).strip(chr(34) + chr(39))}"))
    await _record(rt, report, finishes, laters)
    if not ready:
        return report

    try:
        await rt.provider(channel)
    except Exception as exc:  # a provider that cannot start sends nothing: retry, never claim
        log.error("%s provider could not start: %s", channel, exc)
        reason = f"{channel} provider unavailable: {exc}"
        waits = [_retry_or_give_up(rt, d, "", reason, None) for d, _ in ready]
        await _record(
            rt,
            report,
            [w for w in waits if isinstance(w, Finish)],
            [w for w in waits if isinstance(w, Later)],
        )
        return report

    grants = await rt.limiter.reserve(channel, [_cost(m) for _, m in ready], rt.sender(channel))
    metrics.record_limiter(channel, [g.wait for g in grants if g.granted], sum(not g.granted for g in grants))
    now_group: list[tuple[Delivery, Message]] = []
    waiting: list[tuple[float, Delivery, Message]] = []
    early: list[Later] = []
    for (d, m), grant in zip(ready, grants, strict=True):
        if not grant.granted:
            until = clock.time() + grant.wait
            early.append(
                Later(d.key, until, f"rate limit: the provider's limit has room at {store.iso(until)}")
            )
        elif grant.wait <= IMMEDIATE:
            now_group.append((d, m))
        else:
            waiting.append((grant.wait, d, m))
    groups = [_claim_and_send(rt, report, now_group)]
    groups += [_claim_and_send(rt, report, [(d, m)], wait) for wait, d, m in waiting]
    sent: list[tuple[Finish | Later, list[str]]] = []
    for results, set_aside in await asyncio.gather(*groups):
        sent += results
        early += set_aside
    await _record(
        rt,
        report,
        [f for f, _ in sent if isinstance(f, Finish)],
        [later for later, _ in sent if isinstance(later, Later)] + early,
    )
    async for attempt in redis_patience(rt.settings, "recording provider references and opt-outs"):
        with attempt:
            await _drop_addresses(rt, channel, [gone for _, gone in sent])
            await _index_refs(rt, [f for f, _ in sent if isinstance(f, Finish) and f.outcome is Outcome.SENT])
    return report


async def _claim_and_send(
    rt: Runtime, report: BatchReport, items: list[tuple[Delivery, Message]], wait: float = 0.0
) -> tuple[list[tuple[Finish | Later, list[str]]], list[Later]]:
    """After the rate limiter's wait: claim (the decision), then send what was claimed."""
    if not items:
        return [], []
    if wait > 0:
        await asyncio.sleep(wait)  # a short wait for a reserved token, inside the event loop
    # Waited out here, not by restarting the batch: the batch's other groups may have sent already,
    # and their answers must still be recorded.
    async for attempt in redis_patience(rt.settings, "claiming deliveries"):
        with attempt:
            claims = await claim(rt, [d for d, _ in items])
    claimed: list[tuple[Delivery, Message, str]] = []
    early: list[Later] = []
    for d, m in items:
        answer, token = claims[d.key]
        if answer == "claimed":
            claimed.append((d, m, token))
        elif answer in ("cancelled", "expired", "opted_out", "suppressed", "duplicate"):
            report.outcomes[d.key] = answer  # recorded by the claim itself
            metrics.record_outcome(d.key, answer)
        elif answer == "over_cap":
            report.outcomes[d.key] = "capped"
            metrics.record_outcome(d.key, "capped")
        elif answer == "capped":
            allowed = float(token)
            early.append(
                Later(d.key, allowed, f"over the frequency cap; allowed again at {store.iso(allowed)}")
            )
        elif answer == "unknown_suppression":
            reason = "the suppression store is not populated (marker missing): nothing sent"
            early.append(Later(d.key, clock.time() + UNKNOWN_SUPPRESSION_WAIT, reason))
        elif answer == "early":
            early.append(Later(d.key, d.time("not_before") or clock.time(), "not before its time"))
        else:
            report.dropped[d.key] = f"claim refused: {answer}"
    sent = await asyncio.gather(*(_send_one(rt, d, m, token) for d, m, token in claimed))
    return list(sent), early


def _cost(message: Message) -> int:
    segments = message.rendered.segments.segments if message.rendered.segments else None
    addresses = len(message.address) if isinstance(message.address, list) else 1
    return cost_of(message.channel, segments, addresses)


async def _drop_addresses(rt: Runtime, channel: Channel, lists: list[list[str]]) -> None:
    gone = sorted({a for addresses in lists for a in addresses})
    if gone:
        log.info(
            "opting out %d %s addresses the provider reports gone: %s",
            len(gone),
            channel,
            ", ".join(mask_address(channel, a) for a in gone),
        )
        await optouts.add_async(rt.redis, channel, gone, source="provider", by="herald")


async def _index_refs(rt: Runtime, sent: list[Finish]) -> None:
    """Point each provider message id back to its delivery, so receipts find it."""
    refs = [(f.extra.get("provider", ""), f.extra.get("provider_ref", ""), f.key) for f in sent]
    refs = [r for r in refs if r[0] and r[1]]
    if not refs:
        return
    ttl = rt.settings.retention_days * 86400
    async with rt.redis.pipeline(transaction=False) as pipe:
        for provider, ref, key in refs:
            pipe.set(store.provider_ref_key(provider, ref), key, ex=ttl)
        await pipe.execute()
