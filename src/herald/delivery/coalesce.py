"""Coalescing: requests made in the same turn of the event loop go to Redis in one call.

Each delivery of a batch runs as its own coroutine: it waits for its send slot, its rate-limit
token, its claim, its provider's answer and its record one after the other, so that nothing
waits between its claim and its request. Deliveries that reach the same step together (a batch
that starts, slots that free up at once, answers that arrive together) would each pay a Redis
round trip (≈ 0.3 ms here) for what one pipelined call does for all of them. A
:class:`Coalescer` gathers every item submitted before the loop's next turn and hands them to
one ``flush`` call; each caller gets its own item's answer, or the call's exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[list[T]], Awaitable[Sequence[R]]]


class Coalescer(Generic[T, R]):
    """Gathers items submitted in one turn of the loop into one ``flush`` (at most ``limit``).

    Parameters: ``flush`` (items -> one answer per item, in order) and ``limit`` (items per
    call; more go in further calls of the same turn). Hook: :meth:`submit`.
    """

    def __init__(self, flush: Flush[T, R], limit: int = 1000) -> None:
        self._flush = flush
        self._limit = limit
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """``item``'s answer, from the call that carries it and the items submitted with it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start)
        return await future

    def _start(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self._limit):
            task = asyncio.get_running_loop().create_task(self._run(pending[start : start + self._limit]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, chunk: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            answers = await self._flush([item for item, _ in chunk])
            if len(answers) != len(chunk):
                raise RuntimeError(f"flush answered {len(answers)} items of {len(chunk)}")
        except BaseException as exc:  # every caller learns of it; a cancellation is passed on too
            for _, future in chunk:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), answer in zip(chunk, answers, strict=True):
            if not future.done():
                future.set_result(answer)
