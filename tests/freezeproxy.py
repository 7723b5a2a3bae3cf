"""A TCP proxy that can freeze the connections open through it: a broker connection gone deaf.

Between herald's processes and redis-server. :meth:`FreezingProxy.freeze` stops forwarding, in
both directions, on every connection open at that moment, without closing any: the client's
socket stays up, its requests go nowhere and no answer ever comes — what a half-open
connection after a network fault or a broker reset looks like from the client. Connections
opened afterwards are forwarded normally (a process that reconnects, or a fresh process, works
again). :meth:`thaw` resumes the frozen ones.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class _Link:
    """One client connection and its upstream twin, pumped both ways by two threads."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.lock = threading.Lock()
        self.frozen = False
        self.running = threading.Event()
        self.running.set()
        self.closed = False
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while not self.closed:
            self.running.wait()
            with self.lock:
                if self.frozen:
                    continue
            try:
                ready, _, _ = select.select([src], [], [], 0.1)
                if not ready:
                    continue
                data = src.recv(65536)
            except (OSError, ValueError):
                break
            if not data:
                break
            with self.lock:  # freeze() waits for a send in progress: none follows it
                while self.frozen:
                    self.lock.release()
                    self.running.wait()
                    self.lock.acquire()
                try:
                    dst.sendall(data)
                except OSError:
                    break
        self.close()

    def freeze(self) -> None:
        with self.lock:
            self.frozen = True
            self.running.clear()

    def thaw(self) -> None:
        with self.lock:
            self.frozen = False
            self.running.set()

    def close(self) -> None:
        self.closed = True
        self.running.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.close()


class FreezingProxy:
    """Listens on a free port of 127.0.0.1 and forwards to ``127.0.0.1:upstream_port``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.links: list[_Link] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
            except OSError:
                if self._closed:
                    return
                continue
            upstream.settimeout(None)
            with self._lock:
                self.links.append(_Link(client, upstream))

    def freeze(self) -> int:
        """Freeze every connection open now; returns how many."""
        with self._lock:
            links = [link for link in self.links if not link.closed]
        for link in links:
            link.freeze()
        return len(links)

    def thaw(self) -> None:
        """Resume every frozen connection."""
        with self._lock:
            links = list(self.links)
        for link in links:
            link.thaw()

    def close(self) -> None:
        """Stop listening and close every connection."""
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            links = list(self.links)
        for link in links:
            link.close()
