"""The lifecycle the local stand-in servers share.

`LocalServer` is what every stand-in has: a `port` that raises until the server listens,
`start`/`stop`, and use as a context manager. `ThreadedServer` adds the background thread
with its own event loop that the aiohttp stand-ins (FakeTwilio, FakeFCM) run in. FakeSMTP
takes only `LocalServer`: aiosmtpd's Controller brings its own thread and loop.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import ClassVar, Self


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
