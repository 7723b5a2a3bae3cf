"""herald.rendering.segments against Twilio's own calculator, the npm package sms-segments-calculator.

A few hundred strings, made deterministically around the segment boundaries, are sent to
tests/oracle/segments.js in one node run; our encoding and segment count must equal the
package's for every one of them. Needs node and `npm ci --prefix tests/oracle`; skipped
otherwise.

The generated strings avoid multi-code-point grapheme clusters (skin-tone modifiers, ZWJ
sequences, flags, combining marks); CLUSTER_CASES puts such clusters on part boundaries, where
both keep a whole cluster in one part.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from herald.rendering.segments import GSM7_BASIC, GSM7_EXTENSION, count_segments

ORACLE_DIR = Path(__file__).resolve().parents[1] / "oracle"
ORACLE_SCRIPT = ORACLE_DIR / "segments.js"
ORACLE_PACKAGE = ORACLE_DIR / "node_modules" / "sms-segments-calculator"
SEED = 20_231_038

BASIC = "".join(sorted(GSM7_BASIC))
EXTENSION = "".join(sorted(GSM7_EXTENSION))
# Supplementary-plane emoji that each form a grapheme cluster of their own (no modifier, ZWJ,
# variation selector or regional indicator), so a cluster is exactly one surrogate pair.
EMOJI = "😀😂🎉🚀💬📅🔥🙂💰📱"
# BMP characters outside the GSM alphabet, including look-alikes of GSM characters.
OTHER_BMP = "êçÈ`’“”—…\u00a0\u2126«»\t"

# Part boundaries: (single-message size, size of each part of a multipart message).
GSM7_SIZES = (160, 153)
UCS2_SIZES = (70, 67)


def _windows(sizes: tuple[int, int], parts: int = 4, radius: int = 3) -> list[int]:
    """Unit totals within ``radius`` of the single-message size and of 2..``parts`` parts."""
    single, per_part = sizes
    centres = [single] + [per_part * k for k in range(2, parts + 1)]
    return sorted({c + d for c in centres for d in range(-radius, radius + 1)})


def _gsm7_text(rng: random.Random, septets: int, extension_share: float) -> str:
    """A GSM-7 string of exactly ``septets`` septets, about ``extension_share`` of them escaped."""
    chars: list[str] = []
    used = 0
    while used < septets:
        if used + 2 <= septets and rng.random() < extension_share:
            chars.append(rng.choice(EXTENSION))
            used += 2
        else:
            chars.append(rng.choice(BASIC))
            used += 1
    return "".join(chars)


def _ucs2_text(rng: random.Random, units: int, weights: dict[str, float]) -> str:
    """A string of exactly ``units`` UTF-16 units with at least one non-GSM character.

    ``weights`` picks between the pools "basic", "extension", "han", "other" and "emoji".
    """
    pools = list(weights)
    chars: list[str] = []
    used = 0
    while used < units:
        pool = rng.choices(pools, weights=[weights[p] for p in pools])[0]
        if pool == "emoji" and used + 2 <= units:
            chars.append(rng.choice(EMOJI))
            used += 2
            continue
        if pool == "basic":
            chars.append(rng.choice(BASIC))
        elif pool == "extension":
            chars.append(rng.choice(EXTENSION))
        elif pool == "other":
            chars.append(rng.choice(OTHER_BMP))
        else:  # "han", and "emoji" when only one unit is left
            chars.append(chr(rng.randrange(0x4E00, 0x9FA6)))
        used += 1
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in chars):
        # Every character so far is one unit, so this keeps the total at `units`.
        chars[rng.randrange(len(chars))] = chr(rng.randrange(0x4E00, 0x9FA6))
    return "".join(chars)


def _fixed_cases() -> list[str]:
    """Single characters of every kind, and hand-made boundary cases."""
    cases = ["", "\r\n" * 80, "\r\n" * 81, "a\r\nb", "€" * 80, "€" * 81, "€" * 69 + "ê"]
    cases += sorted(GSM7_BASIC) + sorted(GSM7_EXTENSION) + list(OTHER_BMP) + list(EMOJI)
    cases += ["\x1b", "\x00", "\x7f", "ñ" * 161, "Ç" * 160, "ç" * 70]
    for ext in EXTENSION:
        cases += ["a" * 152 + ext + "a" * 152, "a" * 151 + ext + "a" * 153, "a" * 159 + ext]
    for emoji in EMOJI[:3]:
        cases += ["中" * 66 + emoji + "中" * 66, "中" * 65 + emoji + "中" * 67]
        cases += [emoji * 35, emoji * 35 + "a", emoji * 67, emoji * 68]
    for n in (70, 71, 134, 135, 201, 202):
        cases += ["中" * n, "a" * (n - 1) + "ê"]
    return cases


def _generated_cases(seed: int = SEED) -> list[str]:
    """Deterministic strings around the GSM-7 and UCS-2 part boundaries."""
    rng = random.Random(seed)
    cases: list[str] = []
    for septets in _windows(GSM7_SIZES):
        for share in (0.0, 0.05, 0.3, 0.9):
            cases.append(_gsm7_text(rng, septets, share))
    ucs2_mixes: list[dict[str, float]] = [
        {"han": 1.0},
        {"han": 3.0, "emoji": 1.0},
        {"emoji": 4.0, "basic": 1.0},
        {"basic": 8.0, "extension": 2.0, "other": 0.2},
        {"basic": 5.0, "extension": 1.0, "han": 1.0, "emoji": 1.0, "other": 1.0},
    ]
    for units in _windows(UCS2_SIZES):
        for weights in ucs2_mixes:
            cases.append(_ucs2_text(rng, units, weights))
    # A surrogate pair or an escape pair placed on the last unit of a part.
    for k in range(1, 4):
        for _ in range(4):
            head = _ucs2_text(rng, 67 * k - 1, {"han": 2.0, "basic": 1.0})
            cases.append(head + rng.choice(EMOJI) + _ucs2_text(rng, rng.randrange(1, 70), {"han": 1.0}))
            head = _gsm7_text(rng, 153 * k - 1, 0.1)
            cases.append(head + rng.choice(EXTENSION) + _gsm7_text(rng, rng.randrange(1, 160), 0.1))
    return cases


def _oracle(texts: list[str]) -> list[dict[str, object]]:
    """Run tests/oracle/segments.js once on ``texts``; skip when the oracle is not installed."""
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "node is not on PATH: install Node.js, then run `npm ci --prefix tests/oracle` "
            "to compare against Twilio's sms-segments-calculator"
        )
    if not ORACLE_PACKAGE.is_dir():
        pytest.skip(
            f"{ORACLE_PACKAGE.relative_to(ORACLE_DIR.parents[1])} is missing: "
            "run `npm ci --prefix tests/oracle` to compare against Twilio's "
            "sms-segments-calculator"
        )
    proc = subprocess.run(
        [node, str(ORACLE_SCRIPT)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"oracle failed ({proc.returncode}):\n{proc.stderr}"
    results: list[dict[str, object]] = json.loads(proc.stdout)
    assert len(results) == len(texts)
    return results


def _preview(text: str, edge: int = 25) -> str:
    """``text`` as a repr, its middle elided when long, with its length."""
    if len(text) <= 2 * edge:
        return repr(text)
    return f"{text[:edge]!r}...{text[-edge:]!r} ({len(text)} chars)"


def test_generated_cases_are_deterministic_and_cover_both_encodings() -> None:
    cases = _fixed_cases() + _generated_cases()
    assert cases == _fixed_cases() + _generated_cases()
    assert len(cases) >= 300
    encodings = {count_segments(text).encoding for text in cases}
    assert encodings == {"GSM-7", "UCS-2"}
    assert max(count_segments(text).segments for text in cases) >= 4


def test_encoding_and_segments_match_twilio_calculator() -> None:
    cases = _fixed_cases() + _generated_cases()
    expected = _oracle(cases)
    mismatches: list[str] = []
    for text, theirs in zip(cases, expected, strict=True):
        ours = count_segments(text)
        if (ours.encoding, ours.segments) != (theirs["encoding"], theirs["segments"]):
            mismatches.append(
                f"{_preview(text)}: ours {ours.encoding}/{ours.segments} "
                f"({ours.units} units), oracle {theirs['encoding']}/{theirs['segments']}"
            )
    assert not mismatches, (
        f"{len(mismatches)} of {len(cases)} strings differ from sms-segments-calculator; "
        "first ones:\n" + "\n".join(mismatches[:10])
    )


CLUSTER_CASES = [
    "还" * 65 + "👍🏽" + "还" * 65,  # a skin-tone modifier across the 67-unit boundary
    "还" * 66 + "e\u0301" + "还" * 66,  # a letter and its combining accent across it
    "a" * 65 + "👍🏽" + "a" * 65,
    "还" * 66 + "🇨🇳" + "还" * 66,  # a flag: two regional indicators
    "还" * 63 + "👨\u200d👩\u200d👧" + "还" * 70,  # a ZWJ family (8 units)
    "a" * 152 + "\r\n" + "b" * 152,  # CR LF across the 153-septet boundary
    "a" * 150 + "e\u0301" * 3 + "é" * 70,
    "👍🏽" * 40,
    "还" * 30 + "👍🏽" * 20 + "e\u0301" * 30,
]


def test_grapheme_clusters_on_a_part_boundary_are_counted_as_twilio_counts_them() -> None:
    expected = _oracle(CLUSTER_CASES)
    for text, theirs in zip(CLUSTER_CASES, expected, strict=True):
        ours = count_segments(text)
        assert (ours.encoding, ours.segments) == (theirs["encoding"], theirs["segments"]), _preview(text)
