"""The ways of calling an LLM that the benchmarks compare, behind one small interface.

Each contender sends the same request (``MESSAGES`` to ``MODEL`` on the loopback
server) the way its documentation shows, and returns the answer's text; streams yield
the text pieces. A contender whose package is missing is reported as not installed,
never replaced by something else.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONTENDERS",
    "DIAGNOSTICS",
    "MESSAGES",
    "MODEL",
    "Adapter",
    "Contender",
    "make_adapter",
]

MODEL = "fake-model"
MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "hi"}]
API_KEY = "sk-bench-loopback-only"


@dataclass(frozen=True)
class Contender:
    """``key`` selects the adapter; ``module`` must be importable for it to run."""

    key: str
    label: str
    module: str
    dist: str
    note: str = ""

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


CONTENDERS: dict[str, Contender] = {
    c.key: c
    for c in (
        Contender("httpx", "raw httpx", "httpx", "httpx", "httpx.Client.post + json.loads"),
        Contender("openai", "OpenAI SDK", "openai", "openai", "client.chat.completions.create"),
        Contender("litellm", "LiteLLM", "litellm", "litellm", "litellm.completion"),
        Contender(
            "llmnb", "llmnb", "llmnb", "llmnb", "client.complete (on httpx2), SQLite usage store"
        ),
    )
}

# Variants that explain a number rather than compete.
DIAGNOSTICS: dict[str, Contender] = {
    c.key: c
    for c in (
        Contender(
            "raw-socket",
            "server ceiling: raw socket client",
            "json",
            "python",
            "a blocking socket / raw asyncio streams: what the server itself can do",
        ),
        Contender(
            "httpx2",
            "raw httpx2 (pydantic's fork of httpx)",
            "httpx2",
            "httpx2",
            "same calls on httpx2, whose pool was rewritten; installed with genai-prices",
        ),
        Contender(
            "httpx-keepalive",
            "raw httpx, keep-alive 64",
            "httpx",
            "httpx",
            "AsyncClient(limits=Limits(max_connections=100, max_keepalive_connections=64))",
        ),
        Contender(
            "httpx-nosniffio",
            "raw httpx, no sniffio",
            "httpx",
            "httpx",
            "as installed by llmnb's own dependencies (anyio ≥ 4.10 no longer brings sniffio)",
        ),
        Contender(
            "llmnb-httpx",
            "llmnb on httpx",
            "llmnb",
            "llmnb",
            "as llmnb, handed httpx transports (`provider.transport = httpx.HTTPTransport()`,"
            " async likewise): llmnb's own overhead over raw httpx",
        ),
        Contender(
            "llmnb-memory",
            "llmnb, in-memory tracker",
            "llmnb",
            "llmnb",
            "as llmnb, with `usage: {store: memory}` (no SQLite writer thread)",
        ),
        Contender(
            "llmnb-nosniffio",
            "llmnb, no sniffio",
            "llmnb",
            "llmnb",
            "as installed by llmnb's own dependencies",
        ),
    )
}


class Adapter:
    """One contender's client, made once per worker process and reused (as a notebook
    kernel would)."""

    def call(self) -> str:
        raise NotImplementedError

    async def acall(self) -> str:
        raise NotImplementedError

    def stream(self, prompt: str) -> Iterator[str]:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close async resources (on the worker's event loop)."""


def _sse_pieces(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            return
        for choice in json.loads(data).get("choices") or ():
            piece = choice["delta"].get("content")
            if piece:
                yield piece


class RawHttpx(Adapter):
    """``httpx`` (or the API-compatible ``httpx2``) used directly."""

    def __init__(self, base_url: str, keepalive: int | None = None, module: str = "httpx") -> None:
        self.httpx: Any = importlib.import_module(module)
        self.url = base_url + "/chat/completions"
        self.body = {"model": MODEL, "messages": MESSAGES}
        self.client = self.httpx.Client()
        self._limits = (
            None
            if keepalive is None
            else self.httpx.Limits(max_connections=100, max_keepalive_connections=keepalive)
        )
        self.aclient: Any = None

    def call(self) -> str:
        r = self.client.post(self.url, json=self.body)
        r.raise_for_status()
        return str(json.loads(r.content)["choices"][0]["message"]["content"])

    async def acall(self) -> str:
        if self.aclient is None:
            kw = {} if self._limits is None else {"limits": self._limits}
            self.aclient = self.httpx.AsyncClient(**kw)
        r = await self.aclient.post(self.url, json=self.body)
        r.raise_for_status()
        return str(json.loads(r.content)["choices"][0]["message"]["content"])

    def stream(self, prompt: str) -> Iterator[str]:
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with self.client.stream("POST", self.url, json=body) as r:
            r.raise_for_status()
            yield from _sse_pieces(r.iter_lines())

    async def aclose(self) -> None:
        if self.aclient is not None:
            await self.aclient.aclose()


class OpenAISDK(Adapter):
    def __init__(self, base_url: str) -> None:
        import openai

        self.client = openai.OpenAI(base_url=base_url, api_key=API_KEY)
        self.aclient: Any = None
        self._base_url = base_url

    def call(self) -> str:
        r = self.client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        return r.choices[0].message.content or ""

    async def acall(self) -> str:
        if self.aclient is None:
            import openai

            self.aclient = openai.AsyncOpenAI(base_url=self._base_url, api_key=API_KEY)
        r = await self.aclient.chat.completions.create(model=MODEL, messages=MESSAGES)
        return str(r.choices[0].message.content or "")

    def stream(self, prompt: str) -> Iterator[str]:
        chunks = self.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    async def aclose(self) -> None:
        if self.aclient is not None:
            await self.aclient.close()


class LiteLLM(Adapter):
    def __init__(self, base_url: str) -> None:
        import litellm

        self.litellm = litellm
        self.kw = {"model": "openai/" + MODEL, "api_base": base_url, "api_key": API_KEY}

    def call(self) -> str:
        r = self.litellm.completion(messages=MESSAGES, **self.kw)
        return str(r.choices[0].message.content or "")

    async def acall(self) -> str:
        r = await self.litellm.acompletion(messages=MESSAGES, **self.kw)
        return str(r.choices[0].message.content or "")

    def stream(self, prompt: str) -> Iterator[str]:
        chunks = self.litellm.completion(
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
            **self.kw,
        )
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content


class Llmnb(Adapter):
    """The client a notebook gets from its settings file (written by the worker)."""

    def __init__(self, on_httpx: bool = False) -> None:
        import llmnb

        self.client = llmnb.create_llm_client_from_profile()
        if on_httpx:
            import httpx

            # The network seam: an httpx transport makes llmnb build httpx clients.
            provider: Any = self.client.provider
            provider.transport = httpx.HTTPTransport()
            provider.async_transport = httpx.AsyncHTTPTransport()

    def call(self) -> str:
        return self.client.complete(MESSAGES).content

    async def acall(self) -> str:
        return (await self.client.acomplete(MESSAGES)).content

    def stream(self, prompt: str) -> Iterator[str]:
        yield from self.client.stream(prompt)

    async def aclose(self) -> None:
        await self.client.aclose()


class RawSocket(Adapter):
    """The cheapest client there is, to show the server's own ceiling in the same rounds
    as the contenders: HTTP/1.1 by hand on a kept-alive socket (a pool of them, async)."""

    def __init__(self, base_url: str) -> None:
        from urllib.parse import urlsplit

        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", int(url.port or 80)
        self.path = url.path + "/chat/completions"
        self.sock: socket.socket | None = None
        self.file: Any = None
        self.pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.plain = self._request({"model": MODEL, "messages": MESSAGES})

    def _request(self, body: dict[str, Any], close: bool = False) -> bytes:
        data = json.dumps(body).encode()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            + ("Connection: close\r\n" if close else "")
            + "\r\n"
        )
        return head.encode() + data

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def call(self) -> str:
        if self.sock is None:
            self.sock = self._connect()
            self.file = self.sock.makefile("rb")
        self.sock.sendall(self.plain)
        length = 0
        while (line := self.file.readline()) not in (b"\r\n", b""):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return str(json.loads(self.file.read(length))["choices"][0]["message"]["content"])

    async def acall(self) -> str:
        if self.pool:
            reader, writer = self.pool.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(self.plain)
        head = await reader.readuntil(b"\r\n\r\n")
        i = head.lower().index(b"content-length:") + 15
        body = await reader.readexactly(int(head[i : head.index(b"\r\n", i)]))
        self.pool.append((reader, writer))
        return str(json.loads(body)["choices"][0]["message"]["content"])

    def stream(self, prompt: str) -> Iterator[str]:
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with self._connect() as sock:
            sock.sendall(self._request(body, close=True))
            buf = b""
            while data := sock.recv(1 << 16):
                buf += data
                # Events are "data: {...}\n\n"; the chunked framing sits between them.
                while (i := buf.find(b"data: ")) >= 0 and (j := buf.find(b"\n\n", i)) >= 0:
                    payload, buf = buf[i + 6 : j], buf[j + 2 :]
                    if payload == b"[DONE]":
                        return
                    for choice in json.loads(payload).get("choices") or ():
                        piece = choice["delta"].get("content")
                        if piece:
                            yield piece

    async def aclose(self) -> None:
        for _, writer in self.pool:
            writer.close()
        if self.sock is not None:
            self.sock.close()


def make_adapter(key: str, base_url: str) -> Adapter:
    """The adapter for a contender or diagnostic ``key``."""
    if key == "raw-socket":
        return RawSocket(base_url)
    if key in ("httpx", "httpx-nosniffio"):
        return RawHttpx(base_url)
    if key == "httpx-keepalive":
        return RawHttpx(base_url, keepalive=64)
    if key == "httpx2":
        return RawHttpx(base_url, module="httpx2")
    if key == "openai":
        return OpenAISDK(base_url)
    if key == "litellm":
        return LiteLLM(base_url)
    if key in ("llmnb", "llmnb-nosniffio", "llmnb-memory"):
        return Llmnb()
    if key == "llmnb-httpx":
        return Llmnb(on_httpx=True)
    raise KeyError(f"unknown contender {key!r}")
