"""Serving metrics: the worker host's ``/metrics`` (``herald worker``) and the bearer-token check.

``herald worker`` runs several Celery processes on one host. Each process writes its counters
and histograms to files in a directory of its own host (prometheus-client's multiprocess
mode); the supervisor creates a fresh directory before it starts them (``PROMETHEUS_MULTIPROC_DIR``
in their environment), tells prometheus-client when one dies and is replaced
(``mark_process_dead``), and serves the sum of every process's files, with the Redis gauges
and its own two (processes alive, restarts), on ``HERALD_METRICS_HOST:HERALD_METRICS_PORT``.
Counts of a process that died stay in the sum: totals never go backwards on a restart.

A port that cannot be bound is logged and the workers run without metrics: metrics never stop
deliveries.
"""

from __future__ import annotations

import hmac
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from herald.config import Settings
from herald.ops.metrics import RedisCollector, redis_for_metrics

log = logging.getLogger("herald.ops.metrics")

ENV = "PROMETHEUS_MULTIPROC_DIR"
StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def token_ok(header: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries the bearer ``token`` (no token: always)."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def metrics_app(registry: CollectorRegistry, token: str | None = None) -> WsgiApp:
    """A WSGI app answering ``GET /metrics`` from ``registry``, behind the optional bearer token."""
    inner = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"herald metrics are at /metrics\n"]
        if not token_ok(environ.get("HTTP_AUTHORIZATION"), token):
            start_response(
                "401 Unauthorized", [("WWW-Authenticate", "Bearer"), ("Content-Type", "text/plain")]
            )
            return [b"a bearer token is required (HERALD_METRICS_TOKEN)\n"]
        answer: Iterable[bytes] = inner(environ, start_response)
        return answer

    return app


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class MetricsServer:
    """An HTTP server for one WSGI app, on a daemon thread: ``start()``, ``port``, ``close()``."""

    def __init__(self, app: WsgiApp, host: str, port: int) -> None:
        self.server = make_server(host, port, app, server_class=_Threading, handler_class=_Quiet)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)

    def start(self) -> MetricsServer:
        """Serve in the background."""
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()


class SupervisorCollector(Collector):
    """The supervisor's own view: worker processes alive, and restarts so far."""

    def __init__(self, alive: Callable[[], int], restarts: Callable[[], int]) -> None:
        self.alive = alive
        self.restarts = restarts

    def collect(self) -> Iterator[Metric]:
        """Two values read from the supervisor."""
        yield GaugeMetricFamily(
            "herald_worker_processes", "Worker processes alive on this host.", value=self.alive()
        )
        yield CounterMetricFamily(
            "herald_worker_restarts", "Worker processes restarted on this host.", value=self.restarts()
        )


class HostMetrics:
    """The metrics of one worker host: the multiprocess directory and the ``/metrics`` server.

    Parameters: ``settings`` (port, host, token, Redis URL). Use :meth:`child_env` for the
    worker processes' environment, :meth:`serve` once the supervisor exists,
    :meth:`process_died` when a worker process exits, and :meth:`close` at the end (which
    removes the directory).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.directory = Path(tempfile.mkdtemp(prefix="herald-metrics-"))
        self.server: MetricsServer | None = None
        log.info("worker processes write their metrics to %s", self.directory)

    def child_env(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` with this host's fresh ``PROMETHEUS_MULTIPROC_DIR``."""
        return {**base, ENV: str(self.directory)}

    def registry(self, supervisor: Collector | None = None) -> CollectorRegistry:
        """Every process's files added up, the Redis gauges, and the supervisor's own."""
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=str(self.directory))  # type: ignore[no-untyped-call]
        registry.register(RedisCollector(redis_for_metrics(self.settings.redis_url)))
        if supervisor is not None:
            registry.register(supervisor)
        return registry

    def serve(self, supervisor: Collector | None = None) -> int | None:
        """Start ``/metrics``; returns the port, or None when it could not be bound (logged)."""
        token = self.settings.metrics_token.get_secret_value() if self.settings.metrics_token else None
        app = metrics_app(self.registry(supervisor), token)
        try:
            self.server = MetricsServer(app, self.settings.metrics_host, self.settings.metrics_port).start()
        except OSError as exc:
            log.error(
                "metrics: cannot listen on %s:%s (%s); the workers run without /metrics",
                self.settings.metrics_host,
                self.settings.metrics_port,
                exc,
            )
            return None
        log.info(
            "metrics for this host at http://%s:%d/metrics", self.settings.metrics_host, self.server.port
        )
        return self.server.port

    def process_died(self, pid: int) -> None:
        """A worker process exited: drop its live-gauge files (its counts stay in the sum)."""
        try:
            mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]
        except OSError as exc:
            log.warning("metrics: could not mark process %d dead: %s", pid, exc)

    def close(self) -> None:
        """Stop serving and remove the directory."""
        if self.server is not None:
            self.server.close()
            self.server = None
        shutil.rmtree(self.directory, ignore_errors=True)


def supervise_with_metrics(commands: list[list[str]], settings: Settings, env: dict[str, str]) -> int:
    """Run the worker processes under a :class:`~herald.ops.supervise.Supervisor`, with the host's
    ``/metrics``; returns the supervisor's exit code."""
    from herald.ops.supervise import Supervisor

    host = HostMetrics(settings)
    try:
        supervisor = Supervisor(commands, host.child_env(env), on_exit=host.process_died)
        host.serve(SupervisorCollector(supervisor.alive, lambda: supervisor.restarts))
        return supervisor.run()
    finally:
        host.close()
