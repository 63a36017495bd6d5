"""A total deadline for one HTTP attempt, held on every socket operation.

httpx's timeouts are per operation: a server that sends one byte every few seconds never
trips a 60 s read timeout, and keeps a call alive for ever. So the clients
:class:`~llmnb.providers.base.HTTPProvider` builds get a network backend whose streams
cut every connect, read and write timeout to what is left of the attempt's deadline,
which :func:`deadline` sets for the code inside it (a context variable: each thread and
task has its own). Once the deadline has passed, the next socket operation raises the
HTTP library's own timeout error, which the provider reports as ``LLMTimeoutError``.

Outside a :func:`deadline` block, and on transports tests set (``MockTransport``), the
library's per-operation timeouts apply unchanged.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from types import ModuleType
from typing import Any

__all__ = ["deadline", "install"]

_at: ContextVar[float | None] = ContextVar("llmnb_http_deadline", default=None)
_CORE = {"httpx2": "httpcore2", "httpx": "httpcore"}


@contextlib.contextmanager
def deadline(at: float | None) -> Iterator[None]:
    """Socket operations inside this block end by ``at`` (``time.monotonic()``)."""
    token = _at.set(at)
    try:
        yield
    finally:
        _at.reset(token)


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    at = _at.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the attempt's total timeout has passed")
    return left if timeout is None else min(timeout, left)


class _Stream:
    def __init__(self, inner: Any, core: ModuleType) -> None:
        self._inner = inner
        self._core = core

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = self._inner.read(max_bytes, _left(timeout, self._core.ReadTimeout))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, self._core.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> _Stream:
        wait = _left(timeout, self._core.ConnectTimeout)
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, wait), self._core)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _AsyncStream:
    def __init__(self, inner: Any, core: ModuleType) -> None:
        self._inner = inner
        self._core = core

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = await self._inner.read(max_bytes, _left(timeout, self._core.ReadTimeout))
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, _left(timeout, self._core.WriteTimeout))

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> _AsyncStream:
        wait = _left(timeout, self._core.ConnectTimeout)
        inner = await self._inner.start_tls(ssl_context, server_hostname, wait)
        return _AsyncStream(inner, self._core)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend:
    def __init__(self, inner: Any, core: ModuleType) -> None:
        self._inner = inner
        self._core = core

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, **kw: Any) -> _Stream:
        wait = _left(timeout, self._core.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, wait, **kw), self._core)

    def connect_unix_socket(self, path: str, timeout: float | None = None, **kw: Any) -> _Stream:
        wait = _left(timeout, self._core.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, wait, **kw), self._core)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncBackend:
    def __init__(self, inner: Any, core: ModuleType) -> None:
        self._inner = inner
        self._core = core

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, **kw: Any
    ) -> _AsyncStream:
        wait = _left(timeout, self._core.ConnectTimeout)
        return _AsyncStream(await self._inner.connect_tcp(host, port, wait, **kw), self._core)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, **kw: Any
    ) -> _AsyncStream:
        wait = _left(timeout, self._core.ConnectTimeout)
        inner = await self._inner.connect_unix_socket(path, wait, **kw)
        return _AsyncStream(inner, self._core)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def install(transport: Any, lib: ModuleType, *, is_async: bool) -> bool:
    """Put the deadline backend under ``transport`` (an ``HTTPTransport`` or
    ``AsyncHTTPTransport`` of ``lib`` built by llmnb); False if its pool has none.

    The library builds the pool inside the transport and offers no argument for its
    network backend, so it is swapped on the pool — the one private name llmnb uses;
    ``tests/test_time_bounded.py`` fails if a release renames it.
    """
    pool = getattr(transport, "_pool", None)
    inner = getattr(pool, "_network_backend", None)
    core_name = _CORE.get(lib.__name__)
    if inner is None or core_name is None:
        return False
    core = importlib.import_module(core_name)
    pool._network_backend = (_AsyncBackend if is_async else _Backend)(inner, core)  # type: ignore[union-attr]
    return True
