"""``herald optout``: the per-channel opt-out lists, for operators."""

from __future__ import annotations

from typing import Annotated

import typer

from herald.cli.common import connect, default_operator, fail, make_table, out
from herald.display.masking import mask_address
from herald.holds.optouts import OptOuts
from herald.models import CHANNELS

app = typer.Typer(help="Opt addresses out of a channel, or back in; list them.", no_args_is_help=True)

ChannelArg = Annotated[str, typer.Argument(help="sms, email or push.")]
AddressArg = Annotated[str, typer.Argument(help="An E.164 number, an email address or a push token.")]
ByOpt = Annotated[str, typer.Option("--by", help="Who is making the change (recorded).")]
OPERATOR = default_operator()


def _check(channel: str) -> None:
    if channel not in CHANNELS:
        raise fail(f"CHANNEL must be one of {', '.join(CHANNELS)}")


@app.command("add")
def add(channel: ChannelArg, address: AddressArg, by: ByOpt = OPERATOR) -> None:
    """Opt ADDRESS out of CHANNEL: nothing more is sent there until it is removed."""
    _check(channel)
    try:
        added = OptOuts(connect()).add(channel, address, source="operator", by=by)
    except ValueError as exc:
        raise fail(f"ADDRESS {exc}") from None
    out.print("opted out" if added else "already opted out", highlight=False)


@app.command("remove")
def remove(channel: ChannelArg, address: AddressArg, by: ByOpt = OPERATOR) -> None:
    """Opt ADDRESS back in to CHANNEL."""
    _check(channel)
    try:
        removed = OptOuts(connect()).remove(channel, address, source="operator", by=by)
    except ValueError as exc:
        raise fail(f"ADDRESS {exc}") from None
    out.print("opted back in" if removed else "was not opted out", highlight=False)


@app.command("list")
def list_(
    channel: ChannelArg,
    cursor: Annotated[int, typer.Option(help="Continue from a cursor printed by an earlier page.")] = 0,
    count: Annotated[int, typer.Option(help="Roughly how many per page.")] = 100,
    unmasked: Annotated[bool, typer.Option(help="Show full addresses (personal data).")] = False,
) -> None:
    """List one page of CHANNEL's opt-outs (masked unless --unmasked)."""
    _check(channel)
    next_cursor, addresses = OptOuts(connect()).list(channel, cursor=cursor, count=count)
    table = make_table("address", title=f"{channel} opt-outs")
    for address in addresses:
        table.add_row(address if unmasked else mask_address(channel, address))
    out.print(table)
    if next_cursor:
        out.print(f"more: herald optout list {channel} --cursor {next_cursor}", highlight=False)
