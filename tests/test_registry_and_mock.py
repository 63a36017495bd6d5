"""Profiles → clients: the registry, provider_factory, custom providers and the mock."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

import llmnb
from llmnb import errors
from llmnb.middleware import RetryPolicy
from llmnb.providers import Provider
from llmnb.types import Completion, Request, Usage


def test_fresh_checkout_without_settings_uses_offline_demo_profile(tracker):
    client = llmnb.create_llm_client_from_profile()
    assert client.profile == "demo" and client.provider_type == "mock" and client.model == "mock-1"
    c = client.complete("Explain SSE in one line")
    assert c.content and c.usage.estimated
    assert c.usage.prompt_tokens == math.ceil(len("Explain SSE in one line") / 4)
    # No price for the demo model in the built-in default: n/a, never $0.
    assert math.isnan(c.cost_usd) and c.cost_source == "unknown"
    assert len(tracker) == 1


def test_shipped_settings_demo_profile_answers_offline_with_illustrative_prices(
    tmp_path, tracker, monkeypatch
):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("LLMNB_SETTINGS", str(root / "config" / "settings.yaml"))
    client = llmnb.create_llm_client_from_profile()
    assert client.profile == "demo"
    c = client.complete("Explain SSE in one line")
    assert "event" in c.content.lower()
    assert c.cost_source == "estimate" and c.cost_usd > 0
    assert "".join(client.stream("Count to five")).strip()


def test_mock_is_deterministic_keyword_table_then_default(write_settings):
    write_settings(
        {
            "llm": {
                "active_provider": "m",
                "providers": {
                    "m": {
                        "type": "mock",
                        "model": "mock-1",
                        "responses": {"weather": "Sunny."},
                        "default_response": "I am a mock.",
                    }
                },
            }
        }
    )
    client = llmnb.create_llm_client_from_profile()
    assert client.generate("How is the WEATHER?") == "Sunny."
    assert client.generate("anything else") == client.generate("anything else") == "I am a mock."


def test_mock_streams_in_chunks_and_respects_max_tokens(write_settings):
    write_settings(
        {
            "llm": {
                "active_provider": "m",
                "providers": {
                    "m": {
                        "type": "mock",
                        "model": "mock-1",
                        "default_response": "x" * 40,
                        "stream_chunk_size": 10,
                    }
                },
            }
        }
    )
    client = llmnb.create_llm_client_from_profile()
    assert list(client.stream("go")) == ["x" * 10] * 4
    c = client.complete("go", max_tokens=2)
    assert c.content == "x" * 8 and c.finish_reason == "length"


def test_mock_scripted_errors_are_retried_like_real_ones(write_settings, tracker):
    write_settings(
        {
            "llm": {
                "active_provider": "m",
                "providers": {
                    "m": {
                        "type": "mock",
                        "model": "mock-1",
                        "errors": [{"type": "rate_limit", "retry_after": 0.5}, "server_error"],
                    }
                },
            }
        }
    )
    client = llmnb.create_llm_client_from_profile()
    waits: list[float] = []
    client.retry = RetryPolicy(sleep=waits.append)
    assert client.complete("hi").attempts == 3
    assert waits[0] == 0.5
    assert list(tracker.to_dataframe()["status"]) == ["RateLimitError", "ProviderError", "ok"]


def test_mock_unknown_scripted_error_names_the_choices(write_settings):
    write_settings(
        {
            "llm": {
                "active_provider": "m",
                "providers": {"m": {"type": "mock", "model": "mock-1", "errors": ["explode"]}},
            }
        }
    )
    with pytest.raises(errors.ConfigError, match="rate_limit"):
        llmnb.create_llm_client_from_profile().complete("hi")


def test_list_providers_is_sorted_and_includes_builtins():
    names = llmnb.list_providers()
    assert names == sorted(names)
    assert {"mock", "openai", "openai_compatible", "openrouter"} <= set(names)


class EchoBot:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.calls: list[dict[str, object]] = []

    def generate(self, messages, temperature=None, max_tokens=None, timeout=None):
        self.calls.append(
            {"messages": messages, "temperature": temperature, "max_tokens": max_tokens}
        )
        return self.prefix + messages[-1]["content"]


def test_registered_generate_object_is_wrapped_and_tracked(write_settings, tracker):
    bots: list[EchoBot] = []

    def factory(profile, model_name, agent):
        bots.append(EchoBot(profile["options"]["prefix"]))
        return bots[-1]

    llmnb.register_provider("Echo_Test", factory)
    assert "echo_test" in llmnb.list_providers()
    write_settings(
        {
            "llm": {
                "active_provider": "e",
                "providers": {
                    "e": {"type": "ECHO_TEST", "model": "echo-1", "options": {"prefix": "> "}}
                },
            }
        }
    )
    client = llmnb.create_llm_client_from_profile()
    c = client.complete("ping", temperature=0.1, max_tokens=5)
    assert c.content == "> ping" and c.provider == "echo_test"
    assert bots[0].calls[0] == {
        "messages": [{"role": "user", "content": "ping"}],
        "temperature": 0.1,
        "max_tokens": 5,
    }
    row = tracker.to_dataframe().iloc[0]
    assert row["status"] == "ok" and row["profile"] == "e" and row["model"] == "echo-1"
    assert row["completion_tokens"] > 0 and row["cost_source"] == "unknown"
    assert "".join(client.stream("ping")) == "> ping"


def test_registered_provider_class_is_instantiated_per_profile(write_settings, tracker):
    class Constant(Provider):
        type_name = "constant_test"

        def complete(self, request: Request) -> Completion:
            return Completion(
                content=self.profile["options"]["text"], model=request.model, usage=Usage(3, 4)
            )

    llmnb.register_provider("constant_test", Constant)
    write_settings(
        {
            "llm": {
                "active_provider": "c",
                "providers": {
                    "c": {
                        "type": "constant_test",
                        "model": "k",
                        "options": {"text": "fixed"},
                        "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
                    }
                },
            }
        }
    )
    c = llmnb.create_llm_client_from_profile().complete("x")
    assert c.content == "fixed"
    assert c.cost_source == "price_table" and c.cost_usd == pytest.approx((3 * 1.0 + 4 * 2.0) / 1e6)


def test_provider_factory_module_function_is_imported(
    write_settings, tmp_path, monkeypatch, tracker
):
    (tmp_path / "my_pkg_llmnb_test.py").write_text(
        textwrap.dedent("""
        class Bot:
            def generate(self, messages, temperature=None, max_tokens=None, timeout=None):
                return "from factory: " + messages[-1]["content"]

        def create_client(profile, model_name, agent):
            assert profile["name"] == "mine" and model_name == "your/model"
            return Bot()
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    write_settings(
        {
            "llm": {
                "active_provider": "mine",
                "providers": {
                    "mine": {
                        "provider_factory": "my_pkg_llmnb_test:create_client",
                        "model": "your/model",
                        "anything": "factories may carry their own keys",
                    }
                },
            }
        }
    )
    assert llmnb.create_llm_client_from_profile().generate("hi") == "from factory: hi"
    assert len(tracker) == 1


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_colon_here", "module:function"),
        ("surely_missing_module_xyz:f", "cannot import module 'surely_missing_module_xyz'"),
        ("json:no_such_function", "has no attribute 'no_such_function'"),
    ],
)
def test_bad_provider_factory_names_it_and_the_problem(write_settings, spec, words):
    write_settings(
        {
            "llm": {
                "active_provider": "x",
                "providers": {"x": {"provider_factory": spec, "model": "m"}},
            }
        }
    )
    with pytest.raises(errors.ConfigError, match=words) as info:
        llmnb.create_llm_client_from_profile()
    assert "provider_factory" in str(info.value) and "'x'" in str(info.value)


def test_factory_returning_unusable_object_is_a_config_error(write_settings):
    llmnb.register_provider("useless_test", lambda profile, model, agent: object())
    write_settings(
        {
            "llm": {
                "active_provider": "u",
                "providers": {"u": {"type": "useless_test", "model": "m"}},
            }
        }
    )
    with pytest.raises(errors.ConfigError, match="generate"):
        llmnb.create_llm_client_from_profile()


def test_unknown_type_lists_registered_types_and_near_match(write_settings):
    write_settings(
        {"llm": {"active_provider": "o", "providers": {"o": {"type": "openroutr", "model": "m"}}}}
    )
    with pytest.raises(errors.ProviderNotFoundError) as info:
        llmnb.create_llm_client_from_profile()
    msg = str(info.value)
    assert "'openroutr'" in msg and "Did you mean 'openrouter'" in msg and "mock" in msg


def test_type_lookup_is_case_insensitive(write_settings):
    write_settings(
        {"llm": {"active_provider": "m", "providers": {"m": {"type": "MoCk", "model": "mock-1"}}}}
    )
    assert llmnb.create_llm_client_from_profile().provider_type == "mock"


def test_explicit_profile_and_model_override(write_settings):
    write_settings(
        {
            "llm": {
                "active_provider": "a",
                "providers": {
                    "a": {"type": "mock", "model": "mock-a"},
                    "b": {"type": "mock", "model": "mock-b"},
                },
            }
        }
    )
    client = llmnb.create_llm_client_from_profile(profile="b")
    assert (client.profile, client.model) == ("b", "mock-b")
    assert llmnb.create_llm_client_from_profile("mock-z").model == "mock-z"


def test_nothing_resolving_is_a_config_error_with_guidance(write_settings):
    write_settings(
        {
            "llm": {
                "providers": {
                    "a": {"type": "mock", "model": "m"},
                    "b": {"type": "mock", "model": "m"},
                }
            }
        }
    )
    with pytest.raises(errors.ConfigError, match="active_provider") as info:
        llmnb.create_llm_client_from_profile()
    assert "LLM_ACTIVE_PROVIDER" in str(info.value)


def test_agent_params_become_client_defaults(write_settings, tracker):
    write_settings(
        {
            "llm": {
                "active_provider": "m",
                "providers": {"m": {"type": "mock", "model": "mock-1"}},
                "agents": {"planner": {"params": {"temperature": 0.2, "max_tokens": 3}}},
            }
        }
    )
    client = llmnb.create_llm_client_from_profile(agent="planner")
    assert client.params["temperature"] == 0.2
    c = client.complete("a long question that needs more than three tokens")
    assert c.finish_reason == "length"
    assert tracker.to_dataframe().iloc[0]["agent"] == "planner"


def test_register_provider_rejects_bad_arguments():
    with pytest.raises(ValueError):
        llmnb.register_provider("  ", lambda *a: None)
    with pytest.raises(TypeError, match="callable"):
        llmnb.register_provider("x_test", "not callable")  # type: ignore[arg-type]
