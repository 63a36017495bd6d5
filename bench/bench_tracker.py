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
BACKLOG_RATE = 100_000.0  # rows/s offered to the SQLite store through record()


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


def measure(rows: int, sqlite_rows: int, folder: Path, backlog_s: float = 0.2) -> dict[str, Any]:
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
    out["summary_s"], out["plot_s"] = _report_times(tracker)
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
    out["backlog"] = _backlog(folder / "backlog.db", BACKLOG_RATE, backlog_s)
    # Last: once IPython is imported, every record() asks for the notebook cell.
    out["kernel_us"] = _in_kernel_us(calls)
    return out


def _report_times(tracker: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    """(wall, CPU) s of ``summary()`` and ``plot_costs()`` on the filled tracker, after a
    warm-up on a small one (pandas' and matplotlib's first-use imports left out)."""
    from llmnb.usage import MemoryStore, UsageTracker

    small = UsageTracker(store=MemoryStore())
    _record_loop(small, 100, "gpt-4o", "openai")
    small.summary()
    small.plot_costs()
    import matplotlib.pyplot as plt

    plt.close("all")
    with _Clock() as summary:
        tracker.summary()
    with _Clock() as plot:
        tracker.plot_costs()
    plt.close("all")
    return (summary.wall, summary.cpu), (plot.wall, plot.cpu)


def _backlog(path: Path, rate: float, seconds: float) -> dict[str, Any]:
    """``record()`` into the SQLite store paced at ``rate`` rows/s for ``seconds``: the
    largest backlog seen (rows queued, not yet committed), then ``flush()``'s time."""
    from llmnb.usage import UsageTracker
    from llmnb.usage.sqlite_store import SQLiteStore

    store = SQLiteStore(path, history=False)
    tracker = UsageTracker(store=store)
    tick = 1000
    ticks = max(1, int(rate * seconds) // tick)
    peak = 0
    t0 = time.perf_counter()
    for i in range(ticks):
        _record_loop(tracker, tick, "gpt-4o", "openai")
        peak = max(peak, store.pending)
        wait = t0 + (i + 1) * tick / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    elapsed = time.perf_counter() - t0
    left = store.pending
    with _Clock() as flush:
        ok = store.flush(timeout=300)
    n = ticks * tick
    result = {
        "rows": n,
        "achieved_rps": n / elapsed,
        "peak": max(peak, left),
        "at_end": left,
        "flush_s": flush.wall,
        "ok": ok and _count(path) == n,
    }
    store.close()
    return result


def _in_kernel_us(total: int) -> tuple[float, float]:
    """(wall, CPU) µs per ``record()`` run inside IPython cells with llmnb loaded, as in
    a notebook: the median of BATCHES cells, each a new execution count."""
    from IPython.core.interactiveshell import InteractiveShell

    from llmnb.usage import MemoryStore, UsageTracker

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "llmnb")
    batch = max(1, total // BATCHES)
    tracker = UsageTracker(store=MemoryStore())
    shell.user_ns["_bench"] = (_record_loop, tracker, batch)
    clocks = []
    for _ in range(BATCHES):
        shell.run_cell(
            "_f, _t, _n = _bench\n_clock = _f(_t, _n, 'gpt-4o', 'openai')", store_history=True
        )
        clocks.append(shell.user_ns["_clock"])
    cells = {r.cell for r in tracker.records}
    if None in cells or len(cells) != BATCHES:  # every cell's rows carry its number
        raise RuntimeError(f"rows recorded in cells carry cell numbers {sorted(map(str, cells))}")
    return (
        _median([c.wall for c in clocks]) / batch * 1e6,
        _median([c.cpu for c in clocks]) / batch * 1e6,
    )


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
            str(size.backlog_s),
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
    t.add(f"`summary()` of {m['df_rows']:,} rows", *m["summary_s"], "s")
    t.add(f"`plot_costs()` of {m['df_rows']:,} rows", *m["plot_s"], "s")
    t.add(
        "`record()` per call inside IPython cells, llmnb loaded (the row gets the cell number)",
        *m["kernel_us"],
        "µs",
    )
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
        b = m["backlog"]
        bt = section.table(
            f"SQLite writer under sustained `record()` at {BACKLOG_RATE:,.0f} rows/s offered "
            f"({b['rows']:,} rows)",
            ["measure", "value", "unit"],
        )
        bt.add("rate achieved by the recording loop", b["achieved_rps"], "rows/s")
        bt.add("largest backlog (rows queued, not committed)", b["peak"], "rows")
        bt.add("backlog when recording stopped", b["at_end"], "rows")
        bt.add("`flush()` then", b["flush_s"], "s")
        bt.add("all rows on disk", b["ok"], "")
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
    kernel = m.get("kernel_us", nan)
    summary = m.get("summary_s", nan) if rows == 1_000_000 else nan
    plot = m.get("plot_s", nan) if rows == 1_000_000 else nan
    backlog = m.get("backlog") or {}
    backlog_ok = bool(backlog.get("ok"))
    offered = backlog.get("achieved_rps", 0.0) >= 0.8 * BACKLOG_RATE
    per_million = m["rss_mib"] * 1_000_000 / max(1, m["rows_recorded"]) if m else math.nan

    from bench._report import fmt

    def wall(value: float, unit: str) -> str:
        return f"CPU time; wall {fmt(value)} {unit}" if math.isfinite(value) else ""

    return [
        target("`record()` per call, in memory", record[1], 5, "µs", "<=", wall(record[0], "µs")),
        target(
            "`record()` per call in a live IPython kernel",
            kernel[1],
            3,
            "µs",
            "<=",
            wall(kernel[0], "µs"),
        ),
        target("1,000,000 rows → DataFrame", df[1], 0.3, "s", "<=", wall(df[0], "s")),
        target("1,000,000 rows → `summary()`", summary[1], 0.5, "s", "<=", wall(summary[0], "s")),
        target("1,000,000 rows → `plot_costs()`", plot[1], 0.8, "s", "<=", wall(plot[0], "s")),
        target("tracker memory per 1,000,000 rows", per_million, 150, "MiB", "<=", "RSS growth"),
        target(
            "SQLite writer backlog under `record()` at 100k rows/s",
            # Not judged when the recording loop could not offer the rate (a starved
            # machine): a small backlog at a tenth of the rate proves nothing.
            backlog.get("peak", math.nan) if backlog_ok and offered else math.nan,
            20_000,
            "rows",
            "<=",
            f"offered {BACKLOG_RATE:,.0f}, achieved {backlog['achieved_rps']:,.0f} rows/s"
            + ("" if offered else " (below 80% of the rate: not judged)")
            if backlog
            else "",
        ),
        target(
            "SQLite `flush()` after that backlog",
            backlog.get("flush_s", math.nan) if backlog_ok else math.nan,
            0.3,
            "s",
            "<=",
        ),
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
    backlog = float(sys.argv[4]) if len(sys.argv) > 4 else 0.2
    result = measure(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), backlog)
    print(json.dumps(result))
