"""Container health for whichever herald process the container runs (the image's HEALTHCHECK).

One image runs every herald process, so the check looks at the container's command (PID 1's,
or the arguments given here) and asks that process whether it is alive:

- ``herald api``: ``GET /openapi.json`` answers 200. Not ``/healthz``: that answers 503 while no
  worker runs, and an API with no workers must stay up (producers are still accepted, and
  operators need it most then).
- ``herald flower``: ``GET /healthcheck`` with Flower's basic auth answers 200.
- ``herald worker``: the host's ``/metrics`` (``HERALD_METRICS_PORT``) answers; with metrics
  off there is nothing to ask, and a live process is all. A worker that stops consuming
  exits by itself (the consumption watchdog) and the restart policy starts it again.
- anything else (scheduler, reconcile, ledger, a one-shot command): a live process is all;
  each exits non-zero on a fault it cannot wait out.

Usage: ``python healthcheck.py [COMMAND ...]``; exits 0 when healthy, 1 when not (saying why).
"""

from __future__ import annotations

import base64
import sys
import urllib.error
import urllib.request
from pathlib import Path

TIMEOUT = 4.0


def command_line(argv: list[str]) -> list[str]:
    """The command to judge: ``argv`` if given, else PID 1's command line."""
    if argv:
        return argv
    raw = Path("/proc/1/cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def herald_args(command: list[str]) -> list[str]:
    """What follows ``herald`` (or ``python -m herald.cli``) in ``command``; empty if absent."""
    for index, part in enumerate(command):
        if Path(part).name == "herald" or part == "herald.cli":
            return command[index + 1 :]
    return []


def option(args: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``args``."""
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def answers(url: str, headers: dict[str, str], *, need_ok: bool) -> tuple[bool, str]:
    """Whether ``url`` answers (with 200 when ``need_ok``; any HTTP status otherwise)."""
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - our own http://127.0.0.1 URL
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {getattr(exc, 'reason', exc)}"
    if need_ok and status != 200:
        return False, f"{url} answered {status}"
    return True, f"{url} answered {status}"


def check(command: list[str]) -> tuple[bool, str]:
    """Judge the herald process started by ``command``."""
    from herald.config import get_settings

    args = herald_args(command)
    role = args[0] if args else ""
    settings = get_settings()
    if role == "api":
        port = option(args, "--port") or str(settings.api_port)
        return answers(f"http://127.0.0.1:{port}/openapi.json", {}, need_ok=True)
    if role == "flower":
        port = option(args, "--port") or str(settings.flower_port)
        secret = settings.flower_password.get_secret_value() if settings.flower_password else ""
        login = base64.b64encode(f"{settings.flower_user}:{secret}".encode()).decode()
        return answers(
            f"http://127.0.0.1:{port}/healthcheck", {"Authorization": f"Basic {login}"}, need_ok=True
        )
    if role == "worker" and settings.metrics_port:
        token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return answers(f"http://127.0.0.1:{settings.metrics_port}/metrics", headers, need_ok=True)
    return True, f"herald {role or '?'}: alive"


def main(argv: list[str]) -> int:
    """Print the verdict; 0 when healthy."""
    healthy, why = check(command_line(argv))
    print(("healthy: " if healthy else "unhealthy: ") + why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
