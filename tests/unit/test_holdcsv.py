"""Reading holds from operators' input: fields checked and named, line numbers kept."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from herald.holds.holdcsv import (
    CSV_COLUMNS,
    FORMULA_STARTS,
    CsvHeaderError,
    HoldInputError,
    LineError,
    build_hold,
    export_row,
    from_spreadsheet_safe,
    parse_categories,
    parse_row,
    read_rows,
    spreadsheet_safe,
)
from herald.holds.suppression import Hold

TZ = "Asia/Shanghai"


def test_rows_keep_their_line_numbers_across_quoted_newlines_and_blank_lines() -> None:
    text = '\ufeffaccount_id,reason\na-1,"two\nlines"\n\na-2,plain\n'
    assert read_rows(text) == [
        (3, {"account_id": "a-1", "reason": "two\nlines"}),
        (5, {"account_id": "a-2", "reason": "plain"}),
    ]


def test_a_header_without_the_required_columns_is_refused() -> None:
    with pytest.raises(CsvHeaderError, match="must name account_id, reason"):
        read_rows("account,why\na,b\n")


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"account_id": "", "reason": "r"}, "account_id", "account_id is required"),
        ({"account_id": "a b", "reason": "r"}, "account_id", "letters, digits"),
        ({"account_id": "a", "reason": "  "}, "reason", "reason is required"),
        ({"account_id": "a", "reason": "x" * 1001}, "reason", "longer than 1000"),
        ({"account_id": "a", "reason": "r", "until": "soon"}, "until", "neither a date"),
        ({"account_id": "a", "reason": "r", "until": "2026-12-31T18:00:00"}, "until", "needs an offset"),
        (
            {"account_id": "a", "reason": "r", "categories": "collection;ads"},
            "categories",
            "unknown categories ads",
        ),
        ({"account_id": "a", "reason": "r", "agreement": "AGR/7"}, "agreement", "agreement 'AGR/7'"),
    ],
)
def test_a_bad_line_names_its_field(row: dict[str, str], field: str, message: str) -> None:
    error = parse_row(7, row, by="ops", timezone=TZ)
    assert isinstance(error, LineError)
    assert (error.line, error.field) == (7, field)
    assert message in error.message


def test_a_good_line_is_a_hold_with_a_stable_id() -> None:
    row = {
        "account_id": " a-1 ",
        "reason": " paused ",
        "until": "2026-12-31",
        "categories": "collection agreement",
    }
    first = parse_row(2, row, by="ops", timezone=TZ)
    again = parse_row(9, dict(row), by="ops", timezone=TZ)
    assert isinstance(first, Hold)
    assert isinstance(again, Hold)
    assert first.id == again.id
    assert first.id.startswith("operator:")
    assert (first.account_id, first.reason, first.by) == ("a-1", "paused", "ops")
    assert first.categories == ("collection", "agreement")
    assert first.until == datetime(2027, 1, 1, tzinfo=ZoneInfo(TZ)).timestamp()  # the end of that day
    named = parse_row(3, {**row, "by": "ops-li"}, by="ops", timezone=TZ)
    assert isinstance(named, Hold)
    assert named.by == "ops-li"


def test_an_agreement_hold_is_addressed_by_its_agreement() -> None:
    hold = build_hold("a-1", "plan signed", None, "AGR-77", ("collection",), "ops", timezone=TZ)
    assert (hold.id, hold.source, hold.until) == ("agreement:AGR-77", "agreement", None)


def test_categories_default_to_collection_without_repeats() -> None:
    assert parse_categories([]) == ("collection",)
    assert parse_categories(["agreement", "agreement", "collection"]) == ("agreement", "collection")
    with pytest.raises(HoldInputError) as caught:
        parse_categories(["marketing"])
    assert caught.value.field == "categories"


@pytest.mark.parametrize("dangerous", ["=1+1", "+SUM(A1)", "-2+3", "@cmd", '=HYPERLINK("http://x")'])
def test_export_defuses_formulas_and_the_import_reads_the_same_hold_back(dangerous: str) -> None:
    hold = build_hold(
        "acct-1", dangerous, None, None, ("collection",), dangerous, timezone=TZ, stable_id=True
    )
    row = export_row("acct-1", hold)
    assert row[1] == "'" + dangerous
    assert row[5] == "'" + dangerous
    assert not any(cell.startswith(FORMULA_STARTS) for cell in row)

    buffer = io.StringIO()
    csv.writer(buffer).writerows([CSV_COLUMNS, row])
    [(_, fields)] = read_rows(buffer.getvalue())
    again = parse_row(2, fields, by="ops", timezone=TZ)
    assert isinstance(again, Hold)
    assert (again.reason, again.by, again.id) == (dangerous, dangerous, hold.id)


def test_export_leaves_plain_cells_and_quotes_inside_alone() -> None:
    hold = build_hold(
        "acct-2", "plan signed; pays 1,200", None, "AGR-7", ("collection",), "ops-li", timezone=TZ
    )
    assert export_row("acct-2", hold)[:2] == ["acct-2", "plan signed; pays 1,200"]
    assert from_spreadsheet_safe("'quoted") == "'quoted"  # not a defused formula: kept
    for control in ("\tx", "\rx"):  # what a reason cannot start with, but an id from upstream could
        assert spreadsheet_safe(control) == "'" + control
        assert from_spreadsheet_safe(spreadsheet_safe(control)) == control
