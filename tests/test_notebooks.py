"""The example notebooks' shape: saved outputs, narrative, few exemptions, a narrow sanitizer.

nbval (``pytest --nbval notebooks/``) checks that the notebooks still produce their saved
outputs; these tests check what nbval cannot: that the outputs *are* saved, from one
top-to-bottom run without errors, that every cell nbval skips says why, that the
sanitize file only normalises what appears in the outputs, and that the main-job command
(``notebooks/run_quickstart.py``) runs the quickstart headless.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXPECTED = [
    "01_quickstart.ipynb",
    "02_providers_and_picker.ipynb",
    "03_usage_dashboard.ipynb",
    "04_structured_and_batch.ipynb",
    "05_resilience.ipynb",
    "06_record_and_replay.ipynb",
    "07_ask_about_your_plot.ipynb",
]


def _load(name: str) -> dict[str, Any]:
    nb: dict[str, Any] = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    return nb


def _source(cell: dict[str, Any]) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else str(src)


def _code_cells(nb: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _comment_marker(cell: dict[str, Any]) -> bool:
    return any(
        line.strip().lstrip("#").strip().startswith("NBVAL_")
        for line in _source(cell).splitlines()
        if line.strip().startswith("#")
    )


def _tag_marker(cell: dict[str, Any]) -> bool:
    return any(t.startswith("nbval-") for t in cell.get("metadata", {}).get("tags", []))


def test_the_notebooks_are_there_and_listed_in_the_readme() -> None:
    found = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert found == EXPECTED
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    for name in EXPECTED:
        assert f"({name})" in readme, f"notebooks/README.md does not link {name}"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_was_saved_after_one_clean_top_to_bottom_run(name: str) -> None:
    nb = _load(name)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    cells = _code_cells(nb)
    counts = [c["execution_count"] for c in cells]
    # 1, 2, 3, …: run in one fresh kernel, in order, every cell (so nbval compares all)
    assert counts == list(range(1, len(cells) + 1)), counts
    for i, cell in enumerate(cells, 1):
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        assert not errors, f"{name} In[{i}] saved an error: {errors[0].get('evalue')}"
        stderr = [o for o in cell["outputs"] if o.get("name") == "stderr"]
        assert not stderr, f"{name} In[{i}] saved stderr: {''.join(stderr[0]['text'])[:300]}"
    # the notebook shows things: most code cells have an output
    shown = sum(bool(c["outputs"]) for c in cells)
    assert shown >= len(cells) * 0.6, f"{name}: only {shown} of {len(cells)} cells have outputs"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_reads_as_a_narrative(name: str) -> None:
    nb = _load(name)
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown" and _source(first).startswith("# "), (
        f"{name} should open with a title and an introduction"
    )
    assert len(_source(first)) > 300, f"{name}: the introduction is too short"
    run = longest = 0
    for cell in nb["cells"]:
        run = run + 1 if cell["cell_type"] == "code" else 0
        longest = max(longest, run)
    assert longest <= 3, f"{name}: {longest} code cells in a row without a word in between"


@pytest.mark.parametrize("name", EXPECTED)
def test_cells_exempt_from_nbval_are_few_and_say_why(name: str) -> None:
    nb = _load(name)
    exempt = 0
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        if _comment_marker(cell):
            exempt += 1
            lines = [ln.strip() for ln in _source(cell).splitlines()]
            at = next(k for k, ln in enumerate(lines) if "NBVAL_" in ln)
            reason = " ".join(
                ln.lstrip("# ") for ln in lines[at + 1 : at + 4] if ln.startswith("#")
            )
            assert len(reason) > 30, f"{name} cell {i}: say why nbval skips it, in a comment"
        elif _tag_marker(cell):
            exempt += 1
            before = _source(nb["cells"][i - 1]) if i else ""
            assert re.search(r"<!--\s*nbval:.{30,}-->", before, re.S), (
                f"{name} cell {i} is tagged for nbval: the markdown cell before it must say "
                "why, in an <!-- nbval: ... --> comment"
            )
    assert exempt <= 1, f"{name}: {exempt} cells skip nbval's comparison (at most 1)"


def _sanitize_patterns() -> list[tuple[str, str]]:
    text = (NOTEBOOKS / "sanitize.cfg").read_text(encoding="utf-8")
    # nbval's own parser: a `regex:` line directly followed by a `replace:` line
    pairs: list[tuple[str, str]] = re.findall(
        r"^regex: (.*)$\n^replace: (.*)$", text, flags=re.MULTILINE
    )
    return pairs


def _all_output_text() -> str:
    parts: list[str] = []
    for name in EXPECTED:
        for cell in _code_cells(_load(name)):
            for o in cell["outputs"]:
                if "text" in o:
                    parts.append("".join(o["text"]))
                for mime, value in o.get("data", {}).items():
                    if isinstance(value, (str, list)) and not mime.startswith("image/"):
                        parts.append("".join(value))
    return "\n".join(parts)


def test_sanitize_file_is_well_formed_and_every_pattern_is_needed() -> None:
    pairs = _sanitize_patterns()
    sections = re.findall(r"^\[(\w+)\]$", (NOTEBOOKS / "sanitize.cfg").read_text(), re.M)
    assert pairs and len(pairs) == len(sections), "each [section] needs regex: and replace:"
    outputs = _all_output_text()
    for regex, _replace in pairs:
        pattern = re.compile(regex)
        assert not pattern.match(""), f"{regex!r} matches the empty string"
        # a pattern that matches no saved output normalises nothing: remove it
        assert pattern.search(outputs), f"{regex!r} matches no saved output"


def test_sanitize_patterns_do_not_hide_answers_or_costs() -> None:
    pairs = _sanitize_patterns()

    def sanitize(s: str) -> str:
        for regex, replace in pairs:
            s = re.sub(regex, replace, s)
        return s

    footer = "demo · mock-1 · ~5→21 tokens · ~$0.000013 · 0.23 s"
    assert sanitize(footer) == "demo · mock-1 · ~5→21 tokens · ~$0.000013 · #.## s"
    for shown in ("26 µs", "12 ms", "1.2 s", "12 s", "2 min 5 s"):  # llmnb's time format
        assert sanitize(f"mock-1 · {shown} · chat") == "mock-1 · #.## s · chat"
    answer = "Hello! I'm the offline demo model: no key, no network, same API as the real ones."
    assert sanitize(answer) == answer
    row = "4         gpt-4o-mini        2               ok   0.000014  price_table"
    assert sanitize(row) == row


@pytest.mark.slow
def test_main_job_runs_the_quickstart_headless(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(NOTEBOOKS / "run_quickstart.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    executed = tmp_path / "01_quickstart.ipynb"
    assert f"Executed notebook: {executed}" in proc.stdout
    assert "Hello! I'm the offline demo model" in proc.stdout
    footer = r"demo · mock-1 · ~\d+→\d+ tokens · ~\$0\.0000\d+ · \d+(\.\d)? (µs|ms|s)\b"
    assert re.search(footer, proc.stdout)
    nb = json.loads(executed.read_text())
    assert all(c["execution_count"] for c in _code_cells(nb))
    # the repository's copy is not the one that was written
    assert executed.resolve() != (NOTEBOOKS / "01_quickstart.ipynb").resolve()
