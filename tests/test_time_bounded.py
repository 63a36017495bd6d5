"""Time is bounded: a total deadline per attempt, Retry-After that cannot stall later
calls, and SSE decoding that stays linear on huge events."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from raw_server import RawServer, read_request

import llmnb
from llmnb import errors
from llmnb._http import SSEDecoder, SSEEvent
from llmnb.middleware import ManualClock, RetryPolicy
from llmnb.testing import FakeLLMServer, Fault

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


# --- Retry-After: beyond the cap, absurd, not a number --------------------------------

KEY = "sk-only-key-0123456789"


@pytest.fixture
def capped(
    server: FakeLLMServer,
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., tuple[llmnb.LLMClient, ManualClock]]:
    """A client on a ManualClock: every wait the limiter or pool asks for is counted."""

    def make(**profile: Any) -> tuple[llmnb.LLMClient, ManualClock]:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        prof = {"type": "openai", "model": "gpt-4o", "base_url": server.base_url, **profile}
        write_settings({"llm": {"active_provider": "p", "providers": {"p": prof}}})
        clock = ManualClock()
        client = llmnb.LLMManager.from_settings(clock=clock).get_client()
        client.retry = RetryPolicy(sleep=lambda s: None, asleep=_no_wait)
        return client, clock

    return make


async def _no_wait(seconds: float) -> None:
    return None


def _retry_after(value: str) -> Fault:
    return Fault.status(429, headers={"Retry-After": value})


def test_a_retry_after_beyond_the_cap_leaves_no_later_call_sleeping_in_the_limiter(capped, server):
    client, clock = capped(rate_limits={"requests_per_minute": 600})
    server.script(_retry_after("3600"))
    with pytest.raises(errors.RateLimitError) as first:
        client.complete("hello")
    assert first.value.retry_after == 3600 and len(server.requests) == 1  # raised at once
    # The next call does not sleep an hour in the limiter: it goes to the server, which
    # would say again if it still meant it.
    assert client.complete("hello").content == "Hi there!"
    assert clock.slept == 0 and len(server.requests) == 2


def test_a_retry_after_within_the_cap_still_makes_later_calls_wait(capped, server):
    client, clock = capped(rate_limits={"requests_per_minute": 600})
    client.retry = RetryPolicy(max_retries=0)
    server.script(_retry_after("30"))
    with pytest.raises(errors.RateLimitError):
        client.complete("hello")
    assert client.complete("hello").content == "Hi there!"
    assert clock.slept == pytest.approx(30, abs=0.5)  # waited in the limiter, not a 429


def test_a_retry_after_beyond_the_cap_leaves_no_later_call_sleeping_in_the_key_pool(capped, server):
    client, clock = capped(max_connections_per_key=1)
    server.script(_retry_after("3600"))
    with pytest.raises(errors.RateLimitError):
        client.complete("hello")
    assert client.complete("hello").content == "Hi there!"
    assert clock.slept == 0  # not acquire_timeout (30 s) waiting for a key cooling an hour


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e400", "nan", "-5", "1e308", "99999999999"])
@pytest.mark.parametrize("middleware", ["limiter", "pool"])
def test_absurd_retry_after_values_never_break_later_calls(capped, server, value, middleware):
    settings: dict[str, Any] = (
        {"rate_limits": {"requests_per_minute": 600}}
        if middleware == "limiter"
        else {"api_keys": [KEY, "sk-second-key-987654321"], "max_connections_per_key": 1}
    )
    client, clock = capped(**settings)
    client.retry = RetryPolicy(max_retries=0)
    server.script(_retry_after(value), _retry_after(value))  # a 429 for each key
    with pytest.raises(errors.RateLimitError):
        client.complete("hello")
    # Later calls either go through or are told at once; none overflows or sleeps long.
    for _ in range(3):
        with contextlib.suppress(errors.RateLimitError, errors.PoolExhaustedError):
            client.complete("hello")
    assert math.isfinite(clock.slept) and clock.slept <= 60
    assert client.complete("hello", model="gpt-4o").content  # the profile still works


# --- timeout: a total deadline for one attempt ------------------------------------------

DRIP = 0.4  # seconds between bytes: each read succeeds long before any read timeout
MARGIN = 1.5  # a bound on how late the deadline may fire, not a speed assertion


def _dripper(head: bytes, body: bytes, *, drip_head: bool = False) -> Callable[[Any], None]:
    """A server that sends ``head`` (at once, or a byte at a time) then ``body`` one byte
    every DRIP seconds."""

    def handle(sock: Any) -> None:
        read_request(sock)
        if drip_head:
            slow, fast = head, b""
        else:
            slow, fast = b"", head
        sock.sendall(fast)
        for i in range(len(slow + body)):
            sock.sendall((slow + body)[i : i + 1])
            time.sleep(DRIP)

    return handle


_JSON_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n"
_SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"


@pytest.fixture
def drip_client(
    write_settings: Callable[[dict[str, Any]], Any], monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], llmnb.LLMClient]:
    def make(base_url: str) -> llmnb.LLMClient:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        prof = {"type": "openai", "model": "gpt-4o", "base_url": base_url, "max_retries": 0}
        write_settings({"llm": {"active_provider": "p", "providers": {"p": prof}}})
        return llmnb.create_llm_client_from_profile()

    return make


def _ends_in_time(run: Callable[[], Any], timeout: float) -> float:
    started = time.monotonic()
    with pytest.raises(errors.LLMTimeoutError):
        run()
    took = time.monotonic() - started
    assert took < timeout + MARGIN, f"timeout={timeout} but the call lasted {took:.1f}s"
    return took


@pytest.mark.parametrize("drip_head", [False, True], ids=["body", "headers"])
def test_a_dripping_server_cannot_keep_complete_alive_past_its_timeout(drip_client, drip_head):
    handler = _dripper(_JSON_HEAD, b'{"choices": [' + b" " * 380, drip_head=drip_head)
    with RawServer(handler) as srv:
        client = drip_client(srv.base_url)
        took = _ends_in_time(lambda: client.complete("hello", timeout=2), 2)
    assert took >= 1.9  # the deadline, not an early failure


@pytest.mark.parametrize("drip_head", [False, True], ids=["body", "headers"])
def test_a_dripping_server_cannot_keep_acomplete_alive_past_its_timeout(drip_client, drip_head):
    handler = _dripper(_JSON_HEAD, b'{"choices": [' + b" " * 380, drip_head=drip_head)
    with RawServer(handler) as srv:
        client = drip_client(srv.base_url)

        async def run() -> None:
            try:
                await client.acomplete("hello", timeout=2)
            finally:
                await client.aclose()

        _ends_in_time(lambda: asyncio.run(run()), 2)


def test_a_stream_whose_first_event_never_completes_ends_at_its_timeout(drip_client):
    handler = _dripper(_SSE_HEAD, b'data: {"choices": [' + b" " * 400)
    with RawServer(handler) as srv:
        client = drip_client(srv.base_url)
        _ends_in_time(lambda: client.stream("hello", timeout=2).text(), 2)

        async def run() -> None:
            try:
                await client.astream("hello", timeout=2).text()
            finally:
                await client.aclose()

        _ends_in_time(lambda: asyncio.run(run()), 2)


def test_a_stream_that_keeps_sending_is_not_cut_by_the_timeout(drip_client):
    """After the first event, ``timeout`` bounds each wait, not the whole answer."""
    event = (
        'data: {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o", '
        '"choices": [{"index": 0, "delta": {"content": "ab"}, "finish_reason": null}]}\n\n'
    )
    done = "data: [DONE]\n\n"

    def handle(sock: Any) -> None:
        read_request(sock)
        sock.sendall(_SSE_HEAD)
        for _ in range(6):  # 6 pieces, 0.4 s apart: 2.4 s in all, past timeout=1.5
            sock.sendall(event.encode())
            time.sleep(DRIP)
        sock.sendall(done.encode())

    with RawServer(handle) as srv:
        client = drip_client(srv.base_url)
        assert client.stream("hello", timeout=1.5).text() == "ab" * 6
