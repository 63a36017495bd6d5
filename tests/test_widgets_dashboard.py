"""UsageDashboard, driven headless: totals, tables and plots follow the calls being made."""

from __future__ import annotations

import csv
import datetime as dt
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _magics_shell import ip_fixture, run

import llmnb
from llmnb.testing import FakeLLMServer
from llmnb.usage import UsageRecord, UsageTracker, reset_default_tracker
from llmnb.widgets import UsageDashboard

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CANARY = "sk-canary-dashboard-0123456789abcdef"
ip = ip_fixture


class Scheduler:
    """Collects what the dashboard wants run later; the test decides when it runs."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []

    def __call__(self, delay: float, fn: Callable[[], None]) -> None:
        self.pending.append(fn)

    def run_all(self) -> None:
        pending, self.pending = self.pending, []
        for fn in pending:
            fn()


@pytest.fixture
def scheduler() -> Scheduler:
    return Scheduler()


@pytest.fixture
def server_profile(
    write_settings: Callable[[dict[str, Any]], Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeLLMServer]:
    monkeypatch.setenv("SRV_API_KEY", CANARY)
    with FakeLLMServer(default_response="fine") as srv:
        write_settings(
            {
                "llm": {
                    "active_provider": "srv",
                    "providers": {
                        "srv": {
                            "type": "openai_compatible",
                            "model": "house-model",
                            "base_url": srv.base_url,
                            "api_key_env": "SRV_API_KEY",
                            "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
                        },
                        "demo": {"type": "mock", "model": "mock-1"},
                    },
                }
            }
        )
        yield srv


def seeded() -> UsageTracker:
    t = UsageTracker()
    old = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc)
    t.record(1000, 100, model="gpt-4o", provider="openai", cost_usd=0.25, time=old, cell=1)
    t.record(2000, 300, model="claude", provider="anthropic", cost_usd=0.75, latency_s=2.0)
    t.record(10, 10, model="mystery", provider="mock", latency_s=1.0)
    t.record_unknown(model="claude", provider="anthropic", status="RateLimitError")
    return t


def test_it_shows_totals_a_table_recent_calls_and_a_plot(scheduler: Scheduler) -> None:
    d = UsageDashboard(seeded(), scheduler=scheduler)
    totals = d.totals.value
    for label, value in [("requests", "4"), ("tokens in", "3,010"), ("tokens out", "410")]:
        assert f">{label}</div><div style='font-size:1.3em'>{value}<" in totals
    assert "$1.00 <small>+ 2 n/a</small>" in totals  # known sum, unknowns counted apart
    assert ">errors</div><div style='font-size:1.3em'>1<" in totals
    assert ">median latency</div><div style='font-size:1.3em'>1.5 s<" in totals
    assert ">model</th>" in d.table.value and "mystery" in d.table.value
    mystery = d.table.value[d.table.value.index("mystery") :]
    assert ">n/a</td>" in mystery[: mystery.index("</tr>")]  # never $0 or blank
    assert ">$0.75</td>" in d.table.value
    assert d.recent.value.split("<tbody>")[1].count("<tr>") == 4  # one row per call
    png = bytes(d.plot.value)
    assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    assert "in memory only" in d.store.value


def test_new_calls_refresh_it_once_per_burst_in_place(
    server_profile: FakeLLMServer, tracker: UsageTracker, scheduler: Scheduler
) -> None:
    d = UsageDashboard(tracker, scheduler=scheduler)
    children, totals_widget, table_widget = d.children, d.totals, d.table
    assert ">requests</div><div style='font-size:1.3em'>0<" in d.totals.value
    client = llmnb.create_llm_client_from_profile()
    for _ in range(5):
        client.complete("hi")
    assert len(scheduler.pending) == 1  # five rows, one refresh scheduled
    assert ">requests</div><div style='font-size:1.3em'>0<" in d.totals.value  # not yet
    scheduler.run_all()
    assert ">requests</div><div style='font-size:1.3em'>5<" in d.totals.value
    assert "house-model" in d.table.value
    assert d.children == children and d.totals is totals_widget and d.table is table_widget
    client.complete("hi")
    assert len(scheduler.pending) == 1  # the next burst schedules again
    scheduler.run_all()
    assert ">requests</div><div style='font-size:1.3em'>6<" in d.totals.value


def test_group_by_and_window_update_the_table(scheduler: Scheduler) -> None:
    d = UsageDashboard(seeded(), scheduler=scheduler)
    d.by.value = "provider"
    assert ">provider</th>" in d.table.value and "anthropic" in d.table.value
    d.window.value = "24h"  # the 2024 row drops out
    assert "openai" not in d.table.value
    assert ">requests</div><div style='font-size:1.3em'>3<" in d.totals.value
    d.by.value = "cell"
    assert ">cell</th>" in d.table.value
    d.by.value = "day"
    assert ">day</th>" in d.table.value


def test_the_plot_is_redrawn_only_when_the_data_or_the_choice_changes(
    scheduler: Scheduler,
) -> None:
    t = seeded()
    d = UsageDashboard(t, scheduler=scheduler)
    redraws: list[bytes] = []
    d.plot.observe(lambda change: redraws.append(change["new"]), names="value")
    d.refresh()
    d.refresh_button.click()
    assert redraws == []
    t.record(5, 5, model="gpt-4o", cost_usd=0.01)
    scheduler.run_all()
    assert len(redraws) == 1
    d.plot_kind.value = "tokens"
    assert len(redraws) == 2 and bytes(redraws[-1]).startswith(PNG_MAGIC)


def test_csv_export_writes_the_windows_rows_without_secrets(
    server_profile: FakeLLMServer, tracker: UsageTracker, scheduler: Scheduler, tmp_path: Path
) -> None:
    client = llmnb.create_llm_client_from_profile()
    client.complete("hi", tags={"run": "a"})
    client.complete("hello")
    d = UsageDashboard(tracker, scheduler=scheduler)
    d.csv_path.value = "out/usage"
    d.export.click()
    path = tmp_path / "out" / "usage.csv"
    assert "wrote 2 rows" in d.status.value
    text = path.read_text()
    assert CANARY not in text and CANARY[-8:] not in text
    rows = list(csv.DictReader(text.splitlines()))
    assert [r["profile"] for r in rows] == ["srv", "srv"]
    assert rows[0]["tags"] == '{"run": "a"}' and rows[0]["key_id"].startswith("k-")
    assert rows[0]["time"].endswith("Z")
    assert CANARY not in str(d.get_state()) and CANARY not in d.recent.value


def test_an_export_that_cannot_be_written_is_reported_in_the_panel(
    scheduler: Scheduler, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("not a folder")
    d = UsageDashboard(seeded(), scheduler=scheduler)
    d.csv_path.value = "afile/usage.csv"
    d.export.click()
    assert "✗ export" in d.status.value and d.errors.outputs


class BrokenStore:
    """A custom store whose reads fail (a user's store may)."""

    def __init__(self) -> None:
        self.rows: list[UsageRecord] = []

    def append(self, records: list[UsageRecord]) -> None:
        self.rows.extend(records)

    def load(self) -> list[UsageRecord]:
        raise RuntimeError("store offline")


def test_a_failing_refresh_is_reported_not_raised(scheduler: Scheduler) -> None:
    t = UsageTracker(store=BrokenStore())
    d = UsageDashboard(t, scheduler=scheduler)
    assert "✗ refresh: RuntimeError: store offline" in d.status.value
    t.record(1, 1)  # recording is unaffected
    scheduler.run_all()
    assert "store offline" in d.errors.outputs[-1]["text"]


def test_close_stops_the_live_updates(scheduler: Scheduler) -> None:
    t = seeded()
    d = UsageDashboard(t, scheduler=scheduler)
    d.close()
    t.record(1, 1)
    assert scheduler.pending == []


def test_a_dashboard_no_longer_on_screen_stops_redrawing(scheduler: Scheduler) -> None:
    t = seeded()
    d = UsageDashboard(t, scheduler=scheduler)
    d._view_count = 1  # what the front end reports when it shows the dashboard …
    d._view_count = 0  # … and when that output is cleared or the cell re-run
    before = d.totals.value
    t.record(1, 1, cost_usd=5.0)
    scheduler.run_all()
    assert d.totals.value == before
    d._view_count = 1  # shown again: live again
    t.record(1, 1)
    scheduler.run_all()
    assert ">requests</div><div style='font-size:1.3em'>6<" in d.totals.value


def test_the_default_dashboard_shows_calls_from_before_a_restart(tmp_path: Path) -> None:
    reset_default_tracker()
    script = tmp_path / "earlier_kernel.py"
    script.write_text(
        textwrap.dedent(
            """
            import llmnb
            client = llmnb.create_llm_client_from_profile()
            client.complete("hello"); client.complete("count to three")
            """
        )
    )
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, check=True, timeout=120)
    try:
        d = UsageDashboard(scheduler=Scheduler())
        assert ">requests</div><div style='font-size:1.3em'>2<" in d.totals.value
        assert "SQLite .llmnb/usage.db, 2 rows from earlier sessions" in d.store.value
    finally:
        reset_default_tracker()


def test_importing_the_widgets_loads_neither_pandas_nor_matplotlib(tmp_path: Path) -> None:
    code = (
        "import sys, llmnb.widgets\n"
        "print([m for m in ('pandas', 'matplotlib') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]", out.stderr


def test_llm_dashboard_magic_displays_the_dashboard_of_the_current_tracker(
    ip: Any, tracker: UsageTracker
) -> None:
    from ipywidgets.widgets.widget import _instances

    run(ip, "%%llm\nhello")
    ran = run(ip, "%llm dashboard")
    (view,) = ran.data("application/vnd.jupyter.widget-view+json")
    d = _instances[view["model_id"]]
    assert isinstance(d, UsageDashboard) and d.tracker is tracker
    assert ">requests</div><div style='font-size:1.3em'>1<" in d.totals.value
    d.close()
