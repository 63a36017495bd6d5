"""The middleware chain: hook order, short-circuits, user middlewares, logging, metrics."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import pytest

import llmnb
from llmnb import errors
from llmnb.middleware import (
    BudgetMiddleware,
    CacheMiddleware,
    LoggingMiddleware,
    MetricsMiddleware,
    Middleware,
    RetryPolicy,
)
from llmnb.middleware.base import Call
from llmnb.providers.base import key_fingerprint
from llmnb.testing import FakeLLMServer, Fault
from llmnb.types import Completion, Usage

KEYS = ["sk-middleware-key-0001", "sk-middleware-key-0002"]


@pytest.fixture
def make(
    server: FakeLLMServer, write_settings: Callable[[dict[str, Any]], Any]
) -> Callable[..., llmnb.LLMClient]:
    def build(**profile: Any) -> llmnb.LLMClient:
        prof = {"type": "openai_compatible", "model": "m", "base_url": server.base_url, **profile}
        write_settings({"llm": {"active_provider": "p", "providers": {"p": prof}}})
        client = llmnb.create_llm_client_from_profile()
        client.retry = RetryPolicy(max_retries=client.retry.max_retries, sleep=lambda s: None)
        return client

    return build


class Recorder(Middleware):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def before_call(self, call: Call) -> Completion | None:
        self.log.append(f"{self.name}.before_call")
        return None

    def before_attempt(self, call: Call) -> float:
        self.log.append(f"{self.name}.before_attempt {call.attempt + 1}")
        return 0.0

    def after_attempt(self, call: Call, completion: Any, error: Any) -> None:
        outcome = "ok" if error is None else type(error).__name__
        self.log.append(f"{self.name}.after_attempt {call.attempt} {outcome}")

    def after_call(self, call: Call, completion: Completion) -> Completion:
        self.log.append(f"{self.name}.after_call")
        return completion

    def call_failed(self, call: Call, error: BaseException) -> None:
        self.log.append(f"{self.name}.call_failed {type(error).__name__}")


def test_hooks_run_like_an_onion_around_the_call_and_each_attempt(make, server):
    log: list[str] = []
    client = make()
    client.add_middleware(Recorder("outer", log))
    client.add_middleware(Recorder("inner", log))
    server.script(Fault.status(500))
    client.complete("hi")
    assert log == [
        "outer.before_call",
        "inner.before_call",
        "outer.before_attempt 1",
        "inner.before_attempt 1",
        "inner.after_attempt 1 ProviderError",
        "outer.after_attempt 1 ProviderError",
        "outer.before_attempt 2",
        "inner.before_attempt 2",
        "inner.after_attempt 2 ok",
        "outer.after_attempt 2 ok",
        "inner.after_call",
        "outer.after_call",
    ]


def test_a_failed_call_runs_call_failed_instead_of_after_call(make, server):
    log: list[str] = []
    client = make(max_retries=0)
    client.add_middleware(Recorder("m", log))
    server.script(Fault.status(400))
    with pytest.raises(errors.InvalidRequestError):
        client.complete("hi")
    assert log[-1] == "m.call_failed InvalidRequestError" and "m.after_call" not in log


def test_builtins_sit_inside_user_middlewares_in_a_fixed_order(make):
    client = make(api_keys=KEYS, rate_limits={"requests_per_minute": 100})
    client.complete("hi", cache=True)  # no cache configured: the first cache=True adds one
    mine = Recorder("mine", [])
    client.add_middleware(mine)
    kinds = [type(m).__name__ for m in client.middleware]
    assert kinds == ["Recorder", "CacheMiddleware", "BudgetMiddleware", "KeyPool", "RateLimiter"]
    client.remove_middleware(mine)
    assert not any(isinstance(m, Recorder) for m in client.middleware)
    with pytest.raises(errors.InvalidOptionError):
        client.remove_middleware(mine)
    with pytest.raises(errors.InvalidOptionError, match="not a middleware"):
        client.add_middleware(object())  # type: ignore[arg-type]


def test_the_default_chain_is_only_the_budget_check(make):
    client = make()
    assert [type(m) for m in client.middleware] == [BudgetMiddleware]
    client.complete("hi", cache=True)
    assert [type(m) for m in client.middleware] == [CacheMiddleware, BudgetMiddleware]


class Canned(Middleware):
    """Answers every call itself: the provider is never asked."""

    def before_call(self, call: Call) -> Completion | None:
        return Completion(content="canned", model=call.request.model, usage=Usage(2, 3))


def test_a_before_call_answer_is_recorded_like_a_cache_hit(make, server, tracker):
    client = make()
    client.add_middleware(Canned())
    c = client.complete("hi")
    assert c.content == "canned" and c.cached and c.cost_usd == 0
    assert server.requests == []
    row = tracker.to_dataframe().iloc[0]
    assert row["cached"] and row["prompt_tokens"] == 2 and row["status"] == "ok"


class AddUser(Middleware):
    """Changes the request: every call carries a `user` wire parameter."""

    def before_call(self, call: Call) -> Completion | None:
        extra = {**call.request.extra, "user": "notebook-7"}
        call.request = dataclasses.replace(call.request, extra=extra)
        return None


def test_a_middleware_can_change_the_request(make, server):
    client = make()
    client.add_middleware(AddUser())
    client.complete("hi")
    assert server.last_request.json["user"] == "notebook-7"


def test_logging_middleware_logs_attempts_with_key_fingerprints_only(make, server, caplog):
    client = make(api_keys=KEYS, max_retries=0)
    client.add_middleware(LoggingMiddleware(include_content=True))
    server.script(Fault.status(401, body={"error": {"message": f"key {KEYS[0]} is revoked"}}))
    with caplog.at_level(logging.INFO, logger="llmnb.calls"):
        client.complete("hello")
    text = caplog.text
    assert KEYS[0] not in text and KEYS[1] not in text
    assert f"key={key_fingerprint(KEYS[0])} status=AuthenticationError" in text
    assert f"key={key_fingerprint(KEYS[1])} status=ok" in text
    assert "prompt='hello'" in text and "answer='Hi there!'" in text


def test_logging_without_content_keeps_prompts_out(make, caplog):
    client = make()
    client.add_middleware(LoggingMiddleware())
    with caplog.at_level(logging.INFO, logger="llmnb.calls"):
        client.complete("a private prompt")
    assert "status=ok" in caplog.text and "private" not in caplog.text


def test_metrics_middleware_counts_and_percentiles(make, server):
    client = make(max_retries=1)
    metrics = MetricsMiddleware()
    client.add_middleware(metrics)
    client.complete("hi")
    server.script(Fault.status(500))
    client.complete("hi")
    client.complete("hi", cache=True)
    client.complete("hi", cache=True)
    snap = metrics.snapshot()
    assert snap["calls"] == 4 and snap["attempts"] == 4 and snap["cache_hits"] == 1
    assert snap["errors"] == {"ProviderError": 1}
    assert snap["success_rate"] == pytest.approx(3 / 4)
    assert snap["latency_p50_s"] <= snap["latency_p95_s"]


class Refuse(Middleware):
    def before_attempt(self, call: Call) -> float:
        raise errors.PoolExhaustedError("no key free (test)", profile="p")


def test_a_refused_admission_unwinds_the_middlewares_admitted_before_it(make, server, tracker):
    log: list[str] = []
    client = make()
    client.add_middleware(Recorder("m", log))
    client.add_middleware(Refuse())
    with pytest.raises(errors.PoolExhaustedError):
        client.complete("hi")
    assert log == [
        "m.before_call",
        "m.before_attempt 1",
        "m.after_attempt 1 PoolExhaustedError",  # released after its not_sent row
        "m.call_failed PoolExhaustedError",
    ]
    assert server.requests == []
    assert [(r.status, r.cost_source) for r in tracker.records] == [
        ("PoolExhaustedError", "not_sent")
    ]


def test_a_structured_re_ask_is_not_a_failed_call(make, server, caplog):
    import pydantic

    class Point(pydantic.BaseModel):
        x: int

    client = make()
    metrics = MetricsMiddleware()
    client.add_middleware(metrics)
    client.add_middleware(LoggingMiddleware())
    server.script(Fault.reply("not json"), Fault.reply('{"x": 1}'))
    with caplog.at_level(logging.INFO, logger="llmnb.calls"):
        assert client.complete("point?", response_model=Point).parsed.x == 1
    snap = metrics.snapshot()
    assert snap["failed_calls"] == 0 and snap["calls"] == 1 and snap["attempts"] == 2
    assert "did not validate; asking again" in caplog.text
