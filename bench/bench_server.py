"""The loopback server's own ceiling, measured with raw clients.

If a contender's number came close to the server's, the benchmark would be measuring
the server. ``server_section`` measures the ceiling once at the start, with the
cheapest clients there are (a blocking socket, raw asyncio streams); ``headroom_note``
then compares the contenders with the raw socket client that ran in the same rounds as
them (machine load drifts, so same-round numbers are the fair comparison).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

from bench._context import Context
from bench._report import Section
from bench._server import STREAM_PROMPT

__all__ = ["ceiling", "headroom_note", "server_section"]


def _request(body: dict[str, Any], close: bool = False) -> bytes:
    data = json.dumps(body).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode() + data


def _body_length(head: bytes) -> int:
    lower = head.lower()
    i = lower.index(b"content-length:") + len(b"content-length:")
    return int(head[i : head.index(b"\r\n", i)])


_PLAIN = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _sequential(port: int, n: int) -> float:
    """Median microseconds per request, one keep-alive connection, a blocking socket."""
    req = _request(_PLAIN)
    times: list[float] = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        for i in range(n + 20):
            t0 = time.perf_counter()
            s.sendall(req)
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += f.readline()
            json.loads(f.read(_body_length(head)))
            if i >= 20:  # the first requests warm up both sides
                times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e6


async def _concurrent(port: int, n: int, c: int) -> float:
    """Requests per second with ``c`` raw asyncio connections, ``n`` requests in all."""
    req = _request(_PLAIN)
    per = max(1, n // c)

    async def lane() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(per):
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(_body_length(head))
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(c)))
    return per * c / (time.perf_counter() - t0)


def _stream(port: int) -> tuple[float, int]:
    """SSE events per second reading one long stream from a raw socket (and the count)."""
    body = {**_PLAIN, "stream": True, "stream_options": {"include_usage": True}}
    body["messages"] = [{"role": "user", "content": STREAM_PROMPT}]
    req = _request(body, close=True)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter()
        s.sendall(req)
        data = bytearray()
        while chunk := s.recv(1 << 20):
            data += chunk
        elapsed = time.perf_counter() - t0
    events = data.count(b"data: ")
    return events / elapsed, events


def ceiling(port: int, sequential_n: int, conc_n: int, streams: int) -> dict[str, float]:
    """The server's speed with raw clients: µs/request, requests/s at 64, events/s."""
    seq = _sequential(port, sequential_n)
    conc = asyncio.run(_concurrent(port, conc_n, 64))
    rates = sorted(_stream(port) for _ in range(max(1, streams)))
    rate, events = rates[len(rates) // 2]
    return {"seq_us": seq, "conc_rps": conc, "stream_eps": rate, "stream_events": events}


def server_section(ctx: Context) -> Section:
    size = ctx.size
    section = Section(
        "Loopback server",
        "A minimal OpenAI-format server (`bench/_server.py`: asyncio, HTTP/1.1 keep-alive, "
        "every answer pre-rendered, SSE events sent as chunked HTTP) in its own process on "
        "127.0.0.1, driven by the cheapest clients there are: a blocking socket and raw "
        "asyncio streams. These numbers are the server's ceiling.",
    )
    c = ceiling(ctx.port, size.ceiling_seq, size.ceiling_conc, 3)
    section.data.update(c)
    t = section.table("Server ceiling (raw clients)", ["measure", "value", "unit"])
    t.add("sequential round trip, one connection (median)", c["seq_us"], "µs/request")
    t.add(f"{size.concurrency} connections, raw asyncio client", c["conc_rps"], "requests/s")
    t.add(f"one {c['stream_events']:,}-event SSE stream, raw socket", c["stream_eps"], "events/s")
    return section


def headroom_note(server: Section, sections: list[Section]) -> None:
    """Tell how far below the server's ceiling the contenders ran, using the raw socket
    client measured in the same rounds as them (§2, §3's diagnostics, §4)."""
    by_num = {s.title.split(".", 1)[0]: s for s in sections}
    ceiling = "raw-socket"
    contenders = ("httpx", "openai", "litellm", "llmnb")

    def best(values: dict[str, float], pick: Any) -> tuple[str, float] | None:
        found = [(k, v) for k, v in values.items() if k in contenders]
        return pick(found, key=lambda kv: kv[1]) if found else None

    calls = by_num.get("2")
    med = calls.data.get("median_us", {}) if calls else {}
    fastest = best(med, min)
    if fastest and ceiling in med:
        server.notes.append(
            f"§2, same rounds: the raw socket client took {med[ceiling]:,.0f} µs per call, "
            f"the fastest contender ({fastest[0]}) {fastest[1]:,.0f} µs — "
            f"{fastest[1] / med[ceiling]:.1f}× the server's own round trip."
        )
    conc = by_num.get("3")
    diag = conc.data.get("diagnostics", {}) if conc else {}
    if "httpx" in diag and ceiling in diag:
        server.notes.append(
            f"§3, same rounds: the raw asyncio client reached {diag[ceiling]:,.0f} requests/s "
            f"at 64 in flight, raw httpx.AsyncClient {diag['httpx']:,.0f} "
            f"({diag['httpx'] / diag[ceiling]:.0%} of it)."
        )
    stream = by_num.get("4")
    stats = stream.data.get("stats", {}) if stream else {}
    fastest = best({k: v["cps"] for k, v in stats.items()}, max)
    if fastest and ceiling in stats:
        server.notes.append(
            f"§4, same rounds: the raw socket client read {stats[ceiling]['cps']:,.0f} "
            f"chunks/s, the fastest contender ({fastest[0]}) {fastest[1]:,.0f} "
            f"({fastest[1] / stats[ceiling]['cps']:.0%} of it)."
        )
