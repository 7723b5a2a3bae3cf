"""The ``herald`` command: one Typer app, its commands in one module per group.

| module | commands |
| --- | --- |
| ``reminders`` | ``enqueue``, ``status``, ``resolve``, ``cancel`` |
| ``processes`` | ``worker``, ``scheduler``, ``api``, ``flower``, ``run`` |
| ``templates`` | ``templates check``, ``templates fields``, ``preview`` |
| ``suppress``, ``optout``, ``deadletter``, ``keys`` | their groups |
| ``ledger``, ``reconcile`` | ``ledger``, ``history``, ``reconcile`` |

``common`` holds what they share: the consoles, tables for people, errors, the Redis client.
"""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from herald.cli import deadletter, keys, ledger, optout, processes, reconcile, reminders, suppress, templates
from herald.config import Settings, describe_settings_error

app = typer.Typer(
    help="herald: multi-channel reminder dispatcher (SMS, email, push).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.command()(reminders.enqueue)
app.command()(reminders.status)
app.command()(reminders.resolve)
app.command()(reminders.cancel)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(processes.worker)
app.command()(processes.scheduler)
app.command()(processes.api)
app.command()(processes.flower)
app.command()(templates.preview)
app.command()(processes.run)
templates_app = typer.Typer(help="Check and preview the message templates.", no_args_is_help=True)
templates_app.command("check")(templates.templates_check)
templates_app.command("fields")(templates.templates_fields)
app.add_typer(templates_app, name="templates")
app.add_typer(optout.app, name="optout")
app.add_typer(deadletter.app, name="deadletter")
app.add_typer(suppress.app, name="suppress")
app.add_typer(keys.app, name="keys")
app.command("ledger")(ledger.ledger)
app.command("history")(ledger.history)
app.command("reconcile")(reconcile.reconcile)


def main() -> None:
    """Entry point of the ``herald`` console script: a setting herald cannot use stops it with
    the setting named (exit code 2), not a traceback."""
    try:
        app()
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        print(f"herald: the configuration is not usable:\n{describe_settings_error(exc)}", file=sys.stderr)
        sys.exit(2)


__all__ = ["app", "main"]
