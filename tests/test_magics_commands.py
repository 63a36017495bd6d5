"""%llm line commands and error reporting, in a real IPython shell; loading the extension."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from _magics_shell import ip_fixture, mock_settings, run

from llmnb import config

ip = ip_fixture

SECRET = "sk-test-0123456789abcdefSECRET"


# -- loading -------------------------------------------------------------------------------


def test_loading_the_extension_stays_light(tmp_path):
    code = textwrap.dedent(
        """
        import json, sys
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "llmnb")
        assert ip.find_cell_magic("llm") is not None and ip.find_line_magic("llmnb") is not None
        heavy = ["pandas", "matplotlib", "ipywidgets", "httpx", "pydantic", "genai_prices"]
        print(json.dumps([m for m in heavy if m in sys.modules]))
        """
    )
    env = {"IPYTHONDIR": str(tmp_path / "ipython"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_another_extensions_llm_magic_is_kept_and_the_alias_works(ip):
    ip.run_line_magic("unload_ext", "llmnb")
    ip.register_magic_function(lambda line, cell=None: "theirs", "line_cell", "llm")
    try:
        ran = run(ip, "%load_ext llmnb")
        assert "already belong to another extension" in ran.stderr
        assert "%%llmnb" in ran.stderr
        assert run(ip, "%%llm\nhi").result.result == "theirs"
        assert run(ip, "%%llmnb\nhi").data("text/markdown") == ["[mock-1] You said: hi"]
        assert run(ip, "%llmnb Why?").data("text/markdown") == ["[mock-1] You said: Why?"]
        again = run(ip, "%reload_ext llmnb")
        assert again.stderr == ""  # warned once
        assert run(ip, "%llm hi").result.result == "theirs"
    finally:
        ip.run_line_magic("unload_ext", "llmnb")
        for kind in ("line", "cell"):
            ip.magics_manager.magics[kind].pop("llm", None)
        ip.run_line_magic("load_ext", "llmnb")
    assert run(ip, "%llm hi").data("text/markdown") == ["[mock-1] You said: hi"]


def test_unload_removes_the_magics(ip):
    ip.run_line_magic("unload_ext", "llmnb")
    try:
        assert ip.find_cell_magic("llm") is None and ip.find_line_magic("llmnb") is None
        assert not [c for c in ip.configurables if type(c).__name__ == "LLMMagics"]
    finally:
        ip.run_line_magic("load_ext", "llmnb")


def test_a_one_line_question_is_a_prompt_not_a_help_request(ip):
    ran = run(ip, "%llm Why is the sky blue?")
    assert ran.data("text/markdown") == ["[mock-1] You said: Why is the sky blue?"]


# -- use, list, providers, config ------------------------------------------------------


def test_use_switches_the_session_profile_and_model(ip, write_settings):
    write_settings(mock_settings(other={"type": "mock", "model": "o-1"}))
    ran = run(ip, "%llm use demo mock-3")
    assert "Active: demo · mock-3" in ran.stdout
    assert config.get_session_provider() == ("demo", "mock-3")
    assert run(ip, "%%llm\nhi").data("text/markdown") == ["[mock-3] You said: hi"]
    run(ip, "%llm use other:o-9")
    assert run(ip, "%llm hi").data("text/markdown") == ["[o-9] You said: hi"]
    run(ip, "%llm use --clear")
    assert config.get_session_provider() == (None, None)


def test_list_shows_key_status_but_never_the_key(ip, write_settings, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", SECRET)
    write_settings(
        mock_settings(
            router={"type": "openrouter", "model": "openai/gpt-4o"},
            oa={"type": "openai", "model": "gpt-4o"},
            inline={
                "type": "openai_compatible",
                "model": "m",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key": SECRET,
            },
        )
    )
    ran = run(ip, "%llm list")
    rows = {
        line.split()[1] if line.startswith("▶") else line.split()[0]: line
        for line in ran.outputs[0].data["text/plain"].splitlines()[2:]
    }
    assert rows["router"].startswith("▶") and rows["router"].endswith("✓")
    assert rows["oa"].endswith("✗ OPENAI_API_KEY")
    assert rows["inline"].endswith("✓")
    assert rows["demo"].endswith("—")  # the mock needs no key
    assert SECRET not in ran.text and SECRET not in ran.outputs[0].data["text/html"]


def test_providers_lists_types_and_the_profiles_using_them(ip):
    table = run(ip, "%llm providers").outputs[0].data["text/plain"]
    assert "openai_compatible" in table
    assert any(line.startswith("mock") and "demo" in line for line in table.splitlines())


def test_config_shows_resolved_settings_with_secrets_redacted(ip, write_settings):
    write_settings(
        mock_settings(
            inline={
                "type": "openai_compatible",
                "model": "m",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key": SECRET,
            },
        )
    )
    ran = run(ip, "%llm config")
    shown = ran.outputs[0].data["text/plain"]
    assert "active profile: inline · model m" in shown
    assert "config/settings.yaml" in shown
    assert "sk-…CRET" in shown
    assert SECRET not in shown and SECRET not in ran.outputs[0].data["text/markdown"]


# -- usage, reset, budget, debug, help -----------------------------------------------------


def test_usage_is_a_dataframe_of_this_session(ip, write_settings):
    write_settings(mock_settings(other={"type": "mock", "model": "o-1"}))
    run(ip, "%llm hi")
    run(ip, "%llm -p demo hi")
    run(ip, "%llm again")
    summary = run(ip, "%llm usage --by model").result.result
    assert summary.loc["o-1", "calls"] == 2 and summary.loc["mock-1", "calls"] == 1
    by_two = run(ip, "%llm usage --by profile,model").result.result
    assert list(by_two.index.names) == ["profile", "model"]
    rows = run(ip, "%llm usage --rows").result.result
    assert len(rows) == 3 and {"cost_usd", "cost_source", "latency_s"} <= set(rows.columns)


def test_usage_by_an_unknown_column_is_a_usage_error(ip):
    ran = run(ip, "%llm usage --by colour")
    assert ran.stderr.startswith("UsageError: %llm usage --by: cannot summarize by ['colour']")


def test_reset_all_conversations(ip):
    run(ip, "%llm --chat=a one")
    run(ip, "%llm --chat=b two")
    assert "Forgot 2 conversation(s)." in run(ip, "%llm reset").stdout
    assert "No conversation named 'a'" in run(ip, "%llm reset a").stdout


def test_budget_sets_the_session_limit_and_stops_spending(ip, write_settings):
    from llmnb.middleware.budget import get_session_budget, reset_session_budget, reset_spend

    pricing = {"input_per_mtok": 1000, "output_per_mtok": 1000}
    write_settings(mock_settings(priced={"type": "mock", "model": "p", "pricing": pricing}))
    try:
        ran = run(ip, "%llm budget 0.5")
        assert get_session_budget() == 0.5
        assert "Session budget: $0.50 " in ran.stdout
        run(ip, "%llm budget 0.000001")
        results = [run(ip, "%llm spend something") for _ in range(2)]
        last = results[-1]
        assert last.result.error_in_exec is not None
        lines = last.error_lines
        assert len(lines) == 1 and lines[0].startswith("BudgetExceededError: ")
        assert run(ip, "%llm budget nonsense").stderr.startswith("UsageError: ")
        run(ip, "%llm budget off")
        assert get_session_budget() is None
    finally:
        reset_session_budget()  # back to the settings' usage.budget_usd, for other tests
        reset_spend()


def test_debug_on_shows_the_full_traceback(ip):
    quiet = run(ip, "%llm -p nope hi")
    assert "Traceback" not in quiet.text
    assert "ProviderNotFoundError" in quiet.text
    assert "debug on" in run(ip, "%llm debug on").stdout
    loud = run(ip, "%llm -p nope hi")
    assert "Traceback" in loud.text and "ProviderNotFoundError" in loud.text
    run(ip, "%llm debug off")
    assert "Traceback" not in run(ip, "%llm -p nope hi").text


def test_help_lists_the_commands(ip):
    for source in ("%llm help", "%llm"):
        shown = run(ip, source).stdout
        for word in ("use PROFILE", "list", "usage", "error", "reset", "budget", "ask PROMPT"):
            assert word in shown


def test_ask_sends_a_prompt_starting_with_a_command_word(ip):
    ran = run(ip, "%llm ask list three planets")
    assert ran.data("text/markdown") == ["[mock-1] You said: list three planets"]
    refused = run(ip, "%llm list three planets")
    assert refused.stderr.startswith("UsageError: %llm list takes no arguments")
    assert "%llm ask list three planets" in refused.stderr


# -- %llm error ------------------------------------------------------------------------------


def test_error_sends_the_last_exception_and_its_cell(ip):
    assert run(ip, "%llm error").stderr.startswith("UsageError: no error to explain yet")
    run(ip, "totals = {'a': 1}\nvalue = totals['b']", store_history=True)
    ran = run(ip, "%llm error")
    answer = ran.data("text/markdown")[0]
    assert "value = totals['b']" in answer  # the cell, braces untouched
    assert "KeyError: 'b'" in answer
    assert "In[" in answer


# -- error paths: one line, no traceback -------------------------------------------------------


def _one_error_line(ran) -> str:
    assert "Traceback" not in ran.text
    assert ran.result.error_in_exec is not None or ran.result.error_before_exec is not None
    lines = ran.error_lines
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    ("source", "start", "names"),
    [
        ("%%llm --bogus\nhi", "UsageError: unrecognized arguments: --bogus", "--bogus"),
        ("%%llm -f xml\nhi", "UsageError: argument -f/--format: invalid choice", "xml"),
        ("%%llm -t hot\nhi", "UsageError: argument -t/--temperature", "hot"),
        ("%%llm\n   \n", "UsageError: the cell is empty", "%%llm"),
        ("%llm -t 0.2", "UsageError: no prompt", "%%llm"),
        ("%%llm -o 1x\nhi", "UsageError: -o/--out '1x' is not a valid", "1x"),
        ("%%llm --insert\nhi", "UsageError: --insert puts code", "-f code"),
        ("%%llm --step draft\nhi", "UsageError: --step needs --agent", "--agent"),
        ("%%llm --compare demo,\nhi", "UsageError: --compare 'demo,'", "--compare"),
        ("%%llm -s 'unclosed\nhi", "UsageError: cannot read the options", "unclosed"),
        ("%llm use a b c", "UsageError: usage: %llm use PROFILE", "PROFILE"),
        ("%llm debug maybe", "UsageError: usage: %llm debug on|off", "on|off"),
    ],
)
def test_option_mistakes_are_one_usage_error_line(ip, source, start, names):
    line = _one_error_line(run(ip, source))
    assert line.startswith(start), line
    assert names.replace("%%", "%") in line or names in line


def test_unknown_profile_is_one_line_naming_it_and_the_choices(ip):
    line = _one_error_line(run(ip, "%%llm claude\nhi"))
    assert line.startswith("ProviderNotFoundError: No profile named 'claude'")
    assert "Profiles: demo" in line


def test_missing_key_is_one_line_naming_the_variable(ip, write_settings):
    write_settings(mock_settings(oa={"type": "openai", "model": "gpt-4o"}))
    line = _one_error_line(run(ip, "%%llm\nhi"))
    assert line.startswith("MissingAPIKeyError: ")
    assert "OPENAI_API_KEY" in line and "%env OPENAI_API_KEY=" in line


def test_rate_limited_after_retries_is_one_line(ip, write_settings):
    limited = {"type": "rate_limit", "retry_after": 0.01}  # a short wait keeps the test fast
    flaky = {"type": "mock", "model": "f", "errors": [limited, limited], "max_retries": 1}
    write_settings(mock_settings(flaky=flaky))
    line = _one_error_line(run(ip, "%%llm\nhi"))
    assert line.startswith("RateLimitError: ")


def test_bad_interpolation_is_one_line_naming_the_expression(ip):
    ip.user_ns["rows"] = {"a": 1}
    line = _one_error_line(run(ip, "%%llm\nvalue: {rows['b']}"))
    assert line.startswith("UsageError: the prompt: {rows['b']} failed: KeyError: 'b'")
    assert "{{rows['b']}}" in line
