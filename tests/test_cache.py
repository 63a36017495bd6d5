"""Response cache: hits, misses, TTL, LRU, SQLite on disk, and what the key holds."""

from __future__ import annotations

import asyncio
import logging
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import llmnb
from llmnb import errors
from llmnb.middleware import CacheMiddleware, MemoryCache, SQLiteCache
from llmnb.testing import FakeLLMServer, Fault
from llmnb.usage import UsageTracker

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


# -- a side store never costs the user an answer -------------------------------------------

_HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def _cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "llmnb.cache" and r.levelno >= logging.WARNING
    ]


def _statuses(tracker: UsageTracker) -> list[str]:
    return list(tracker.to_dataframe()["status"])


def test_a_cache_file_locked_by_another_process_costs_no_answer(
    settings_client, server, tracker, tmp_path: Path, caplog
):
    client = settings_client({"backend": "sqlite:///.llmnb/cache.db"})
    client.complete("hello")  # stored
    db = tmp_path / ".llmnb" / "cache.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="llmnb.cache"):
            again = client.complete("hello")  # a hit, were the file readable
            other = client.complete("hello, another question")
            late = asyncio.run(client.acomplete("hello, a third"))
        elapsed = time.monotonic() - started
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    assert isinstance(again, llmnb.Completion) and again.content == "Hi there!"
    assert not again.cached and not other.cached and late.content
    assert len(server.requests) == 4  # every call reached the provider
    assert _statuses(tracker) == ["ok"] * 4  # and left its usage row
    warned = _cache_warnings(caplog)
    assert len(warned) == 1, warned
    assert "cache.db" in warned[0] and "lock" in warned[0]
    assert elapsed < 20  # the lock is waited for once (seconds), not per call


def test_a_cache_file_damaged_mid_session_costs_no_answer(
    settings_client, server, tracker, tmp_path: Path, caplog
):
    client = settings_client({"backend": "sqlite:///.llmnb/cache.db"})
    client.complete("hello")
    assert client.complete("hello").cached
    db = tmp_path / ".llmnb" / "cache.db"
    garbage = b"this is not an SQLite file " * 400
    db.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="llmnb.cache"):
        first = client.complete("hello")
        second = client.complete("hello, something new")
        third = asyncio.run(client.acomplete("hello"))
    assert [first.cached, second.cached, third.cached] == [False, False, False]
    assert first.content == third.content == "Hi there!"
    assert len(server.requests) == 4
    assert _statuses(tracker) == ["ok"] * 5
    warned = _cache_warnings(caplog)
    assert len(warned) == 1, warned
    assert "cache.db" in warned[0] and "delete it" in warned[0]
    assert db.read_bytes() == garbage  # the user's file is reported, never replaced


def test_a_damaged_cache_file_is_used_again_once_replaced(
    server, settings_client, tmp_path, caplog
):
    db = tmp_path / "c.db"
    client = settings_client()
    client.add_middleware(CacheMiddleware(SQLiteCache(db, retry_interval=0)))
    client.complete("hello")
    db.write_bytes(b"\x00garbage" * 1000)
    with caplog.at_level(logging.WARNING, logger="llmnb.cache"):
        assert not client.complete("hello").cached
        assert not client.complete("hello").cached  # still damaged: no second warning
        db.unlink()  # what the warning says to do
        assert not client.complete("hello").cached  # a fresh file, this answer stored
        assert client.complete("hello").cached
    warned = _cache_warnings(caplog)
    assert len(warned) == 2 and "usable again" in warned[1], warned


def test_a_cache_file_locked_when_the_client_is_built_costs_no_answer(
    server, settings_client, tmp_path, caplog
):
    db = tmp_path / "c.db"
    SQLiteCache(db).close()  # the file exists, with its table
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with caplog.at_level(logging.WARNING, logger="llmnb.cache"):
            cache = SQLiteCache(db, busy_timeout=0.2, retry_interval=0)
            client = settings_client()
            client.add_middleware(CacheMiddleware(cache))
            assert client.complete("hello").content == "Hi there!"
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    assert len(_cache_warnings(caplog)) == 1
    client.complete("hello")  # the lock is gone: stored now
    assert client.complete("hello").cached


class _BrokenCache:
    """A custom backend that fails every way it can."""

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def get(self, key: str) -> Any:
        if self.value is None:
            raise RuntimeError("backend exploded")
        return self.value

    def set(self, key: str, value: dict[str, Any]) -> None:
        raise OSError("disk on fire")

    def clear(self) -> None:
        pass

    def __len__(self) -> int:
        return 0


@pytest.mark.parametrize(
    "backend",
    [_BrokenCache(), _BrokenCache({"content": "no usage field"}), _BrokenCache(["a", "list"])],
    ids=["raises", "wrong-shape", "not-a-dict"],
)
def test_a_failing_custom_cache_backend_costs_no_answer(
    backend, server, settings_client, tracker, caplog
):
    client = settings_client()
    client.add_middleware(CacheMiddleware(backend))
    with caplog.at_level(logging.WARNING, logger="llmnb.cache"):
        answers = [client.complete("hello"), asyncio.run(client.acomplete("hello"))]
    assert [a.content for a in answers] == ["Hi there!"] * 2
    assert not any(a.cached for a in answers)
    assert _statuses(tracker) == ["ok", "ok"]
    assert len(_cache_warnings(caplog)) == 1


def test_the_cache_folder_llmnb_creates_is_kept_out_of_git(settings_client, tracker, tmp_path):
    client = settings_client({"backend": "sqlite:///.llmnb/cache.db"})
    client.complete("hello")
    assert (tmp_path / ".llmnb" / "cache.db").is_file()
    assert (tmp_path / ".llmnb" / ".gitignore").read_text() == "*\n"
