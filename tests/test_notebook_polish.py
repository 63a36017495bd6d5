"""Issue 21's defects, each driven through the public API: the number format, ``{df}``
and ``{In[n]}`` in prompts, the picker staying true to the session, plots, tables,
messages and plurals."""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _magics_shell import ip_fixture, mock_settings, run

from llmnb import config
from llmnb.usage import UsageTracker
from llmnb.usage.format import duration, money, plural, tokens
from llmnb.usage.plots import plot_costs
from llmnb.widgets import ProviderPicker, UsageDashboard

ip = ip_fixture
Write = Callable[[dict[str, Any]], Path]
PRICED = {
    "type": "mock",
    "model": "p-1",
    "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
}


# -- one number format -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (0.002861, "$0.0029"),
        (0.0000261, "$0.000026"),
        (0.5, "$0.50"),
        (12.3456, "$12.35"),
        (1234.5, "$1,234.50"),
        (0.0, "$0"),
        (1e-9, "<$0.000001"),
        (math.nan, "n/a"),
        (None, "n/a"),
        (math.inf, "n/a"),
    ],
)
def test_money_has_two_significant_digits_below_a_dollar_and_never_a_silent_zero(
    usd: float | None, text: str
) -> None:
    assert money(usd) == text


def test_tokens_time_and_plurals_read_as_people_write_them() -> None:
    assert [tokens(n) for n in (7, 1234, 99_999, 250_000, 2_500_000)] == [
        "7",
        "1,234",
        "99,999",
        "250k",
        "2.5M",
    ]
    assert tokens(None) == "n/a" and tokens(12, estimated=True) == "~12"
    assert [duration(s) for s in (26e-6, 0.012, 1.234, 12.4, 125, math.nan)] == [
        "26 µs",
        "12 ms",
        "1.2 s",
        "12 s",
        "2 min 5 s",
        "n/a",
    ]
    assert [plural(1, "row"), plural(2, "row"), plural(1000, "turn")] == [
        "1 row",
        "2 rows",
        "1,000 turns",
    ]


# -- prompts -------------------------------------------------------------------------------


def test_a_dataframe_goes_into_a_prompt_as_a_markdown_table_without_tabulate(ip, write_settings):
    write_settings(mock_settings())
    ip.user_ns["df"] = pd.DataFrame({"city": ["Oslo", "Rome"], "temp": [3.5, 18.0]})
    ran = run(ip, "%%llm --dry-run\nSummarize: {df}")
    shown = ran.outputs[0].data["text/plain"]
    assert "| city | temp |" in shown.replace("|  |", "|") or "|  | city | temp |" in shown
    assert "| 0 | Oslo | 3.5 |" in shown and "| 1 | Rome | 18.0 |" in shown
    big = pd.DataFrame({"n": range(500)})
    ip.user_ns["big"] = big
    shown = run(ip, "%%llm --dry-run\nLook: {big}").outputs[0].data["text/plain"]
    assert "| 499 | 499 |" in shown and "| 250 | 250 |" not in shown  # head + tail only
    assert "(500 rows × 1 columns)" in shown


@pytest.mark.skipif(importlib.util.find_spec("tabulate") is not None, reason="tabulate installed")
def test_to_markdown_without_tabulate_says_what_to_write_instead(ip, write_settings):
    write_settings(mock_settings())
    ip.user_ns["df"] = pd.DataFrame({"a": [1]})
    ran = run(ip, "%%llm --dry-run\nSummarize {df.head().to_markdown()}")
    assert ran.result.error_in_exec is not None
    assert "tabulate" in ran.stderr and "{df.head()}" in ran.stderr


def test_in_n_is_the_cell_as_the_user_wrote_it(ip, write_settings):
    write_settings(mock_settings())
    first = run(ip, "%%llm --dry-run -t 0.1\nWhat is SSE?", store_history=True)
    n = first.result.execution_count
    ran = run(ip, f"%%llm --dry-run\nRepeat: {{In[{n}]}}", store_history=True)
    shown = ran.outputs[0].data["text/plain"]
    assert "Repeat: %%llm --dry-run -t 0.1\nWhat is SSE?" in shown
    assert "run_cell_magic" not in shown


# -- the picker stays true ---------------------------------------------------------------


def _two(write_settings: Write, **demo: Any) -> None:
    write_settings(
        {
            "llm": {
                "active_provider": "demo",
                "providers": {
                    "demo": {"type": "mock", "model": "mock-1", **demo},
                    "demo_fast": {"type": "mock", "model": "mock-2"},
                },
            }
        }
    )


def test_the_picker_follows_llm_use_set_session_provider_and_another_picker(ip, write_settings):
    _two(write_settings)
    picker = ProviderPicker()
    assert picker.profile.value == "demo"
    run(ip, "%llm use demo_fast")
    assert picker.profile.value == "demo_fast" and picker.value.profile == "demo_fast"
    assert "demo_fast" in picker.status.value
    config.set_session_provider("demo", "mock-2")
    assert (picker.profile.value, picker.model.value) == ("demo", "mock-2")
    other = ProviderPicker()
    other.profile.value = "demo_fast"
    assert picker.profile.value == "demo_fast" and picker.model.value == "mock-2"
    # what the picker says is what the next cell uses
    footer = run(ip, "%llm hello").outputs[-1].data["text/plain"]
    assert footer.startswith("demo_fast · mock-2")
    run(ip, "%llm use --clear")
    assert picker.profile.value == "demo"
    picker.close()
    other.close()


def test_unset_temperature_and_max_tokens_say_profile_default(write_settings):
    _two(write_settings)
    picker = ProviderPicker()
    assert "profile default" in picker.temperature_note.value
    assert "profile default" in picker.max_tokens_note.value
    assert picker.temperature.readout is False  # no "1.00" that nobody set
    picker.temperature.value = 0.4
    assert picker.temperature_note.value == "" and picker.temperature.readout is True
    picker.close()
    _two(write_settings, temperature=0.3, max_tokens=77)
    picker = ProviderPicker()
    assert picker.temperature.value == 0.3 and picker.temperature_note.value == ""
    assert picker.max_tokens.value == 77 and picker.max_tokens_note.value == ""
    picker.close()


# -- plots -----------------------------------------------------------------------------------


def _tracker_at(*seconds: float) -> UsageTracker:
    t = UsageTracker()
    base = pd.Timestamp("2026-03-01 12:00:00", tz="UTC").timestamp()
    for s in seconds:
        t.record(100, 20, model="m", provider="p", cost_usd=0.002, time=base + s)
    return t


def _tick_labels(ax: Any) -> list[str]:
    ax.figure.canvas.draw()
    return [t.get_text() for t in ax.get_xticklabels() if t.get_text()]


def test_one_call_is_plotted_inside_an_axis_of_minutes_not_years() -> None:
    import matplotlib.dates as mdates

    ax = plot_costs(_tracker_at(0).to_dataframe(), "model", pyplot=False)
    low, high = ax.get_xlim()
    point = mdates.date2num(pd.Timestamp("2026-03-01 12:00:00"))
    assert low < point < high and (high - low) < 1 / 24  # under an hour, point inside
    assert point - low > (high - low) * 0.2 and high - point > (high - low) * 0.2
    labels = _tick_labels(ax)
    assert labels and all(re.fullmatch(r"\d\d:\d\d:\d\d", label) for label in labels)
    assert "2026-03-01" in ax.get_xlabel()


def test_calls_seconds_apart_read_as_clock_times_with_no_offset() -> None:
    ax = plot_costs(_tracker_at(0, 3, 7).to_dataframe(), "model", pyplot=False)
    labels = _tick_labels(ax)
    assert labels and all(re.fullmatch(r"\d\d:\d\d:\d\d", label) for label in labels)
    assert ax.xaxis.get_offset_text().get_text() == ""


def test_calls_days_apart_read_as_dates() -> None:
    ax = plot_costs(_tracker_at(0, 86400 * 10).to_dataframe(), "model", pyplot=False)
    labels = _tick_labels(ax)
    assert labels and all(re.fullmatch(r"\d{4}-\d\d-\d\d", label) for label in labels)


# -- tables ---------------------------------------------------------------------------------


def _seeded() -> UsageTracker:
    t = UsageTracker()
    t.record(1200, 300, model="gpt", provider="openai", cost_usd=0.00286, latency_s=0.5)
    t.record(10, 5, model="mystery", provider="custom", latency_s=0.000026)
    return t


def test_dashboard_tables_are_styled_right_aligned_with_units_and_na() -> None:
    d = UsageDashboard(_seeded(), scheduler=lambda _d, _f: None)
    table = d.table.value
    assert "text-align: right" in table and "cost (USD)" in table and "median latency" in table
    assert ">$0.0029</td>" in table and ">n/a</td>" in table and "NaN" not in table
    assert ">26 µs</td>" in table and ">1,200</td>" in table
    assert "$0.00286" not in table and "$0.0000261" not in table
    recent = d.recent.value
    assert "cost (USD)" in recent and ">n/a</td>" in recent and "text-align: right" in recent
    d.close()


def test_llm_usage_by_model_shows_formatted_numbers_and_keeps_the_data(ip, write_settings):
    write_settings(mock_settings(priced=PRICED))
    run(ip, "%llm hi")
    run(ip, "%llm -p demo hi")
    summary = run(ip, "%llm usage --by model").result.result
    assert isinstance(summary, pd.DataFrame)
    assert math.isnan(summary.loc["mock-1", "cost_usd"])  # the data stays a number
    assert summary.loc["p-1", "cost_usd"] > 0
    text, html = repr(summary), summary._repr_html_()
    assert "NaN" not in text and "n/a" in text and "cost (USD)" in text
    assert "NaN" not in html and ">n/a</td>" in html and "text-align: right" in html
    assert not re.search(r"\d\.\d{7,}", text + html)  # no raw floats


def test_compare_table_does_not_wrap_model_names(ip, write_settings):
    write_settings(mock_settings(fast={"type": "mock", "model": "mock-2"}))
    ran = run(ip, "%%llm --compare demo,fast\nWho are you?")
    html = ran.outputs[0].data["text/html"]
    assert "white-space:nowrap'>mock-1</td>" in html and "white-space:nowrap'>mock-2</td>" in html


# -- messages ---------------------------------------------------------------------------------


def test_a_tiny_budget_error_shows_the_real_amounts(ip, write_settings):
    write_settings(mock_settings(priced=PRICED))
    run(ip, "%llm budget 0.00001")
    ran = run(ip, "%%llm\n" + "word " * 200)
    assert "BudgetExceededError" in ran.text
    assert "$0.0000 " not in ran.text and "budget of $0.000010" in ran.text
    run(ip, "%llm budget off")


def test_a_chat_of_one_turn_says_one_turn(ip, write_settings):
    write_settings(mock_settings())
    footer = run(ip, "%%llm --chat\nhi").outputs[-1].data["text/plain"]
    assert "1 turn" in footer and "1 turns" not in footer
    footer = run(ip, "%%llm --chat\nagain").outputs[-1].data["text/plain"]
    assert "2 turns" in footer


def test_llm_list_names_a_nearby_settings_file_relatively(
    ip, write_settings, monkeypatch, tmp_path
):
    write_settings(mock_settings())
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    monkeypatch.chdir(notebooks)
    out = run(ip, "%llm list").stdout
    assert "Settings: ../config/settings.yaml." in out and str(tmp_path) not in out


def test_llmnb_demo_footer_times_agree_with_its_table(capsys, monkeypatch):
    from llmnb.__main__ import main

    monkeypatch.setenv("LLMNB_USAGE_STORE", "memory")
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    footers = [line for line in out.splitlines() if line.startswith("  [")]
    table = out[out.index("Usage (one row per attempt)") :]
    assert len(footers) == 2
    for footer in footers:
        # the attempt's time, as the table shows it (the call's own wall time may differ)
        shown = re.findall(r"(\d+ (?:µs|ms)|\d+\.\d s)(?: attempt \(as in the table\))?\]", footer)
        assert shown and f"  {shown[-1]}  " in table


# -- free-form parameters per cell ----------------------------------------------------------


def _server_settings(srv: Any) -> dict[str, Any]:
    profile = {"type": "openai_compatible", "model": "fake-model", "base_url": srv.base_url}
    return {"llm": {"active_provider": "fake", "providers": {"fake": profile}}}


def test_params_json_and_repeated_p_reach_the_wire(ip, write_settings):
    from llmnb.testing import FakeLLMServer

    with FakeLLMServer(default_response="ok") as srv:
        write_settings(_server_settings(srv))
        ran = run(ip, """%%llm --params '{"top_p": 0.9, "seed": 7}' -P seed=8 -P stop=END\nhi""")
        body = srv.last_request.json
        assert ran.data("text/markdown") == ["ok"]
        assert body["top_p"] == 0.9 and body["seed"] == 8  # -P comes after --params
        assert body["stop"] == "END"  # not JSON: the text itself
        one = run(ip, '%llm -P user="ada" -P n=1 hello')
        assert one.result.error_in_exec is None
        body = srv.last_request.json
        assert (
            body["user"] == "ada" and body["n"] == 1 and body["messages"][-1]["content"] == "hello"
        )


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("--params '{top_p: 0.9}'", "--params: not valid JSON"),
        ("--params '[1, 2]'", "--params: give a JSON object"),
        ("-P top_p", "-P 'top_p': write -P KEY=VALUE"),
        ("-P '=3'", "write -P KEY=VALUE"),
    ],
)
def test_bad_params_are_one_red_line_naming_the_option(ip, write_settings, line, needle):
    write_settings(mock_settings())
    ran = run(ip, f"%%llm {line}\nhi")
    assert ran.result.error_in_exec is not None
    lines = ran.error_lines
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("UsageError")
