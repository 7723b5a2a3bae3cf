"""``herald keys``: API keys for the HTTP API — create (shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

import typer

from herald.access.apikeys import SCOPES, KeyRequestError, KeyStore
from herald.cli.common import connect, default_operator, err, fail, make_table, out
from herald.display.timefmt import local_time, local_time_named

app = typer.Typer(help="Create, list and revoke API keys for the HTTP API.", no_args_is_help=True)

SCOPE_HELP = f"A scope: {', '.join(SCOPES)} (repeatable)."


@app.command("create")
def create(
    owner: Annotated[str, typer.Option("--owner", help='Who uses the key (recorded as "who").')],
    scope: Annotated[list[str], typer.Option("--scope", help=SCOPE_HELP)],
    by: Annotated[str, typer.Option(help="Who makes the key (recorded).")] = default_operator(),
) -> None:
    """Make a key for OWNER with the scopes given. The key is printed once and never again."""
    try:
        raw, record = KeyStore(connect()).create(owner, scope, by=by)
    except KeyRequestError as exc:
        raise fail(str(exc)) from None
    err.print(
        f"[yellow]This key is shown only once:[/yellow] store it now (herald keeps only its hash). "
        f"id {record.key_id}, owner {record.owner}, scopes {', '.join(sorted(record.scopes))}",
        highlight=False,
    )
    out.print(raw, markup=False, highlight=False, soft_wrap=True)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Every key, newest first (the keys themselves are never shown)."""
    keys = KeyStore(connect()).list()
    if as_json:
        out.print_json(data=[k.public() for k in keys])
        return
    table = make_table(
        "id",
        "owner",
        "scopes",
        "created",
        "by",
        "revoked",
        title=f"API keys ({len(keys)})",
        times=["created", "revoked"],
    )
    for key in keys:
        table.add_row(
            key.key_id,
            key.owner,
            ",".join(sorted(key.scopes)),
            local_time(key.created_at),
            key.created_by or "-",
            local_time(key.revoked_at) or "-",
            style="dim" if key.revoked_at else None,
        )
    out.print(table)


@app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (see herald keys list).")]) -> None:
    """Revoke KEY_ID: requests with it are refused (401) from now on."""
    try:
        record = KeyStore(connect()).revoke(key_id)
    except KeyRequestError as exc:
        raise fail(str(exc), 1) from None
    out.print(
        f"revoked {record.key_id} (owner {record.owner}) at {local_time_named(record.revoked_at)}",
        highlight=False,
    )
