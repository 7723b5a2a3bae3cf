"""A batch of deliveries of one channel: take -> guards -> render -> per delivery: slot ->
token -> claim -> request -> record.

The batch is taken (``lua/load.lua``: the process becomes responsible for it, learns Redis's
clock, and reads what the guards need in the same call), pre-filtered by the guards and
rendered together. Then each delivery goes on
alone: it waits for a send slot of its channel (the process's in-flight limit and its provider's
own connection pool), then for its rate-limit token, and only then is it claimed — the atomic
decision that re-checks everything — so that nothing but the request itself comes between the
claim and the provider. Its outcome is recorded as soon as its answer arrives. Deliveries that
reach a step together share one Redis round trip (``herald.delivery.coalesce``). One delivery's failure
never affects another's.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field, replace

from herald import clock
from herald import instruments as metrics
from herald.channels.base import (
    AmbiguousError,
    Deferred,
    Message,
    PermanentError,
    Provider,
    RecipientOptedOut,
    RetryableError,
)
from herald.delivery.batched import (
    FINISHED_BY_CLAIM,
    ClaimAnswer,
    ClaimRequest,
    ClaimVerdict,
    Finish,
    Later,
    Record,
    Reservation,
)
from herald.delivery.ratelimit import cost_of
from herald.delivery.retry import next_delay, quick_retrying, redis_patience
from herald.delivery.runtime import Runtime
from herald.display.masking import mask_address
from herald.guards import Defer, Delivery, GuardContext, Seen, Skip, SuppressionUnknown
from herald.guards.duplicate import RECENT
from herald.guards.send_window import claim_windows
from herald.holds import optouts, suppression
from herald.models import Channel, Outcome, split_delivery_key
from herald.rendering.links import unsubscribe_url
from herald.rendering.renderer import RenderError
from herald.routing.router import Choice
from herald.state import store
from herald.state.queues import BULK_CATEGORIES

log = logging.getLogger("herald.delivery.pipeline")

UNKNOWN_SUPPRESSION_WAIT = 30.0  # seconds before a batch set aside by a failed-closed guard is tried again
FAILOVER_DELAY = 1.0
"""Seconds before a delivery moved off a provider whose breaker opened comes back (through the
scheduler, so it reserves its units of the next provider's own limit)."""

__all__ = ["BatchReport", "Finish", "Later", "claim", "defer", "load", "process_batch", "settle"]


@dataclass
class BatchReport:
    """What happened to a batch, by delivery key (for logs and tests)."""

    outcomes: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, float] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)


async def load(rt: Runtime, channel: Channel, keys: list[str], report: BatchReport) -> list[Delivery]:
    """Take the batch (``lua/load.lua``): read each delivery and its reminder, and hold them.

    Keys that are malformed, of another channel, missing (expired from Redis), no longer
    pending (claimed or finished: a message delivered again), waiting in the scheduler (a stale
    message) or held by another live process are dropped here.
    """
    wanted: list[str] = []
    for key in dict.fromkeys(keys):
        try:
            _, key_channel = split_delivery_key(key)
        except ValueError:
            report.dropped[key] = "not a delivery key"
            continue
        if key_channel != channel:
            report.dropped[key] = f"not a {channel} delivery"
            continue
        wanted.append(key)
    if not wanted:
        return []
    s = rt.settings
    args: list[str | float] = [store.PREFIX, clock.offset(), s.hold_seconds, rt.holder, suppression.HOLDS]
    args += [RECENT if s.duplicate_window > 0 else "", store.CAPS, rt.capped_windows, *wanted]
    keys = [store.DEADLINES, store.SCHEDULED, suppression.MARKER]
    answers = await rt.scripts["load"](keys=keys, args=args)
    rt.observe_clock(float(answers[0]))
    marker = bool(answers[1])
    batch: list[Delivery] = []
    for key, answer in zip(wanted, answers[2:], strict=True):
        verdict, detail = answer[0].decode(), answer[1].decode()
        if verdict != "ok":
            report.dropped[key] = _why_dropped(verdict, detail)
            continue
        state = store.decode_hash(dict(zip(answer[2][::2], answer[2][1::2], strict=True)))
        cancelled_at = answer[4].decode() if answer[4] else ""
        record = {"cancelled_at": cancelled_at} if cancelled_at else {}
        holds, mark, cap = answer[5], answer[6], answer[7]
        seen = Seen(
            holds=dict(zip(holds[::2], holds[1::2], strict=True)),
            mark=mark or None,
            cap=None if cap is None else [(m, float(t)) for m, t in zip(cap[::2], cap[1::2], strict=True)],
            marker=marker,
        )
        batch.append(Delivery(key, channel, state, store.json_object(answer[3]), record, seen=seen))
    rt.keeper.take([d.key for d in batch])
    rt.keep()
    return batch


def _why_dropped(verdict: str, detail: str) -> str:
    if verdict == "gone":
        return "no such delivery (expired or never accepted)"
    if verdict == "not_pending":
        return f"already {detail}"
    if verdict == "waiting":
        return f"waits in the scheduler until {store.iso(detail)}"
    if verdict == "held":
        return f"held by another process ({detail})"
    return verdict


async def claim(rt: Runtime, batch: list[Delivery]) -> dict[str, tuple[str, str]]:
    """Claim each delivery of ``batch`` now (in one round trip), with no send window and no
    request after it: ``(verdict, token)`` when claimed, else ``(verdict, detail)``, by key.
    For tools and tests that stop at the decision; the pipeline claims inside each send slot."""
    requests = [ClaimRequest(d, secrets.token_hex(8)) for d in batch]
    answers = await asyncio.gather(*(rt.claims.submit(r) for r in requests))
    return {
        r.delivery.key: (a.verdict.value, r.token if a.verdict is ClaimVerdict.CLAIMED else a.detail)
        for r, a in zip(requests, answers, strict=True)
    }


async def settle(rt: Runtime, items: list[Finish]) -> list[bool]:
    """Record outcomes now (one round trip); True where recorded."""
    return list(await asyncio.gather(*(rt.records.submit(i) for i in items)))


async def defer(rt: Runtime, items: list[Later]) -> list[bool]:
    """Set deliveries aside now (one round trip); True where set aside."""
    return list(await asyncio.gather(*(rt.records.submit(i) for i in items)))


async def record(rt: Runtime, report: BatchReport, item: Record) -> bool:
    """Record one outcome or wait now (coalesced with the others recorded together)."""
    done = await rt.records.submit(item)
    rt.keeper.release(item.key, item.token)
    if isinstance(item, Finish):
        if done:
            report.outcomes[item.key] = item.outcome.value
            metrics.record_outcome(item.key, item.outcome.value)
            log.info("%s %s %s", item.key, item.outcome.value, item.reason)
        elif item.token:
            report.outcomes[item.key] = "lease-lost"
            log.warning("%s: lease lost before recording %s", item.key, item.outcome.value)
    elif done:
        report.deferred[item.key] = item.until
        if item.state == "retrying":
            metrics.record_retry(item.key, "scheduled")
        log.info("%s %s until %s: %s", item.key, item.state, store.iso(item.until), item.reason)
    return done


def _retry_or_give_up(
    rt: Runtime, d: Delivery, token: str, reason: str, retry_after: float | None, *, release: bool
) -> Record:
    """The slow tier: reschedule with a growing delay, or ``dead`` past the retry deadline."""
    now = rt.clock()
    retries = int(d.state.get("retries", "0") or 0)
    first_failure = float(d.state.get("first_failed_at") or now)
    until = now + next_delay(rt.settings, retries, retry_after)
    expires = d.time("expires_at")
    if expires is not None and until >= expires:
        reason = f"expires before the next attempt; last error {reason}"
        return Finish(d.key, Outcome.EXPIRED, reason, token, release=release)
    if until > first_failure + rt.settings.retry_deadline:
        attempts = int(d.state.get("attempts", "0") or 0) + 1
        reason = f"retries exhausted after {attempts} attempts: {reason}"
        return Finish(d.key, Outcome.DEAD, reason, token, release=release)
    return Later(d.key, until, f"retrying: {reason}", token, "retrying", release=release)


def _ambiguous(
    rt: Runtime, d: Delivery, token: str, reason: str, extra: dict[str, str] | None = None
) -> Record:
    """In doubt (never resent, through this provider or another), or resent by policy."""
    if rt.settings.in_doubt_for(d.category):
        why = f"the provider may have accepted it: {reason}"
        return Finish(d.key, Outcome.IN_DOUBT, why, token, dict(extra or {}))
    return _retry_or_give_up(rt, d, token, f"ambiguous, resent by policy: {reason}", None, release=False)


def _message(d: Delivery, rendered_channel: Channel, rt: Runtime, approved: tuple[str, ...] = ()) -> Message:
    opt_out = unsubscribe_url(rt.settings, d.channel, d.addresses[0]) if d.channel == "email" else None
    context = rt.renderer.context(d.reminder, d.category, opt_out)
    rendered = rt.renderer.render(d.reminder["kind"], rendered_channel, context, approved)
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
        expires_at=d.time("expires_at"),
    )


def _not_claimed(
    rt: Runtime, report: BatchReport, d: Delivery, token: str, answer: ClaimAnswer
) -> Record | None:
    """What to record for a delivery the claim did not let through (None: nothing to record).

    ``token`` is set when this was a claim again before a quick retry: a wait then gives the
    claim back (its contact never happened)."""
    verdict = answer.verdict
    if verdict in FINISHED_BY_CLAIM:
        outcome = "capped" if verdict is ClaimVerdict.OVER_CAP else verdict.value
        report.outcomes[d.key] = outcome  # recorded by the claim itself
        metrics.record_outcome(d.key, outcome)
        rt.keeper.release(d.key, token)
        return None
    if verdict is ClaimVerdict.CAPPED:
        until, reason = float(answer.detail), "over the frequency cap"
        reason += f"; allowed again at {store.iso(until)}"
    elif verdict is ClaimVerdict.UNKNOWN_SUPPRESSION:
        until = answer.now + UNKNOWN_SUPPRESSION_WAIT
        reason = "the suppression store is not populated (marker missing): nothing sent"
    elif verdict is ClaimVerdict.EARLY:
        until, reason = float(answer.detail or answer.now), "not before its time"
    elif verdict is ClaimVerdict.WINDOW:
        until = float(answer.detail) if answer.detail else answer.now + 3600
        reason = f"the send window closed before the claim; next opening {store.iso(until)}"
    else:
        report.dropped[d.key] = f"claim refused: {verdict.value} {answer.detail}".strip()
        rt.keeper.release(d.key, token)
        return None
    return Later(d.key, until, reason, token, release=bool(token))


def _choose(rt: Runtime, names: list[str], retries: int = 0) -> Choice:
    """The provider for this attempt: the route's first whose breaker is closed, starting one
    further along the route for each retryable failure the delivery had (a retryable error
    means nothing was accepted, so its next attempt tries the next provider even while too few
    calls failed to open a breaker); with one provider, that one."""
    if len(names) == 1:
        return Choice(names[0])
    turn = retries % len(names)
    names = names[turn:] + names[:turn]
    if rt.breakers is None:
        return Choice(names[0])
    skipped: list[str] = []
    for name in names:
        if not rt.breakers.is_open(name):
            return Choice(name, tuple(skipped))
        skipped.append(name)
    return Choice(None, tuple(skipped), min(rt.breakers.open_until(n) or rt.clock() for n in names))


def _elsewhere(rt: Runtime, names: list[str], provider: str) -> str | None:
    """The provider a delivery moves to when ``provider``'s breaker is open, if any."""
    if rt.breakers is None or len(names) == 1 or not rt.breakers.is_open(provider):
        return None
    return next((n for n in names if n != provider and not rt.breakers.is_open(n)), None)


def _fail_over(rt: Runtime, d: Delivery, token: str, provider: str, to: str, reason: str) -> Record:
    """Move the delivery to ``to``: nothing reached ``provider`` (its error was retryable), so
    it is sent again from the start, through the scheduler."""
    metrics.record_failover(d.channel, provider)
    why = f"retrying: {provider}'s breaker is open, next through {to}; last error {reason}"
    return Later(d.key, rt.clock() + FAILOVER_DELAY, why, token, "retrying", release=True)


def _deferred(rt: Runtime, d: Delivery, token: str, exc: Deferred) -> Record:
    """A limit on the recipient: wait it out (no retry counted, no other provider tried)."""
    until = rt.clock() + (exc.retry_after or 3600.0)
    expires = d.time("expires_at")
    if expires is not None and until >= expires:
        return Finish(
            d.key,
            Outcome.EXPIRED,
            f"expires before the recipient's limit lifts: {exc.reason()}",
            token,
            release=True,
        )
    return Later(d.key, until, f"the recipient's limit: {exc.reason()}", token, release=True)


async def _request(
    rt: Runtime,
    report: BatchReport,
    provider: Provider,
    d: Delivery,
    message: Message,
    claim: ClaimRequest,
    names: list[str],
) -> tuple[Record | None, list[str]]:
    """The provider call under a claim, with the quick tier's retries (each after the delivery
    is claimed again under the same token: every check runs again); what to record, and the
    addresses the provider says are gone. A retryable failure after which the provider's
    breaker is open moves the delivery to the next provider of its route (``names``); a
    permanent or ambiguous one never does."""
    token = claim.token
    breakers = rt.breakers
    tag = {"provider": provider.name}
    try:
        async for attempt in quick_retrying(rt.settings):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    if rt.stopping.is_set():  # a stopping worker retries no more: the slow tier will
                        why = "the provider refused it and the worker is stopping"
                        return _retry_or_give_up(rt, d, token, why, None, release=True), []
                    to = _elsewhere(rt, names, provider.name)
                    if to is not None:
                        return _fail_over(rt, d, token, provider.name, to, "retryable"), []
                    metrics.record_retry(message.key, "quick")
                    again = await rt.claims.submit(claim)
                    rt.observe_clock(again.now)
                    if again.verdict is not ClaimVerdict.CLAIMED:
                        return _not_claimed(rt, report, d, token, again), []
                    message = _addressed(message, again)
                try:
                    result = await provider.timed_send(message)
                except Exception as exc:
                    if breakers is not None:
                        breakers.observe(provider.name, exc)
                    raise
                if breakers is not None:
                    breakers.observe(provider.name, None)
    except RecipientOptedOut as exc:
        gone = list(exc.drop_addresses) or list(d.addresses)
        return Finish(d.key, Outcome.OPTED_OUT, exc.reason(), token, tag, release=True), gone
    except PermanentError as exc:
        failed = Finish(d.key, Outcome.FAILED, exc.reason(), token, tag, release=True)
        return failed, list(exc.drop_addresses)
    except Deferred as exc:
        return _deferred(rt, d, token, exc), list(exc.drop_addresses)
    except RetryableError as exc:
        to = _elsewhere(rt, names, provider.name)
        if to is not None:
            return _fail_over(rt, d, token, provider.name, to, exc.reason()), list(exc.drop_addresses)
        reason = f"{provider.name}: {exc.reason()}" if len(names) > 1 else exc.reason()
        record_ = _retry_or_give_up(rt, d, token, reason, exc.retry_after, release=True)
        return record_, list(exc.drop_addresses)
    except AmbiguousError as exc:
        return _ambiguous(rt, d, token, exc.reason(), tag), list(exc.drop_addresses)
    except Exception as exc:  # unknown: the provider may have accepted it
        log.exception("provider %s raised for %s", provider.name, message.key)
        return _ambiguous(rt, d, token, f"unexpected error: {type(exc).__name__}", tag), []
    via = result.via or provider.name
    metrics.record_sent(d.channel, via)
    extra = {"provider": via, "provider_ref": result.provider_ref}
    ref = result.provider_ref if provider.receipts else ""
    return Finish(d.key, Outcome.SENT, "", token, extra, ref=ref), list(result.drop_addresses)


def _addressed(message: Message, answer: ClaimAnswer) -> Message:
    """A push goes only to the tokens the claim found not opted out."""
    if message.channel == "push" and answer.addresses:
        return replace(message, address=list(answer.addresses))
    return message


async def _hand_back(rt: Runtime, report: BatchReport, d: Delivery) -> None:
    """A stopping worker gives a delivery it has not claimed back: its hold ends now, so the
    reconciler re-publishes it on its next pass."""
    await rt.keeper.hand_back(rt.scripts["queued"], [d.key])
    report.dropped[d.key] = "handed back: the worker is stopping"


async def _deliver(rt: Runtime, report: BatchReport, d: Delivery, message: Message, names: list[str]) -> None:
    """One delivery from its send slot to its record, through the first provider of its route
    (``names``) whose breaker is closed."""
    channel = d.channel
    choice = _choose(rt, names, int(d.state.get("retries") or 0))
    if choice.provider is None:
        reason = f"every provider of its route is skipped (breakers open: {', '.join(choice.skipped)})"
        await record(rt, report, Later(d.key, max(choice.until, rt.clock() + FAILOVER_DELAY), reason))
        return
    provider = await rt.provider(channel, choice.provider)
    outcome: Record | None
    gone: list[str] = []
    async with rt.slot(channel), rt.in_flight:
        if rt.stopping.is_set():
            await _hand_back(rt, report, d)
            return
        cost = _cost(message)
        bulk = d.category in BULK_CATEGORIES
        sender = rt.sender(channel, provider.name)
        grant = await rt.reservations.submit(
            Reservation(channel, cost, sender, bulk=bulk, provider=provider.name)
        )
        metrics.record_limiter(channel, [grant.wait] if grant.granted else [], 0 if grant.granted else 1)
        if not grant.granted:
            until = rt.clock() + grant.wait
            reason = f"rate limit: the provider's limit has room at {store.iso(until)}"
            await record(rt, report, Later(d.key, until, reason))
            return
        if grant.wait > 0:
            await asyncio.sleep(grant.wait)  # a short wait for a reserved token, inside the slot
            if rt.stopping.is_set():
                await _hand_back(rt, report, d)
                return
        windows = claim_windows(
            rt.settings.send_window,
            d.category,
            d.reminder.get("to", {}).get("timezone") or rt.settings.default_timezone,
            rt.clock(),
        )
        claim = ClaimRequest(d, secrets.token_hex(8), windows)
        answer = await rt.claims.submit(claim)
        rt.observe_clock(answer.now)
        if answer.verdict is not ClaimVerdict.CLAIMED:
            outcome = _not_claimed(rt, report, d, "", answer)
        else:
            rt.keeper.claimed(d.key, claim.token)
            outcome, gone = await _request(rt, report, provider, d, _addressed(message, answer), claim, names)
    if outcome is not None:
        await record(rt, report, outcome)
    if gone:
        await _drop_addresses(rt, channel, gone)


async def process_batch(rt: Runtime, channel: Channel, keys: list[str]) -> BatchReport:
    """Take one batch through the flow; while Redis is unreachable before anything is claimed,
    wait and start it again.

    Starting again is safe: what was recorded is skipped at load, what was claimed is no longer
    pending, and no provider call happens without a claim, which needs Redis. Nothing is sent
    while Redis is unreachable (fail closed). Once deliveries go their own ways, each waits out
    an outage where it stands (its claim, or its record).
    """
    report = BatchReport()
    try:
        async for attempt in redis_patience(rt.settings, f"processing a {channel} batch"):
            with attempt:
                ready = await _prepare(rt, report, channel, keys)
    except BaseException:
        for key in keys:  # no longer renewed: the reconciler takes them over
            rt.keeper.release(key, "")
        raise
    answers = await asyncio.gather(*(_deliver(rt, report, *r) for r in ready), return_exceptions=True)
    failures = [a for a in answers if isinstance(a, BaseException)]
    for (d, _, _), answer in zip(ready, answers, strict=True):
        if isinstance(answer, BaseException):
            # no longer renewed: the reconciler (or, once claimed, the lease sweep) takes over
            rt.keeper.release(d.key)
            log.error("%s: not recorded: %s", d.key, answer)
    if failures:  # every delivery had its turn; the first failure is the task's
        raise failures[0]
    return report


async def _prepare(
    rt: Runtime, report: BatchReport, channel: Channel, keys: list[str]
) -> list[tuple[Delivery, Message, list[str]]]:
    """Take, pre-filter, route and render the batch; returns the deliveries to send, rendered,
    each with the providers of its route in order."""
    batch = await load(rt, channel, keys, report)
    if not batch:
        return []
    ctx = GuardContext(rt.settings, rt.redis, rt.clock())
    early: list[Record] = []
    for guard in rt.guards:
        try:
            verdicts = await guard.check(batch, ctx)
        except SuppressionUnknown as exc:  # fail closed: set the whole batch aside
            log.error("%s: nothing sent: %s", guard.name, exc)
            later = rt.clock() + UNKNOWN_SUPPRESSION_WAIT
            early += [Later(d.key, later, str(exc)) for d in batch]
            batch = []
            break
        for key, verdict in verdicts.items():
            if isinstance(verdict, Skip):
                early.append(Finish(key, verdict.outcome, verdict.reason))
            elif isinstance(verdict, Defer):
                early.append(Later(key, verdict.until, verdict.reason))
        batch = [d for d in batch if d.key not in verdicts]

    routed = [(d, rt.router.candidates(channel, d.key, d.addresses[0])) for d in batch]
    broken: dict[str, str] = {}
    for name in dict.fromkeys(n for _, names in routed for n in names):
        try:
            await rt.provider(channel, name)
        except Exception as exc:  # a provider that cannot start sends nothing: never claimed for it
            log.error("%s provider %s could not start: %s", channel, name, exc)
            broken[name] = f"{channel} provider {name} unavailable: {exc}"
    ready: list[tuple[Delivery, Message, list[str]]] = []
    for d, names in routed:
        usable = [n for n in names if n not in broken]
        if not usable:
            reason = "; ".join(broken[n] for n in names)
            early.append(_retry_or_give_up(rt, d, "", reason, None, release=False))
            continue
        try:
            ready.append((d, _message(d, channel, rt, rt.approved(usable)), usable))
        except (RenderError, KeyError) as exc:
            early.append(Finish(d.key, Outcome.INVALID, f"template: {str(exc).strip(chr(34) + chr(39))}"))
    await asyncio.gather(*(record(rt, report, item) for item in early))
    return ready


def _cost(message: Message) -> int:
    segments = message.rendered.segments.segments if message.rendered.segments else None
    addresses = len(message.address) if isinstance(message.address, list) else 1
    return cost_of(message.channel, segments, addresses)


async def _drop_addresses(rt: Runtime, channel: Channel, gone: list[str]) -> None:
    addresses = sorted(set(gone))
    log.info(
        "opting out %d %s addresses the provider reports gone: %s",
        len(addresses),
        channel,
        ", ".join(mask_address(channel, a) for a in addresses),
    )
    async for attempt in redis_patience(rt.settings, "recording opt-outs"):
        with attempt:
            await optouts.add_async(rt.redis, channel, addresses, source="provider", by="herald")
