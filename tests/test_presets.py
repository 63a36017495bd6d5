"""OpenAI-compatible presets: each one's default URL, key variable, and profile overrides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

import llmnb
from llmnb import errors
from llmnb.testing import FakeLLMServer

# type -> (documented base URL, key variable, whether a key is required)
PRESETS: dict[str, tuple[str, str, bool]] = {
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY", True),
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", True),
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY", True),
    "together": ("https://api.together.xyz/v1", "TOGETHER_API_KEY", True),
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", True),
    "mistral": ("https://api.mistral.ai/v1", "MISTRAL_API_KEY", True),
    "xai": ("https://api.x.ai/v1", "XAI_API_KEY", True),
    "ollama": ("http://localhost:11434/v1", "OLLAMA_API_KEY", False),
    "vllm": ("http://localhost:8000/v1", "VLLM_API_KEY", False),
    "lmstudio": ("http://localhost:1234/v1", "LMSTUDIO_API_KEY", False),
}
HOSTED = [t for t, (_, _, needs) in PRESETS.items() if needs]
LOCAL = [t for t, (_, _, needs) in PRESETS.items() if not needs]
ANSWER = {
    "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}


def key_of(var: str) -> str:
    """A distinct fake key per variable, so a test sees which variable was read."""
    return f"sk-{var.lower().replace('_', '-')}-0123456789"


@pytest.fixture
def all_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every preset's variable set, each to its own value (local ones stay unset)."""
    for _, var, needs in PRESETS.values():
        if needs:
            monkeypatch.setenv(var, key_of(var))


@pytest.fixture
def client_for(write_settings: Callable[[dict[str, Any]], Any]) -> Callable[..., llmnb.LLMClient]:
    def make(ptype: str, **profile: Any) -> llmnb.LLMClient:
        prof = {"type": ptype, "model": "some-model", "max_retries": 0, **profile}
        write_settings({"llm": {"active_provider": "p", "providers": {"p": prof}}})
        return llmnb.create_llm_client_from_profile()

    return make


@pytest.mark.parametrize("ptype", list(PRESETS))
def test_default_base_url_is_the_vendors_chat_completions_endpoint(ptype, client_for, all_keys):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ANSWER)

    client = client_for(ptype)
    client.provider.transport = httpx.MockTransport(handler)  # no network: the URL is kept
    assert client.generate("hi") == "ok"
    base, var, needs = PRESETS[ptype]
    assert str(seen[0].url) == base + "/chat/completions"
    if needs:
        assert seen[0].headers["authorization"] == f"Bearer {key_of(var)}"
    else:
        assert "authorization" not in seen[0].headers


@pytest.mark.parametrize("ptype", HOSTED)
def test_hosted_presets_send_their_own_variables_key_to_the_server(ptype, client_for, all_keys):
    with FakeLLMServer(default_response="ok") as srv:
        client_for(ptype, base_url=srv.base_url).generate("hi")
        var = PRESETS[ptype][1]
        assert srv.last_request.headers["authorization"] == f"Bearer {key_of(var)}"
        assert srv.last_request.path == "/v1/chat/completions"


@pytest.mark.parametrize("ptype", HOSTED)
def test_hosted_presets_without_their_key_name_the_variable(ptype, client_for):
    with FakeLLMServer() as srv:
        client = client_for(ptype, base_url=srv.base_url)
        with pytest.raises(errors.MissingAPIKeyError, match=PRESETS[ptype][1]):
            client.generate("hi")
        assert srv.requests == []


@pytest.mark.parametrize("ptype", LOCAL)
def test_local_presets_send_no_key_even_when_other_keys_are_set(ptype, client_for, all_keys):
    with FakeLLMServer(default_response="ok") as srv:
        assert client_for(ptype, base_url=srv.base_url).generate("hi") == "ok"
        assert "authorization" not in srv.last_request.headers


@pytest.mark.parametrize("ptype", LOCAL)
def test_local_presets_send_their_optional_key_when_it_is_set(ptype, client_for, monkeypatch):
    var = PRESETS[ptype][1]
    monkeypatch.setenv(var, key_of(var))
    with FakeLLMServer(default_response="ok") as srv:
        client_for(ptype, base_url=srv.base_url).generate("hi")
        assert srv.last_request.headers["authorization"] == f"Bearer {key_of(var)}"


@pytest.mark.parametrize("ptype", list(PRESETS))
def test_a_profile_overrides_base_url_and_api_key_env(ptype, client_for, all_keys, monkeypatch):
    monkeypatch.setenv("MY_GATEWAY_KEY", "sk-my-gateway-0123456789")
    with FakeLLMServer(default_response="ok") as srv:
        # The server also answers without the /v1 prefix: the path shows which URL was used.
        client = client_for(ptype, base_url=srv.url, api_key_env="MY_GATEWAY_KEY")
        assert client.generate("hi") == "ok"
        assert srv.last_request.path == "/chat/completions"
        assert srv.last_request.headers["authorization"] == "Bearer sk-my-gateway-0123456789"


def test_generic_openai_compatible_never_borrows_openai_api_key(client_for, all_keys):
    with FakeLLMServer(default_response="ok") as srv:
        client_for("openai_compatible", base_url=srv.base_url).generate("hi")
        assert "authorization" not in srv.last_request.headers


def test_reasoning_text_and_tokens_pass_through_a_preset(client_for, all_keys):
    from llmnb.testing import Fault

    with FakeLLMServer() as srv:
        client = client_for("deepseek", base_url=srv.base_url)
        srv.script(Fault.reply("42", reasoning="six times seven"))
        c = client.complete("question")
        assert (c.content, c.reasoning) == ("42", "six times seven")
        assert c.usage.reasoning_tokens == 4 and c.usage.completion_tokens == 5
        srv.script(Fault.reply("42", reasoning="six times seven"))
        stream = client.stream("question")
        assert "".join(stream) == "42"
        assert stream.completion is not None and stream.completion.reasoning == "six times seven"
