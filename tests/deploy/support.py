"""Checks shared by the deploy/ tests: is a command line a real herald command, is a name a setting.

A command is parsed exactly as `herald` would parse it (Typer's click command tree, down to the
leaf command, options converted to their types) without running it; `herald worker` passes the
options it does not know to `celery worker`, so those are parsed by Celery's own command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from celery.bin.base import CLIContext
from celery.bin.celery import celery as celery_command
from pydantic import AliasChoices

from herald.cli import app as herald_app
from herald.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HERALD_NAME = re.compile(r"\bHERALD_[A-Z0-9_]*[A-Z0-9]\b")


@dataclass
class ParsedCommand:
    """A herald command line, parsed: its path (``herald suppress init``) and parameters."""

    path: str
    params: dict[str, Any]
    extra: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)


def _leaf(command: Any, args: list[str], name: str, **extra: Any) -> Any:
    """The context of the leaf command ``args`` select, parsed (never invoked)."""
    ctx = command.make_context(name, list(args), **extra)
    if hasattr(command, "resolve_command"):  # a group: go down to the subcommand
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        sub_name, sub, sub_args = command.resolve_command(ctx, rest)
        assert sub is not None, f"{name}: no subcommand in {args}"
        return _leaf(sub, sub_args, sub_name, parent=ctx)
    return ctx


def parse_herald(argv: list[str]) -> ParsedCommand:
    """Parse ``argv`` (``["herald", ...]``) as the herald command would; raises on any error."""
    assert argv, "an empty command"
    assert Path(argv[0]).name == "herald", f"not a herald command: {argv}"
    ctx = _leaf(typer.main.get_command(herald_app), argv[1:], "herald")
    parsed = ParsedCommand(ctx.command_path, dict(ctx.params), list(ctx.args))
    if parsed.path == "herald worker":
        parsed.queues = parse_celery_worker(parsed.extra)
    else:
        assert not parsed.extra, f"{argv}: unexpected arguments {parsed.extra}"
    return parsed


def parse_celery_worker(args: list[str]) -> list[str]:
    """Parse the options `herald worker` hands to `celery worker`; return the queues (-Q)."""
    from worker.app import app as celery_app

    obj = CLIContext(app=celery_app, no_color=True, workdir=None, quiet=True)
    ctx = _leaf(celery_command, ["-A", "worker", "worker", *args], "celery", obj=obj)
    assert not ctx.args, f"celery worker: unexpected arguments {ctx.args}"
    queues = ctx.params.get("queues") or []
    return [q for part in queues for q in part.split(",") if q]


def setting_names() -> set[str]:
    """Every environment variable Settings reads (HERALD_<FIELD>, or its aliases)."""
    names: set[str] = set()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        else:
            names.add(f"HERALD_{name.upper()}")
    return names


def deploy_files() -> list[Path]:
    """Every file in deploy/ (text), including the systemd units."""
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def exported_metrics() -> set[str]:
    """Every metric family name herald's source declares (``"herald_..."`` string literals)."""
    source = "\n".join(p.read_text("utf-8") for p in (ROOT / "src" / "herald").rglob("*.py"))
    return set(re.findall(r'"(herald_[a-z_]+)"', source))


def unknown_metrics(expr: str, exported: set[str]) -> set[str]:
    """The metric names ``expr`` (PromQL) reads that herald does not export.

    A counter ``x`` is scraped as ``x_total``, a histogram as ``x_bucket``/``x_sum``/``x_count``.
    """
    names = set(re.findall(r"\bherald_[a-z_]+", expr))
    return {
        n for n in names if n not in exported and re.sub(r"_(total|count|bucket|sum)$", "", n) not in exported
    }
