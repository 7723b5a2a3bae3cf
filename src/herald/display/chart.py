"""Bar charts drawn on the server: the geometry of an SVG, computed here, drawn by a template.

The operator page shows hourly counts of several outcomes whose sizes differ by orders of
magnitude (thousands sent, a handful in doubt). One shared scale would flatten the small ones
to nothing, and the small ones are what an operator looks for, so each series gets a row of its
own with its own scale, its peak written beside it (small multiples). Every bar carries its
exact figure as a tooltip (an SVG ``<title>``), and the page lists the figures as a table too.

Nothing here knows HTML or escaping: the template does (autoescaped), and the page's CSP allows
no inline style, so colours come from the stylesheet by each row's ``series`` class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

LABEL_WIDTH = 150.0
PEAK_WIDTH = 70.0
BAR_AREA = 600.0
ROW_HEIGHT = 44.0
ROW_GAP = 10.0
AXIS_HEIGHT = 22.0
BAR_GAP = 0.2
"""The gap between bars, as a share of a slot."""


@dataclass(frozen=True)
class Bar:
    """One bar: its box, its value, and the tooltip that says both."""

    x: float
    y: float
    width: float
    height: float
    value: int
    tooltip: str


@dataclass(frozen=True)
class Row:
    """One series: its name (a CSS class), its label, where it sits, its bars and its peak."""

    series: str
    label: str
    top: float
    baseline: float
    bars: list[Bar]
    peak: int


@dataclass(frozen=True)
class Tick:
    """A label under the bars (an hour)."""

    x: float
    text: str


@dataclass(frozen=True)
class Chart:
    """The whole SVG: its size, the rows and the ticks under them."""

    width: float
    height: float
    rows: list[Row]
    ticks: list[Tick]
    label_width: float = LABEL_WIDTH
    bars_end: float = LABEL_WIDTH + BAR_AREA


def small_multiples(
    series: Sequence[tuple[str, str, Sequence[int]]],
    slots: Sequence[str],
    *,
    tick_every: int = 3,
    tooltip: str = "{slot}: {label} {value}",
) -> Chart:
    """A chart of one row per ``(name, label, values)`` in ``series``, one bar per slot.

    ``slots`` names each slot (an hour); every ``tick_every``-th is written under the bars.
    ``tooltip`` is formatted with ``slot``, ``label`` and ``value`` for each bar's tooltip. A
    value above zero is at least one pixel high, so a single event is never invisible.
    """
    slot_width = BAR_AREA / max(1, len(slots))
    width = slot_width * (1 - BAR_GAP)
    rows: list[Row] = []
    for index, (name, label, values) in enumerate(series):
        if len(values) != len(slots):
            raise ValueError(f"series {name}: {len(values)} values for {len(slots)} slots")
        top = index * (ROW_HEIGHT + ROW_GAP)
        baseline = top + ROW_HEIGHT
        peak = max(values, default=0)
        bars = []
        for i, (slot, value) in enumerate(zip(slots, values, strict=True)):
            height = 0.0 if not peak else max(1.0, ROW_HEIGHT * value / peak) if value else 0.0
            bars.append(
                Bar(
                    x=round(LABEL_WIDTH + i * slot_width + (slot_width - width) / 2, 2),
                    y=round(baseline - height, 2),
                    width=round(width, 2),
                    height=round(height, 2),
                    value=value,
                    tooltip=tooltip.format(slot=slot, label=label, value=value),
                )
            )
        rows.append(Row(name, label, top, baseline, bars, peak))
    body = len(series) * (ROW_HEIGHT + ROW_GAP)
    ticks = [
        Tick(round(LABEL_WIDTH + i * slot_width + slot_width / 2, 2), slot)
        for i, slot in enumerate(slots)
        if i % tick_every == 0
    ]
    return Chart(width=LABEL_WIDTH + BAR_AREA + PEAK_WIDTH, height=body + AXIS_HEIGHT, rows=rows, ticks=ticks)
