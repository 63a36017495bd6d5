"""The benchmark command runs end to end and writes a well-formed results file.

Speed is never asserted here — it is what ``bench/RESULTS.md`` reports. These tests run
``python -m bench --size tiny --here`` (this interpreter, where the peers are usually
not installed) and check the shape of what it wrote, plus the helpers the numbers and
✓/✗ marks depend on.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")
SECTIONS = (
    "## Machine and versions",
    "## Loopback server",
    "## Targets at a glance",
    "## 1. Import / load",
    "## 2. Per-call overhead",
    "## 3. Concurrency",
    "## 4. Streaming",
    "## 5. Limiter accuracy",
    "## 6. Tracker",
    "## 7. DataFrame batch",
)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--size", "tiny", "--here", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out.read_text()


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The ``bench`` package (it lives at the repository root, not in ``llmnb``)."""
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("bench")


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    nxt = text.find("\n## ", start + len(heading))
    return text[start : nxt if nxt != -1 else len(text)]


def _table(text: str, caption: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table after ``caption``, header excluded."""
    after = text[text.index(caption) :]
    lines = [ln for ln in after.splitlines() if ln.startswith("|")]
    rows: list[list[str]] = []
    for line in lines[2:]:
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        if after.split(line, 1)[1].startswith("\n\n"):
            break  # the table ended
    return rows


def _row(rows: list[list[str]], first: str) -> list[str]:
    return next(r for r in rows if r[0] == first)


# -- the command --------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_run_writes_every_section_in_order(results: str) -> None:
    positions = [results.index(h) for h in SECTIONS]
    assert positions == sorted(positions)
    assert results.startswith("# llmnb benchmarks")
    assert "do not edit by hand" in results


@pytest.mark.slow
def test_machine_table_names_cpu_cores_ram_os_python_and_versions(results: str) -> None:
    rows = _table(_section(results, "## Machine and versions"), "| what |")
    names = {r[0] for r in rows}
    assert {"CPU", "cores", "RAM", "OS", "Python", "date (UTC)"} <= names
    assert NUMBER.match(_row(rows, "cores")[1])
    versions = _table(results, "**Versions**")
    assert _row(versions, "llmnb")[2] not in ("", "not installed")


@pytest.mark.slow
def test_server_ceiling_is_measured(results: str) -> None:
    rows = _table(_section(results, "## Loopback server"), "**Server ceiling")
    assert len(rows) == 3
    assert all(NUMBER.match(r[1]) for r in rows)


@pytest.mark.slow
def test_llmnb_and_raw_httpx_rows_have_numbers_in_every_timed_table(results: str) -> None:
    tables = [
        ("## 2. Per-call overhead", "**Per call", 2),
        ("## 3. Concurrency", "**Throughput", 1),
        ("## 4. Streaming", "**Streaming", 1),
    ]
    for heading, caption, column in tables:
        rows = _table(_section(results, heading), caption)
        for label in ("llmnb", "raw httpx"):
            cell = _row(rows, label)[column]
            assert NUMBER.match(cell), (heading, label, cell)
    imports = _table(_section(results, "## 1. Import / load"), "**Fresh process")
    for label in ("`import llmnb`", "bare IPython start", "IPython + `%load_ext llmnb`"):
        assert NUMBER.match(_row(imports, label)[1]), label


@pytest.mark.slow
def test_tracker_section_reports_record_cost_and_sqlite_rate(results: str) -> None:
    section = _section(results, "## 6. Tracker")
    memory = _table(section, "**In memory")
    assert NUMBER.match(memory[0][1])
    sqlite = _table(section, "**SQLite store")
    assert NUMBER.match(sqlite[0][1])
    assert NUMBER.match(sqlite[0][2])
    assert sqlite[0][4] == "yes"  # every row reached the file


@pytest.mark.slow
def test_every_target_is_marked_met_missed_or_not_available(results: str) -> None:
    rows = _table(results, "## Targets at a glance")
    assert len(rows) >= 8
    assert all(r[4] in ("✓", "✗", "n/a") for r in rows)
    for r in rows:
        if r[4] != "n/a":
            assert NUMBER.match(r[2].split()[0]), r


@pytest.mark.slow
def test_a_missing_peer_is_reported_not_installed(results: str) -> None:
    rows = _table(_section(results, "## 2. Per-call overhead"), "**Per call")
    cell = _row(rows, "OpenAI SDK")[2]
    if importlib.util.find_spec("openai") is None:
        assert cell == "not installed"
    else:
        assert NUMBER.match(cell)


# -- the helpers behind the numbers ---------------------------------------------------------


def test_interleaving_rotates_the_order_every_round(bench: ModuleType) -> None:
    stats = importlib.import_module("bench._stats")
    order = stats.interleaved(["a", "b", "c"], 3)
    rounds = [[k for r, k in order if r == i] for i in range(3)]
    assert rounds == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert stats.split(10, 3) == [4, 3, 3]


def test_a_target_without_a_number_is_neither_met_nor_missed(bench: ModuleType) -> None:
    report = importlib.import_module("bench._report")
    assert report.Target("t", math.nan, 1.0, "s").mark == "n/a"
    assert report.Target("t", 0.5, 1.0, "s", "<=").mark == "✓"
    assert report.Target("t", 1.0, 1.0, "×", "<").mark == "✗"
    assert report.Target("t", 0.95, 0.9, "×", ">=").mark == "✓"


def test_cells_are_formatted_to_three_significant_figures(bench: ModuleType) -> None:
    fmt = importlib.import_module("bench._report").fmt
    assert fmt(1234.5678) == "1,235"
    assert fmt(0.012345) == "0.0123"
    assert fmt(math.nan) == "n/a"
    assert fmt("a|b") == "a\\|b"


def test_limiter_results_are_rendered_and_over_limit_counts_found(bench: ModuleType) -> None:
    limiter = importlib.import_module("bench._limiter_section")
    report = importlib.import_module("bench._report")
    result = {
        "windows": 60,
        "runs": [
            {"configured_rpm": 600, "achieved_rpm": 598.0, "over_limit_windows": 0},
            {"configured_rpm": 60, "achieved_rpm": 60.0, "over_limit_windows": 2},
        ],
    }
    section = report.Section("5")
    limiter._render(section, result)
    assert sorted(limiter._over_counts(result)) == [0, 2]
    captions = [caption for caption, _ in section.tables]
    assert captions == ["", "runs"]
    assert "over_limit_windows" in section.tables[1][1].headers


def test_before_and_after_history_is_seeded_from_the_old_results_then_appended(
    bench: ModuleType, tmp_path: Path
) -> None:
    history = importlib.import_module("bench._history")
    report = importlib.import_module("bench._report")
    old = tmp_path / "RESULTS.md"
    old.write_text(
        "| date (UTC) | 2026-01-01 10:00 |\n\n## Targets at a glance\n\n"
        "| § | target | measured | limit | met | note |\n|---|---|---|---|---|---|\n"
        "| 3 | throughput | 0.825 × | >= 0.900 × | ✗ |  |\n"
        "| 6 | record | 5.85 µs | <= 5 µs | ✗ | CPU |\n\n## 1. Import\n"
    )
    section = report.Section("3. Concurrency")
    section.targets.append(report.Target("throughput", 2.18, 0.9, "×", ">="))
    run = history.run_record("2026-02-02 11:00", "abc1234+", [section])
    runs = history.update(tmp_path / "history.jsonl", old, tmp_path, run)
    assert [r["date"] for r in runs] == ["2026-01-01 10:00", "2026-02-02 11:00"]
    assert runs[0]["targets"] == {"throughput": "0.825 × ✗", "record": "5.85 µs ✗"}
    text = history.history_section(runs, [section]).markdown()
    assert "| throughput | 0.825 × ✗ | 2.18 × ✓ |" in text
    assert "| record | 5.85 µs ✗ | — |" in text
    # The next run appends to the file instead of seeding again.
    again = history.update(tmp_path / "history.jsonl", old, tmp_path, run)
    assert len(again) == 3
