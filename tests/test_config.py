"""llmnb.config: discovery, .env, resolution order, validation messages, keys, redaction."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmnb import config
from llmnb.errors import ConfigError, MissingAPIKeyError, ProviderNotFoundError

REPO = Path(__file__).resolve().parents[1]
CANARY = "sk-canary-123456789"

TWO_PROFILES = """
llm:
  active_provider: demo
  providers:
    demo: {type: mock, model: mock-1}
    claude: {type: anthropic, model: claude-sonnet-4-5}
"""


def write(path: Path, text: str) -> Path:
    """Write ``text`` and make sure the (mtime_ns, size) stamp changes even on coarse clocks."""
    old = path.stat().st_mtime_ns if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    if old is not None:
        bumped = old + 1_000_000_000
        os.utime(path, ns=(bumped, bumped))
    return path


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("LLM_", "LLMNB_")) or name.endswith(("_API_KEY", "_API_KEYS")):
            monkeypatch.delenv(name)
    for name in ("MY_KEY", "POOL_1", "POOL_2", "FROM_DOTENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    config.set_session_provider(None)
    yield
    config.set_session_provider(None)


@pytest.fixture
def settings_file(tmp_path: Path) -> Callable[[str], Path]:
    return lambda text: write(tmp_path / "config" / "settings.yaml", text)


# ------------------------------------------------------------------------------ discovery


def test_settings_are_found_in_a_parent_folder(tmp_path: Path, monkeypatch, settings_file):
    path = settings_file(TWO_PROFILES)
    sub = tmp_path / "notebooks" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert config.find_settings_path() == path
    assert config.load_settings().path == path
    assert config.load_settings().profile_names() == ["demo", "claude"]


def test_llmnb_settings_variable_wins_over_the_discovered_file(
    tmp_path: Path, monkeypatch, settings_file
):
    settings_file(TWO_PROFILES)
    other = write(tmp_path / "elsewhere.yaml", "llm: {providers: {solo: {type: mock, model: m}}}")
    monkeypatch.setenv("LLMNB_SETTINGS", str(other))
    assert config.find_settings_path() == other
    assert config.load_settings().profile_names() == ["solo"]


def test_llmnb_settings_naming_a_missing_file_is_an_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv("LLMNB_SETTINGS", "/nonexistent/settings.yaml")
    with pytest.raises(ConfigError, match="LLMNB_SETTINGS"):
        config.load_settings()


def test_without_a_settings_file_the_builtin_offline_demo_profile_is_active():
    assert config.find_settings_path() is None
    settings = config.load_settings()
    assert settings.path is None
    assert settings.llm.active_provider == "demo"
    name, profile = config.get_active_profile()
    assert (name, profile["type"], profile["model"]) == ("demo", "mock", "mock-1")
    assert config.get_model_name() == "mock-1"


def test_load_settings_returns_the_cached_object_until_the_file_changes(settings_file):
    path = settings_file(TWO_PROFILES)
    first = config.load_settings()
    assert config.load_settings() is first
    write(path, TWO_PROFILES.replace("active_provider: demo", "active_provider: claude"))
    again = config.load_settings()
    assert again is not first
    assert again.llm.active_provider == "claude"


def test_editing_settings_yaml_takes_effect_without_a_reload_call(settings_file):
    path = settings_file(TWO_PROFILES)
    assert config.get_active_profile()[0] == "demo"
    write(path, TWO_PROFILES.replace("active_provider: demo", "active_provider: claude"))
    assert config.get_active_profile()[0] == "claude"
    assert config.get_model_name() == "claude-sonnet-4-5"


def test_importing_llmnb_config_loads_neither_pandas_nor_an_http_library():
    heavy = "{'pandas', 'httpx', 'httpx2'}"
    code = f"import sys, llmnb.config; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------- .env


def test_dotenv_values_are_seen_by_get_env(tmp_path: Path, settings_file):
    settings_file(TWO_PROFILES)
    write(tmp_path / ".env", "FROM_DOTENV=yes\n")
    assert config.get_env("FROM_DOTENV") == "yes"
    assert config.get_env("NOT_ANYWHERE_AT_ALL") is None
    assert config.load_settings().env_path == tmp_path / ".env"


def test_real_environment_variables_win_over_dotenv(tmp_path: Path, monkeypatch, settings_file):
    settings_file(TWO_PROFILES)
    write(tmp_path / ".env", "LLM_MODEL=from-dotenv\n")
    monkeypatch.setenv("LLM_MODEL", "from-env")
    assert config.get_env("LLM_MODEL") == "from-env"
    assert config.get_model_name() == "from-env"


def test_dotenv_values_are_never_written_into_os_environ(tmp_path: Path, settings_file):
    settings_file(TWO_PROFILES)
    write(tmp_path / ".env", f"FROM_DOTENV=yes\nOPENAI_API_KEY={CANARY}\n")
    before = dict(os.environ)
    assert config.get_env("FROM_DOTENV") == "yes"
    assert config.require_api_key("x", {"type": "openai"}, "OPENAI_API_KEY") == CANARY
    config.load_settings()
    assert dict(os.environ) == before
    assert "FROM_DOTENV" not in os.environ


def test_editing_dotenv_in_place_takes_effect_without_a_reload_call(tmp_path: Path, settings_file):
    settings_file(TWO_PROFILES)
    dotenv = write(tmp_path / ".env", "LLM_ACTIVE_PROVIDER=demo\n")
    assert config.get_active_profile()[0] == "demo"
    write(dotenv, "LLM_ACTIVE_PROVIDER=claude\n")
    assert config.get_env("LLM_ACTIVE_PROVIDER") == "claude"
    assert config.get_active_profile()[0] == "claude"


def test_dotenv_next_to_the_config_folder_is_preferred_from_a_subfolder(
    tmp_path: Path, monkeypatch, settings_file
):
    settings_file(TWO_PROFILES)
    write(tmp_path / ".env", "WHERE=project-root\n")
    notebooks = tmp_path / "notebooks"
    write(notebooks / ".env", "WHERE=notebooks\n")
    monkeypatch.chdir(notebooks)
    assert config.get_env("WHERE") == "project-root"


def test_llmnb_env_file_variable_picks_the_dotenv_file(tmp_path: Path, monkeypatch):
    write(tmp_path / ".env", "WHERE=default\n")
    custom = write(tmp_path / "secrets" / "keys.env", "WHERE=custom\n")
    monkeypatch.setenv("LLMNB_ENV_FILE", str(custom))
    assert config.get_env("WHERE") == "custom"


def test_llmnb_env_file_naming_a_missing_file_is_an_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv("LLMNB_ENV_FILE", "/nonexistent/.env")
    with pytest.raises(ConfigError, match="LLMNB_ENV_FILE"):
        config.get_env("ANYTHING")


def test_without_settings_dotenv_is_found_in_the_working_folder_or_its_parents(
    tmp_path: Path, monkeypatch
):
    write(tmp_path / ".env", "WHERE=parent\n")
    sub = tmp_path / "a"
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert config.get_env("WHERE") == "parent"


# ------------------------------------------------------------------ provider resolution


def test_llm_active_provider_variable_overrides_the_settings(monkeypatch, settings_file):
    settings_file(TWO_PROFILES)
    monkeypatch.setenv("LLM_ACTIVE_PROVIDER", "claude")
    assert config.get_active_profile()[0] == "claude"


def test_dotenv_llm_active_provider_counts_like_the_environment(tmp_path, settings_file):
    settings_file(TWO_PROFILES)
    write(tmp_path / ".env", "LLM_ACTIVE_PROVIDER=claude\n")
    assert config.get_active_profile()[0] == "claude"


def test_session_choice_overrides_environment_and_settings(monkeypatch, settings_file):
    settings_file(TWO_PROFILES)
    monkeypatch.setenv("LLM_ACTIVE_PROVIDER", "demo")
    config.set_session_provider("claude", "claude-opus-4-1")
    assert config.get_session_provider() == ("claude", "claude-opus-4-1")
    assert config.get_active_profile()[0] == "claude"
    assert config.get_model_name() == "claude-opus-4-1"
    config.set_session_provider(None)
    assert config.get_session_provider() == (None, None)
    assert config.get_active_profile()[0] == "demo"


def test_set_session_provider_rejects_an_unknown_profile(settings_file):
    settings_file(TWO_PROFILES)
    with pytest.raises(ProviderNotFoundError, match=r"(?i)did you mean 'claude'"):
        config.set_session_provider("claud")
    assert config.get_session_provider() == (None, None)


def test_the_only_profile_is_used_when_no_active_provider_is_set(settings_file):
    settings_file("llm: {providers: {solo: {type: mock, model: m}}}")
    assert config.get_active_profile()[0] == "solo"


def test_no_active_profile_with_several_profiles_and_no_choice(settings_file):
    settings_file(TWO_PROFILES.replace("  active_provider: demo\n", ""))
    assert config.get_active_profile() is None
    with pytest.raises(ConfigError, match="LLM_ACTIVE_PROVIDER"):
        config.get_model_name()


def test_active_provider_auto_is_accepted_and_treated_as_not_configured(settings_file):
    settings_file(TWO_PROFILES.replace("active_provider: demo", "active_provider: auto"))
    assert config.load_settings().llm.active_provider == "auto"
    assert config.get_active_profile() is None


def test_unknown_profile_in_llm_active_provider_variable_names_the_variable(
    monkeypatch, settings_file
):
    settings_file(TWO_PROFILES)
    monkeypatch.setenv("LLM_ACTIVE_PROVIDER", "claud")
    with pytest.raises(ProviderNotFoundError) as info:
        config.get_active_profile()
    assert "LLM_ACTIVE_PROVIDER" in str(info.value)
    assert "did you mean 'claude'" in str(info.value).lower()


AGENTS = """
llm:
  active_provider: demo
  providers:
    demo: {type: mock, model: mock-1, temperature: 0.5, params: {top_p: 0.9}}
    demo_fast: {type: mock, model: mock-2}
    claude: {type: anthropic, model: claude-sonnet-4-5, max_tokens: 2000}
  params: {temperature: 1.0, max_tokens: 100, seed: 1}
  agents:
    user_simulator: {active_provider: demo_fast, model: sim-model}
    planner:
      params: {temperature: 0.2}
      steps:
        draft: {temperature: 0.7, max_tokens: 800}
"""


def test_agent_environment_variable_overrides_the_agent_config(monkeypatch, settings_file):
    settings_file(AGENTS)
    assert config.get_active_profile("user_simulator")[0] == "demo_fast"
    monkeypatch.setenv("LLM_USER_SIMULATOR_ACTIVE_PROVIDER", "claude")
    assert config.get_active_profile("user_simulator")[0] == "claude"


def test_agent_variable_names_upper_case_the_agent_and_replace_punctuation(
    monkeypatch, settings_file
):
    settings_file(AGENTS)
    monkeypatch.setenv("LLM_USER_SIM_2_ACTIVE_PROVIDER", "claude")
    monkeypatch.setenv("LLM_USER_SIM_2_MODEL", "claude-haiku")
    assert config.get_active_profile("user-sim.2")[0] == "claude"
    assert config.get_model_name(agent="user-sim.2") == "claude-haiku"


def test_agent_active_provider_wins_over_the_session_and_global_choice(monkeypatch, settings_file):
    settings_file(AGENTS)
    monkeypatch.setenv("LLM_ACTIVE_PROVIDER", "claude")
    config.set_session_provider("claude")
    assert config.get_active_profile("user_simulator")[0] == "demo_fast"


def test_agent_without_a_provider_follows_the_no_agent_resolution(monkeypatch, settings_file):
    settings_file(AGENTS)
    assert config.get_active_profile("planner")[0] == "demo"
    assert config.get_active_profile("not_configured")[0] == "demo"
    monkeypatch.setenv("LLM_ACTIVE_PROVIDER", "claude")
    assert config.get_active_profile("planner")[0] == "claude"
    config.set_session_provider("demo_fast")
    assert config.get_active_profile("planner")[0] == "demo_fast"


# --------------------------------------------------------------------- model resolution


def test_model_resolution_order_for_an_agent(monkeypatch, settings_file):
    settings_file(AGENTS)
    monkeypatch.setenv("LLM_USER_SIMULATOR_MODEL", "agent-env-model")
    monkeypatch.setenv("LLM_MODEL", "global-env-model")
    config.set_session_provider("demo_fast", "session-model")
    agent = "user_simulator"
    assert config.get_model_name("argument-model", agent) == "argument-model"
    assert config.get_model_name(agent=agent) == "agent-env-model"
    monkeypatch.delenv("LLM_USER_SIMULATOR_MODEL")
    assert config.get_model_name(agent=agent) == "global-env-model"
    monkeypatch.delenv("LLM_MODEL")
    # the agent resolves to demo_fast, the session's profile, so the session's model applies
    assert config.get_model_name(agent=agent) == "session-model"
    config.set_session_provider(None)
    assert config.get_model_name(agent=agent) == "sim-model"


def test_session_model_does_not_apply_to_an_agent_on_another_profile(settings_file):
    settings_file(AGENTS)
    config.set_session_provider("claude", "session-model")
    assert config.get_model_name() == "session-model"
    assert config.get_model_name(agent="user_simulator") == "sim-model"
    assert config.get_model_name(agent="planner") == "session-model"


def test_model_falls_back_to_the_profile_model(settings_file):
    settings_file(AGENTS)
    assert config.get_model_name() == "mock-1"
    assert config.get_model_name(agent="planner") == "mock-1"


def test_missing_model_is_an_error_naming_the_profile_and_the_model_field(settings_file):
    settings_file("llm: {providers: {nomodel: {type: openai}}}")
    with pytest.raises(ConfigError) as info:
        config.get_model_name()
    message = str(info.value)
    assert "'nomodel'" in message and "model:" in message
    assert "config/settings.yaml" in message


# ----------------------------------------------------------------------------- params


def test_llm_params_layer_defaults_profile_agent_and_step(settings_file):
    settings_file(AGENTS)
    assert config.get_llm_params(None) == {
        "temperature": 0.5, "max_tokens": 100, "seed": 1, "top_p": 0.9,
    }  # fmt: skip
    assert config.get_llm_params("planner") == {
        "temperature": 0.2, "max_tokens": 100, "seed": 1, "top_p": 0.9,
    }  # fmt: skip
    assert config.get_llm_params("planner", "draft") == {
        "temperature": 0.7, "max_tokens": 800, "seed": 1, "top_p": 0.9,
    }  # fmt: skip
    assert config.get_llm_params("planner", "no_such_step") == config.get_llm_params("planner")


def test_llm_params_use_the_profile_the_agent_resolves_to(monkeypatch, settings_file):
    settings_file(AGENTS)
    monkeypatch.setenv("LLM_PLANNER_ACTIVE_PROVIDER", "claude")
    assert config.get_llm_params("planner") == {"temperature": 0.2, "max_tokens": 2000, "seed": 1}


def test_llm_defaults_is_another_spelling_of_llm_params(settings_file):
    settings_file("llm: {defaults: {temperature: 0.3}, providers: {a: {type: mock, model: m}}}")
    settings = config.load_settings()
    assert settings.llm.params == settings.llm.defaults == {"temperature": 0.3}
    assert config.get_llm_params(None) == {"temperature": 0.3}


# --------------------------------------------------------------------- user simulator


def test_user_simulator_settings_validate_when_the_agent_resolves(settings_file):
    settings_file(AGENTS)
    config.validate_user_simulator_settings()


def test_user_simulator_settings_validate_with_the_builtin_default():
    config.validate_user_simulator_settings()


def test_user_simulator_without_any_provider_is_an_error_with_guidance(settings_file):
    settings_file(TWO_PROFILES.replace("  active_provider: demo\n", ""))
    with pytest.raises(ConfigError) as info:
        config.validate_user_simulator_settings()
    message = str(info.value)
    assert "llm.agents.user_simulator" in message
    assert "LLM_USER_SIMULATOR_ACTIVE_PROVIDER" in message


def test_user_simulator_whose_profile_has_no_model_is_an_error_with_guidance(settings_file):
    settings_file("""
    llm:
      providers: {bare: {type: openai}}
      agents: {user_simulator: {active_provider: bare}}
    """)
    with pytest.raises(ConfigError, match="LLM_USER_SIMULATOR_MODEL"):
        config.validate_user_simulator_settings()


# ------------------------------------------------------------------ validation errors


def test_malformed_yaml_names_the_file_and_the_line(settings_file):
    settings_file("llm:\n  providers:\n    demo: {type: mock}\n   bad_indent: 1\nusage: {}\n")
    with pytest.raises(ConfigError) as info:
        config.load_settings()
    message = str(info.value)
    assert "config/settings.yaml, line 4, column 4" in message
    assert "invalid YAML" in message


def test_wrong_type_names_the_file_the_profile_and_the_field(settings_file):
    settings_file(TWO_PROFILES.replace("-4-5}", "-4-5, temperature: hot}"))
    with pytest.raises(ConfigError) as info:
        config.load_settings()
    message = str(info.value)
    assert "config/settings.yaml" in message
    assert "llm.providers.claude.temperature" in message
    assert "valid number" in message


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ("temperature: 3", "temperature"),
        ("timeout: -1", "timeout"),
        ("max_tokens: 0", "max_tokens"),
        ("max_retries: -1", "max_retries"),
        ("rate_limits: {requests_per_minute: 0}", "rate_limits.requests_per_minute"),
        ("pricing: {input_per_mtok: -1, output_per_mtok: 1}", "pricing.input_per_mtok"),
        ("delay: -0.5", "delay"),
    ],
)
def test_out_of_range_values_are_errors_naming_the_field(settings_file, entry, where):
    settings_file(f"llm: {{providers: {{p: {{type: mock, model: m, {entry}}}}}}}")
    with pytest.raises(ConfigError, match=re.escape(f"llm.providers.p.{where}")):
        config.load_settings()


def test_zero_budget_is_an_error(settings_file):
    settings_file("usage: {budget_usd: 0}\nllm: {providers: {p: {type: mock, model: m}}}")
    with pytest.raises(ConfigError, match=r"usage\.budget_usd"):
        config.load_settings()


@pytest.mark.parametrize(
    ("text", "where", "suggestion"),
    [
        ("llm: {providers: {p: {type: mock, temprature: 1}}}", "llm.providers.p.temprature",
         "temperature"),
        ("lllm: {}", "lllm", "llm"),
        ("llm: {activ_provider: p, providers: {p: {type: mock}}}", "llm.activ_provider",
         "active_provider"),
        ("llm: {providers: {p: {type: mock}}, agents: {a: {parms: {}}}}", "llm.agents.a.parms",
         "params"),
    ],
)  # fmt: skip
def test_unknown_keys_are_errors_suggesting_the_nearest_key(settings_file, text, where, suggestion):
    settings_file(text)
    with pytest.raises(ConfigError) as info:
        config.load_settings()
    assert where in str(info.value)
    assert f"did you mean {suggestion!r}?" in str(info.value)


def test_every_problem_is_reported_at_once_one_line_each(settings_file):
    settings_file("""
    llm:
      providers:
        a: {type: mock, temprature: 1}
        b: {type: mock, max_tokens: -5}
    usage: {budget_usd: -1}
    """)
    with pytest.raises(ConfigError) as info:
        config.load_settings()
    lines = [ln for ln in str(info.value).splitlines() if ln.strip().startswith("config/")]
    assert len(lines) == 3


def test_provider_factory_profiles_may_carry_extra_keys(settings_file):
    settings_file("""
    llm:
      providers:
        mine: {provider_factory: "my_pkg.mod:create", model: x, region: eu, retries_left: 2}
    """)
    profile = config.get_profile("mine")
    assert profile["region"] == "eu"
    assert profile["retries_left"] == 2
    assert profile.name == "mine"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{model: m}", "needs `type:`"),
        ("{type: mock, provider_factory: 'a:b'}", "has both"),
    ],
)
def test_a_profile_needs_exactly_one_implementation(settings_file, entry, expected):
    settings_file(f"llm: {{providers: {{p: {entry}}}}}")
    with pytest.raises(ConfigError, match=re.escape(expected)):
        config.load_settings()


def test_unknown_profile_error_lists_profiles_near_matches_and_the_file(settings_file):
    settings_file(TWO_PROFILES)
    with pytest.raises(ProviderNotFoundError) as info:
        config.get_profile("claud")
    message = str(info.value)
    assert "did you mean 'claude'" in message.lower()
    assert "claude, demo" in message
    assert "config/settings.yaml" in message


@pytest.mark.parametrize(
    ("llm_extra", "where"),
    [
        ("fallbacks: [claude, claud]", "llm.fallbacks[1]"),
        ("fallbacks: [claude, demo, claude]", "listed twice"),
        ("agents: {a: {active_provider: nope}}", "llm.agents.a.active_provider"),
    ],
)
def test_references_to_profiles_are_checked(settings_file, llm_extra, where):
    settings_file(TWO_PROFILES + f"  {llm_extra}\n")
    with pytest.raises(ConfigError, match=re.escape(where)):
        config.load_settings()


def test_active_provider_naming_an_unknown_profile_is_an_error(settings_file):
    settings_file(TWO_PROFILES.replace("active_provider: demo", "active_provider: dem"))
    with pytest.raises(ConfigError, match=r"llm\.active_provider.*did you mean 'demo'"):
        config.load_settings()


# ------------------------------------------------------------------------------- keys


def test_api_key_comes_from_the_default_variable_plus_its_pool(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k-main")
    monkeypatch.setenv("OPENAI_API_KEYS", " k-pool1, ,k-main,k-pool2 ")
    keys = config.resolve_api_keys("o", {"type": "openai"}, "OPENAI_API_KEY")
    assert keys == ["k-main", "k-pool1", "k-pool2"]


def test_api_key_env_in_the_profile_overrides_the_default_variable(monkeypatch):
    monkeypatch.setenv("MY_KEY", "k-mine")
    monkeypatch.setenv("OPENAI_API_KEY", "k-default")
    profile = {"type": "openai", "api_key_env": "MY_KEY"}
    assert config.require_api_key("o", profile, "OPENAI_API_KEY") == "k-mine"


def test_profile_keys_win_over_variables_and_expand_var_references(tmp_path, monkeypatch):
    write(tmp_path / ".env", "POOL_1=from-dotenv\n")
    monkeypatch.setenv("POOL_2", "from-env")
    monkeypatch.setenv("OPENAI_API_KEY", "k-default")
    pool = {"api_keys": ["${POOL_1}", "${POOL_2}", "literal"], "api_key": "single"}
    assert config.resolve_api_keys("p", pool, "OPENAI_API_KEY") == [
        "from-dotenv", "from-env", "literal",
    ]  # fmt: skip
    assert config.resolve_api_keys("p", {"api_key": "${POOL_1}"}, "OPENAI_API_KEY") == [
        "from-dotenv"
    ]


def test_api_keys_from_settings_yaml_are_plain_strings_in_the_profile(monkeypatch, settings_file):
    settings_file("llm: {providers: {p: {type: openai, model: m, api_key: '${MY_KEY}'}}}")
    monkeypatch.setenv("MY_KEY", "k-expanded")
    profile = config.get_profile("p")
    assert profile["api_key"] == "${MY_KEY}"
    assert config.require_api_key("p", profile, "OPENAI_API_KEY") == "k-expanded"


def test_missing_api_key_error_names_the_variable_the_profile_and_both_remedies(settings_file):
    settings_file(TWO_PROFILES)
    with pytest.raises(MissingAPIKeyError) as info:
        config.require_api_key("claude", config.get_profile("claude"), "ANTHROPIC_API_KEY")
    message = str(info.value)
    assert "ANTHROPIC_API_KEY" in message and "ANTHROPIC_API_KEYS" in message
    assert "'claude'" in message
    assert ".env" in message and "api_key" in message


def test_unresolved_var_reference_error_names_the_referenced_variable():
    with pytest.raises(MissingAPIKeyError, match="MY_KEY"):
        config.require_api_key("p", {"api_key": "${MY_KEY}"}, "OPENAI_API_KEY")


def test_profile_without_any_key_source_says_to_add_api_key_env():
    with pytest.raises(MissingAPIKeyError, match="api_key_env"):
        config.require_api_key("p", {"type": "openai_compatible"}, None)


# -------------------------------------------------------------------------- redaction


def test_redact_shows_at_most_a_prefix_and_suffix():
    assert config.redact(CANARY) == "sk-…6789"
    assert config.redact("short-key") == "…"
    assert config.redact(None) == "…"
    assert config.redact("") == "…"


def test_reprs_never_contain_a_key_from_env_dotenv_or_the_profile(
    tmp_path, monkeypatch, settings_file
):
    settings_file(f"""
    llm:
      providers:
        inline: {{type: openai, model: m, api_key: "{CANARY}",
                  headers: {{Authorization: "Bearer {CANARY}"}}, env: {{X_API_KEY: "{CANARY}"}}}}
        pool: {{type: openai, model: m, api_keys: ["{CANARY}", "${{MY_KEY}}"]}}
        fact: {{provider_factory: "a.b:c", client_secret: "{CANARY}"}}
    """)
    write(tmp_path / ".env", f"MY_KEY={CANARY}\n")
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    settings = config.load_settings()
    shown = [repr(settings), str(settings)]
    for name in settings.profile_names():
        profile = config.get_profile(name)
        shown += [repr(profile), str(profile), f"{profile}"]
    assert config.require_api_key("pool", config.get_profile("pool"), None) == CANARY
    assert all(CANARY not in text for text in shown)
    assert "sk-…6789" in repr(config.get_profile("inline"))
    assert "${MY_KEY}" in repr(config.get_profile("pool"))  # a reference is not a secret


def test_profile_repr_keeps_harmless_fields_visible():
    profile = config.Profile(name="p", max_tokens=100, api_key_env="OPENAI_API_KEY")
    assert "100" in repr(profile) and "OPENAI_API_KEY" in repr(profile)


def test_profile_copy_is_still_a_redacting_profile():
    copied = config.Profile(name="p", api_key=CANARY).copy()
    assert isinstance(copied, config.Profile)
    assert CANARY not in repr(copied)


# ---------------------------------------------------------------------- shipped files


def test_shipped_settings_yaml_validates_and_offers_two_offline_profiles():
    settings = config.load_settings(REPO / "config" / "settings.yaml")
    assert settings.llm.active_provider == "demo"
    demo = settings.llm.providers["demo"]
    assert (demo.type, demo.model) == ("mock", "mock-1")
    assert demo.pricing is not None and demo.pricing.input_per_mtok == 0.15
    assert settings.llm.providers["demo_fast"].pricing is None


def test_every_commented_example_in_the_shipped_settings_validates(tmp_path):
    text = (REPO / "config" / "settings.yaml").read_text(encoding="utf-8")
    uncommented = re.sub(r"(?m)^(\s*)# ", r"\1", text)
    settings = config.load_settings(write(tmp_path / "all.yaml", uncommented))
    types = {p.type for p in settings.llm.providers.values()}
    for expected in (
        "openrouter", "openai", "openai_compatible", "anthropic", "gemini", "groq",
        "together", "deepseek", "mistral", "xai", "ollama", "vllm", "lmstudio",
        "claude_code", "codex_cli", "copilot_cli", "gemini_cli", "local_hf",
    ):  # fmt: skip
        assert expected in types
    assert settings.llm.fallbacks and settings.llm.agents["planner"].steps
    assert settings.usage.budget_usd == 10


def test_env_example_lists_every_provider_key_variable_empty():
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    for var in (
        "OPENROUTER_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY",
        "GROQ_API_KEY", "TOGETHER_API_KEY", "DEEPSEEK_API_KEY", "MISTRAL_API_KEY",
        "XAI_API_KEY",
    ):  # fmt: skip
        assert re.search(rf"(?m)^{var}=$", text)
    assert "_API_KEYS=" in text


# ------------------------------------------------------------------ the saved default

COMMENTED = """\
## My settings — hand-written notes that must survive the picker.
llm:
  active_provider: demo   # the file's own choice
  providers:
    demo: {type: mock, model: mock-1}
    claude: {type: anthropic, model: claude-sonnet-4-5}   # keep this comment
    fast: {type: mock, model: mock-2}
"""


def test_saved_default_sits_between_the_env_variable_and_the_settings(
    tmp_path, monkeypatch, settings_file
):
    path = settings_file(COMMENTED)
    before = path.read_bytes()
    saved = config.save_default_provider("fast")
    assert saved == tmp_path / ".llmnb" / "state.json"
    assert path.read_bytes() == before  # comments, order, spacing untouched
    assert config.get_active_profile()[0] == "fast"  # beats llm.active_provider
    monkeypatch.setenv("LLM_ACTIVE_PROVIDER", "claude")
    assert config.get_active_profile()[0] == "claude"  # the env var beats it
    config.set_session_provider("demo")
    assert config.get_active_profile()[0] == "demo"  # the session beats both


def test_saved_default_model_applies_to_its_profile_only(settings_file):
    settings_file(COMMENTED)
    config.save_default_provider("demo", "mock-9")
    assert config.get_saved_default() == ("demo", "mock-9")
    assert config.get_model_name() == "mock-9"
    config.set_session_provider("fast")
    assert config.get_model_name() == "mock-2"  # another profile keeps its own model


def test_saved_default_is_seen_by_a_new_process(tmp_path, settings_file):
    settings_file(COMMENTED)
    config.save_default_provider("fast", "mock-3")
    code = (
        "from llmnb import config; print(config.get_active_profile()[0], config.get_model_name())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["fast", "mock-3"]
    assert (tmp_path / ".llmnb" / ".gitignore").read_text() == "*\n"


def test_saving_an_unknown_profile_is_refused(settings_file):
    settings_file(COMMENTED)
    with pytest.raises(ProviderNotFoundError, match=r"Did you mean 'fast'"):
        config.save_default_provider("fats")
    assert config.get_saved_default() == (None, None)


def test_a_saved_default_whose_profile_was_removed_names_the_state_file(settings_file):
    path = settings_file(COMMENTED)
    config.save_default_provider("claude")
    write(path, COMMENTED.replace("    claude:", "    # claude:"))
    with pytest.raises(ProviderNotFoundError, match=r"default saved in \.llmnb/state\.json"):
        config.get_active_profile()
    config.clear_saved_default()
    assert config.get_active_profile()[0] == "demo"


def test_a_damaged_state_file_is_a_config_error_saying_what_to_do(tmp_path, settings_file):
    settings_file(COMMENTED)
    write(tmp_path / ".llmnb" / "state.json", "{not json")
    with pytest.raises(ConfigError, match=r"\.llmnb/state\.json cannot be read.*delete the file"):
        config.get_active_profile()


# ----------------------------------------------------------------- session parameters


def test_session_params_sit_above_the_profile_and_below_the_agent(settings_file):
    settings_file(
        """
        llm:
          active_provider: demo
          params: {temperature: 0.9, max_tokens: 100}
          providers:
            demo: {type: mock, model: m, temperature: 0.5}
          agents:
            planner: {params: {temperature: 0.1}}
        """
    )
    config.set_session_params(temperature=1.3, max_tokens=64)
    assert config.get_session_params() == {"temperature": 1.3, "max_tokens": 64}
    assert config.get_llm_params(None) == {"temperature": 1.3, "max_tokens": 64}
    assert config.get_llm_params("planner") == {"temperature": 0.1, "max_tokens": 64}
    config.set_session_params(temperature=None)
    assert config.get_llm_params(None)["temperature"] == 0.5
    config.set_session_provider(None)  # clearing the session clears its parameters
    assert config.get_session_params() == {}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"temperature": 3}, r"temperature should be a number 0\.\.2, got 3"),
        ({"max_tokens": 0}, r"max_tokens should be a whole number > 0, got 0"),
        ({"top_k": 3}, r"unknown parameter 'top_k'"),
    ],
)
def test_bad_session_params_are_refused_naming_them(params, message):
    with pytest.raises(ConfigError, match=message):
        config.set_session_params(**params)
    assert config.get_session_params() == {}


# --------------------------------------------------------------------- usage store


@pytest.mark.parametrize("store", ["mysql://db/usage", "usage.db", "sqlite://x.db"])
def test_a_bad_usage_store_names_the_field_and_the_accepted_forms(settings_file, store):
    settings_file(f"usage: {{store: '{store}'}}")
    with pytest.raises(ConfigError) as info:
        config.load_settings()
    text = str(info.value)
    assert "config/settings.yaml: usage.store:" in text
    assert "'sqlite:///path/to/usage.db'" in text and "'memory'" in text


@pytest.mark.parametrize("store", ["memory", "sqlite:///.llmnb/usage.db", "sqlite:////tmp/u.db"])
def test_usage_store_forms_that_are_accepted(settings_file, store):
    settings_file(f"usage: {{store: '{store}'}}")
    assert config.load_settings().usage.store == store


def test_yaml_merge_keys_may_override_what_they_bring_in(settings_file):
    # `<<: *base` then `model:` is YAML's way to share defaults, not a key written twice.
    settings_file(
        "llm:\n"
        "  active_provider: b\n"
        "  providers:\n"
        "    a: &base {type: mock, model: m1, temperature: 0.1}\n"
        "    b:\n"
        "      <<: *base\n"
        "      model: m2\n"
    )
    b = config.load_settings().llm.providers["b"]
    assert (b.model, b.temperature) == ("m2", 0.1)
