"""The Redis response cache against a real redis-server on 127.0.0.1."""

from __future__ import annotations

import logging
import time

import pytest
import redis
import servers

from llmnb.client.client import LLMClient
from llmnb.middleware.cache import CacheMiddleware, MemoryCache
from llmnb.middleware.cache_redis import RedisCache
from llmnb.providers.openai_compat import OpenAICompatibleProvider
from llmnb.testing import FakeLLMServer
from llmnb.usage import UsageTracker

redis_url = servers.redis_url_fixture()


def _client(srv: FakeLLMServer, cache: object, tracker: UsageTracker) -> LLMClient:
    profile = {"type": "openai_compatible", "base_url": srv.base_url, "model": "m"}
    return LLMClient(OpenAICompatibleProvider("team", profile, "m"), tracker=tracker, cache=cache)


def test_an_answer_stored_by_one_kernel_is_served_to_another(
    redis_url: str, server: FakeLLMServer
) -> None:
    first, second = UsageTracker(), UsageTracker()
    a = _client(server, RedisCache(redis_url), first)
    b = _client(server, RedisCache(redis_url), second)  # its own connection, like a kernel
    assert a.complete("hello", temperature=0).content == "Hi there!"
    hit = b.complete("hello", temperature=0)
    assert hit.content == "Hi there!" and hit.cached and hit.cost_usd == 0.0
    assert len(server.requests) == 1
    (row,) = second.records
    assert row.cached and row.cost_source == "cache" and row.completion_tokens == 3
    b.complete("hello", temperature=0.5)  # another parameter is another answer
    assert len(server.requests) == 2


def test_values_round_trip_with_the_same_shape_as_the_memory_cache(redis_url: str) -> None:
    value = {"content": "x", "model": "m", "usage": [1, 2, 0, 0, False], "finish_reason": None}
    cache, memory = RedisCache(redis_url), MemoryCache()
    cache.set("k1", value)
    memory.set("k1", value)
    assert cache.get("k1") == memory.get("k1") == value
    assert cache.get("missing") is None
    assert len(cache) == 1


def test_ttl_is_set_on_store_and_redis_expires_the_answer(redis_url: str) -> None:
    RedisCache(redis_url, ttl=3600).set("long", {"a": 1})
    pttl = redis.Redis.from_url(redis_url).pttl("llmnb:cache:v:long")
    assert 0 < pttl <= 3_600_000
    short = RedisCache(redis_url, ttl=0.05)
    short.set("short", {"a": 1})
    deadline = time.monotonic() + 5  # a bound on waiting, not a speed assertion
    while short.get("short") is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert short.get("short") is None


def test_beyond_max_entries_the_least_recently_used_answer_goes(redis_url: str) -> None:
    cache = RedisCache(redis_url, max_entries=2)
    cache.set("a", {"v": "a"})
    cache.set("b", {"v": "b"})
    assert cache.get("a") == {"v": "a"}  # a is now more recent than b
    cache.set("c", {"v": "c"})
    assert cache.get("b") is None
    assert cache.get("a") == {"v": "a"} and cache.get("c") == {"v": "c"}
    assert len(cache) == 2


def test_clear_drops_answers_but_not_other_data(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.set("someone-else", "1")
    cache = RedisCache(redis_url, max_entries=10)
    for i in range(5):
        cache.set(f"k{i}", {"i": i})
    cache.clear()
    assert len(cache) == 0 and cache.get("k1") is None
    assert r.get("someone-else") == b"1"


def test_unreachable_redis_acts_as_an_empty_cache_and_warns_once(
    server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisCache(f"redis://user:hunter2@127.0.0.1:{servers.closed_port()}/0")
    client = _client(server, cache, UsageTracker())
    with caplog.at_level(logging.WARNING, logger="llmnb.cache"):
        for _ in range(3):
            assert not client.complete("hello").cached
    assert len(server.requests) == 3
    warned = [r.getMessage() for r in caplog.records if r.name == "llmnb.cache"]
    assert len(warned) == 1 and "hunter2" not in warned[0]
    assert cache.degraded


def test_the_cache_middleware_accepts_it(redis_url: str) -> None:
    mw = CacheMiddleware(RedisCache(redis_url))
    assert "RedisCache" in repr(mw)
