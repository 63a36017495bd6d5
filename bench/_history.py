"""Before and after: each full run's targets, kept next to the results, and shown there.

``bench/history.jsonl`` gets one line per full run written to the default results file:
the date, the llmnb commit (with ``+`` when the working tree had changes), and every
target's measured value. RESULTS.md then shows the runs side by side, so a fix made after
a missed target is recorded as the runs before and after it — by the command, not by hand.

When there is no history yet, the RESULTS.md about to be replaced seeds it: its "Targets
at a glance" table, its date, and the commit that last wrote it (``git log``).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from bench._report import Section, fmt

__all__ = ["commit_label", "history_section", "run_record", "seed_from_results", "update"]

KEEP = 8  # runs shown; the file keeps them all


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=20, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def commit_label(root: Path) -> str:
    """``abc1234`` or ``abc1234+`` (uncommitted changes under llmnb/ or bench/)."""
    head = _git(root, "rev-parse", "--short", "HEAD")
    if not head:
        return "unknown"
    dirty = _git(root, "status", "--porcelain", "--", "llmnb", "bench", "pyproject.toml")
    # The results file itself is rewritten by every run: not a code change.
    changed = [line for line in dirty.splitlines() if not line.endswith(("RESULTS.md", ".jsonl"))]
    return head + ("+" if changed else "")


_ROW = re.compile(r"^\| (\d*) \| (.+?) \| ([^|]+?) \| ([^|]+?) \| ([✓✗]|n/a) \|")


def seed_from_results(path: Path, root: Path) -> dict[str, Any] | None:
    """The run recorded in an existing RESULTS.md, or None if it has no targets table."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    targets: dict[str, str] = {}
    in_table = False
    for line in text.splitlines():
        if line.startswith("## Targets at a glance"):
            in_table = True
            continue
        if in_table and line.startswith("## "):
            break
        m = _ROW.match(line) if in_table else None
        if m:
            targets[m.group(2)] = f"{m.group(3)} {m.group(5)}"
    date = re.search(r"\| date \(UTC\) \| ([^|]+?) \|", text)
    if not targets or date is None:
        return None
    rel = str(path.resolve().relative_to(root)) if path.resolve().is_relative_to(root) else ""
    commit = _git(root, "log", "-1", "--format=%h", "--", rel) if rel else ""
    return {"date": date.group(1), "commit": commit or "unknown", "targets": targets}


def update(history: Path, results: Path, root: Path, run: dict[str, Any]) -> list[dict[str, Any]]:
    """Append ``run`` to the history (seeded from ``results`` first if new); all runs."""
    runs: list[dict[str, Any]] = []
    if history.exists():
        for line in history.read_text(encoding="utf-8").splitlines():
            if line.strip():
                runs.append(json.loads(line))
    else:
        seed = seed_from_results(results, root)
        if seed is not None:
            runs.append(seed)
    runs.append(run)
    history.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in runs), encoding="utf-8"
    )
    return runs


def run_record(date: str, commit: str, sections: list[Section]) -> dict[str, Any]:
    targets: dict[str, str] = {}
    for section in sections:
        for t in section.targets:
            targets[t.name] = f"{fmt(t.measured)} {t.unit}".strip() + f" {t.mark}"
    return {"date": date, "commit": commit, "targets": targets}


def history_section(runs: list[dict[str, Any]], sections: list[Section]) -> Section:
    """A table: one row per target, one column per recorded full run (newest last)."""
    shown = runs[-KEEP:]
    section = Section(
        "Before and after",
        "Every full run of this command appends its targets to `bench/history.jsonl`; "
        f"the last {len(shown)} runs, oldest first (commit `+` = with uncommitted changes). "
        "A fix after a missed target shows as the runs on either side of it.",
    )
    headers = ["target"] + [f"{r['date']} ({r['commit']})" for r in shown]
    table = section.table("", headers)
    names: list[str] = [t.name for s in sections for t in s.targets]
    for r in shown:
        names += [n for n in r["targets"] if n not in names]
    for name in names:
        table.add(name, *[r["targets"].get(name, "—") for r in shown])
    return section
