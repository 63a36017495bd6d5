"""§5 Limiter accuracy: runs ``bench/bench_limiter.py``'s ``run(size)`` if it is there.

That module belongs to the rate-limit middleware's author; this one only calls it in a
child process (bounded by a timeout) and renders the dict it returns: scalar entries as
one table, a list of dicts (or a dict of dicts) as a table each. Entries whose name
contains ``over`` (over-limit windows) must all be 0; that is the section's target.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench._context import Context
from bench._report import Section, Table, Target

__all__ = ["run"]

MODULE = Path(__file__).with_name("bench_limiter.py")
TIMEOUT_S = 240

_CHILD = (
    "import json, sys; from bench.bench_limiter import run; "
    "print(json.dumps(run(sys.argv[1]), default=str))"
)


def run(ctx: Context) -> Section:
    section = Section(
        "5. Limiter accuracy",
        "Configured requests/tokens per minute against what the rate-limit middleware let "
        "through, with compressed time (`bench/bench_limiter.py`).",
    )
    target = Target("over-limit windows", math.nan, 0, "", "<=")
    section.targets.append(target)
    if not MODULE.exists():
        target.note = "not available: bench/bench_limiter.py is not in this checkout"
        section.notes.append("not available: `bench/bench_limiter.py` does not exist yet.")
        return section
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, ctx.size.name],
            capture_output=True,
            text=True,
            env=ctx.workspace.env(),
            cwd=ctx.workspace.path,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        target.note = f"did not finish within {TIMEOUT_S} s"
        section.notes.append(f"`bench_limiter.run()` did not finish within {TIMEOUT_S} s.")
        return section
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        target.note = "failed"
        section.notes.append(f"`bench_limiter.run()` failed: {tail[:300]}")
        return section
    try:
        result = json.loads(lines[-1])
    except ValueError:
        target.note = "failed"
        section.notes.append(f"`bench_limiter.run()` printed no JSON: {lines[-1][:200]!r}")
        return section
    if not isinstance(result, dict):
        target.note = "failed"
        section.notes.append(f"`bench_limiter.run()` returned {type(result).__name__}, not a dict")
        return section
    section.data["result"] = result
    _render(section, result)
    overs = list(_over_counts(result))
    if overs:
        target.measured = float(max(overs))
        target.note = f"largest of {len(overs)} over-limit counts reported"
    else:
        target.note = "bench_limiter.run() reported no over-limit count"
    return section


def _render(section: Section, result: dict[str, Any]) -> None:
    scalars = Table(["measure", "value"])
    for key, value in result.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            section.tables.append((str(key), _dict_rows(value)))
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            rows = [{"name": k, **v} for k, v in value.items()]
            section.tables.append((str(key), _dict_rows(rows)))
        elif isinstance(value, dict):
            for k, v in value.items():
                scalars.add(f"{key}.{k}", v if not isinstance(v, (list, dict)) else json.dumps(v))
        else:
            scalars.add(str(key), value if not isinstance(value, list) else json.dumps(value))
    if scalars.rows:
        section.tables.insert(0, ("", scalars))


def _dict_rows(rows: list[dict[str, Any]]) -> Table:
    headers: list[str] = []
    for row in rows:
        headers += [str(k) for k in row if str(k) not in headers]
    t = Table(headers)
    for row in rows:
        t.add(*(row.get(h) for h in headers))
    return t


def _over_counts(value: Any, name: str = "") -> Any:
    """Every number stored under a key containing ``over`` (over-limit windows)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _over_counts(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _over_counts(v, name)
    elif "over" in name.lower() and isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value
