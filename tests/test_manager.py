"""LLMManager: named clients, default, registration, status, lifecycle."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import llmnb
from llmnb import config, errors
from llmnb.client.manager import reset_llm_manager
from llmnb.middleware import ManualClock, Middleware
from llmnb.providers import Provider
from llmnb.providers.base import key_fingerprint
from llmnb.testing import FakeLLMServer, Fault
from llmnb.types import Completion, Request, Usage

KEYS = ["sk-manager-key-a-1234", "sk-manager-key-b-5678"]


@pytest.fixture(autouse=True)
def _fresh_manager() -> Iterator[None]:
    reset_llm_manager()
    yield
    reset_llm_manager()


@pytest.fixture
def two_profiles(
    server: FakeLLMServer, write_settings: Callable[[dict[str, Any]], Any]
) -> Callable[..., Any]:
    def write(**extra: Any) -> Any:
        return write_settings(
            {
                "llm": {
                    "active_provider": "one",
                    "providers": {
                        "one": {
                            "type": "openai_compatible",
                            "model": "m1",
                            "base_url": server.base_url,
                        },
                        "two": {
                            "type": "openai_compatible",
                            "model": "m2",
                            "base_url": server.base_url,
                        },
                        **extra,
                    },
                }
            }
        )

    return write


def test_add_provider_then_get_client_builds_once(server):
    m = llmnb.LLMManager()
    m.add_provider("local", "openai_compatible", {"model": "m", "base_url": server.base_url})
    client = m.get_client("local")
    assert client is m.get_client("local") is m.get_client()  # the only one is the default
    assert client.profile == "local" and client.model == "m"
    assert client.complete("hello").content == "Hi there!"
    assert m.complete("hello", provider="local").profile == "local"


def test_default_and_unknown_names(server):
    m = llmnb.LLMManager()
    m.add_provider("a", "mock", {"model": "mock-1"})
    m.add_provider("b", "mock", {"model": "mock-2"})
    assert m.get_client().profile == "a"
    m.set_default_provider("b")
    assert m.get_client().profile == "b"
    with pytest.raises(errors.ProviderNotFoundError, match=r"'c'.*Known: a, b"):
        m.set_default_provider("c")
    with pytest.raises(errors.ProviderNotFoundError, match="Did you mean 'a'"):
        m.get_client("aa")
    with pytest.raises(errors.ProviderNotFoundError):
        m.set_failover_sequence(["a", "nope"])
    with pytest.raises(errors.InvalidOptionError, match="twice"):
        m.set_failover_sequence(["a", "a"])


def test_add_provider_mistakes_name_the_field():
    m = llmnb.LLMManager()
    with pytest.raises(
        errors.ConfigError, match=r"add_provider\('x', 'openai'.*tempreature.*temperature"
    ):
        m.add_provider("x", "openai", {"model": "gpt-4o", "tempreature": 0.2})
    with pytest.raises(errors.ConfigError, match=r"rate_limits\.requests_per_minute"):
        m.add_provider(
            "x", "openai", {"model": "gpt-4o", "rate_limits": {"requests_per_minute": -1}}
        )
    m.add_provider("nomodel", "mock", {})
    with pytest.raises(errors.ConfigError, match="no `model`"):
        m.get_client("nomodel")
    m.add_provider("t", "opanai", {"model": "x"})  # a type may be registered later
    with pytest.raises(errors.ProviderNotFoundError, match="Did you mean 'openai'"):
        m.get_client("t")
    with pytest.raises(errors.InvalidOptionError):
        m.add_provider("", "mock", {})


class Echo(Provider):
    type_name = "echo"

    def complete(self, request: Request) -> Completion:
        text = request.messages[-1].content
        return Completion(content=f"echo: {text}", model=request.model, usage=Usage(1, 1))

    async def acomplete(self, request: Request) -> Completion:
        return self.complete(request)


def test_register_provider_class_is_local_to_the_manager():
    m = llmnb.LLMManager()
    m.register_provider_class("echo", Echo)
    m.add_provider("e", "echo", {"model": "e1", "anything": "goes"})  # custom keys allowed
    assert m.get_client("e").generate("hi") == "echo: hi"
    assert "echo" not in llmnb.list_providers()
    other = llmnb.LLMManager()
    other.add_provider("e", "echo", {"model": "e1"})
    with pytest.raises(errors.ProviderNotFoundError):
        other.get_client("e")


def test_from_settings_follows_the_active_profile_and_edits(two_profiles, server):
    two_profiles()
    m = llmnb.LLMManager.from_settings()
    assert m.get_client().profile == "one"
    config.set_session_provider("two")  # what `%llm use two` does
    assert m.get_client().profile == "two"
    first = m.get_client("one")
    two_profiles(one={"type": "openai_compatible", "model": "m1b", "base_url": server.base_url})
    assert m.get_client("one") is not first and m.get_client("one").model == "m1b"


def test_get_llm_manager_is_process_wide(two_profiles):
    two_profiles()
    assert llmnb.get_llm_manager() is llmnb.get_llm_manager()
    before = llmnb.get_llm_manager()
    reset_llm_manager()
    assert llmnb.get_llm_manager() is not before


def test_status_reports_keys_connections_success_rate_and_latency(server):
    clock = ManualClock()
    m = llmnb.LLMManager(clock=clock)
    m.add_provider(
        "p",
        "openai_compatible",
        {
            "model": "m",
            "base_url": server.base_url,
            "api_keys": KEYS,
            "max_connections_per_key": 2,
            "max_retries": 0,
            "rate_limits": {"requests_per_minute": 100},
        },
    )
    client = m.get_client("p")
    for _ in range(3):
        client.complete("hi")
    server.script(Fault.status(500))
    with pytest.raises(errors.ProviderError):
        client.complete("hi")
    s = m.get_status("p")
    assert s["name"] == "p" and s["type"] == "openai_compatible" and s["model"] == "m"
    assert s["available"] is True  # one key is cooling down, the other is fine
    assert s["connections"] == {"total": 4, "available": 2, "in_flight": 0}
    assert s["queue"] == 0
    by_key = {k["key_id"]: k for k in s["keys"]}
    assert set(by_key) == {key_fingerprint(k) for k in KEYS}
    failed = next(k for k in s["keys"] if not k["healthy"])
    assert failed["last_error"] == "ProviderError" and failed["cooldown_remaining_s"] > 0
    assert s["rate_limits"]["limits"] == {"requests": 100}
    assert s["rate_limits"]["window_used"]["requests"] == 4
    assert s["success_rate"] == pytest.approx(3 / 4)
    assert s["attempts"] == 4 and s["errors"] == {"ProviderError": 1}
    assert 0 < s["latency_p50_s"] <= s["latency_p95_s"]
    text = repr(s)
    assert KEYS[0] not in text and KEYS[1] not in text


def test_status_without_a_key_is_unavailable_and_says_so(server, tracker):
    m = llmnb.LLMManager()
    m.add_provider("nokey", "openai", {"model": "gpt-4o", "base_url": server.base_url})
    m.add_provider("free", "mock", {"model": "mock-1"})
    s = m.get_status("nokey")
    assert s["available"] is False and s["keys"] == []
    assert math.isnan(s["success_rate"])
    assert m.get_available_providers() == ["free"]


class Counting(Middleware):
    def __init__(self) -> None:
        self.calls = 0

    def after_call(self, call: Any, completion: Completion) -> Completion:
        self.calls += 1
        return completion


def test_manager_middleware_reaches_built_and_future_clients():
    m = llmnb.LLMManager()
    m.add_provider("a", "mock", {"model": "mock-1"})
    m.add_provider("b", "mock", {"model": "mock-2"})
    a = m.get_client("a")
    counting = Counting()
    m.add_middleware(counting)
    a.complete("x")
    m.get_client("b").complete("y")
    assert counting.calls == 2


def test_close_and_context_managers_release_connections(server):
    with llmnb.LLMManager() as m:
        m.add_provider("p", "openai_compatible", {"model": "m", "base_url": server.base_url})
        m.get_client("p").complete("hi")
        m.get_client("p").complete("hi")
        assert server.connections_opened == 1
    m.get_client("p").complete("hi")  # closed clients reconnect on demand
    assert server.connections_opened == 2

    async def use() -> None:
        async with llmnb.LLMManager() as am:
            am.add_provider("p", "openai_compatible", {"model": "m", "base_url": server.base_url})
            await am.acomplete("hi", provider="p")

    asyncio.run(use())
    assert server.connections_opened == 3
