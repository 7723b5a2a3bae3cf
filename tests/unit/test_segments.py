"""Behaviour of herald.rendering.segments: encoding choice, unit costs and segment boundaries."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from herald.rendering.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SegmentCount,
    TooManySegments,
    check_segments,
    count_segments,
)

EXTENSION_CHARS = "\f^{}\\[~]|€"
EMOJI = "😀"  # U+1F600: one code point, two UTF-16 code units
HAN = "中"  # BMP, not GSM: one UTF-16 code unit


# --- empty body ---------------------------------------------------------------------------


def test_empty_text_is_one_gsm_segment_with_no_characters() -> None:
    assert count_segments("") == SegmentCount(encoding="GSM-7", segments=1, characters=0, units=0, non_gsm=())


# --- the alphabets ------------------------------------------------------------------------


def test_basic_alphabet_has_127_characters_and_extension_has_10() -> None:
    assert len(GSM7_BASIC) == 127
    assert set(EXTENSION_CHARS) == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize("ch", sorted(GSM7_BASIC))
def test_every_basic_character_is_one_septet(ch: str) -> None:
    count = count_segments(ch)
    assert (count.encoding, count.units, count.non_gsm) == ("GSM-7", 1, ())


@pytest.mark.parametrize("ch", EXTENSION_CHARS)
def test_every_extension_character_is_two_septets(ch: str) -> None:
    count = count_segments(ch)
    assert (count.encoding, count.units, count.characters) == ("GSM-7", 2, 1)


@pytest.mark.parametrize("ch", EXTENSION_CHARS)
def test_extension_character_pushes_159_septets_past_a_single_message(ch: str) -> None:
    assert count_segments("a" * 158 + ch).segments == 1  # 160 septets
    assert count_segments("a" * 159 + ch).segments == 2  # 161 septets


@pytest.mark.parametrize("ch", ["é", "¥", "Ç", "Ø", "Δ", "Ω", "ß", "ñ", "¿", "§", "@", "_", "\r", "\n"])
def test_characters_in_the_gsm_alphabet_keep_gsm7(ch: str) -> None:
    assert count_segments("Pay " + ch * 3).encoding == "GSM-7"


@pytest.mark.parametrize(
    "ch",
    [
        "ê",  # é is GSM, ê is not
        "—",  # em dash
        "’",  # curly apostrophe
        "ç",  # only the capital Ç is GSM
        "`",  # ASCII backtick is not in the alphabet
        "\t",
        "\x1b",  # the escape itself is not a character
        "\u00a0",  # no-break space
        "\u2126",  # OHM SIGN, which looks like the GSM Ω (U+03A9)
        HAN,
        EMOJI,
    ],
)
def test_one_non_gsm_character_switches_the_whole_message_to_ucs2(ch: str) -> None:
    count = count_segments("a" * 100 + ch)
    assert count.encoding == "UCS-2"
    assert count.non_gsm == (ch,)
    # 101+ UTF-16 units is two UCS-2 segments, where GSM-7 would have needed one.
    assert count.segments == 2


# --- GSM-7 boundaries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (153 * 2, 2), (153 * 2 + 1, 3), (153 * 3, 3), (153 * 3 + 1, 4)],
)
def test_gsm7_segment_boundaries(length: int, segments: int) -> None:
    count = count_segments("x" * length)
    assert count == SegmentCount(
        encoding="GSM-7", segments=segments, characters=length, units=length, non_gsm=()
    )


def test_80_euro_signs_are_160_septets_in_one_segment() -> None:
    count = count_segments("€" * 80)
    assert (count.encoding, count.characters, count.units, count.segments) == (
        "GSM-7",
        80,
        160,
        1,
    )


def test_81_euro_signs_are_162_septets_in_two_segments() -> None:
    count = count_segments("€" * 81)
    assert (count.units, count.segments) == (162, 2)


def test_escape_pair_is_not_split_across_parts() -> None:
    # 306 septets would fit 2 x 153, but the € would straddle septets 153 and 154,
    # so it moves to part 2 and its last "a" spills into a third part.
    text = "a" * 152 + "€" + "a" * 152
    count = count_segments(text)
    assert count.units == 306
    assert count.segments == 3


def test_escape_pair_that_ends_exactly_on_a_part_boundary_stays() -> None:
    text = "a" * 151 + "€" + "a" * 153  # part 1: 151 + 2 = 153 septets; part 2: 153
    count = count_segments(text)
    assert count.units == 306
    assert count.segments == 2


def test_escape_pairs_at_two_boundaries_each_cost_a_septet() -> None:
    # 459 septets would fit 3 x 153, but two "{" land on part boundaries:
    # part 1: 152 a | part 2: { + 150 a (152) | part 3: { + 151 a (153) | part 4: a a
    text = "a" * 152 + "{" + "a" * 150 + "{" + "a" * 153
    count = count_segments(text)
    assert count.units == 153 * 3
    assert count.segments == 4


def test_crlf_is_two_septets() -> None:
    count = count_segments("\r\n" * 80)
    assert (count.encoding, count.units, count.segments) == ("GSM-7", 160, 1)


# --- UCS-2 boundaries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (67 * 2, 2), (67 * 2 + 1, 3), (67 * 3, 3), (67 * 3 + 1, 4)],
)
def test_ucs2_segment_boundaries(length: int, segments: int) -> None:
    count = count_segments(HAN * length)
    assert count == SegmentCount(
        encoding="UCS-2", segments=segments, characters=length, units=length, non_gsm=(HAN,)
    )


def test_emoji_is_two_utf16_units() -> None:
    count = count_segments(EMOJI)
    assert (count.encoding, count.characters, count.units) == ("UCS-2", 1, 2)


def test_35_emoji_fill_one_segment_and_one_more_character_makes_two() -> None:
    assert count_segments(EMOJI * 35).segments == 1  # 70 units
    count = count_segments(EMOJI * 35 + "a")
    assert (count.characters, count.units, count.segments) == (36, 71, 2)


def test_surrogate_pair_is_not_split_across_parts() -> None:
    # 134 units would fit 2 x 67, but the emoji would straddle units 67 and 68,
    # so it moves to part 2 and the last character spills into a third part.
    text = HAN * 66 + EMOJI + HAN * 66
    count = count_segments(text)
    assert count.units == 134
    assert count.segments == 3


def test_surrogate_pair_that_ends_exactly_on_a_part_boundary_stays() -> None:
    text = HAN * 65 + EMOJI + HAN * 67  # part 1: 65 + 2 = 67 units; part 2: 67
    count = count_segments(text)
    assert count.units == 134
    assert count.segments == 2


def test_gsm_extension_characters_cost_one_unit_in_ucs2() -> None:
    # 69 x "€" is 138 septets in GSM-7, but the "ê" makes it UCS-2 where each "€" is 1 unit.
    count = count_segments("€" * 69 + "ê")
    assert (count.encoding, count.units, count.segments) == ("UCS-2", 70, 1)


def test_a_grapheme_cluster_on_a_part_boundary_moves_whole_to_the_next_part() -> None:
    # 👍🏽 is two code points (two surrogate pairs) but one cluster. The thumbs-up would end part 1
    # exactly; the whole cluster starts part 2 instead, and the rest needs a third part.
    text = "a" * 65 + "👍🏽" + "a" * 65
    count = count_segments(text)
    assert (count.units, count.segments) == (134, 3)
    assert count_segments("a" * 63 + "👍🏽" + "a" * 67).segments == 2  # ends part 1 exactly


def test_a_cluster_longer_than_a_part_is_split_on_its_characters() -> None:
    # 40 combining marks on one letter: one 41-unit cluster would fit; 80 do not fit any part
    assert count_segments("e" + "\u0301" * 80).segments == 2
    assert count_segments("还" * 40 + "e" + "\u0301" * 40).segments == 2


# --- non_gsm ------------------------------------------------------------------------------


def test_non_gsm_lists_distinct_characters_in_order_of_first_appearance() -> None:
    count = count_segments("Hi ê—aê" + EMOJI + "—" + HAN + EMOJI + "€")
    assert count.non_gsm == ("ê", "—", EMOJI, HAN)


def test_non_gsm_is_empty_for_gsm7() -> None:
    assert count_segments("Balance: €12 [due] {soon} ~ ^ | \\").non_gsm == ()


def test_characters_counts_code_points_and_units_counts_utf16() -> None:
    count = count_segments("a" + EMOJI + HAN)
    assert (count.characters, count.units) == (3, 4)


def test_segment_count_is_frozen() -> None:
    count = count_segments("hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        count.segments = 0  # type: ignore[misc]


# --- check_segments -----------------------------------------------------------------------


def test_check_segments_returns_the_count_within_the_limit() -> None:
    assert check_segments("x" * 306, limit=2) == count_segments("x" * 306)


def test_check_segments_accepts_exactly_the_limit() -> None:
    assert check_segments(HAN * 70, limit=1).segments == 1


def test_check_segments_raises_one_past_the_limit() -> None:
    with pytest.raises(TooManySegments) as excinfo:
        check_segments(HAN * 71, limit=1)
    assert excinfo.value.limit == 1
    assert excinfo.value.count == count_segments(HAN * 71)


def test_too_many_segments_message_names_segments_encoding_characters_and_limit() -> None:
    text = HAN * 412  # 412 units: 6 x 67 = 402, so 7 parts
    with pytest.raises(TooManySegments) as excinfo:
        check_segments(text, limit=5)
    assert str(excinfo.value) == "SMS is 7 segments (UCS-2, 412 characters); the limit is 5"
    assert excinfo.value.count.segments == 7


def test_too_many_segments_message_for_gsm7() -> None:
    message = r"^SMS is 2 segments \(GSM-7, 81 characters\); the limit is 1$"
    with pytest.raises(TooManySegments, match=message):
        check_segments("€" * 81, limit=1)


def test_too_many_segments_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="the limit is 1"):
        check_segments("x" * 161, limit=1)


def test_too_many_segments_survives_pickling() -> None:
    with pytest.raises(TooManySegments) as excinfo:
        check_segments("x" * 161, limit=1)
    restored = pickle.loads(pickle.dumps(excinfo.value))
    assert isinstance(restored, TooManySegments)
    assert (restored.count, restored.limit, str(restored)) == (
        excinfo.value.count,
        1,
        str(excinfo.value),
    )


@pytest.mark.parametrize("limit", [0, -1])
def test_check_segments_rejects_a_limit_below_one(limit: int) -> None:
    with pytest.raises(ValueError, match="limit must be at least 1") as excinfo:
        check_segments("", limit=limit)
    assert not isinstance(excinfo.value, TooManySegments)
