"""Time is bounded: a total deadline per attempt, Retry-After that cannot stall later
calls, and SSE decoding that stays linear on huge events."""

from __future__ import annotations

import itertools
import random

import pytest

from llmnb._http import SSEDecoder, SSEEvent

# --- SSE: huge events, awkward boundaries -------------------------------------------


def _decode(pieces: list[str]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    out: list[SSEEvent] = []
    for piece in pieces:
        out += decoder.feed(piece)
    return out + decoder.flush()


def _split_at(text: str, cuts: list[int]) -> list[str]:
    edges = [0, *sorted(set(cuts)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(edges) if b > a]


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_a_huge_event_split_anywhere_decodes_whole(eol):
    big = ('{"delta": "é' + "x" * 1021)[:1024] * (8 * 1024)  # 8 MB on one line
    wire = (
        f": keep-alive{eol}event: delta{eol}id: 41{eol}data: {big}{eol}data: tail{eol}{eol}"
        f"data: second{eol}{eol}"
    )
    expected = [SSEEvent(big + "\ntail", "delta", "41"), SSEEvent("second", "message", "41")]
    # Cuts inside "data:", between "\r" and "\n", one character after a line end, and
    # thousands of small pieces through the huge line.
    rng = random.Random(11)
    marks = [i for i, ch in enumerate(wire) if ch in "\r\n:"]
    cuts = [m + d for m in marks for d in (0, 1)] + [rng.randrange(len(wire)) for _ in range(5000)]
    assert _decode(_split_at(wire, cuts)) == expected
    assert _decode([wire]) == expected
    assert _decode([*wire[:200], wire[200:]]) == expected  # one character at a time


def test_a_lone_cr_at_a_piece_end_is_a_line_end_and_its_lf_is_not_a_second():
    # "\r" then "\n" in the next piece is one line end; "\r" then "x" ends the line too.
    assert _decode(["data: a\r", "\ndata: b\r", "\r", "data: c\r", "\n\r\n"]) == [
        SSEEvent("a\nb"),
        SSEEvent("c"),
    ]
    assert _decode(["data: a\r", "\r"]) == [SSEEvent("a")]


def test_an_unterminated_last_line_is_kept_for_flush():
    decoder = SSEDecoder()
    assert decoder.feed("data: par") == [] and decoder.feed("tial") == []
    assert decoder.flush() == [SSEEvent("partial")]
