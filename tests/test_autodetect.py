"""Auto-detect: LLMNB_PROVIDER → profiles with keys → key variables → CLIs → local_hf."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import llmnb
from llmnb import config, errors
from llmnb.testing import FakeLLMServer

FAKE = Path(__file__).parent / "fake_bin" / "fake_agent.py"


@pytest.fixture
def empty_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """PATH is one empty folder: no agent CLI can be found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


@pytest.fixture
def no_tools(monkeypatch: pytest.MonkeyPatch, empty_path: Path) -> Path:
    """No agent CLI and no local-model libraries: only keys can be found."""
    # find_spec() answers None for modules set to None: as if not installed.
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "transformers", None)
    return empty_path


def settings(write: Callable[[dict[str, Any]], Any], active: str | None, **profiles: Any) -> None:
    llm: dict[str, Any] = {"providers": profiles}
    if active is not None:
        llm["active_provider"] = active
    write({"llm": llm})


def test_auto_with_a_key_and_no_profile_synthesizes_one(write_settings, monkeypatch, no_tools):
    settings(write_settings, "auto", demo={"type": "mock", "model": "mock-1"})
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-0123456789abcdef")
    client = llmnb.create_llm_client_from_profile()
    assert (client.profile, client.provider_type, client.model) == (
        "auto:anthropic",
        "anthropic",
        "claude-sonnet-4-5",
    )
    monkeypatch.setenv("LLM_MODEL", "claude-opus-4-1")
    assert llmnb.create_llm_client_from_profile().model == "claude-opus-4-1"


def test_key_variables_are_tried_in_a_fixed_order(write_settings, monkeypatch, no_tools):
    settings(write_settings, "auto")
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-0123456789abcdef")
    assert llmnb.create_llm_client_from_profile().provider_type == "openrouter"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-oa-0123456789abcdef")
    assert llmnb.create_llm_client_from_profile().provider_type == "openai"


def test_google_api_key_alone_finds_gemini(write_settings, monkeypatch, no_tools):
    settings(write_settings, "auto")
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza0123456789abcdef")
    client = llmnb.create_llm_client_from_profile()
    assert (client.provider_type, client.model) == ("gemini", "gemini-2.5-flash")


def test_profiles_whose_key_is_set_win_in_file_order(write_settings, monkeypatch, no_tools):
    settings(
        write_settings,
        "auto",
        oa={"type": "openai", "model": "gpt-4o"},
        volc={"type": "openai_compatible", "model": "v", "base_url": "https://h/v1",
              "api_key_env": "VOLC_API_KEY"},
        fast={"type": "groq", "model": "llama"},
    )  # fmt: skip
    monkeypatch.setenv("GROQ_API_KEY", "gsk-0123456789abcdef")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-0123456789abcdef")
    assert llmnb.create_llm_client_from_profile().profile == "fast"
    monkeypatch.setenv("VOLC_API_KEY", "volc-0123456789abcdef")
    client = llmnb.create_llm_client_from_profile()
    assert (client.profile, client.model) == ("volc", "v")


def test_detected_profile_works_end_to_end_and_is_tracked(
    write_settings, monkeypatch, no_tools, tracker
):
    with FakeLLMServer(responses={"hello": "Hi from auto"}) as srv:
        claude = {"type": "anthropic", "model": "claude-sonnet-4-5", "base_url": srv.url}
        settings(write_settings, "auto", demo={"type": "mock", "model": "mock-1"}, claude=claude)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-0123456789abcdef")
        assert llmnb.create_llm_client_from_profile().generate("hello") == "Hi from auto"
        assert srv.last_request.path == "/v1/messages"
    row = tracker.to_dataframe().iloc[0]
    assert row["profile"] == "claude" and row["provider"] == "anthropic"


def test_llmnb_provider_comes_first_as_a_profile_or_a_type(write_settings, monkeypatch, no_tools):
    settings(
        write_settings,
        "auto",
        oa={"type": "openai", "model": "gpt-4o"},
        local={"type": "ollama", "model": "qwen"},
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-oa-0123456789abcdef")
    monkeypatch.setenv("LLMNB_PROVIDER", "local")
    assert llmnb.create_llm_client_from_profile().profile == "local"
    monkeypatch.setenv("LLMNB_PROVIDER", "mistral")
    client = llmnb.create_llm_client_from_profile()
    assert (client.profile, client.model) == ("auto:mistral", "mistral-small-latest")
    monkeypatch.setenv("LLMNB_PROVIDER", "nonsense")
    with pytest.raises(errors.ProviderNotFoundError, match="LLMNB_PROVIDER='nonsense'"):
        llmnb.create_llm_client_from_profile()


def test_no_settings_file_but_a_key_uses_the_key_not_the_demo(monkeypatch, no_tools):
    assert config.load_settings().path is None
    assert llmnb.create_llm_client_from_profile().profile == "demo"  # nothing brought
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-ds-0123456789abcdef")
    assert llmnb.create_llm_client_from_profile().profile == "auto:deepseek"
    config.set_session_provider("demo")  # an explicit choice still wins
    assert llmnb.create_llm_client_from_profile().profile == "demo"


def test_several_profiles_and_no_choice_detect_only_when_keys_are_present(
    write_settings, monkeypatch, no_tools
):
    settings(
        write_settings, None, a={"type": "mock", "model": "m"}, b={"type": "mock", "model": "m"}
    )
    with pytest.raises(errors.ConfigError, match="auto"):
        llmnb.create_llm_client_from_profile()
    monkeypatch.setenv("XAI_API_KEY", "xai-0123456789abcdef")
    assert llmnb.create_llm_client_from_profile().profile == "auto:xai"


def test_a_named_active_provider_is_never_overridden(write_settings, monkeypatch, no_tools):
    settings(
        write_settings, "a", a={"type": "mock", "model": "m"}, b={"type": "mock", "model": "m"}
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-oa-0123456789abcdef")
    assert llmnb.create_llm_client_from_profile().profile == "a"


def test_an_agent_may_ask_for_auto(write_settings, monkeypatch, no_tools):
    write_settings(
        {
            "llm": {
                "active_provider": "demo",
                "providers": {"demo": {"type": "mock", "model": "mock-1"}},
                "agents": {"critic": {"active_provider": "auto"}},
            }
        }
    )
    monkeypatch.setenv("GROQ_API_KEY", "gsk-0123456789abcdef")
    assert llmnb.create_llm_client_from_profile().profile == "demo"
    monkeypatch.setenv("LLM_CRITIC_MODEL", "llama-3.1-8b-instant")
    critic = llmnb.create_llm_client_from_profile(agent="critic")
    assert (critic.profile, critic.model) == ("auto:groq", "llama-3.1-8b-instant")


@pytest.mark.skipif(os.name != "posix", reason="the fake CLI is a POSIX script")
def test_without_keys_an_agent_cli_on_path_is_used(write_settings, monkeypatch, no_tools, tracker):
    fake = no_tools / "codex"
    fake.write_text(f"#!{sys.executable}\n" + FAKE.read_text(encoding="utf-8"))
    fake.chmod(0o755)
    monkeypatch.setenv("FAKE_CLI_LOG", str(no_tools / "log.jsonl"))
    settings(write_settings, "auto")
    client = llmnb.create_llm_client_from_profile()
    assert (client.profile, client.provider_type) == ("auto:codex_cli", "codex_cli")
    assert client.generate("hi") == "Hello from fake codex."
    assert tracker.to_dataframe().iloc[0]["profile"] == "auto:codex_cli"


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("torch", "transformers")),
    reason='needs the local extra: pip install -e ".[local]"',
)
def test_local_hf_is_the_last_resort_when_installed(write_settings, empty_path):
    settings(write_settings, "auto")
    client = llmnb.create_llm_client_from_profile()
    assert (client.profile, client.provider_type) == ("auto:local_hf", "local_hf")


def test_nothing_found_lists_everything_that_was_tried(write_settings, no_tools):
    settings(write_settings, "auto", oa={"type": "openai", "model": "gpt-4o"})
    with pytest.raises(errors.ConfigError) as info:
        llmnb.create_llm_client_from_profile()
    text = str(info.value)
    for tried in (
        "LLMNB_PROVIDER: not set",
        "oa (OPENAI_API_KEY not set)",
        "ANTHROPIC_API_KEY",
        "GOOGLE_API_KEY",
        "none of claude, codex, copilot, gemini found",
        'pip install "llmnb[local]"',
    ):
        assert tried in text


def test_keys_in_dotenv_count_like_environment_variables(write_settings, tmp_path, no_tools):
    (tmp_path / ".env").write_text("GEMINI_API_KEY=AIza-from-dotenv-0123456789\n")
    assert llmnb.create_llm_client_from_profile().profile == "auto:gemini"  # no settings file
    settings(write_settings, "auto")
    assert llmnb.create_llm_client_from_profile().provider_type == "gemini"
