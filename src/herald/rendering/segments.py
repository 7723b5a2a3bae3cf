"""Count the SMS segments a message body is billed as.

Carriers (and Twilio) bill an SMS per *segment*. The rules, from 3GPP TS 23.038 / 23.040:

* If every character of the body is in the GSM 03.38 default alphabet (:data:`GSM7_BASIC`) or
  its extension table (:data:`GSM7_EXTENSION`), the body is sent as **GSM-7**. Basic characters
  cost one septet; extension characters are sent as an escape (0x1B) plus a septet, so they
  cost two. One message holds 160 septets. A longer body is split into parts of at most 153
  septets (the concatenation header takes the rest), and an escape pair is never split between
  two parts: an extension character that does not fit in a part starts the next one.
* Otherwise the whole body is sent as **UCS-2**, counted in UTF-16 code units: one per character
  of the Basic Multilingual Plane (GSM characters, extension ones included, cost one unit here),
  two for a character outside it such as most emoji. One message holds 70 units; a longer body
  is split into parts of at most 67 units, and a surrogate pair is never split between parts.

A UCS-2 part never splits a grapheme cluster, as Twilio's ``sms-segments-calculator`` counts
(and Twilio bills): a cluster of several code points (an emoji with a skin-tone modifier, a ZWJ
sequence, a flag, a letter plus a combining mark) that does not fit in what is left of a
part starts the next one. Splitting on code units alone would count one segment fewer for such a
cluster on a part boundary: under-charging the rate limiter and letting a message past
``HERALD_SMS_MAX_SEGMENTS``. Only a cluster longer than a whole part is split (on characters).
GSM-7 text is split on characters (CR LF may straddle two parts, as Twilio counts it), and so is
UCS-2 text with no character that can join a cluster (most: Chinese, Latin letters, plain emoji),
without segmenting it.

An empty body counts as one GSM-7 segment with no characters: that is what a carrier bills when
an empty message is sent.

This module only counts. It never replaces or transliterates a character (no "smart encoding"):
a curly quote or an em dash makes the whole message UCS-2, and :attr:`SegmentCount.non_gsm`
names the characters that did so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import regex

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "GSM7_MULTIPART_SEPTETS",
    "GSM7_SINGLE_SEPTETS",
    "UCS2_MULTIPART_UNITS",
    "UCS2_SINGLE_UNITS",
    "Encoding",
    "SegmentCount",
    "TooManySegments",
    "check_segments",
    "count_segments",
]

Encoding = Literal["GSM-7", "UCS-2"]

#: The GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1) in code order 0x00-0x7F, without the
#: escape 0x1B, which is not a character of its own. 0x09 is the capital "Ç" (U+00C7); the small
#: "ç" is not in the alphabet.
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00-0x0F
    "Δ_ΦΓΛΩΠΨΣΘΞ"  # 0x10-0x1A (Greek capitals, U+0393-U+03A9)
    "ÆæßÉ"  # 0x1C-0x1F
    " !\"#¤%&'()*+,-./"  # 0x20-0x2F
    "0123456789:;<=>?"  # 0x30-0x3F
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"  # 0x40-0x5F
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"  # 0x60-0x7F
)

#: The GSM 03.38 extension table (3GPP TS 23.038 §6.2.1.1): each is sent as 0x1B plus a septet.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

#: Septets in a single, unconcatenated GSM-7 message.
GSM7_SINGLE_SEPTETS = 160
#: Septets in each part of a concatenated GSM-7 message.
GSM7_MULTIPART_SEPTETS = 153
#: UTF-16 code units in a single, unconcatenated UCS-2 message.
UCS2_SINGLE_UNITS = 70
#: UTF-16 code units in each part of a concatenated UCS-2 message.
UCS2_MULTIPART_UNITS = 67

_BMP_MAX = 0xFFFF
_CLUSTER = regex.compile(r"\X")
"""One extended grapheme cluster (Unicode UAX #29, as the ``regex`` module implements it)."""
_JOINERS = regex.compile(r"[^\p{Grapheme_Cluster_Break=Other}\n]")
"""A character that can be part of a cluster of several characters (CR, a combining mark, a
modifier, ZWJ, a regional indicator, a Hangul jamo...): without one, each character is a
cluster."""


@dataclass(frozen=True)
class SegmentCount:
    """How a message body is encoded and how many segments it is billed as.

    Attributes:
        encoding: ``"GSM-7"`` when every character is in the GSM 03.38 alphabet or its extension
            table, ``"UCS-2"`` otherwise.
        segments: Segments the body is billed as; at least 1, even for an empty body.
        characters: ``len(text)``, i.e. Unicode code points.
        units: Septets for GSM-7 (extension characters count 2), UTF-16 code units for UCS-2
            (characters outside the Basic Multilingual Plane count 2).
        non_gsm: The distinct characters that forced UCS-2, in order of first appearance; empty
            for GSM-7.
    """

    encoding: Encoding
    segments: int
    characters: int
    units: int
    non_gsm: tuple[str, ...]


def count_segments(text: str) -> SegmentCount:
    """Count the segments ``text`` is billed as when sent as one SMS.

    Args:
        text: The message body, exactly as it will be sent.

    Returns:
        The encoding, segment count and sizes of ``text``. An empty body is one GSM-7 segment
        with 0 characters and 0 units.
    """
    non_gsm = tuple(dict.fromkeys(ch for ch in text if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION))
    encoding: Encoding
    if non_gsm:
        encoding = "UCS-2"
        costs = [2 if ord(ch) > _BMP_MAX else 1 for ch in text]
        single, per_part = UCS2_SINGLE_UNITS, UCS2_MULTIPART_UNITS
    else:
        encoding = "GSM-7"
        costs = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        single, per_part = GSM7_SINGLE_SEPTETS, GSM7_MULTIPART_SEPTETS

    units = sum(costs)
    if units <= single:
        segments = 1
    elif encoding == "GSM-7" or _JOINERS.search(text) is None:  # each character stands alone
        segments = _count_parts(costs, per_part)
    else:
        segments = _count_parts(_cluster_costs(text, costs, per_part), per_part)
    return SegmentCount(
        encoding=encoding,
        segments=segments,
        characters=len(text),
        units=units,
        non_gsm=non_gsm,
    )


def _cluster_costs(text: str, costs: list[int], capacity: int) -> list[int]:
    """The units of each grapheme cluster of ``text`` (``costs`` are its characters' units);
    a cluster longer than ``capacity`` counts as its characters, which must then be split."""
    out: list[int] = []
    position = 0
    for cluster in _CLUSTER.findall(text):
        own = costs[position : position + len(cluster)]
        position += len(cluster)
        total = sum(own)
        if total > capacity:
            out.extend(own)
        else:
            out.append(total)
    return out


def _count_parts(costs: Iterable[int], capacity: int) -> int:
    """Fill parts of ``capacity`` units in order, never splitting one item's units.

    Each cost is the units of one character (an escape pair or a surrogate pair costs 2) or of
    one grapheme cluster; an item that does not fit in what is left of the current part starts
    the next part.
    """
    parts = 1
    used = 0
    for cost in costs:
        if used + cost > capacity:
            parts += 1
            used = 0
        used += cost
    return parts


class TooManySegments(ValueError):
    """A message body is billed as more segments than allowed.

    Attributes:
        count: The :class:`SegmentCount` of the rejected body.
        limit: The largest number of segments that was allowed.
    """

    def __init__(self, count: SegmentCount, limit: int) -> None:
        """Describe ``count`` exceeding ``limit`` in the exception message."""
        self.count = count
        self.limit = limit
        segments = _plural(count.segments, "segment")
        characters = _plural(count.characters, "character")
        super().__init__(f"SMS is {segments} ({count.encoding}, {characters}); the limit is {limit}")

    def __reduce__(self) -> tuple[type[TooManySegments], tuple[SegmentCount, int]]:
        """Pickle with the constructor's own arguments, so the exception survives a round trip."""
        return (type(self), (self.count, self.limit))


def _plural(n: int, noun: str) -> str:
    """Return ``"1 noun"`` or ``"n nouns"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def check_segments(text: str, limit: int) -> SegmentCount:
    """Count the segments of ``text`` and reject it if there are more than ``limit``.

    Args:
        text: The message body, exactly as it will be sent.
        limit: The largest number of segments allowed; at least 1, since every body, even an
            empty one, is at least one segment.

    Returns:
        The :class:`SegmentCount` of ``text`` when it is within ``limit``.

    Raises:
        TooManySegments: ``text`` is more than ``limit`` segments.
        ValueError: ``limit`` is less than 1.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1 segment, got {limit}")
    count = count_segments(text)
    if count.segments > limit:
        raise TooManySegments(count, limit)
    return count
