"""`herald templates check`, `templates fields` and `preview`: the message templates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from jinja2 import TemplateSyntaxError
from rich.table import Table

from herald import clock
from herald.channels import PROVIDERS, approved_only
from herald.cli.common import cell, err, fail, out
from herald.config import get_settings
from herald.models import CHANNELS, Channel
from herald.rendering.catalog import CatalogError, KindSpec, load_catalog
from herald.rendering.renderer import Renderer, RenderError
from herald.rendering.samples import sample_context


def _approved_providers(extra: list[str]) -> tuple[str, ...]:
    """The SMS providers to check approved templates for: those configured that send only
    approved templates, and those named with ``--provider``."""
    names = list(dict.fromkeys([*get_settings().providers("sms"), *extra]))
    unknown = [n for n in names if n not in PROVIDERS]
    if unknown:
        raise fail(f"--provider: no provider named {unknown[0]!r} (known: {', '.join(sorted(PROVIDERS))})")
    return approved_only(names)


def templates_check(
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider",
            help="Also check the approved templates (template code and parameters in kind.toml) of "
            "this SMS provider, e.g. aliyun; those of HERALD_SMS_PROVIDER are always checked.",
        ),
    ] = None,
) -> None:
    """Render every template with its kind's example.json and report errors with file and line;
    for each SMS provider that sends only approved templates (Aliyun), check every kind has a
    template code for each of its SMS locales and that every parameter renders within the
    provider's limit."""
    settings = get_settings()
    try:
        catalog = load_catalog(settings.templates_dir)
    except CatalogError as exc:
        raise fail(str(exc)) from exc
    approved = _approved_providers(provider or [])
    renderer = Renderer(catalog, settings)
    table = Table(title=f"templates in {settings.templates_dir}")
    for column in ("kind", "channel", "locale", "encoding", "segments", "characters"):
        table.add_column(column, justify="right" if column in ("segments", "characters") else "left")
    for name in approved:
        table.add_column(f"{name} code")
    errors: list[str] = []
    count = 0
    now = clock.now()
    for spec in catalog.kinds.values():
        for channel in CHANNELS:
            for locale in sorted(spec.locales.get(channel, ())):
                context = renderer.context(sample_context(spec, locale, now), spec.category)
                needed = approved if channel == "sms" else ()
                try:
                    rendered = renderer.render(spec.name, channel, context, needed)
                except RenderError as exc:
                    errors.append(str(exc))
                    table.add_row(
                        spec.name, channel, locale, "[red]error[/red]", "-", "-", *("-" for _ in approved)
                    )
                    continue
                count += 1
                seg = rendered.segments
                chars = sum(len(v) for v in rendered.content().values() if isinstance(v, str))
                table.add_row(
                    spec.name,
                    channel,
                    locale,
                    seg.encoding if seg else "-",
                    str(seg.segments) if seg else "-",
                    str(seg.characters if seg else chars),
                    *(rendered.approved[n].code if n in rendered.approved else "" for n in approved),
                )
    out.print(table)
    out.print(f"{count} renderings, {len(errors)} errors", highlight=False)
    for message in errors:
        err.print(f"[red]error:[/red] {message}", highlight=False)
    if errors or count == 0:
        raise typer.Exit(1)


_FORMATS = {
    "amount": "a decimal amount such as 1234.50",
    "date": "an ISO date such as 2026-11-20",
    "number": "a number",
    "currency": "an ISO 4217 code such as CNY",
}


def _required_where(spec: KindSpec, templates: list[str]) -> str:
    """``sms (zh-CN), email``: the channels (and, where not all, the locales) whose templates
    require a field."""
    parts = []
    for channel in CHANNELS:
        locales = sorted({t.split(".")[1] for t in templates if t.startswith(f"{channel}.")})
        if locales:
            every = len(locales) == len(spec.locales.get(channel, ()))
            parts.append(channel if every else f"{channel} ({', '.join(locales)})")
    return ", ".join(parts) or "-"


def templates_fields(
    kind: Annotated[str, typer.Argument(help="The kind, e.g. overdue_notice.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """List the fields of `data` a kind's templates show: required or optional, their format,
    which templates require them, and the kind's example value.

    Intake refuses a reminder whose `data` lacks a field the templates of its channels require
    (in the recipient's locale), or holds one in a form they cannot show.
    """
    from herald.rendering.fields import kind_fields

    settings = get_settings()
    try:
        catalog = load_catalog(settings.templates_dir)
        spec = catalog.get(kind)
        uses = kind_fields(catalog, spec)
    except (CatalogError, KeyError) as exc:
        raise fail(str(exc).strip("'\"")) from exc
    except (TemplateSyntaxError, OSError, UnicodeDecodeError) as exc:
        raise fail(f"{kind}: a template cannot be read: {exc}", 1) from exc
    example = spec.example_data(clock.now().date())
    if as_json:
        rows = [
            {
                "field": use.name,
                "required": use.required,
                "format": use.format,
                "required_by": templates,
                "example": example.get(use.name),
            }
            for use, templates in uses
        ]
        out.print_json(data={"kind": kind, "category": spec.category, "fields": rows})
        return
    table = Table(title=f"data fields of {kind} ({spec.category})", title_justify="left")
    for column in ("field", "format", "required by", "example"):
        table.add_column(column, overflow="fold")
    for use, templates in uses:
        table.add_row(
            use.name,
            use.format,
            _required_where(spec, templates) if use.required else "optional",
            cell(json.dumps(example[use.name], ensure_ascii=False)) if use.name in example else "-",
        )
    out.print(table)
    shown = sorted({use.format for use, _ in uses} - {"text"})
    for fmt in shown:
        out.print(f"{fmt}: {_FORMATS[fmt]}", highlight=False)


def preview(
    kind: Annotated[str, typer.Argument(help="The kind, e.g. overdue_notice.")],
    channel: Annotated[str, typer.Option("--channel", "-c", help="sms, email or push.")] = "sms",
    locale: Annotated[str, typer.Option("--locale", "-l", help="e.g. zh-CN or en.")] = "zh-CN",
    data: Annotated[
        Path | None, typer.Option("--data", help="A JSON file to use as `data` instead of example.json.")
    ] = None,
) -> None:
    """Print one rendering of a kind on a channel in a locale."""
    settings = get_settings()
    if channel not in CHANNELS:
        raise fail(f"--channel must be one of {', '.join(CHANNELS)}")
    try:
        catalog = load_catalog(settings.templates_dir)
        spec = catalog.get(kind)
    except (CatalogError, KeyError) as exc:
        raise fail(str(exc).strip("'\"")) from exc
    sample = sample_context(spec, locale, clock.now())
    sample["to"] = {**sample["to"], "locale": locale}
    if data is not None:
        try:
            sample["data"] = json.loads(data.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise fail(f"--data {data}: {exc}") from exc
    renderer = Renderer(catalog, settings)
    ch: Channel = channel
    try:
        rendered = renderer.render(kind, ch, renderer.context(sample, spec.category))
    except RenderError as exc:
        raise fail(str(exc), 1) from exc
    out.print(f"[dim]{kind} / {channel} / {rendered.locale}[/dim]", highlight=False)
    for name, value in rendered.content().items():
        out.print(f"[bold]{name}:[/bold]", highlight=False)
        out.print(value, markup=False, highlight=False, soft_wrap=True)
    if rendered.segments:
        s = rendered.segments
        out.print(
            f"[dim]{s.encoding}, {s.segments} segment(s), {s.characters} characters[/dim]",
            highlight=False,
        )
