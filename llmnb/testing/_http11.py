"""A minimal HTTP/1.1 server side on asyncio streams: keep-alive, chunked bodies, resets.

Just enough of RFC 9112 for well-behaved clients on loopback (httpx, requests, curl);
it is a test fixture, not a general web server.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DISCONNECTED",
    "BadRequest",
    "Responder",
    "WireRequest",
    "json_bytes",
    "read_request",
    "reason_phrase",
]

MAX_BODY = 64 * 1024 * 1024
# What reading or writing raises when the client went away; never worth a traceback.
DISCONNECTED = (ConnectionError, asyncio.IncompleteReadError)


class BadRequest(Exception):
    """The bytes on the connection are not an HTTP/1.x request we can read."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class WireRequest:
    """A parsed request: ``headers`` has lower-case names, repeated ones joined by ", "."""

    method: str
    path: str
    query: str
    version: str
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> WireRequest | None:
    """Read one request; ``None`` when the client closed the connection between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "request head too large") from None
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, f"malformed request line {lines[0][:100]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(400, f"malformed header line {line[:100]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    path, _, query = target.partition("?")
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await _read_body(reader, headers)
    return WireRequest(method.upper(), path, query, version, headers, body)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        total = 0
        while True:
            try:
                line = await reader.readuntil(b"\r\n")
                size = int(line.split(b";")[0].strip(), 16)
            except (ValueError, asyncio.LimitOverrunError):
                raise BadRequest(400, "malformed chunk size line") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailer fields are ignored
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise BadRequest(413, "request body too large")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("content-length")
    if not length:
        return b""
    try:
        n = int(length)
    except ValueError:
        raise BadRequest(400, f"malformed Content-Length {length!r}") from None
    if n < 0 or n > MAX_BODY:
        raise BadRequest(413, "request body too large")
    return await reader.readexactly(n)


_PHRASES = {s.value: s.phrase for s in http.HTTPStatus}
_PHRASES[529] = "Site Overloaded"


def reason_phrase(status: int) -> str:
    """``Bad Gateway`` for 502; ``Unknown`` for a status without a standard phrase."""
    return _PHRASES.get(status, "Unknown")


def json_bytes(data: Any) -> bytes:
    """Compact JSON, as providers send it."""
    return json.dumps(data, separators=(",", ":")).encode()


class Responder:
    """Writes the response to one request; afterwards ``keep_alive`` says if the
    connection can serve the next one."""

    __slots__ = ("_chunked", "_writer", "keep_alive", "started")

    def __init__(self, writer: asyncio.StreamWriter, keep_alive: bool) -> None:
        self._writer = writer
        self._chunked = False
        self.keep_alive = keep_alive
        self.started = False

    def _head(
        self,
        status: int,
        content_type: str | None,
        headers: Iterable[tuple[str, str]],
        framing: str,
    ) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason_phrase(status)}", "Server: llmnb-fake"]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(framing)
        lines.append("Connection: keep-alive" if self.keep_alive else "Connection: close")
        lines.extend(f"{k}: {v}" for k, v in headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise ConnectionResetError("the client closed the connection")
        self._writer.write(data)
        await self._writer.drain()

    async def send(
        self,
        status: int,
        body: bytes,
        content_type: str | None = "application/json",
        headers: Iterable[tuple[str, str]] = (),
        content_length: int | None = None,
    ) -> None:
        """A whole response; a ``content_length`` above ``len(body)`` cuts it short."""
        self.started = True
        length = len(body) if content_length is None else content_length
        head = self._head(status, content_type, headers, f"Content-Length: {length}")
        await self._write(head + body)
        if length != len(body):
            self.keep_alive = False

    async def send_json(
        self, status: int, data: Any, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        await self.send(status, json_bytes(data), "application/json", headers)

    async def start_chunked(
        self, status: int, content_type: str, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Send the head of a ``Transfer-Encoding: chunked`` response."""
        self.started = True
        self._chunked = True
        extra = [("Cache-Control", "no-cache"), *headers]
        await self._write(self._head(status, content_type, extra, "Transfer-Encoding: chunked"))

    async def write_chunk(self, data: bytes) -> None:
        if data:
            await self._write(b"%x\r\n%s\r\n" % (len(data), data))

    async def end_chunked(self) -> None:
        await self._write(b"0\r\n\r\n")
        self._chunked = False

    def close(self) -> None:
        """Close after the bytes written so far are sent (FIN); a chunked body stays cut."""
        self.keep_alive = False
        self._writer.close()

    def reset(self) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0), discarding unsent bytes."""
        self.keep_alive = False
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._writer.transport.abort()

    def finish(self) -> None:
        """After a handler: a connection left mid-body or marked close is closed."""
        if self._chunked or not self.keep_alive:
            self.close()
