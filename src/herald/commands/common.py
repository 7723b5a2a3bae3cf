"""Shared pieces of the command line: consoles, errors, Redis."""

from __future__ import annotations

import getpass

import redis
import typer
from rich.console import Console

from herald.config import get_settings
from herald.redisconn import display_redis_url, settings_client

out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error; return the Exit to raise."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def connect() -> redis.Redis:
    """A Redis client on HERALD_REDIS_URL that has answered a PING."""
    settings = get_settings()
    client = settings_client(settings)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise fail(f"cannot reach Redis at {display_redis_url(settings.redis_url)}: {exc}", 3) from exc
    return client


def default_operator() -> str:
    """Who runs the command, for audit trails: the login name, or ``operator`` where there is
    none (a container running as a user with no name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"
