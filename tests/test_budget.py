"""Budgets: the estimated cost is checked before sending; nothing is sent past a limit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import llmnb
from llmnb import errors
from llmnb.middleware import budget
from llmnb.testing import FakeLLMServer

# $1 per million tokens in and out: a call of ~10 tokens costs ~$0.00001.
PRICING = {"input_per_mtok": 1.0, "output_per_mtok": 1.0}


@pytest.fixture(autouse=True)
def _fresh_budget() -> Iterator[None]:
    budget.reset_spend()
    budget.reset_session_budget()
    yield
    budget.reset_spend()
    budget.reset_session_budget()


@pytest.fixture
def make(
    server: FakeLLMServer, write_settings: Callable[[dict[str, Any]], Any]
) -> Callable[..., llmnb.LLMClient]:
    def build(usage: dict[str, Any] | None = None, **profile: Any) -> llmnb.LLMClient:
        prof = {
            "type": "openai_compatible",
            "model": "m",
            "base_url": server.base_url,
            "pricing": PRICING,
            **profile,
        }
        data: dict[str, Any] = {"llm": {"active_provider": "p", "providers": {"p": prof}}}
        if usage is not None:
            data["usage"] = usage
        write_settings(data)
        return llmnb.create_llm_client_from_profile()

    return build


def test_a_call_over_the_session_budget_is_stopped_before_sending(make, server, tracker):
    client = make()
    budget.set_session_budget(0.0001)
    with pytest.raises(errors.BudgetExceededError) as info:
        client.complete("hi", max_tokens=1_000)  # up to ~$0.001 > $0.0001
    assert server.requests == []
    err = info.value
    assert err.scope == "session" and err.limit_usd == 0.0001 and err.spent_usd == 0
    assert err.estimate_usd == pytest.approx((1_000 + 1) / 1e6, rel=0.1)
    assert "$0.0001" in str(err) and "spent" in str(err) and "%llm budget" in str(err)
    # Nothing was sent, but the refusal is on record: free, and said to be so.
    rows = [(r.status, r.cost_usd, r.cost_source, r.prompt_tokens) for r in tracker.records]
    assert rows == [("BudgetExceededError", 0.0, "not_sent", None)]


def test_spend_accumulates_until_the_budget_stops_calls(make, server):
    client = make()
    budget.set_session_budget(0.0001)
    sent = 0
    with pytest.raises(errors.BudgetExceededError) as info:
        for _ in range(100):
            client.complete("hello", max_tokens=10)
            sent += 1
    assert 3 < sent < 100 and len(server.requests) == sent
    assert info.value.spent_usd == pytest.approx(budget.get_session_spend())
    assert budget.get_session_spend() + info.value.estimate_usd > 0.0001


def test_the_settings_budget_applies_and_can_be_replaced_or_removed(make, server):
    client = make(usage={"budget_usd": 0.000001})
    assert budget.get_session_budget() == 0.000001
    with pytest.raises(errors.BudgetExceededError, match="session budget"):
        client.complete("hi")
    budget.set_session_budget(None)  # `%llm budget off`
    assert budget.get_session_budget() is None
    assert client.complete("hi").content
    budget.reset_session_budget()
    assert budget.get_session_budget() == 0.000001


def test_a_profile_budget_names_the_profile_field(make, server):
    client = make(budget_usd=0.00002)
    client.complete("hi", max_tokens=5)
    with pytest.raises(errors.BudgetExceededError) as info:
        for _ in range(10):
            client.complete("hi", max_tokens=5)
    assert info.value.scope == "profile p"
    assert "llm.providers.p.budget_usd" in str(info.value)
    assert budget.get_profile_spend("p") == pytest.approx(budget.get_session_spend())


def test_cache_hits_cost_nothing_against_the_budget(make, server):
    client = make()
    client.complete("hello", cache=True)
    spent = budget.get_session_spend()
    budget.set_session_budget(spent + 0.0000001)  # no room for another real call
    assert client.complete("hello", cache=True).cached
    assert budget.get_session_spend() == spent


def test_set_session_budget_rejects_nonsense():
    for bad in (0, -1, float("inf"), "5", True):
        with pytest.raises(errors.InvalidOptionError, match="session budget"):
            budget.set_session_budget(bad)  # type: ignore[arg-type]


def test_a_model_without_a_price_passes_until_the_spend_is_known(make, server, caplog):
    client = make(pricing=None)  # the fake model has no price: cost unknown
    budget.set_session_budget(0.01)
    assert client.complete("hi").content
    assert "no known price" in caplog.text
