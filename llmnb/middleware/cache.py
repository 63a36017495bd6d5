"""Response cache: the same request to the same model answers from memory or disk.

The cache key is a SHA-256 of the provider type, base URL, model, messages and every
parameter that shapes the answer (temperature, max_tokens, extra wire parameters,
response schema) — never the API key, the timeout or llmnb's own options. A hit
leaves a usage row with ``cached=True`` and cost 0 (``cost_source="cache"``), with
the token counts of the answer it replays.

Only completed ``complete``/``acomplete`` calls are stored and served; streams bypass
the cache (a stream shows text as it arrives, which a replay cannot honestly do).
``cache=False`` on a call skips the cache; ``cache=True`` uses it even where none is
configured (a process-wide in-memory cache).

Backends: :class:`MemoryCache` (LRU, in this process),
:class:`~llmnb.middleware.cache_sqlite.SQLiteCache` (a file; survives restarts) and
:class:`~llmnb.middleware.cache_redis.RedisCache`. A backend that fails (or returns
something that is not an answer) costs no call: the middleware logs one warning per
backend and goes on uncached.

Example::

    client.add_middleware(CacheMiddleware(MemoryCache(max_entries=500, ttl=3600)))
    client.complete("hi")               # miss: asks the model
    client.complete("hi").cached        # True: answered from the cache
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from llmnb import errors
from llmnb.middleware.base import Call, Middleware
from llmnb.types import Completion, Message, Request, Usage

__all__ = [
    "Cache",
    "CacheMiddleware",
    "MemoryCache",
    "cache_key",
    "completion_from_dict",
    "completion_to_dict",
    "default_memory_cache",
]


@runtime_checkable
class Cache(Protocol):
    """A cache backend: JSON-able dicts by string key."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def set(self, key: str, value: dict[str, Any]) -> None: ...

    def clear(self) -> None: ...

    def __len__(self) -> int: ...


def cache_key(request: Request, provider: str, base_url: str | None) -> str:
    """A stable hash of what determines the answer; never includes the API key."""
    payload: dict[str, Any] = {
        "provider": provider,
        "base_url": base_url,
        "model": request.model,
        "messages": [_message_key(m) for m in request.messages],
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "extra": request.extra,
        "schema": request.response_schema,
        "schema_name": request.schema_name,
    }
    if request.tools:  # tool rounds: the declarations and the calls and results so far
        payload["tools"] = [dict(t) for t in request.tools]
        payload["tool_choice"] = request.tool_choice
        payload["tool_turns"] = [
            [m.tool_call_id, [(c.id, c.name, dict(c.arguments)) for c in m.tool_calls]]
            for m in request.messages
        ]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def completion_to_dict(c: Completion) -> dict[str, Any]:
    """What is stored: the answer and its usage (no raw body, headers or costs)."""
    u = c.usage
    return {
        "content": c.content,
        "model": c.model,
        "finish_reason": c.finish_reason,
        "reasoning": c.reasoning,
        "usage": [
            u.prompt_tokens,
            u.completion_tokens,
            u.cached_tokens,
            u.reasoning_tokens,
            u.estimated,
        ],
    }


def completion_from_dict(d: dict[str, Any]) -> Completion:
    p, c, cached, reasoning, estimated = d["usage"]
    return Completion(
        content=d["content"],
        model=d["model"],
        usage=Usage(int(p), int(c), int(cached), int(reasoning), bool(estimated)),
        finish_reason=d.get("finish_reason"),
        reasoning=d.get("reasoning") or "",
        cached=True,
    )


class MemoryCache:
    """An in-process LRU cache; ``ttl`` seconds (None: no expiry), ``max_entries``.

    ``clock`` returns seconds (default ``time.monotonic``); tests pass a fake one.
    """

    def __init__(
        self,
        max_entries: int = 1024,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise errors.InvalidOptionError(
                f"MemoryCache(max_entries=...) must be >= 1, got {max_entries}"
            )
        self.max_entries = int(max_entries)
        self.ttl = ttl
        self.clock = clock
        self._data: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._data.get(key)
            if found is None:
                return None
            stored, value = found
            if self.ttl is not None and self.clock() - stored >= self.ttl:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def set(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._data[key] = (self.clock(), value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"MemoryCache({len(self)}/{self.max_entries} entries, ttl={self.ttl})"


_default: MemoryCache | None = None


def default_memory_cache() -> MemoryCache:
    """The process-wide cache behind ``cache=True`` where no cache is configured."""
    global _default
    if _default is None:
        _default = MemoryCache()
    return _default


log = logging.getLogger("llmnb.cache")

# Backends already warned about (by id: backends need not be hashable or weak-referable).
_warned: set[int] = set()


def _cache_failed(backend: Cache, action: str, exc: Exception) -> None:
    if id(backend) in _warned:
        log.debug("cache %r failed to %s again", backend, action, exc_info=True)
        return
    _warned.add(id(backend))
    log.warning(
        "llmnb: the response cache %r failed to %s (%s: %s); calls go on uncached where it "
        "fails. Check the cache backend, or set `cache: false` on the call.",
        backend,
        action,
        type(exc).__name__,
        exc,
    )


class CacheMiddleware(Middleware):
    """Answers repeated calls from ``cache``; with ``cache=None`` it acts only on calls
    that pass ``cache=True`` (using the process-wide memory cache)."""

    def __init__(self, cache: Cache | None = None) -> None:
        self.cache = cache
        self.hits = 0
        self.misses = 0

    def _backend(self, call: Call) -> Cache | None:
        if call.stream or call.cache is False:
            return None
        if self.cache is not None:
            return self.cache
        return default_memory_cache() if call.cache else None

    def before_call(self, call: Call) -> Completion | None:
        if self.cache is None and call.cache is not True:
            return None  # the default path: no cache configured, none asked for
        backend = self._backend(call)
        if backend is None:
            return None
        provider = call.client.provider
        key = cache_key(call.request, provider.type_name, provider.base_url)
        try:
            found = backend.get(key)
            hit = None if found is None else completion_from_dict(found)
        except Exception as exc:  # a side store must not cost the user the answer
            _cache_failed(backend, "read", exc)
            hit = None
        if hit is None:
            self.misses += 1
            call.data[self] = key
            return None
        self.hits += 1
        return hit

    def after_call(self, call: Call, completion: Completion) -> Completion:
        if not call.data:
            return completion
        key: str | None = call.data.pop(self, None)
        if key is None or completion.cached:
            return completion
        backend = self._backend(call)
        if backend is not None:
            try:
                backend.set(key, completion_to_dict(completion))
            except Exception as exc:  # the answer is paid for: return it regardless
                _cache_failed(backend, "store an answer", exc)
        return completion

    def __repr__(self) -> str:
        return f"CacheMiddleware({self.cache!r})"


def _message_key(m: Message) -> dict[str, Any]:
    """The message as its text, plus each attachment's content hash when it has some (so
    two different images under one prompt never share a key)."""
    d: dict[str, Any] = m.to_dict()
    if m.has_attachments:
        from llmnb.parts import part_hashes

        d["parts"] = part_hashes(m.parts)
    return d
