"""Streams release what they hold the moment the caller stops reading.

A profile with one key and ``max_connections_per_key: 1``: while a stream holds the key
no other call can start. Stopping a stream — ``break``, a KeyboardInterrupt in the
loop, cancelling the task — must give the key back and write the ``cancelled`` row at
once, with the cycle collector switched off to prove nothing waits for it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from raw_server import RawServer, read_request

import llmnb
from llmnb.testing import Fault
from llmnb.usage import UsageTracker

ROOT = Path(__file__).resolve().parents[1]
ANSWER = "One two three four five six seven eight nine ten."


@pytest.fixture
def no_gc() -> Iterator[None]:
    """The cycle collector off: a lease freed only by gc.collect() stays held."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@pytest.fixture
def one_key(
    write_settings: Callable[[dict[str, Any]], Any], monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], llmnb.LLMClient]:
    """A client whose profile has one key and one connection for it."""

    def make(base_url: str) -> llmnb.LLMClient:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-only-key-0123456789")
        profile = {
            "type": "openai",
            "model": "gpt-4o",
            "base_url": base_url,
            "max_connections_per_key": 1,
            "acquire_timeout": 1.0,  # a held key fails the next call within a second
            "max_retries": 0,
        }
        write_settings({"llm": {"active_provider": "p", "providers": {"p": profile}}})
        return llmnb.create_llm_client_from_profile()

    return make


def statuses(tracker: UsageTracker) -> list[str]:
    return [r.status for r in tracker.records]


def test_break_out_of_stream_releases_the_key_and_writes_the_row_at_once(
    one_key, server, tracker, no_gc
):
    server.script(Fault.reply(ANSWER))
    client = one_key(server.base_url)
    for _piece in client.stream("hello"):
        break
    assert statuses(tracker) == ["cancelled"]
    assert tracker.records[0].completion_tokens >= 1  # the piece that arrived is billed
    assert client.complete("hello").content == "Hi there!"  # the key is free again
    assert statuses(tracker) == ["cancelled", "ok"]


def test_keyboard_interrupt_in_the_loop_releases_the_key(one_key, server, tracker, no_gc):
    server.script(Fault.reply(ANSWER))
    client = one_key(server.base_url)
    with pytest.raises(KeyboardInterrupt):
        for _piece in client.stream("hello"):
            raise KeyboardInterrupt
    assert statuses(tracker) == ["cancelled"]
    assert client.complete("hello").content == "Hi there!"


def test_a_stream_used_as_a_context_manager_is_closed_at_the_end_of_the_block(
    one_key, server, tracker, no_gc
):
    server.script(Fault.reply(ANSWER))
    client = one_key(server.base_url)
    with client.stream("hello") as stream:
        first = next(stream)
    assert first and statuses(tracker) == ["cancelled"]
    assert client.complete("hello").content == "Hi there!"


def test_async_break_releases_the_key_and_writes_the_row_at_once(one_key, server, tracker, no_gc):
    server.script(Fault.reply(ANSWER))
    client = one_key(server.base_url)

    async def run() -> tuple[list[str], str]:
        async for _piece in client.astream("hello"):
            break
        seen = statuses(tracker)  # before any await: nothing left to the event loop
        answer = (await client.acomplete("hello")).content
        await client.aclose()
        return seen, answer

    seen, answer = asyncio.run(run())
    assert seen == ["cancelled"] and answer == "Hi there!"


def test_async_context_manager_closes_the_stream(one_key, server, tracker, no_gc):
    server.script(Fault.reply(ANSWER))
    client = one_key(server.base_url)

    async def run() -> str:
        async with client.astream("hello") as stream:
            await stream.__anext__()
        assert statuses(tracker) == ["cancelled"]
        return (await client.acomplete("hello")).content

    assert asyncio.run(run()) == "Hi there!"


def test_cancelling_the_consumer_task_releases_the_key(one_key, server, tracker, no_gc):
    server.script(Fault.reply(ANSWER))
    client = one_key(server.base_url)

    async def run() -> tuple[list[str], str]:
        got_one = asyncio.Event()

        async def consume() -> None:
            async for _piece in client.astream("hello"):
                got_one.set()
                await asyncio.sleep(30)  # the user's slow work between pieces

        task = asyncio.create_task(consume())
        await got_one.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        seen = statuses(tracker)
        answer = (await client.acomplete("hello")).content
        return seen, answer

    seen, answer = asyncio.run(run())
    assert seen == ["cancelled"] and answer == "Hi there!"


def _one_piece_then_stall(sock: socket.socket) -> None:
    """An event stream that sends one piece and then nothing until the test ends."""
    read_request(sock)
    event = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
    }
    sock.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        + f"data: {json.dumps(event)}\n\n".encode()
    )
    while sock.recv(1024):  # until the client hangs up
        pass


def test_cancelling_a_task_waiting_for_the_next_piece_releases_the_key(
    one_key, server, tracker, no_gc
):
    with RawServer(_one_piece_then_stall) as stalled:
        stalling = one_key(stalled.base_url)

        async def run() -> list[str]:
            got_one = asyncio.Event()

            async def consume() -> None:
                async for _piece in stalling.astream("hello"):
                    got_one.set()

            task = asyncio.create_task(consume())
            await got_one.wait()
            await asyncio.sleep(0.05)  # the task is now waiting inside the stream
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            seen = statuses(tracker)
            await stalling.aclose()
            return seen

        seen = asyncio.run(run())
    assert seen == ["cancelled"]
    assert tracker.records[0].completion_tokens >= 1
    pool = next(m for m in stalling.middleware if type(m).__name__ == "KeyPool")
    assert pool.status()["in_flight"] == 0


def test_stopped_async_streams_leave_no_noise_on_stderr(tmp_path, server):
    """Break, a cancelled task and aclose(), then asyncio.run ends: nothing printed."""
    server.script(*(Fault.reply(ANSWER) for _ in range(4)))
    code = textwrap.dedent(
        f"""
        import asyncio, gc, os
        gc.disable()
        os.environ["OPENAI_API_KEY"] = "sk-only-key-0123456789"
        from llmnb.client import LLMClient
        from llmnb.providers.openai_compat import OpenAIProvider
        from llmnb.usage import UsageTracker, set_tracker

        tracker = UsageTracker()
        set_tracker(tracker)
        profile = {{"type": "openai", "model": "gpt-4o", "base_url": {server.base_url!r}}}
        client = LLMClient(OpenAIProvider("p", profile, "gpt-4o"))

        async def main():
            async for _ in client.astream("hello"):
                break
            async def consume():
                async for _ in client.astream("hello"):
                    await asyncio.sleep(30)
            task = asyncio.create_task(consume())
            await asyncio.sleep(0.3)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            stream = client.astream("hello")
            await stream.__anext__()
            await stream.aclose()

        asyncio.run(main())
        print(sorted(r.status for r in tracker.records))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    noise = [
        line
        for line in done.stderr.splitlines()
        if "genai-prices" not in line  # the optional pricing package's one-line notice
    ]
    assert noise == [], done.stderr
    assert done.stdout.strip() == "['cancelled', 'cancelled', 'cancelled']"
