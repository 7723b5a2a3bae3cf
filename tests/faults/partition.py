"""A network partition between herald and redis-server: nothing passes either way for a while.

`Partition` is the freezing proxy of tests/freezeproxy.py with one difference: while it is cut,
connections opened through it are frozen too, so a process that reconnects gets no further
than one that waits. Nothing is closed and nothing is dropped: bytes sent during the cut wait
in the kernel's buffers and flow again when it heals, as after a real partition that ends
before TCP gives up.
"""

from __future__ import annotations

import socket
import threading

from tests.freezeproxy import FreezingProxy, _Link


class Partition(FreezingProxy):
    """Forwards 127.0.0.1:``port`` to ``127.0.0.1:upstream_port``; :meth:`cut` and :meth:`heal`."""

    def __init__(self, upstream_port: int) -> None:
        self._cut = threading.Event()
        super().__init__(upstream_port)

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
            link = _Link(client, upstream)
            with self._lock:  # cut() sets the flag under this lock: no link slips between
                if self._cut.is_set():
                    link.freeze()
                self.links.append(link)

    def cut(self) -> int:
        """Stop every connection, open now or opened until :meth:`heal`; returns how many were open."""
        with self._lock:
            self._cut.set()
        return self.freeze()

    def heal(self) -> None:
        """Let everything through again."""
        self._cut.clear()
        self.thaw()
