"""A response cache in Redis: one cache for every kernel of a team.

Same keys and semantics as the other backends of :mod:`llmnb.middleware.cache` — the
key is the request hash of :func:`~llmnb.middleware.cache.cache_key` (never an API
key), the value the answer as JSON; ``ttl`` counts from when an answer was stored
(Redis expires it), and beyond ``max_entries`` the least recently used answers go.

Redis layout, under ``prefix`` (default ``llmnb``): ``llmnb:cache:v:<hash>`` holds an
answer; ``llmnb:cache:lru`` (only with ``max_entries``) scores hashes by last use.

If Redis cannot be reached the cache logs one warning and acts as empty (calls go to
the provider, answers are not stored) until it is back; it never fails a call.

Example::

    cache = RedisCache("redis://cache.internal:6379/0", ttl=7 * 24 * 3600)
    client.add_middleware(CacheMiddleware(cache))
    # or in config/settings.yaml:   cache: {backend: "redis://cache.internal:6379/0"}
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmnb.middleware._redis_lua import CACHE_SET as _SET
from llmnb.middleware.ratelimit_redis import redis_client, shown_url

if TYPE_CHECKING:
    import redis

__all__ = ["RedisCache"]

log = logging.getLogger("llmnb.cache")


class RedisCache:
    """A :class:`~llmnb.middleware.cache.Cache` backend on Redis.

    ``url`` is a ``redis://`` / ``rediss://`` URL or a ``redis.Redis`` client; ``ttl``
    seconds (None: no expiry); ``max_entries`` (None: no cap, Redis's own memory policy
    applies); ``retry_interval`` how long to act as empty after Redis failed.
    """

    def __init__(
        self,
        url: Any,
        ttl: float | None = None,
        max_entries: int | None = None,
        *,
        prefix: str = "llmnb",
        retry_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl}")
        self._client = url if not isinstance(url, str) else None
        self._url = url if isinstance(url, str) else None
        self.where = shown_url(url) if isinstance(url, str) else repr(url)
        self.ttl = ttl
        self.max_entries = max_entries
        self.retry_interval = float(retry_interval)
        self.clock = clock
        self._value_prefix = f"{prefix}:cache:v:"
        self._lru = f"{prefix}:cache:lru"
        self._script: Any = None
        self._down_until: float | None = None

    # -- the Cache protocol ----------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        def run(r: redis.Redis) -> Any:
            if self.max_entries is None:
                return r.get(self._value_prefix + key)
            pipe = r.pipeline(transaction=False)
            pipe.get(self._value_prefix + key)
            # XX: touch only answers still listed (an evicted one stays evicted)
            pipe.zadd(self._lru, {self._value_prefix + key: time.time()}, xx=True)
            return pipe.execute()[0]

        raw = self._call(run)
        if raw is None:
            return None
        try:
            value: dict[str, Any] = json.loads(raw)
        except ValueError:
            return None  # not written by llmnb: a miss, overwritten by the next answer
        return value

    def set(self, key: str, value: dict[str, Any]) -> None:
        text = json.dumps(value, separators=(",", ":"))
        ttl_ms = 0 if self.ttl is None else max(1, int(self.ttl * 1000))

        def run(r: redis.Redis) -> Any:
            if self._script is None:
                self._script = r.register_script(_SET)
            args = [text, ttl_ms, time.time(), self.max_entries or 0, self._value_prefix]
            return self._script(keys=[self._value_prefix + key, self._lru], args=args)

        self._call(run)

    def clear(self) -> None:
        """Drop every answer under this prefix (other Redis data is left alone)."""

        def run(r: redis.Redis) -> None:
            batch: list[Any] = []
            for name in r.scan_iter(match=self._value_prefix + "*", count=1000):
                batch.append(name)
                if len(batch) >= 1000:
                    r.delete(*batch)
                    batch = []
            if batch:
                r.delete(*batch)
            r.delete(self._lru)

        self._call(run)

    def __len__(self) -> int:
        """Answers stored now (a SCAN: for status displays, not hot paths)."""
        found = self._call(
            lambda r: sum(1 for _ in r.scan_iter(match=self._value_prefix + "*", count=1000))
        )
        return int(found or 0)

    # -- Redis -----------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while Redis is unusable and the cache acts as empty."""
        return self._down_until is not None

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis_client(str(self._url))
        return self._client

    def _call(self, fn: Callable[[redis.Redis], Any]) -> Any:
        if self._down_until is not None and self.clock() < self._down_until:
            return None
        import redis as redis_lib

        try:
            result = fn(self._redis())
        except redis_lib.RedisError as exc:
            first = self._down_until is None
            self._down_until = self.clock() + self.retry_interval
            if first:
                log.warning(
                    "llmnb: the Redis cache at %s cannot be used (%s: %s); calls go to the "
                    "provider uncached until it is back (retrying every %g s). Check the "
                    "server or `cache.backend` in config/settings.yaml.",
                    self.where,
                    type(exc).__name__,
                    exc,
                    self.retry_interval,
                )
            return None
        if self._down_until is not None:
            self._down_until = None
            log.warning("llmnb: the Redis cache at %s is reachable again", self.where)
        return result

    def __repr__(self) -> str:
        return f"RedisCache({self.where!r}, ttl={self.ttl}, max_entries={self.max_entries})"
