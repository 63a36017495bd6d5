"""Rate limits: callers wait (on an injected clock) and no 60-s window passes a limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import pytest

import llmnb
from llmnb import errors
from llmnb.middleware import ManualClock, RateLimiter, RetryPolicy
from llmnb.middleware.ratelimit import parse_rate_limit_headers
from llmnb.providers.openai_compat import OpenAICompatibleProvider
from llmnb.testing import FakeLLMServer, Fault
from llmnb.types import Completion, Request


def max_in_window(events: Sequence[tuple[float, float]], span: float = 60.0) -> float:
    """The largest total of amounts in any half-open window [t, t + span)."""
    events = sorted(events)
    best = 0.0
    for i, (t, _) in enumerate(events):
        best = max(best, sum(a for u, a in events[i:] if u < t + span))
    return best


def body(content: str = "ok") -> dict[str, Any]:
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


@pytest.fixture
def limited(
    server: FakeLLMServer, write_settings: Callable[[dict[str, Any]], Any]
) -> Callable[..., tuple[llmnb.LLMClient, ManualClock, list[float]]]:
    """A client with rate_limits on a ManualClock, and the clock times the server saw."""

    def make(**limits: Any) -> tuple[llmnb.LLMClient, ManualClock, list[float]]:
        prof = {
            "type": "openai_compatible",
            "model": "m",
            "base_url": server.base_url,
            "rate_limits": limits,
        }
        write_settings({"llm": {"active_provider": "rl", "providers": {"rl": prof}}})
        clock = ManualClock()
        seen: list[float] = []
        server.set_handler(lambda request: seen.append(clock.now()))  # type: ignore[func-returns-value]
        client = llmnb.LLMManager.from_settings(clock=clock).get_client()
        return client, clock, seen

    return make


def test_200_requests_stay_under_requests_per_minute_in_every_window(limited):
    client, _, seen = limited(requests_per_minute=50)
    for _ in range(200):
        client.complete("hi")
    assert len(seen) == 200
    assert max_in_window([(t, 1.0) for t in seen]) <= 50
    # …and the limiter does not hold back more than it must: 4 windows' worth in 3 minutes.
    assert max(seen) == pytest.approx(180.0)


def test_token_limits_hold_for_the_tokens_the_server_counted(limited, tracker):
    client, clock, seen = limited(input_tokens_per_minute=2_000, output_tokens_per_minute=1_500)
    prompt = "word " * 80  # ~100 tokens in, reserved 50 out
    for _ in range(100):
        client.complete(prompt, max_tokens=50)
    rows = tracker.to_dataframe()
    assert max_in_window(list(zip(seen, rows["prompt_tokens"].astype(float), strict=True))) <= 2_000
    out = rows["completion_tokens"].astype(float)
    assert max_in_window(list(zip(seen, out, strict=True))) <= 1_500
    assert clock.slept > 0  # the input limit made callers wait


def test_output_reservations_are_corrected_to_the_real_usage(limited):
    client, clock, _ = limited(output_tokens_per_minute=1_000)
    client.complete("hi", max_tokens=600)  # reserves 600, uses a handful
    client.complete("hi", max_tokens=600)  # fits only because the first was corrected
    assert clock.slept == 0


class Timed(OpenAICompatibleProvider):
    """Notes the clock time each attempt is admitted (the provider is called at once)."""

    type_name = "timed"
    clock: ClassVar[ManualClock]
    admitted: ClassVar[list[float]] = []

    def complete(self, request: Request) -> Completion:
        Timed.admitted.append(Timed.clock.now())
        return super().complete(request)

    async def acomplete(self, request: Request) -> Completion:
        Timed.admitted.append(Timed.clock.now())
        return await super().acomplete(request)


def test_concurrent_async_callers_wait_instead_of_exceeding_the_limit(server):
    clock = ManualClock()
    Timed.clock, Timed.admitted = clock, []
    manager = llmnb.LLMManager(clock=clock)
    manager.register_provider_class("timed", Timed)
    manager.add_provider(
        "t",
        "timed",
        {"model": "m", "base_url": server.base_url, "rate_limits": {"requests_per_minute": 20}},
    )
    client = manager.get_client("t")

    async def burst() -> list[Completion]:
        return await asyncio.gather(*(client.acomplete(f"hi {i}") for i in range(60)))

    answers = asyncio.run(burst())
    assert len(answers) == 60 and len(server.requests) == 60
    assert max_in_window([(t, 1.0) for t in Timed.admitted]) <= 20


def test_limits_hold_across_clients_of_the_same_profile(server, write_settings):
    prof = {
        "type": "openai_compatible",
        "model": "m",
        "base_url": server.base_url,
        "rate_limits": {"requests_per_minute": 10},
    }
    write_settings({"llm": {"active_provider": "p", "providers": {"p": prof}}})
    clock = ManualClock()
    seen: list[float] = []
    server.set_handler(lambda request: seen.append(clock.now()))  # type: ignore[func-returns-value]
    a = llmnb.LLMManager.from_settings(clock=clock).get_client()
    b = llmnb.LLMManager.from_settings(clock=clock).get_client()
    for _ in range(15):
        a.complete("hi")
        b.complete("hi")
    assert max_in_window([(t, 1.0) for t in seen]) <= 10


def test_remaining_zero_in_the_headers_waits_for_the_reset(limited, server):
    client, clock, _ = limited(requests_per_minute=1000)
    headers = {
        "x-ratelimit-limit-requests": "1000",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "20s",
    }
    server.script(Fault.json(200, body(), headers=headers))
    client.complete("hi")
    assert clock.slept == 0
    client.complete("hi")  # the provider said: none left for 20 s
    assert clock.slept == pytest.approx(20)


def test_a_lower_limit_in_the_headers_tightens_the_configured_one(limited, server):
    client, _, seen = limited(requests_per_minute=100)
    server.script(Fault.json(200, body(), headers={"x-ratelimit-limit-requests": "3"}))
    for _ in range(9):
        client.complete("hi")
    assert max_in_window([(t, 1.0) for t in seen]) <= 3
    status = next(m for m in client.middleware if isinstance(m, RateLimiter)).status()
    assert status["keys"]["(no key)"]["learned_limits"] == {"requests": 3.0}


def test_a_429_retry_after_blocks_the_key_until_then(limited, server):
    client, clock, seen = limited(requests_per_minute=100)
    client.retry = RetryPolicy(sleep=lambda s: None)  # the retry itself does not wait here
    server.script(Fault.rate_limit(retry_after=7))
    client.complete("hi")
    assert clock.slept == pytest.approx(7)
    assert seen == [pytest.approx(7.0)]  # the scripted 429 is not in `seen`: only the retry


def test_a_call_bigger_than_a_limit_fails_at_once_and_sends_nothing(limited, server):
    client, _, _ = limited(output_tokens_per_minute=1_000)
    with pytest.raises(errors.RequestExceedsLimitError, match="output_tokens_per_minute") as info:
        client.complete("hi", max_tokens=5_000)
    assert "'rl'" in str(info.value) and "max_tokens" in str(info.value)
    assert server.requests == []


def test_an_unknown_backend_is_a_config_error_naming_the_field(write_settings, server):
    prof = {
        "type": "openai_compatible",
        "model": "m",
        "base_url": server.base_url,
        "rate_limits": {"requests_per_minute": 5, "backend": "redis"},
    }
    write_settings({"llm": {"active_provider": "p", "providers": {"p": prof}}})
    with pytest.raises(errors.ConfigError, match=r"rate_limits\.backend 'redis'"):
        llmnb.create_llm_client_from_profile()


def test_openai_and_anthropic_rate_limit_headers_are_read():
    openai = parse_rate_limit_headers(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "1m30.5s",
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-tokens": "29000",
            "x-ratelimit-reset-tokens": "20ms",
        }
    )
    assert openai["requests"].limit == 500 and openai["requests"].remaining == 499
    assert openai["requests"].reset_s == pytest.approx(90.5)
    assert openai["tokens"].reset_s == pytest.approx(0.02)
    anthropic = parse_rate_limit_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2000-01-01T00:00:00Z",
            "anthropic-ratelimit-input-tokens-limit": "40000",
            "anthropic-ratelimit-input-tokens-remaining": "39000",
            "anthropic-ratelimit-output-tokens-limit": "8000",
        }
    )
    assert anthropic["requests"].remaining == 0 and anthropic["requests"].reset_s == 0
    assert anthropic["input_tokens"].limit == 40000
    assert anthropic["output_tokens"].limit == 8000 and anthropic["output_tokens"].remaining is None
    assert parse_rate_limit_headers({"X-RateLimit-Limit-Requests": "7"})["requests"].limit == 7
    assert parse_rate_limit_headers({"content-type": "application/json"}) == {}
    assert parse_rate_limit_headers({"x-ratelimit-limit-requests": "lots"}) == {}
