"""Redis from the settings: ``rate_limits.backend``, ``$LLMNB_REDIS_URL``, ``cache.backend``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import servers

import llmnb
from llmnb.middleware.base import ManualClock
from llmnb.middleware.cache_redis import RedisCache
from llmnb.middleware.ratelimit import RateLimiter
from llmnb.middleware.ratelimit_redis import RedisRateLimiter
from llmnb.testing import FakeLLMServer

redis_url = servers.redis_url_fixture()


def _limiters(client: llmnb.LLMClient) -> list[Any]:
    return [m for m in client.middleware if isinstance(m, (RateLimiter, RedisRateLimiter))]


def _profile(server: FakeLLMServer, **limits: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "base_url": server.base_url,
        "rate_limits": {"requests_per_minute": 2, **limits},
    }


def test_a_redis_backend_in_rate_limits_shares_the_limit_between_managers(
    redis_url: str, server: FakeLLMServer
) -> None:
    clock = ManualClock(500.0)
    kernels = [llmnb.LLMManager(clock=clock) for _ in range(2)]  # two kernels, one team
    for m in kernels:
        m.add_provider("team", "openai_compatible", _profile(server, backend=redis_url))
    a, b = (m.get_client("team") for m in kernels)
    assert [type(x) for x in _limiters(a)] == [RedisRateLimiter]
    a.complete("hello")
    b.complete("hello")
    assert clock.slept == 0
    a.complete("hello")  # the third call of the minute, whichever kernel makes it
    assert clock.slept == pytest.approx(60.0)


def test_llmnb_redis_url_applies_when_the_profile_names_no_backend(
    redis_url: str, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMNB_REDIS_URL", redis_url)
    manager = llmnb.LLMManager(clock=ManualClock())
    manager.add_provider("team", "openai_compatible", _profile(server))
    manager.add_provider("solo", "openai_compatible", _profile(server, backend="memory"))
    assert [type(x) for x in _limiters(manager.get_client("team"))] == [RedisRateLimiter]
    assert [type(x) for x in _limiters(manager.get_client("solo"))] == [RateLimiter]


def test_a_redis_cache_backend_in_the_settings_answers_every_client(
    redis_url: str,
    server: FakeLLMServer,
    write_settings: Callable[[dict[str, Any]], Any],
) -> None:
    prof = {"type": "openai_compatible", "model": "m", "base_url": server.base_url}
    write_settings(
        {
            "llm": {"active_provider": "p", "providers": {"p": prof}},
            "cache": {"backend": redis_url, "ttl": 3600},
        }
    )
    first = llmnb.create_llm_client_from_profile()
    caches = [getattr(m, "cache", None) for m in first.middleware]
    assert any(isinstance(c, RedisCache) and c.ttl == 3600 for c in caches)
    first.complete("hello", temperature=0)
    again = llmnb.create_llm_client_from_profile().complete("hello", temperature=0)
    assert again.cached and len(server.requests) == 1
