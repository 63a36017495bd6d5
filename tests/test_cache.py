"""Response cache: hits, misses, TTL, LRU, SQLite on disk, and what the key holds."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import llmnb
from llmnb import errors
from llmnb.middleware import CacheMiddleware, MemoryCache, SQLiteCache
from llmnb.testing import FakeLLMServer, Fault

KEY = "sk-cache-test-key-000111"


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def settings_client(
    server: FakeLLMServer,
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., llmnb.LLMClient]:
    def make(cache: dict[str, Any] | None = None, **profile: Any) -> llmnb.LLMClient:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        prof = {"type": "openai", "model": "gpt-4o", "base_url": server.base_url, **profile}
        data: dict[str, Any] = {"llm": {"active_provider": "p", "providers": {"p": prof}}}
        if cache is not None:
            data["cache"] = cache
        write_settings(data)
        return llmnb.create_llm_client_from_profile()

    return make


def test_a_repeated_call_is_a_hit_recorded_with_cost_zero(settings_client, server, tracker):
    client = settings_client({"backend": "memory"})
    first = client.complete("hello", temperature=0)
    second = client.complete("hello", temperature=0)
    assert len(server.requests) == 1
    assert not first.cached and second.cached
    assert (
        second.content == first.content and second.usage.prompt_tokens == first.usage.prompt_tokens
    )
    assert second.cost_usd == 0 and second.cost_source == "cache" and second.profile == "p"
    rows = tracker.to_dataframe()
    assert list(rows["cached"]) == [False, True]
    assert rows.iloc[1]["cost_usd"] == 0 and rows.iloc[1]["cost_source"] == "cache"
    assert rows.iloc[1]["call_id"] == second.call_id != first.call_id
    assert rows.iloc[0]["key_id"] is not None and rows.iloc[1]["key_id"] is None  # no key used
    assert math.isnan(rows.iloc[1]["ttft_s"])


def test_different_parameters_or_messages_miss(settings_client, server):
    client = settings_client({"backend": "memory"})
    client.complete("hello", temperature=0)
    client.complete("hello", temperature=0.5)
    client.complete("hello there", temperature=0)
    client.complete("hello", temperature=0, seed=3)
    assert len(server.requests) == 4


def test_cache_false_skips_the_cache_for_one_call(settings_client, server):
    client = settings_client({"backend": "memory"})
    client.complete("hello")
    again = client.complete("hello", cache=False)
    assert not again.cached and len(server.requests) == 2


def test_without_a_cache_section_only_cache_true_uses_one(settings_client, server):
    client = settings_client()
    client.complete("unique words 42")
    client.complete("unique words 42")
    assert len(server.requests) == 2
    client.complete("unique words 43", cache=True)
    assert client.complete("unique words 43", cache=True).cached
    assert len(server.requests) == 3


def test_ttl_expires_entries_on_the_injected_clock(server, settings_client, tracker):
    now = FakeTime()
    client = settings_client()
    client.add_middleware(CacheMiddleware(MemoryCache(ttl=10, clock=now)))
    client.complete("hello")
    now.t += 9.9
    assert client.complete("hello").cached
    now.t += 0.2  # 10.1 s after it was stored
    assert not client.complete("hello").cached
    assert len(server.requests) == 2


def test_lru_drops_the_least_recently_used_entry():
    cache = MemoryCache(max_entries=2)
    cache.set("a", {"v": 1})
    cache.set("b", {"v": 2})
    assert cache.get("a") == {"v": 1}  # a is now more recent than b
    cache.set("c", {"v": 3})
    assert cache.get("b") is None and cache.get("a") and cache.get("c") and len(cache) == 2


def test_streams_bypass_the_cache(settings_client, server):
    client = settings_client({"backend": "memory"})
    client.complete("hello")
    assert "".join(client.stream("hello")) == "Hi there!"
    assert len(server.requests) == 2 and server.last_request.json["stream"] is True


def test_failed_calls_are_not_cached(settings_client, server):
    client = settings_client({"backend": "memory"}, max_retries=0)
    server.script(Fault.status(500))
    with pytest.raises(errors.ProviderError):
        client.complete("hello")
    assert not client.complete("hello").cached


def test_the_key_is_not_part_of_the_cache_key_nor_stored(
    settings_client, server, tmp_path: Path, monkeypatch
):
    client = settings_client({"backend": "sqlite:///.llmnb/cache.db", "ttl": 3600})
    client.complete("hello")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-another-key-999888")
    other = llmnb.create_llm_client_from_profile()
    assert other.complete("hello").cached  # another key, same request: same entry
    assert len(server.requests) == 1
    db = (tmp_path / ".llmnb" / "cache.db").read_bytes()
    assert KEY.encode() not in db and b"sk-another" not in db and b"Hi there!" in db


def test_sqlite_cache_survives_a_new_cache_object(server, settings_client, tmp_path: Path):
    path = tmp_path / "c.db"
    client = settings_client()
    client.add_middleware(CacheMiddleware(SQLiteCache(path)))
    client.complete("hello")
    reopened = settings_client()  # as after a kernel restart: a new object on the same file
    reopened.add_middleware(CacheMiddleware(SQLiteCache(path)))
    assert reopened.complete("hello").cached
    assert len(server.requests) == 1


def test_sqlite_ttl_and_max_entries(tmp_path: Path):
    now = FakeTime()
    cache = SQLiteCache(tmp_path / "c.db", ttl=5, max_entries=2, clock=now)
    cache.set("a", {"v": 1})
    now.t += 1
    cache.set("b", {"v": 2})
    now.t += 1
    assert cache.get("a") == {"v": 1}  # a used last
    now.t += 1
    cache.set("c", {"v": 3})  # b is the least recently used
    assert len(cache) == 2 and cache.get("b") is None
    now.t += 5
    assert cache.get("c") is None  # expired
    cache.clear()
    assert len(cache) == 0


def test_async_calls_share_the_cache(settings_client, server):
    client = settings_client({"backend": "memory"})

    async def twice() -> tuple[bool, bool]:
        a = await client.acomplete("hello")
        b = await client.acomplete("hello")
        return a.cached, b.cached

    assert asyncio.run(twice()) == (False, True)
    assert len(server.requests) == 1


def test_a_bad_cache_option_or_backend_is_a_typed_error(settings_client, write_settings):
    client = settings_client()
    with pytest.raises(errors.InvalidOptionError, match="cache="):
        client.complete("hello", cache="yes")
    write_settings({"cache": {"backend": "memcached://x"}})
    with pytest.raises(errors.ConfigError, match=r"cache\.backend.*sqlite:///"):
        llmnb.config.load_settings()
    with pytest.raises(errors.ConfigError, match="not an SQLite URL"):
        SQLiteCache.from_url("postgres://x")
