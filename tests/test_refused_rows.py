"""Calls llmnb refuses before sending still leave their usage row ("nothing is lost").

A refused attempt — over a budget, no key free in the pool, bigger than a rate limit,
a middleware's error — is one row: status the error's type, tokens unknown, cost 0
with ``cost_source="not_sent"`` (nothing was sent, so nothing was billed).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import llmnb
from llmnb import errors
from llmnb.client.manager import reset_llm_manager
from llmnb.middleware import ManualClock, Middleware
from llmnb.middleware import budget as budget_mw
from llmnb.middleware.base import Call
from llmnb.providers.base import key_fingerprint
from llmnb.testing import FakeLLMServer, Fault
from llmnb.types import Completion
from llmnb.usage import UsageTracker
from llmnb.usage.record import UsageRecord

PRICING = {"input_per_mtok": 1.0, "output_per_mtok": 1.0}
KEYS = ["sk-refused-key-one-0001", "sk-refused-key-two-0002"]


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    budget_mw.reset_spend()
    budget_mw.reset_session_budget()
    reset_llm_manager()
    yield
    budget_mw.reset_spend()
    budget_mw.reset_session_budget()
    reset_llm_manager()


@pytest.fixture
def backup() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(default_response="from the backup") as srv:
        yield srv


@pytest.fixture
def settings(
    server: FakeLLMServer, backup: FakeLLMServer, write_settings: Callable[[dict[str, Any]], Any]
) -> Callable[..., None]:
    """Profile ``p`` on ``server`` (priced), ``backup`` on the second server."""

    def write(fallbacks: list[str] | None = None, **profile: Any) -> None:
        providers = {
            "p": {
                "type": "openai_compatible",
                "model": "m",
                "base_url": server.base_url,
                "pricing": PRICING,
                "max_retries": 0,
                **profile,
            },
            "backup": {
                "type": "openai_compatible",
                "model": "backup-model",
                "base_url": backup.base_url,
                "pricing": PRICING,
            },
        }
        llm: dict[str, Any] = {
            "active_provider": "p",
            "providers": providers,
            "agents": {"planner": {"steps": {"draft": {"max_tokens": 1_000}}}},
        }
        if fallbacks is not None:
            llm["fallbacks"] = fallbacks
        write_settings({"llm": llm})

    return write


def assert_not_sent(row: UsageRecord, exc: BaseException, **expected: Any) -> None:
    """``row`` is the refusal of an attempt: ``exc``'s type and text, no tokens, $0."""
    assert row.status == type(exc).__name__
    assert row.error == str(exc)
    assert row.prompt_tokens is None and row.completion_tokens is None
    assert row.total_tokens is None
    assert row.cost_usd == 0.0 and row.cost_source == "not_sent"
    assert math.isnan(row.latency_s)
    assert row.cached is False and row.call_id
    for name, value in expected.items():
        assert getattr(row, name) == value, name


# --- budget ------------------------------------------------------------------------


def test_a_budget_refusal_leaves_one_not_sent_row(settings, server, tracker: UsageTracker):
    settings()
    client = llmnb.create_llm_client_from_profile(agent="planner", step="draft")
    budget_mw.set_session_budget(0.0001)  # a call of up to 1000 tokens may cost ~$0.001
    with pytest.raises(errors.BudgetExceededError) as info:
        client.complete("hi", tags={"run": "a"})
    assert server.requests == []
    [row] = tracker.records
    assert_not_sent(
        row,
        info.value,
        profile="p",
        provider="openai_compatible",
        model="m",
        agent="planner",
        step="draft",
        tags={"run": "a"},
        attempt=1,
        key_id=None,
    )
    assert budget_mw.get_session_spend() == 0.0


def test_a_budget_refusal_is_recorded_alike_by_acomplete_stream_and_astream(
    settings, server, tracker: UsageTracker
):
    settings()
    client = llmnb.create_llm_client_from_profile()
    budget_mw.set_session_budget(0.0001)
    caught: list[BaseException] = []
    with pytest.raises(errors.BudgetExceededError) as info:
        asyncio.run(client.acomplete("hi", max_tokens=1_000))
    caught.append(info.value)
    with pytest.raises(errors.BudgetExceededError) as info:
        client.stream("hi", max_tokens=1_000).text()
    caught.append(info.value)

    async def astream() -> str:
        return await client.astream("hi", max_tokens=1_000).text()

    with pytest.raises(errors.BudgetExceededError) as info:
        asyncio.run(astream())
    caught.append(info.value)
    assert server.requests == []
    rows = tracker.records
    assert len(rows) == 3 and len({r.call_id for r in rows}) == 3
    for row, exc in zip(rows, caught, strict=True):
        assert_not_sent(row, exc, profile="p", model="m", attempt=1)


# --- key pool ------------------------------------------------------------------------


def cool_down_both_keys(client: llmnb.LLMClient, server: FakeLLMServer) -> None:
    """Both keys answered 401: both cool down for ``cooldown`` seconds."""
    server.script(Fault.status(401), Fault.status(401))
    with pytest.raises(errors.AuthenticationError):
        client.complete("hi")


def test_an_exhausted_key_pool_leaves_one_not_sent_row(settings, server, tracker: UsageTracker):
    settings(api_keys=KEYS, cooldown=600, acquire_timeout=5)
    clock = ManualClock()
    client = llmnb.LLMManager.from_settings(clock=clock).get_client()
    cool_down_both_keys(client, server)
    assert [r.status for r in tracker.records] == ["AuthenticationError"] * 2
    sent = len(server.requests)
    with pytest.raises(errors.PoolExhaustedError) as info:
        client.complete("hi", tags={"t": 1})
    assert len(server.requests) == sent and clock.slept == pytest.approx(5)
    rows = tracker.records
    assert len(rows) == 3
    assert_not_sent(rows[-1], info.value, profile="p", attempt=1, key_id=None, tags={"t": 1})
    assert all(k not in (rows[-1].error or "") for k in KEYS)


def test_an_exhausted_key_pool_leaves_one_row_in_async_too(settings, server, tracker: UsageTracker):
    settings(api_keys=KEYS, cooldown=600, acquire_timeout=5)
    client = llmnb.LLMManager.from_settings(clock=ManualClock()).get_client()
    cool_down_both_keys(client, server)
    with pytest.raises(errors.PoolExhaustedError) as info:
        asyncio.run(client.acomplete("hi"))
    rows = tracker.records
    assert len(rows) == 3
    assert_not_sent(rows[-1], info.value, profile="p", attempt=1, key_id=None)


def test_a_refused_profile_then_failover_leaves_a_row_per_attempt(
    settings, server, backup, tracker: UsageTracker
):
    settings(fallbacks=["backup"], api_keys=KEYS, cooldown=600, acquire_timeout=5)
    client = llmnb.LLMManager.from_settings(clock=ManualClock()).get_client()
    server.script(Fault.status(401), Fault.status(401))
    assert client.complete("hi").profile == "backup"  # both keys now cool down
    before = len(tracker.records)

    def check(completion: Completion) -> None:
        assert completion.profile == "backup" and completion.content == "from the backup"
        assert completion.attempts == 2
        refused, ok = tracker.records[before:]
        assert refused.call_id == ok.call_id == completion.call_id
        assert refused.profile == "p" and refused.status == "PoolExhaustedError"
        assert refused.cost_usd == 0.0 and refused.cost_source == "not_sent"
        assert refused.prompt_tokens is None and refused.attempt == 1
        assert ok.profile == "backup" and ok.status == "ok" and ok.attempt == 2
        assert ok.cost_source == "price_table" and ok.cost_usd > 0

    check(client.complete("hi"))
    before = len(tracker.records)
    check(asyncio.run(client.acomplete("hi")))
    assert len(server.requests) == 2  # only the two 401s reached the first profile


# --- rate limit ----------------------------------------------------------------------


def test_a_request_over_a_rate_limit_leaves_one_not_sent_row(
    settings, server, tracker: UsageTracker
):
    settings(rate_limits={"output_tokens_per_minute": 1_000})
    client = llmnb.LLMManager.from_settings(clock=ManualClock()).get_client()
    with pytest.raises(errors.RequestExceedsLimitError) as info:
        client.complete("hi", max_tokens=5_000)
    with pytest.raises(errors.RequestExceedsLimitError):
        client.stream("hi", max_tokens=5_000).text()
    assert server.requests == []
    rows = tracker.records
    assert len(rows) == 2 and rows[0].call_id != rows[1].call_id
    for row in rows:
        assert_not_sent(row, info.value, profile="p", model="m", attempt=1, key_id=None)


def test_a_rate_limit_refusal_after_the_pool_picked_a_key_names_that_key(
    settings, server, tracker: UsageTracker
):
    settings(api_keys=KEYS, rate_limits={"output_tokens_per_minute": 1_000})
    client = llmnb.LLMManager.from_settings(clock=ManualClock()).get_client()
    with pytest.raises(errors.RequestExceedsLimitError) as info:
        client.complete("hi", max_tokens=5_000)
    [row] = tracker.records
    assert_not_sent(row, info.value, profile="p", attempt=1)
    assert row.key_id is not None and row.key_id not in KEYS
    # The key was released: the next calls get both keys again.
    client.complete("hi", max_tokens=10)
    client.complete("hi", max_tokens=10)
    assert {r.key_id for r in tracker.records[1:]} == {key_fingerprint(k) for k in KEYS}
    assert [r.status for r in tracker.records] == ["RequestExceedsLimitError", "ok", "ok"]


# --- a middleware's own error --------------------------------------------------------


class BrokenLookup(Middleware):
    """A ``before_call`` hook whose lookup fails (a disk or network error). (A failing
    *cache* backend no longer fails the call: see test_cache.py.)"""

    def before_call(self, call: Call) -> None:
        raise OSError("lookup unreachable")


class Gate(Middleware):
    def before_attempt(self, call: Call) -> float:
        raise RuntimeError("gate closed")


def test_a_middleware_error_before_sending_leaves_one_row(settings, server, tracker: UsageTracker):
    settings()
    client = llmnb.create_llm_client_from_profile()
    client.add_middleware(BrokenLookup())
    with pytest.raises(OSError, match="lookup unreachable") as cache_info:
        client.complete("hi")
    other = llmnb.create_llm_client_from_profile()
    other.add_middleware(Gate())
    with pytest.raises(RuntimeError, match="gate closed") as gate_info:
        asyncio.run(other.acomplete("hi"))
    assert server.requests == []
    cache_row, gate_row = tracker.records
    assert_not_sent(cache_row, cache_info.value, profile="p", attempt=1)
    assert_not_sent(gate_row, gate_info.value, profile="p", attempt=1)


# --- the normal path -----------------------------------------------------------------


def test_a_successful_call_is_unchanged(settings, server, tracker: UsageTracker):
    settings(api_keys=KEYS, rate_limits={"requests_per_minute": 100})
    client = llmnb.LLMManager.from_settings(clock=ManualClock()).get_client()
    budget_mw.set_session_budget(1.0)
    c = client.complete("hello", max_tokens=10)
    [row] = tracker.records
    assert c.content == "Hi there!" and c.attempts == 1
    assert row.status == "ok" and row.error is None and row.attempt == 1
    assert row.prompt_tokens and row.completion_tokens
    assert row.cost_source == "price_table" and row.cost_usd == c.cost_usd > 0
    assert row.latency_s >= 0 and row.key_id is not None
    assert budget_mw.get_session_spend() == pytest.approx(row.cost_usd)
