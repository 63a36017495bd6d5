"""ProviderPicker, driven headless: set values, click buttons, check what calls do next."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ipywidgets
import pytest
from _magics_shell import ip_fixture, run

import llmnb
from llmnb import config
from llmnb.testing import FakeLLMServer, Fault
from llmnb.widgets import PickerValue, ProviderPicker

CANARY = "sk-canary-picker-0123456789abcdef"
ip = ip_fixture  # a real IPython shell with llmnb loaded (tests/_magics_shell.py)


@pytest.fixture
def servers() -> Iterator[tuple[FakeLLMServer, FakeLLMServer]]:
    with (
        FakeLLMServer(default_response="answer from A", models=["a-1", "a-2", "a-big"]) as a,
        FakeLLMServer(default_response="answer from B") as b,
    ):
        yield a, b


@pytest.fixture
def two_profiles(
    write_settings: Callable[[dict[str, Any]], Path], servers: tuple[FakeLLMServer, FakeLLMServer]
) -> Path:
    a, b = servers
    return write_settings(
        {
            "llm": {
                "active_provider": "alpha",
                "providers": {
                    "alpha": {
                        "type": "openai_compatible",
                        "model": "a-1",
                        "models": ["a-special"],
                        "base_url": a.base_url,
                        "api_key_env": "ALPHA_API_KEY",
                        "temperature": 0.2,
                        "max_retries": 0,
                    },
                    "beta": {
                        "type": "openai_compatible",
                        "model": "b-1",
                        "base_url": b.base_url,
                        "max_retries": 0,
                    },
                    "demo": {"type": "mock", "model": "mock-1"},
                },
                "agents": {"planner": {"params": {"temperature": 0.05, "max_tokens": 300}}},
            }
        }
    )


@pytest.fixture(autouse=True)
def _alpha_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHA_API_KEY", CANARY)


def all_state(widget: ipywidgets.Widget) -> str:
    """Everything the front end would receive for ``widget`` and its children, as text."""
    from ipywidgets.embed import embed_data

    return json.dumps(embed_data(views=[widget])["manager_state"], default=str)


def last_body(srv: FakeLLMServer) -> dict[str, Any]:
    return json.loads(srv.requests[-1].body)


# -- what it shows ---------------------------------------------------------------------------


def test_profiles_show_type_and_key_status_and_never_the_key(
    two_profiles: Path, tracker: Any
) -> None:
    picker = ProviderPicker()
    assert picker.profile.options == (
        ("alpha — openai_compatible · key ✓", "alpha"),
        ("beta — openai_compatible · no key needed", "beta"),
        ("demo — mock · no key needed", "demo"),
    )
    picker.test.click()
    picker.fetch.click()
    assert CANARY not in all_state(picker)
    assert CANARY[-6:] not in all_state(picker)


def test_a_missing_key_names_the_variable_and_reload_sees_it_once_set(
    write_settings: Callable[[dict[str, Any]], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_settings({"llm": {"providers": {"oa": {"type": "openai", "model": "gpt-4o"}}}})
    picker = ProviderPicker()
    assert picker.profile.options == (("oa — openai · key ✗ (OPENAI_API_KEY)", "oa"),)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    picker.reload.click()
    assert picker.profile.options == (("oa — openai · key ✓", "oa"),)


def test_it_starts_on_the_active_profile_without_changing_the_session(two_profiles: Path) -> None:
    picker = ProviderPicker()
    assert picker.value == PickerValue("alpha", "a-1")
    assert config.get_session_provider() == (None, None)
    assert picker.temperature.value == 0.2  # the profile's own default, shown
    assert picker.max_tokens.value == 0  # 0: the profile's default (none here)


def test_model_choices_are_the_profile_model_its_list_and_fetched_ones(two_profiles: Path) -> None:
    picker = ProviderPicker()
    assert picker.model.options == ("a-1", "a-special")
    picker.fetch.click()
    assert picker.model.options == ("a-1", "a-special", "a-2", "a-big")
    assert "3 models listed" in picker.status.value


def test_fetch_sends_the_key_to_the_endpoint_and_lists_its_models(
    two_profiles: Path, servers: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    from llmnb.notebook._picker_model import fetch_models

    assert fetch_models("alpha") == ["a-1", "a-2", "a-big"]
    request = servers[0].requests[-1]
    assert (request.method, request.path) == ("GET", "/v1/models")
    assert request.headers["authorization"] == f"Bearer {CANARY}"


def test_fetch_for_a_provider_without_a_model_list_explains_in_the_panel(
    two_profiles: Path,
) -> None:
    picker = ProviderPicker(profile="demo")
    assert picker.fetch.disabled
    picker.fetch.click()  # clicked anyway: an explanation, not an exception
    assert "has no model list to fetch" in picker.status.value
    assert "ConfigError" in picker.errors.outputs[-1]["text"]


def test_fetch_from_an_unreachable_endpoint_is_one_line(
    write_settings: Callable[[dict[str, Any]], Path],
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    base = f"http://127.0.0.1:{port}/v1"
    write_settings(
        {"llm": {"providers": {"gone": {"type": "vllm", "model": "m", "base_url": base}}}}
    )
    picker = ProviderPicker()
    picker.fetch.click()
    assert (
        "NetworkError" in picker.status.value
        and "cannot fetch the model list" in picker.status.value
    )
    assert "\n" not in picker.status.value


# -- what it does ----------------------------------------------------------------------------


def test_choosing_a_profile_switches_what_the_next_client_calls(
    two_profiles: Path, servers: tuple[FakeLLMServer, FakeLLMServer], tracker: Any
) -> None:
    _, b = servers
    picker = ProviderPicker()
    assert llmnb.create_llm_client_from_profile().generate("hi") == "answer from A"

    picker.profile.value = "beta"
    assert config.get_session_provider() == ("beta", "b-1")
    assert llmnb.create_llm_client_from_profile().generate("hi") == "answer from B"
    assert last_body(b)["model"] == "b-1"

    picker.model.value = "b-experimental"
    llmnb.create_llm_client_from_profile().generate("hi")
    assert last_body(b)["model"] == "b-experimental"
    assert [r.profile for r in tracker.records] == ["alpha", "beta", "beta"]


def test_value_is_a_small_dataclass_that_can_be_observed(two_profiles: Path) -> None:
    picker = ProviderPicker()
    seen: list[PickerValue] = []
    picker.observe(lambda change: seen.append(change["new"]), names="value")
    picker.profile.value = "beta"
    picker.temperature.value = 0.7
    picker.agent.value = "planner"
    assert seen == [
        PickerValue("beta", "b-1"),
        PickerValue("beta", "b-1", temperature=0.7),
        PickerValue("beta", "b-1", temperature=0.7, agent="planner"),
    ]


def test_sliders_become_the_sessions_parameters_and_reach_the_wire(
    two_profiles: Path, servers: tuple[FakeLLMServer, FakeLLMServer], tracker: Any
) -> None:
    a, _ = servers
    picker = ProviderPicker()
    picker.temperature.value = 0.35
    picker.max_tokens.value = 77
    assert config.get_session_params() == {"temperature": 0.35, "max_tokens": 77}
    assert config.get_llm_params(None) == {"temperature": 0.35, "max_tokens": 77}
    picker.client().complete("hi")
    body = last_body(a)
    assert (body["temperature"], body["max_tokens"]) == (0.35, 77)

    picker.profile.value = "beta"  # another profile: its own defaults, no overrides
    assert config.get_session_params() == {}
    assert picker.temperature.value == 1.0 and picker.value.temperature is None


def test_an_agent_shows_its_parameters_until_the_user_sets_their_own(two_profiles: Path) -> None:
    picker = ProviderPicker()
    picker.agent.value = "planner"
    assert (picker.temperature.value, picker.max_tokens.value) == (0.05, 300)
    assert picker.value.agent == "planner" and picker.value.temperature is None
    picker.temperature.value = 0.9
    picker.agent.value = ""
    assert picker.temperature.value == 0.9  # the user's value stays


def test_test_button_reports_ok_and_latency_in_one_line(two_profiles: Path, tracker: Any) -> None:
    picker = ProviderPicker()
    picker.test.click()
    assert "✓ ok · " in picker.status.value and " ms · a-1 · " in picker.status.value
    (row,) = tracker.records
    assert row.tags == {"llmnb": "picker-test"} and row.profile == "alpha"


def test_test_button_reports_a_failure_in_one_line(
    two_profiles: Path, servers: tuple[FakeLLMServer, FakeLLMServer], tracker: Any
) -> None:
    a, _ = servers
    a.script(Fault.status(503))
    picker = ProviderPicker()
    picker.test.click()
    status = picker.status.value
    assert "✗ " in status and "Error" in status and "503" in status
    assert "\n" not in status


def test_test_button_names_a_missing_key_variable(
    two_profiles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALPHA_API_KEY")
    picker = ProviderPicker()
    picker.test.click()
    assert "MissingAPIKeyError" in picker.status.value and "ALPHA_API_KEY" in picker.status.value


def test_save_as_default_survives_a_new_kernel_and_leaves_settings_comments_alone(
    tmp_path: Path, servers: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    a, b = servers
    settings = tmp_path / "config" / "settings.yaml"
    settings.parent.mkdir()
    text = (
        "# My LLM profiles — hand-written, with comments that must stay.\n"
        "llm:\n"
        "  active_provider: alpha   # the usual one\n"
        "  providers:\n"
        f"    alpha: {{type: openai_compatible, model: a-1, base_url: '{a.base_url}'}}\n"
        f"    beta:  {{type: openai_compatible, model: b-1, base_url: '{b.base_url}'}}  # spare\n"
    )
    settings.write_text(text)
    picker = ProviderPicker()
    picker.profile.value = "beta"
    picker.model.value = "b-2"
    picker.save.click()
    assert "saved as the default" in picker.status.value
    assert settings.read_text() == text

    code = "import llmnb; c = llmnb.create_llm_client_from_profile(); print(c.profile, c.model)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["beta", "b-2"]


def test_a_broken_settings_file_is_reported_in_the_panel(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings.yaml").write_text("llm:\n  providers: [oops\n")
    picker = ProviderPicker()  # no exception into the notebook
    assert "ConfigError" in picker.status.value and "settings.yaml" in picker.status.value
    assert picker.errors.outputs


# -- the magic -------------------------------------------------------------------------------


def test_llm_picker_magic_displays_a_picker_that_drives_the_next_cell(
    two_profiles: Path, ip: Any
) -> None:
    from ipywidgets.widgets.widget import _instances

    ran = run(ip, "%llm picker")
    (view,) = ran.data("application/vnd.jupyter.widget-view+json")
    picker = _instances[view["model_id"]]
    assert isinstance(picker, ProviderPicker)
    assert "answer from A" in run(ip, "%%llm\nhello").text
    picker.profile.value = "beta"
    assert "answer from B" in run(ip, "%%llm\nhello").text
