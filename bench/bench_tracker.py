"""§6 Tracker: what recording usage costs — per call, per million rows, on disk.

Measured in a fresh child process (``python -m bench.bench_tracker SIZE FOLDER``, one
JSON line out) so that its memory numbers are its own:

- ``record()`` per call, in memory, with the fields the client passes after a call
  (a priced model, so the genai-prices lookup runs; and an unpriced one), in wall and
  CPU time;
- ``to_dataframe()`` of all the rows (``size.tracker_rows``; 1,000,000 in ``full``);
- memory held: RSS growth while recording them, after a garbage collection;
- the SQLite store (``llmnb.usage.sqlite_store.SQLiteStore``): rows/s handed over in
  batches until ``flush()`` says they are on disk, and the same through ``record()``.
"""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["measure", "run"]

BATCHES = 10
PER_CALL_ROWS = 200_000
SQLITE_BATCH = 10_000


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Clock:
    """Wall and CPU seconds of a block. CPU time is what the work costs; on a shared
    machine wall time also holds the moments the process waited for a core."""

    def __enter__(self) -> _Clock:
        self.wall = -time.perf_counter()
        self.cpu = -time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter()
        self.cpu += time.process_time()


def _record_loop(tracker: Any, n: int, model: str, provider: str) -> _Clock:
    """``n`` record() calls shaped like the client's after a success."""
    record = tracker.record
    nan = math.nan
    with _Clock() as clock:
        for i in range(n):
            record(
                120,
                30,
                cached_tokens=0,
                reasoning_tokens=0,
                cost_usd=None,
                estimated=False,
                pricing=None,
                base_url="https://api.openai.com/v1",
                latency_s=i * 1e-6,
                ttft_s=nan,
                model=model,
                provider=provider,
                profile="bench",
                agent=None,
                step=None,
                call_id=None,
                attempt=1,
                key_id="k-1234abcd",
                tags=None,
            )
    return clock


def _nothing(
    prompt_tokens: Any,
    completion_tokens: Any,
    *,
    cached_tokens: Any = 0,
    reasoning_tokens: Any = 0,
    model: Any = None,
    provider: Any = None,
    profile: Any = None,
    agent: Any = None,
    step: Any = None,
    cost_usd: Any = None,
    cost_source: Any = None,
    estimated: Any = False,
    latency_s: Any = math.nan,
    ttft_s: Any = math.nan,
    status: Any = "ok",
    error: Any = None,
    call_id: Any = None,
    attempt: Any = 1,
    cached: Any = False,
    key_id: Any = None,
    cell: Any = None,
    tags: Any = None,
    pricing: Any = None,
    base_url: Any = None,
    time: Any = None,
    **unknown: Any,
) -> None:
    """``record()``'s signature, doing nothing: the reference for this machine's speed."""


class _Reference:
    record = staticmethod(_nothing)


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def _per_call_us(
    tracker: Any, total: int, model: str, provider: str, reference: list[float] | None = None
) -> tuple[float, float]:
    """(wall, CPU) µs per record() call: medians of BATCHES batches. With ``reference``,
    each batch is followed by one of the same loop calling :func:`_nothing`, whose CPU µs
    per call are appended there: the machine's pace at the same moments."""
    batch = max(1, total // BATCHES)
    clocks = []
    for _ in range(BATCHES):
        clocks.append(_record_loop(tracker, batch, model, provider))
        if reference is not None:
            reference.append(_record_loop(_Reference, batch, model, provider).cpu / batch * 1e6)
    return (
        _median([c.wall for c in clocks]) / batch * 1e6,
        _median([c.cpu for c in clocks]) / batch * 1e6,
    )


def measure(rows: int, sqlite_rows: int, folder: Path) -> dict[str, Any]:
    from llmnb.usage import MemoryStore, UsageTracker

    out: dict[str, Any] = {"rows": rows}
    warm = UsageTracker(store=MemoryStore())
    _record_loop(warm, 1000, "gpt-4o", "openai")  # loads the price table
    _record_loop(warm, 1000, "fake-model", "openai_compatible")
    del warm
    # Per-call cost on a tracker of moderate size (a long notebook session)...
    calls = min(rows, PER_CALL_ROWS)
    reference: list[float] = []
    out["record_us"] = _per_call_us(
        UsageTracker(store=MemoryStore()), calls, "gpt-4o", "openai", reference
    )
    out["reference_us"] = _median(reference)
    out["record_us_unpriced"] = _per_call_us(
        UsageTracker(store=MemoryStore()), calls, "fake-model", "openai_compatible"
    )
    out["record_calls"] = calls
    gc.collect()

    # ... then a tracker filled to `rows`: the fill's pace, the memory, the DataFrame.
    tracker = UsageTracker(store=MemoryStore())
    rss0 = _rss_mib()
    out["fill_us"] = _per_call_us(tracker, rows, "gpt-4o", "openai")
    gc.collect()
    out["rss_mib"] = _rss_mib() - rss0
    out["rows_recorded"] = len(tracker)
    frames = []
    for _ in range(3):
        with _Clock() as clock:
            df = tracker.to_dataframe()
        frames.append(clock)
        out["df_rows"] = len(df)
        del df
    out["df_s"] = (_median([c.wall for c in frames]), _median([c.cpu for c in frames]))
    del tracker
    gc.collect()

    try:
        from llmnb.usage.sqlite_store import SQLiteStore
    except ImportError as exc:
        out["sqlite"] = f"not available ({exc})"
        return out
    source = UsageTracker(store=MemoryStore())
    _record_loop(source, sqlite_rows, "gpt-4o", "openai")
    records = source.records
    del source
    n = len(records)
    out["sqlite_rows"] = n

    # CPU here is the whole process (the caller and the writer thread): rows per
    # CPU-second of everything the store does.
    store = SQLiteStore(folder / "batched.db", history=False)
    with _Clock() as clock:
        for i in range(0, n, SQLITE_BATCH):
            store.append(records[i : i + SQLITE_BATCH])
        flushed = store.flush(timeout=300)
    out["sqlite_batched_rps"] = (n / clock.wall, n / clock.cpu)
    out["sqlite_batched_ok"] = flushed and _count(folder / "batched.db") == n
    store.close()

    store = SQLiteStore(folder / "recorded.db", history=False)
    with _Clock() as clock:
        loop = _record_loop(UsageTracker(store=store), n, "gpt-4o", "openai")
        flushed = store.flush(timeout=300)
    out["sqlite_record_rps"] = (n / clock.wall, n / clock.cpu)
    out["sqlite_record_us"] = (loop.wall / n * 1e6, loop.cpu / n * 1e6)
    out["sqlite_record_ok"] = flushed and _count(folder / "recorded.db") == n
    store.close()
    return out


def _count(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0])


# -- the runner's side -------------------------------------------------------------------


def run(ctx: Any) -> Any:
    from bench._report import Section, Target

    size = ctx.size
    section = Section(
        "6. Tracker",
        f"`UsageTracker` alone, in a fresh process. `record()` per call: median of {BATCHES} "
        f"batches over {min(size.tracker_rows, PER_CALL_ROWS):,} calls on a new tracker. Then "
        f"a tracker filled to {size.tracker_rows:,} rows: memory held, `to_dataframe()` "
        f"(median of 3). The SQLite store with {size.sqlite_rows:,} rows.",
    )
    folder = ctx.workspace.path / "tracker"
    folder.mkdir(exist_ok=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench_tracker",
            str(size.tracker_rows),
            str(size.sqlite_rows),
            str(folder),
        ],
        capture_output=True,
        text=True,
        env=ctx.workspace.env(),
        cwd=folder,
        timeout=600,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        section.notes.append(f"the tracker benchmark failed: {tail}")
        section.targets += _targets(Target, {}, size.tracker_rows)
        return section
    m = json.loads(lines[-1])
    section.data.update(m)
    section.notes.append(
        "Each measure has its wall time and its CPU time. On a quiet machine they agree; "
        "on a shared one wall time also counts the moments the process waited for a core "
        "(see the load average above), so the targets are judged on CPU time, with the wall "
        "time beside it."
    )
    if "reference_us" in m:
        section.notes.append(
            "The reference row is the price of the call itself — the loop, 19 keyword "
            "arguments bound to `record()`'s 24 parameters — before `record()` does "
            f"anything: {m['reference_us']:.2f} µs of the {m['record_us'][1]:.2f} µs here. "
            "It also shows the machine's pace during the measure: this project's VM runs "
            "the same loop up to 1.7× slower in some periods than in others."
        )
    scale = 1_000_000 / max(1, m["rows"])
    t = section.table("In memory", ["measure", "wall", "CPU", "unit"])
    t.add("`record()` per call, priced model (gpt-4o, genai-prices)", *m["record_us"], "µs")
    t.add("`record()` per call, unpriced model (cost NaN)", *m["record_us_unpriced"], "µs")
    if "reference_us" in m:
        t.add(
            "reference: the same loop calling a function with `record()`'s signature that "
            "does nothing (batches alternating with the first row's)",
            None,
            m["reference_us"],
            "µs",
        )
    t.add(f"`record()` per call while filling to {m['rows']:,} rows", *m["fill_us"], "µs")
    t.add(f"`to_dataframe()` of {m['df_rows']:,} rows", *m["df_s"], "s")
    mem = section.table("Memory", ["measure", "value", "unit"])
    mem.add(f"held by {m['rows_recorded']:,} rows (RSS growth)", m["rss_mib"], "MiB")
    mem.add("per 1,000,000 rows", m["rss_mib"] * scale, "MiB")
    mem.add("per row", m["rss_mib"] * 2**20 / max(1, m["rows_recorded"]), "bytes")
    if isinstance(m.get("sqlite"), str):
        section.notes.append(f"SQLite store: {m['sqlite']}")
    else:
        s = section.table(
            f"SQLite store (`SQLiteStore`, WAL, background writer), {m['sqlite_rows']:,} rows",
            ["measure", "wall", "per CPU-second", "unit", "all rows on disk"],
        )
        s.add(
            f"batched: `append()` of {SQLITE_BATCH:,}-row batches until `flush()`",
            *m["sqlite_batched_rps"],
            "rows/s",
            m["sqlite_batched_ok"],
        )
        s.add(
            "through `record()` until `flush()`",
            *m["sqlite_record_rps"],
            "rows/s",
            m["sqlite_record_ok"],
        )
        s.add("`record()` per call with the SQLite store", *m["sqlite_record_us"], "µs", None)
    if m["rows"] != 1_000_000:
        section.notes.append(
            f"this size records {m['rows']:,} rows; the DataFrame target is for 1,000,000 "
            "(size `full`), so it is not judged here."
        )
    section.targets += _targets(Target, m, size.tracker_rows)
    return section


def _targets(target: Any, m: dict[str, Any], rows: int) -> list[Any]:
    nan = (math.nan, math.nan)
    df = m.get("df_s", nan) if rows == 1_000_000 else nan
    sqlite_ok = m.get("sqlite_batched_ok", False)
    rps = m.get("sqlite_batched_rps", nan) if sqlite_ok else nan
    record = m.get("record_us", nan)

    from bench._report import fmt

    def wall(value: float, unit: str) -> str:
        return f"CPU time; wall {fmt(value)} {unit}" if math.isfinite(value) else ""

    return [
        target("`record()` per call, in memory", record[1], 5, "µs", "<=", wall(record[0], "µs")),
        target("1,000,000 rows → DataFrame", df[1], 1, "s", "<=", wall(df[0], "s")),
        target(
            "SQLite store, batched",
            rps[1],
            100_000,
            "rows/s",
            ">=",
            wall(rps[0], "rows/s")
            if sqlite_ok or not m
            else "rows missing on disk or store unavailable",
        ),
    ]


if __name__ == "__main__":
    result = measure(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
    print(json.dumps(result))
