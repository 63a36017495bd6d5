"""A provider type used by name, with no profile: `%%llm openai:gpt-4o-mini`,
`%llm use`, LLM_ACTIVE_PROVIDER and `llmnb.connect(...)`."""

from __future__ import annotations

import json

import httpx2
import pytest
from _magics_shell import ip_fixture, mock_settings, run

import llmnb
from llmnb import config, errors

ip = ip_fixture
KEY = "sk-adhoc-0123456789abcdefSECRET"


def _openai_answer(request: httpx2.Request) -> httpx2.Response:
    body = json.loads(request.content)
    return httpx2.Response(
        200,
        json={
            "model": body["model"],
            "choices": [{"message": {"content": "hi back"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        },
    )


def test_connect_builds_an_openai_client_from_the_key_alone(monkeypatch, tracker):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    client = llmnb.connect("openai:gpt-4o-mini")
    assert (client.profile, client.model, client.provider_type) == (
        "openai",
        "gpt-4o-mini",
        "openai",
    )
    assert client.provider.base_url == "https://api.openai.com/v1"
    seen: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return _openai_answer(request)

    client.provider.transport = httpx2.MockTransport(answer)
    assert client.complete("hello").content == "hi back"
    assert str(seen[0].url) == "https://api.openai.com/v1/chat/completions"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    rows = tracker.to_dataframe()
    assert list(rows["profile"]) == ["openai"] and list(rows["model"]) == ["gpt-4o-mini"]
    assert KEY not in repr(tracker.records) and KEY not in repr(client)


def test_a_type_without_a_model_uses_its_default_and_the_model_may_hold_colons():
    assert llmnb.connect("mock").model == "mock-1"
    assert llmnb.connect("openai").model == "gpt-4o-mini"
    assert llmnb.connect("ollama:llama3.2:3b").model == "llama3.2:3b"
    assert llmnb.connect("ANTHROPIC:claude-haiku-4-5").provider_type == "anthropic"


def test_a_profile_of_the_same_name_wins(write_settings):
    write_settings(
        mock_settings(
            openai={"type": "mock", "model": "mock-9", "default_response": "from the profile"}
        )
    )
    client = llmnb.connect("openai")
    assert (client.provider_type, client.model) == ("mock", "mock-9")
    assert client.complete("x").content == "from the profile"
    assert llmnb.connect("openai:mock-3").provider_type == "mock"


def test_missing_key_names_the_variable_and_sends_nothing():
    client = llmnb.connect("anthropic:claude-haiku-4-5")
    client.provider.transport = httpx2.MockTransport(
        lambda r: pytest.fail("a request was sent without a key")
    )
    with pytest.raises(errors.MissingAPIKeyError) as info:
        client.complete("hi")
    msg = str(info.value)
    assert "ANTHROPIC_API_KEY" in msg and "add a profile" in msg


def test_unknown_type_lists_near_matches_and_the_types():
    with pytest.raises(errors.ProviderNotFoundError) as info:
        llmnb.connect("opnai:gpt-4o")
    msg = str(info.value)
    assert "Did you mean 'openai'" in msg and "TYPE:MODEL" in msg and "anthropic" in msg


def test_a_generic_endpoint_or_an_empty_model_is_refused():
    with pytest.raises(errors.ProviderNotFoundError):
        llmnb.connect("openai_compatible:m")  # needs a base_url: a profile, not a name
    with pytest.raises(errors.InvalidOptionError, match="model after ':' is empty"):
        llmnb.connect("openai:")
    with pytest.raises(errors.InvalidOptionError):
        llmnb.connect(":gpt-4o")
    with pytest.raises(errors.ConfigError, match=r"vllm:MODEL"):
        llmnb.connect("vllm")


def test_llm_active_provider_may_name_a_type_or_type_model(monkeypatch, write_settings):
    write_settings(mock_settings())  # a settings file whose only profile is `demo`
    monkeypatch.setenv("LLM_ACTIVE_PROVIDER", "mock:mock-7")
    client = llmnb.create_llm_client_from_profile()
    assert (client.profile, client.model) == ("mock:mock-7", "mock-7")
    monkeypatch.setenv("LLM_ACTIVE_PROVIDER", "demo:mock-5")  # PROFILE:MODEL
    client = llmnb.connect()
    assert (client.profile, client.model, client.provider_type) == ("demo:mock-5", "mock-5", "mock")
    assert config.get_llm_params(None) == {}  # no profile parameters, no KeyError


def test_magic_cell_with_provider_model_and_use(ip, monkeypatch, tracker):
    out = run(ip, "%%llm mock:mock-3\nhello")
    assert out.result.success, out.text
    assert tracker.to_dataframe()["profile"].tolist() == ["mock"]
    assert tracker.to_dataframe()["model"].tolist() == ["mock-3"]
    out = run(ip, "%llm use mock:mock-4")
    assert out.result.success and "Active: mock · mock-4" in out.text, out.text
    run(ip, "%%llm\nhello again")
    assert tracker.to_dataframe()["model"].tolist() == ["mock-3", "mock-4"]


def test_magic_unknown_name_is_one_error_naming_the_types(ip):
    out = run(ip, "%%llm anthropik:claude-haiku-4-5\nhi")
    assert "No profile named 'anthropik'" in out.text
    assert "Did you mean 'anthropic'" in out.text
