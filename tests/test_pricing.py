"""Prices: the profile override, the genai-prices table, provider mapping, cost arithmetic."""

from __future__ import annotations

import math

import pytest
from genai_prices import Usage, calc_price

from llmnb.usage.pricing import Price, PriceTier, cost_of, price_for


def table_cost(
    model: str, provider_id: str, prompt: int, completion: int, cached: int = 0
) -> float:
    """What genai-prices itself charges (cached tokens are part of the input)."""
    usage = Usage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached)
    return float(calc_price(usage, model, provider_id=provider_id).total_price)


# -- override --------------------------------------------------------------------------


def test_override_prices_per_million_tokens() -> None:
    price = price_for("anything", "mock", pricing={"input_per_mtok": 1, "output_per_mtok": 4})
    assert price is not None
    assert price.source == "override"
    assert cost_of(price, 1_000_000, 500_000) == pytest.approx(1.0 + 2.0)


def test_override_cached_rate_defaults_to_input_rate() -> None:
    price = price_for(None, None, pricing={"input_per_mtok": 2, "output_per_mtok": 8})
    assert price is not None
    assert price.cached_input == price.input
    assert cost_of(price, 1000, 0, cached_tokens=400) == pytest.approx(1000 * 2e-6)


def test_override_cached_rate_applies_to_cached_prompt_tokens() -> None:
    price = price_for(
        "m",
        None,
        pricing={"input_per_mtok": 2, "output_per_mtok": 8, "cached_input_per_mtok": 0.5},
    )
    assert price is not None
    # 600 fresh prompt tokens, 400 cached, 100 output
    assert cost_of(price, 1000, 100, cached_tokens=400) == pytest.approx(
        600 * 2e-6 + 400 * 0.5e-6 + 100 * 8e-6
    )


def test_override_wins_over_price_table() -> None:
    price = price_for("gpt-4o", "openai", pricing={"input_per_mtok": 0, "output_per_mtok": 0})
    assert price == Price(0.0, 0.0, 0.0, "override")


@pytest.mark.parametrize(
    "pricing",
    [
        {"input_per_mtok": 1},
        {"input_per_mtok": 1, "output_per_mtok": 2, "cache_input_per_mtok": 1},
        {"input_per_mtok": "cheap", "output_per_mtok": 2},
        {"input_per_mtok": -1, "output_per_mtok": 2},
        {"input_per_mtok": float("nan"), "output_per_mtok": 2},
    ],
)
def test_malformed_override_raises_value_error_naming_the_keys(pricing: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="pricing"):
        price_for("m", None, pricing=pricing)


# -- genai-prices ----------------------------------------------------------------------


def test_openai_model_is_priced_like_genai_prices() -> None:
    price = price_for("gpt-4o", "openai")
    assert price is not None
    assert price.source == "genai-prices:openai/gpt-4o"
    assert cost_of(price, 1000, 200, cached_tokens=400) == pytest.approx(
        table_cost("gpt-4o", "openai", 1000, 200, cached=400)
    )
    assert price.cached_input < price.input  # gpt-4o has a cache-read discount


def test_gemini_provider_type_maps_to_google_prices() -> None:
    price = price_for("gemini-2.5-pro", "gemini")
    assert price is not None
    assert price.source.startswith("genai-prices:google/")


def test_openrouter_model_uses_openrouter_prices() -> None:
    price = price_for("anthropic/claude-sonnet-4.5", "openrouter")
    assert price is not None
    assert price.source.startswith("genai-prices:openrouter/")


def test_vendor_prefixed_model_is_priced_by_its_vendor() -> None:
    # an OpenRouter-style id behind a provider genai-prices does not know
    price = price_for("anthropic/claude-sonnet-4.5", "openai_compatible", "https://llm.example/v1")
    assert price is not None
    assert price.source.startswith("genai-prices:anthropic/")


def test_base_url_identifies_the_provider_of_an_openai_compatible_profile() -> None:
    price = price_for(
        "llama-3.3-70b-versatile", "openai_compatible", "https://api.groq.com/openai/v1"
    )
    assert price is not None
    assert price.source.startswith("genai-prices:groq/")


def test_long_prompt_uses_the_higher_tier_like_genai_prices() -> None:
    price = price_for("claude-sonnet-4-5", "anthropic")
    assert price is not None
    assert price.tiers and all(isinstance(t, PriceTier) for t in price.tiers)
    for prompt in (10_000, 250_000):
        assert cost_of(price, prompt, 1000, cached_tokens=5000) == pytest.approx(
            table_cost("claude-sonnet-4-5", "anthropic", prompt, 1000, cached=5000)
        )
    assert cost_of(price, 250_000, 0) > 250_000 * price.input  # the tier costs more


def test_mock_provider_with_a_made_up_model_has_no_price() -> None:
    assert price_for("mock-1", "mock") is None


def test_unknown_provider_falls_back_to_the_model_name() -> None:
    price = price_for("gpt-4o", "my_custom_provider")
    assert price is not None
    assert price.source == "genai-prices:openai/gpt-4o"


def test_unknown_model_on_a_known_provider_has_no_price() -> None:
    assert price_for("no-such-model-xyz", "openai") is None
    assert price_for("no-such-model-xyz", "openai") is None  # cached miss, same answer


def test_no_model_means_no_price() -> None:
    assert price_for(None, "openai") is None
    assert price_for("", "openai") is None


def test_repeated_lookups_return_the_cached_price() -> None:
    first = price_for("gpt-4o-mini", "openai")
    assert first is not None
    assert price_for("gpt-4o-mini", "openai") is first


# -- arithmetic -------------------------------------------------------------------------


def test_cost_of_bills_cached_tokens_at_the_cached_rate_and_the_rest_at_input() -> None:
    price = Price(input=3e-6, output=15e-6, cached_input=0.3e-6, source="t")
    assert cost_of(price, 1000, 100, cached_tokens=200) == pytest.approx(
        800 * 3e-6 + 200 * 0.3e-6 + 100 * 15e-6
    )


def test_cost_of_never_counts_more_cached_tokens_than_prompt_tokens() -> None:
    price = Price(input=3e-6, output=15e-6, cached_input=0.3e-6, source="t")
    assert cost_of(price, 100, 0, cached_tokens=500) == pytest.approx(100 * 0.3e-6)


def test_cost_of_zero_tokens_is_zero_not_nan() -> None:
    price = Price(input=3e-6, output=15e-6, cached_input=0.3e-6, source="t")
    assert cost_of(price, 0, 0) == 0.0
    assert not math.isnan(cost_of(price, 0, 0))


def test_price_reports_per_million_rates() -> None:
    price = Price(input=3e-6, output=15e-6, cached_input=0.3e-6, source="t")
    assert price.input_per_mtok == pytest.approx(3.0)
    assert price.output_per_mtok == pytest.approx(15.0)


# -- end to end: what a call over the wire is charged ------------------------------------


def _client(write_settings, srv, **profile: object):  # type: ignore[no-untyped-def]
    import llmnb

    base = {"type": "openai_compatible", "model": "house-model", "base_url": srv.base_url}
    write_settings({"llm": {"providers": {"p": {**base, **profile}}}})
    return llmnb.create_llm_client_from_profile(profile="p")


OVERRIDE = {"input_per_mtok": 2.0, "output_per_mtok": 8.0, "cached_input_per_mtok": 0.5}


def test_a_cost_reported_by_the_provider_wins_over_prices(write_settings, tracker) -> None:
    from llmnb.testing import FakeLLMServer

    with FakeLLMServer(report_cost=0.0042) as srv:
        c = _client(write_settings, srv, pricing=OVERRIDE).complete("hi")
    assert (c.cost_usd, c.cost_source) == (0.0042, "provider")
    assert tracker.records[-1].cost_usd == 0.0042


def test_cached_prompt_tokens_on_the_wire_are_billed_at_the_cached_rate(
    write_settings, tracker
) -> None:
    from llmnb.testing import FakeLLMServer, Fault

    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "total_tokens": 1100,
        "prompt_tokens_details": {"cached_tokens": 400},
    }
    with FakeLLMServer() as srv:
        srv.script(Fault.reply("ok", usage=usage))
        c = _client(write_settings, srv, pricing=OVERRIDE).complete("hi")
    assert c.cost_source == "price_table"
    assert c.cost_usd == pytest.approx(600 * 2e-6 + 400 * 0.5e-6 + 100 * 8e-6)
    assert tracker.records[-1].cached_tokens == 400


def test_reasoning_tokens_are_output_tokens_billed_once(write_settings, tracker) -> None:
    from llmnb.testing import FakeLLMServer, Fault

    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 100,  # includes the 60 reasoning tokens
        "total_tokens": 110,
        "completion_tokens_details": {"reasoning_tokens": 60},
    }
    with FakeLLMServer() as srv:
        srv.script(Fault.reply("ok", usage=usage))
        c = _client(write_settings, srv, pricing=OVERRIDE).complete("hi")
    assert c.cost_usd == pytest.approx(10 * 2e-6 + 100 * 8e-6)
    row = tracker.records[-1]
    assert (row.completion_tokens, row.reasoning_tokens) == (100, 60)


def test_a_model_without_any_price_costs_nan_labelled_unknown(write_settings, tracker) -> None:
    from llmnb.testing import FakeLLMServer
    from llmnb.usage.report import format_cost

    with FakeLLMServer() as srv:
        c = _client(write_settings, srv).complete("hi")
    assert math.isnan(c.cost_usd) and c.cost_source == "unknown"
    assert format_cost(c.cost_usd) == "n/a"
    assert math.isnan(tracker.summary()["cost_usd"].iat[0])  # not a silent 0
