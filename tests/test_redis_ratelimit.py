"""The Redis rate limiter against a real redis-server on 127.0.0.1 (see tests/servers.py).

Single-process semantics run on a ManualClock (the script then takes its "now" from the
clock, so a minute passes in no time); the multi-process test runs on the Redis server's
own clock with a half-second window.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis
import servers

from llmnb import errors
from llmnb.client.client import LLMClient
from llmnb.middleware.base import ManualClock
from llmnb.middleware.ratelimit_redis import RedisRateLimiter
from llmnb.middleware.retry import RetryPolicy
from llmnb.providers.openai_compat import OpenAICompatibleProvider
from llmnb.testing import FakeLLMServer, Fault
from llmnb.usage import UsageTracker

redis_url = servers.redis_url_fixture()


def _client(srv: FakeLLMServer, limiter: RedisRateLimiter, retries: int = 2) -> LLMClient:
    profile = {"type": "openai_compatible", "base_url": srv.base_url, "model": "m"}
    provider = OpenAICompatibleProvider("team", profile, "m")
    return LLMClient(
        provider,
        middleware=[limiter],
        retry=RetryPolicy(max_retries=retries, sleep=lambda s: None),
        tracker=UsageTracker(),
        cache=False,
    )


def _limiter(url: str, clock: ManualClock, **limits: float) -> RedisRateLimiter:
    return RedisRateLimiter(
        url,
        limits.get("rpm"),
        limits.get("itpm"),
        limits.get("otpm"),
        profile="team",
        key_fingerprint="k-test",
        clock=clock,
    )


def test_two_limiters_share_one_requests_per_minute_budget(
    redis_url: str, server: FakeLLMServer
) -> None:
    clock = ManualClock(1000.0)
    a = _client(server, _limiter(redis_url, clock, rpm=3))
    b = _client(server, _limiter(redis_url, clock, rpm=3))  # another kernel, same key
    a.complete("hello")
    a.complete("hello")
    b.complete("hello")
    assert clock.slept == 0
    b.complete("hello")  # the 4th in this minute: waits for the 1st to leave the window
    assert clock.slept == pytest.approx(60.0)
    assert len(server.requests) == 4


def test_output_reservation_is_corrected_to_the_reported_usage(
    redis_url: str, server: FakeLLMServer
) -> None:
    clock = ManualClock(1000.0)
    limiter = _limiter(redis_url, clock, otpm=100)
    client = _client(server, limiter)
    first = client.complete("hello", max_tokens=95)  # reserves 95, uses 3 ("Hi there!")
    used = first.usage.completion_tokens
    assert used == 3
    r = redis.Redis.from_url(redis_url)
    assert float(r.get(limiter._dim_keys["output_tokens"][2]) or 0) == pytest.approx(used)
    client.complete("hello", max_tokens=95)  # 3 + 95 fits only because 95 became 3
    assert clock.slept == 0
    client.complete("hello", max_tokens=95)  # 3 + 3 + 95 > 100: must wait
    assert clock.slept == pytest.approx(60.0)


def test_a_failed_attempt_gives_its_output_reservation_back(
    redis_url: str, server: FakeLLMServer
) -> None:
    clock = ManualClock(1000.0)
    client = _client(server, _limiter(redis_url, clock, otpm=100), retries=0)
    server.script(Fault.status(400))
    with pytest.raises(errors.InvalidRequestError):
        client.complete("hello", max_tokens=90)
    client.complete("hello", max_tokens=90)
    assert clock.slept == 0


def test_input_tokens_per_minute_is_enforced(redis_url: str, server: FakeLLMServer) -> None:
    clock = ManualClock(1000.0)
    client = _client(server, _limiter(redis_url, clock, itpm=60))
    client.complete("x" * 160)  # ~45 input tokens estimated, then corrected to ~40
    assert clock.slept == 0
    client.complete("x" * 160)
    assert clock.slept == pytest.approx(60.0)


def test_a_call_larger_than_the_limit_is_refused_before_sending(
    redis_url: str, server: FakeLLMServer
) -> None:
    client = _client(server, _limiter(redis_url, ManualClock(), otpm=100))
    with pytest.raises(errors.RequestExceedsLimitError, match="output_tokens_per_minute"):
        client.complete("hello", max_tokens=500)
    assert server.requests == []


def test_a_429_pauses_every_process_until_its_retry_after(
    redis_url: str, server: FakeLLMServer
) -> None:
    clock = ManualClock(1000.0)
    a = _client(server, _limiter(redis_url, clock, rpm=100), retries=0)
    b = _client(server, _limiter(redis_url, clock, rpm=100))
    server.script(Fault.rate_limit(retry_after=7))
    with pytest.raises(errors.RateLimitError):
        a.complete("hello")
    b.complete("hello")  # never got a 429 itself, but shares the key
    assert clock.slept == pytest.approx(7.0)


def test_redis_keys_name_profile_and_fingerprint_never_the_key(
    redis_url: str, server: FakeLLMServer, write_settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmnb.middleware.ratelimit_redis import redis_limiter_for

    monkeypatch.setenv("TEAM_KEY", "sk-very-secret-123456")
    profile = {
        "type": "openai_compatible",
        "base_url": server.base_url,
        "model": "m",
        "api_key_env": "TEAM_KEY",
    }
    provider = OpenAICompatibleProvider("team", profile, "m")
    clock = ManualClock()
    limiter = redis_limiter_for(provider, "team", clock, redis_url, {"requests_per_minute": 5})
    LLMClient(provider, middleware=[limiter], tracker=UsageTracker(), cache=False).complete("hi")
    keys = [k.decode() for k in redis.Redis.from_url(redis_url).keys("*")]
    assert keys and all(k.startswith("llmnb:rl:{team:k-") for k in keys)
    assert not any("secret" in k or "123456" in k for k in keys)
    # The same profile and key in another process share the budget; another key does not.
    assert redis_limiter_for(provider, "team", clock, redis_url, {"requests_per_minute": 5}) is (
        limiter
    )


def test_unreachable_redis_warns_once_and_limits_in_process(
    server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://:pa55word@127.0.0.1:{servers.closed_port()}/0"
    clock = ManualClock(1000.0)
    limiter = _limiter(url, clock, rpm=2)
    client = _client(server, limiter)
    with caplog.at_level(logging.WARNING, logger="llmnb.ratelimit"):
        for _ in range(3):
            assert client.complete("hello").content == "Hi there!"
    warned = [r for r in caplog.records if r.name == "llmnb.ratelimit"]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    text = warned[0].getMessage()
    assert "in this process only" in text and "pa55word" not in text
    assert limiter.degraded
    assert clock.slept == pytest.approx(60.0)  # the in-process fallback held the 3rd call
    assert limiter.status()["backend"].startswith("memory")


_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from llmnb.client.client import LLMClient
    from llmnb.middleware.ratelimit_redis import RedisRateLimiter
    from llmnb.providers.openai_compat import OpenAICompatibleProvider
    from llmnb.usage import UsageTracker

    redis_url, base_url, limit, window, n, go = sys.argv[1:7]
    limiter = RedisRateLimiter(redis_url, requests_per_minute=float(limit),
                               window=float(window), profile="team", key_fingerprint="k-mp")
    profile = {"type": "openai_compatible", "base_url": base_url, "model": "m",
               "pricing": {"input_per_mtok": 1, "output_per_mtok": 1}}  # no price table
    client = LLMClient(OpenAICompatibleProvider("team", profile, "m"), middleware=[limiter],
                       tracker=UsageTracker(), cache=False)
    while not Path(go).exists():
        time.sleep(0.005)
    for _ in range(int(n)):
        client.complete("hello")
    print(json.dumps(list(limiter.admissions)))
    """
)


def test_four_processes_stay_under_the_combined_limit_in_every_window(
    redis_url: str, server: FakeLLMServer, tmp_path: Path
) -> None:
    limit, window, per_process = 4, 0.5, 4  # 16 calls: at least 4 windows' worth
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    go = tmp_path / "go"
    args = [redis_url, server.base_url, str(limit), str(window), str(per_process), str(go)]
    procs = [
        subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    go.touch()
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    admitted = sorted(t for out in outputs for t in json.loads(out))
    assert len(admitted) == 4 * per_process == len(server.requests)
    # Every window (t - window, t] ending at an admission holds at most `limit` of them.
    # (Times are the Redis server's, the one clock all four processes share.)
    for i, t in enumerate(admitted):
        in_window = [u for u in admitted[: i + 1] if u > t - window]
        assert len(in_window) <= limit, (t, in_window)
    # …and the limit was the binding constraint: the calls were spread over the windows.
    assert admitted[-1] - admitted[0] >= (4 * per_process / limit - 1) * window - 1e-6
