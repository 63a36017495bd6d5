"""The loopback LLM server the benchmarks call: minimal, pre-rendered, in its own process.

It speaks just enough of the OpenAI chat-completions wire format for every contender:
``POST /v1/chat/completions`` answered with a JSON completion, or — with
``"stream": true`` — an SSE stream (``data: {...}`` chunks, a finish chunk, a usage
chunk, ``[DONE]``) in ``Transfer-Encoding: chunked``, one HTTP chunk per event. Every
answer is rendered once at start-up, and requests are recognised by a byte search of
the body, so the server's cost per request or per event is a few writes: the clients,
not the server, set the pace (``bench_server`` measures its ceiling to show it).

``llmnb.testing.FakeLLMServer`` is the fixture for behaviour (faults, recorded
requests); it renders and writes every event separately, and under load its streaming
rate came within reach of raw httpx's, so the benchmarks use this server instead.

``python -m bench._server CHUNKS`` serves until its stdin closes (the runner exited) or
``MAX_LIFETIME_S`` passes, printing its base URL as the first line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

__all__ = ["SHORT_CHUNKS", "SHORT_PROMPT", "STREAM_PROMPT", "LoopbackServer"]

# The prompt that asks for the long stream, and one for a short stream (time to first
# token); any other request gets the one-line answer.
STREAM_PROMPT = "benchmark-stream"
SHORT_PROMPT = "benchmark-short"
SHORT_CHUNKS = 20
CHUNK_CHARS = 4
ANSWER = "Hello from the benchmark server."
MODEL = "fake-model"
EVENTS_PER_WRITE = 32  # HTTP chunks coalesced into one socket write
MAX_LIFETIME_S = 20 * 60


class LoopbackServer:
    """The server child process. ``with LoopbackServer(chunks=5000) as srv: srv.base_url``"""

    def __init__(self, chunks: int, env: dict[str, str] | None = None) -> None:
        self.chunks = chunks
        self.env = env
        self.base_url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> LoopbackServer:
        import select

        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench._server", str(self.chunks)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], 30)
        line = self._proc.stdout.readline().strip() if ready else ""
        if not line.startswith("http://"):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the loopback server did not start (got {line!r})")
        self.base_url = line
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1].split("/", 1)[0])


# -- the answers, rendered once ----------------------------------------------------------


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _completion() -> bytes:
    body = _json(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 8, "total_tokens": 9},
        }
    )
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _stream(chunks: int) -> list[bytes]:
    """The socket writes of one SSE answer with ``chunks`` content chunks. Every chunk
    differs (a hex counter): LiteLLM aborts a stream that repeats the same chunk."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": MODEL}

    def event(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
        choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return b"data: " + _json({**base, "choices": choices, "usage": usage}) + b"\n\n"

    events = [event({"role": "assistant", "content": ""})]
    events += [event({"content": f"{i % 16**CHUNK_CHARS:0{CHUNK_CHARS}x}"}) for i in range(chunks)]
    events.append(event({}, "stop"))
    events.append(
        event({}, usage={"prompt_tokens": 1, "completion_tokens": chunks, "total_tokens": chunks})
    )
    events.append(b"data: [DONE]\n\n")
    framed = [b"%x\r\n%s\r\n" % (len(e), e) for e in events] + [b"0\r\n\r\n"]
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    writes = [head]
    for i in range(0, len(framed), EVENTS_PER_WRITE):
        writes.append(b"".join(framed[i : i + EVENTS_PER_WRITE]))
    return writes


class _Server:
    def __init__(self, chunks: int) -> None:
        self.plain = [_completion()]
        self.long = _stream(chunks)
        self.short = _stream(SHORT_CHUNKS)

    def answer(self, body: bytes) -> list[bytes]:
        if b'"stream": true' not in body and b'"stream":true' not in body:
            return self.plain
        return self.long if STREAM_PROMPT.encode() in body else self.short

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lower = head.lower()
                i = lower.find(b"content-length:")
                n = int(head[i + 15 : head.index(b"\r\n", i)]) if i >= 0 else 0
                body = await reader.readexactly(n) if n else b""
                for data in self.answer(body):
                    writer.write(data)
                    await writer.drain()
                if b"connection: close" in lower:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # the client went away
        finally:
            writer.close()


async def _serve(chunks: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    app = _Server(chunks)
    server = await asyncio.start_server(app.connection, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}/v1", flush=True)

    def watch_stdin() -> None:
        sys.stdin.read()  # returns when the runner closes the pipe or exits
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    with contextlib.suppress(asyncio.TimeoutError):  # lifetime over: stop anyway
        await asyncio.wait_for(stop.wait(), MAX_LIFETIME_S)
    server.close()


def main(argv: Sequence[str]) -> int:
    asyncio.run(_serve(int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
