"""The lifecycle the local stand-in servers share.

`LocalServer` is what every stand-in has: a `port` that raises until the server listens,
`start`/`stop`, and use as a context manager. `ThreadedServer` adds the background thread
with its own event loop that the HTTP stand-ins run in; `AiohttpServer` serves an aiohttp
application there (FakeTwilio, FakeFCM, FakeAliyunSMS; FakeAPNs speaks HTTP/2 itself). FakeSMTP
takes only `LocalServer`: aiosmtpd's Controller brings its own thread and loop.

`Recording` is what a test reads of a stand-in: the messages it accepted, the requests it
received, and a wait for the next accepted ones.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

from aiohttp import web


class LocalServer:
    """A stand-in server on 127.0.0.1 that can be started, stopped and started again.

    Subclasses set `name` (e.g. ``"FakeSMTP"``, for error messages) and implement `start`,
    which sets ``self._port``, and `stop`.
    """

    name: ClassVar[str]

    def __init__(self) -> None:
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._port

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ThreadedServer(LocalServer):
    """A server whose coroutines run on their own event loop in a daemon thread.

    Subclasses provide:

    * `name` and `thread_name` (e.g. ``"FakeTwilio"`` and ``"fake-twilio"``);
    * ``async _serve()``: start listening on 127.0.0.1 and set ``self._port``. Binding to
      ``self._port or 0`` makes a restarted server listen on the same port as before. An
      exception here makes `start` raise RuntimeError from it;
    * ``async _cleanup()`` (optional): release what `_serve` opened; runs on the loop once it
      has stopped;
    * `_before_stop()` (optional): runs in the caller's thread before the loop is stopped.
    """

    thread_name: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._startup_error: BaseException | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Start serving; a restarted fake listens on the same port as before."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already running")
        self._startup_error = None
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name=self.thread_name, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError(f"{self.name} did not start within 10 s")
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"{self.name} failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving. Requests still in flight (hung ones too) are cut off."""
        if self._thread is None or self._loop is None:
            return
        self._before_stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(15)
        self._thread = None
        self._loop = None

    async def _serve(self) -> None:
        raise NotImplementedError

    async def _cleanup(self) -> None:
        return None

    def _before_stop(self) -> None:
        return None

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as error:
            self._startup_error = error
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


T = TypeVar("T")


def serve_while(
    path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]], action: Callable[[str], T]
) -> T:
    """Answer POSTs to ``path`` with ``handler`` on a loop of this thread while ``action(base URL)``
    runs in a worker thread (a receiver of the webhooks a stand-in sends); ``action``'s result."""

    async def main() -> T:
        app = web.Application()
        app.router.add_post(path, handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            return await asyncio.to_thread(action, f"http://127.0.0.1:{runner.addresses[0][1]}")
        finally:
            await runner.cleanup()

    return asyncio.run(main())


class AiohttpServer(ThreadedServer):
    """A `ThreadedServer` answering with an aiohttp application on 127.0.0.1.

    Subclasses add their routes in `_routes(app)`, and may set `backlog` (connections waiting to
    be accepted: a deep backlog of clients connects at once) and `client_max_size`.
    """

    backlog: ClassVar[int] = 128
    client_max_size: ClassVar[int] = 1024**2

    def __init__(self) -> None:
        super().__init__()
        self._runner: web.AppRunner | None = None

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def _serve(self) -> None:
        app = web.Application(client_max_size=self.client_max_size)
        self._routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port or 0, backlog=self.backlog)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class Recording:
    """The records of a stand-in, kept under one lock: what it accepted and how many requests
    it received. A subclass calls `_start_records()` in its constructor, counts each request
    with ``self._requests += 1`` and records each accepted message with `_record` (both under
    ``self._lock``)."""

    _lock: threading.Lock
    _changed: threading.Condition
    _accepted: list[dict[str, Any]]
    _requests: int

    def _start_records(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._accepted = []
        self._requests = 0

    def _record(self, record: dict[str, Any]) -> None:
        """Keep an accepted message and wake `wait_accepted` (call it holding ``self._lock``)."""
        self._accepted.append(record)
        self._changed.notify_all()

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """A copy of the accepted messages, oldest first."""
        with self._lock:
            return list(self._accepted)

    @property
    def requests(self) -> int:
        """Requests received, refused ones included."""
        with self._lock:
            return self._requests

    def wait_accepted(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` messages were accepted; returns them all."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._accepted) >= count, timeout):
                raise TimeoutError(f"{len(self._accepted)} of {count} messages accepted after {timeout} s")
            return list(self._accepted)
