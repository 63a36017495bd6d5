"""%%llm --step in the usage rows, %llm budget's numbers, the registry's public helpers,
and settings paths shown relative to the working directory."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from _magics_shell import ip_fixture, mock_settings, run

import llmnb
from llmnb import errors
from llmnb.client.registry import build_provider, import_factory, lookup_type
from llmnb.middleware import budget
from llmnb.notebook._display import format_cost
from llmnb.providers import Provider

ip = ip_fixture

PRICING = {"input_per_mtok": 1000, "output_per_mtok": 1000}


def _agent_settings() -> dict[str, object]:
    settings = mock_settings(other={"type": "mock", "model": "o-1"})
    settings["llm"]["agents"] = {  # type: ignore[index]
        "planner": {
            "params": {"temperature": 0.2},
            "steps": {"draft": {"temperature": 0.7}, "review": {"max_tokens": 50}},
        }
    }
    return settings


# -- 1. --step lands in the usage rows ---------------------------------------------------


def test_step_lands_in_the_step_column_like_the_agent(ip, write_settings, tracker):
    write_settings(_agent_settings())
    run(ip, "%%llm --agent planner --step draft\nplan")
    run(ip, "%llm --agent planner --step review check it")
    run(ip, "%%llm --agent planner --step draft --stream\nplan again")
    run(ip, "%%llm --agent planner\nno step")
    run(ip, "%%llm --agent planner --step review --compare demo,other\nboth")
    df = tracker.to_dataframe()
    assert list(df["agent"]) == ["planner"] * 6
    steps = [None if s is None or s != s else s for s in df["step"]]
    assert steps == ["draft", "review", "draft", None, "review", "review"]
    assert sorted(df["profile"].iloc[-2:]) == ["demo", "other"]


def test_client_from_profile_takes_the_step_and_its_parameters(write_settings, tracker):
    write_settings(_agent_settings())
    client = llmnb.create_llm_client_from_profile(agent="planner", step="draft")
    assert client.params["temperature"] == 0.7  # the step's, over the agent's 0.2
    client.complete("hi")
    row = tracker.records[-1]
    assert (row.agent, row.step) == ("planner", "draft")


# -- 2. %llm budget shows the budget's own count -------------------------------------------


def test_budget_shows_the_spend_it_checks_and_labels_the_usage_table(ip, write_settings, tracker):
    settings = mock_settings(priced={"type": "mock", "model": "p", "pricing": PRICING})
    settings["llm"]["providers"]["priced"]["budget_usd"] = 5  # type: ignore[index]
    write_settings(settings)
    budget.reset_spend()
    try:
        run(ip, "%llm spend a little")
        spent = budget.get_session_spend()
        assert spent > 0
        text = run(ip, "%llm budget 2").stdout
        assert (
            f"spent so far: {format_cost(spent)} (calls with a known price in this kernel "
            "— the number the budget checks)"
        ) in text
        assert "Usage table" not in text  # the same number: shown once
        assert f"Profile priced budget: $5.00 · spent: {format_cost(spent)}" in text

        budget.reset_spend()  # the budget starts over; the usage table keeps its rows
        text = run(ip, "%llm budget").stdout
        assert "spent so far: $0 (" in text
        tracked = math.fsum(r.cost_usd for r in tracker.records)
        assert f"Usage table, this session: {format_cost(tracked)}" in text
        assert "the budget does not check this number" in text
    finally:
        budget.reset_session_budget()
        budget.reset_spend()


# -- 3. the registry's public helpers ------------------------------------------------------


def test_registry_lookup_import_and_build_are_public():
    cls = lookup_type("MOCK", "p")
    assert isinstance(cls, type) and issubclass(cls, Provider)
    with pytest.raises(errors.ProviderNotFoundError, match="Did you mean 'mock'"):
        lookup_type("mokc", "p")
    with pytest.raises(errors.ConfigError, match="profile 'p', field provider_factory"):
        import_factory("no_colon_here", "p")
    assert import_factory("llmnb.client.registry:lookup_type", "p") is lookup_type

    class Echo:
        def generate(self, messages, temperature=None, max_tokens=None, timeout=None):
            return messages[-1]["content"]

    built = build_provider(lambda profile, model, agent: Echo(), "echo", "e", {}, "m")
    assert isinstance(built, Provider) and built.type_name == "echo"
    assert isinstance(build_provider(cls, "mock", "p", {}, "mock-1"), cls)


# -- 4. settings paths relative to the working directory ---------------------------------


def test_settings_paths_are_relative_inside_the_working_directory_absolute_outside(
    ip, write_settings, tmp_path, monkeypatch
):
    write_settings(mock_settings())
    (tmp_path / ".env").write_text("SOMETHING=1\n")
    text = run(ip, "%llm config").outputs[0].data["text/plain"]
    assert "settings: config/settings.yaml\n.env: .env\n" in text
    assert str(tmp_path) not in text and str(tmp_path.resolve()) not in text
    assert "Settings: config/settings.yaml." in run(ip, "%llm list").stdout

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    settings = elsewhere / "settings.yaml"
    settings.write_text(yaml.safe_dump(mock_settings()))
    (elsewhere / ".env").write_text("SOMETHING=2\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("LLMNB_SETTINGS", str(settings))
    # Near the working directory (a notebooks/ folder beside config/): relative, so a
    # saved notebook names no machine's folders.
    listed = run(ip, "%llm list").stdout
    assert "Settings: ../elsewhere/settings.yaml." in listed and str(tmp_path) not in listed
    shown = run(ip, "%llm config").outputs[0].data["text/plain"]
    assert "settings: ../elsewhere/settings.yaml\n.env: ../elsewhere/.env\n" in shown
    # Far from it: absolute.
    far = Path(tempfile.mkdtemp(prefix="llmnb-far-"))
    try:
        (far / "settings.yaml").write_text(yaml.safe_dump(mock_settings()))
        monkeypatch.setenv("LLMNB_SETTINGS", str(far / "settings.yaml"))
        listed = run(ip, "%llm list").stdout
        assert any(
            f"Settings: {p}." in listed
            for p in (far / "settings.yaml", far.resolve() / "settings.yaml")
        )
    finally:
        shutil.rmtree(far)
