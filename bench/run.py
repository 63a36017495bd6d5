"""``python3 -m bench``: run every benchmark once and write ``bench/RESULTS.md``.

Usage::

    python3 -m bench                          # full size, in bench/.venv (built on first use)
    python3 -m bench --size tiny --out /tmp/r.md --here   # a few seconds, this interpreter

Without ``--here`` the command (re)builds ``bench/.venv`` when needed and re-runs itself
there. One loopback server is started for the whole run; the sections then run in
order, each alternating its contenders round by round. A section that fails is
reported as failed in the results instead of stopping the run; targets that are missed
are profiled (size ``full``) and the profiles are written into the results too.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import _venv

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "RESULTS.md"
SECTIONS = ("import", "calls", "concurrency", "streaming", "limiter", "tracker", "frame")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python3 -m bench",
        description="Benchmark llmnb against raw httpx, the OpenAI SDK, LiteLLM and "
        "Jupyter AI on a loopback server; write the results as markdown.",
    )
    p.add_argument(
        "--size",
        choices=("tiny", "full"),
        default="full",
        help="full: issue #8's counts (a few minutes); tiny: seconds (tests)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="where to write the results (default bench/RESULTS.md)",
    )
    p.add_argument(
        "--here",
        action="store_true",
        help="run with this interpreter instead of bench/.venv; missing peers "
        "are reported as not installed",
    )
    p.add_argument(
        "--only",
        default="",
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    return p.parse_args(argv)


def _reexec_in_venv(argv: Sequence[str]) -> int:
    try:
        _venv.ensure_venv()
    except RuntimeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    python = str(_venv.venv_python())
    os.chdir(ROOT)
    os.execv(python, [python, "-m", "bench", *argv])
    return 0  # pragma: no cover - execv does not return


def _log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = _parse(raw)
    if not args.here and not _venv.in_venv():
        return _reexec_in_venv(raw)
    only = {s.strip() for s in args.only.split(",") if s.strip()} or set(SECTIONS)
    unknown = only - set(SECTIONS)
    if unknown:
        print(
            f"bench: unknown section(s) {', '.join(sorted(unknown))}; "
            f"choose from {', '.join(SECTIONS)}",
            file=sys.stderr,
        )
        return 2
    return _run(args.size, args.out.resolve(), only)


def _run(size_name: str, out: Path, only: set[str]) -> int:
    # Imported here: these need the interpreter chosen above (llmnb, the peers).
    from bench import (
        _limiter_section,
        bench_calls,
        bench_concurrency,
        bench_frame,
        bench_import,
        bench_streaming,
        bench_tracker,
    )
    from bench._context import SIZES, Context
    from bench._machine import load_average, machine_section
    from bench._missed import profile_missed
    from bench._report import Section, render
    from bench._server import LoopbackServer
    from bench._workspace import Workspace
    from bench.bench_server import headroom_note, server_section

    size = SIZES[size_name]
    started = _dt.datetime.now(_dt.timezone.utc)
    load_start = load_average()
    t0 = time.perf_counter()
    runners: list[tuple[str, str, Callable[[Context], Section]]] = [
        ("import", "1. Import / load", bench_import.run),
        ("calls", "2. Per-call overhead", bench_calls.run),
        ("concurrency", "3. Concurrency", bench_concurrency.run),
        ("streaming", "4. Streaming", bench_streaming.run),
        ("limiter", "5. Limiter accuracy", _limiter_section.run),
        ("tracker", "6. Tracker", bench_tracker.run),
        ("frame", "7. DataFrame batch", bench_frame.run),
    ]
    sections: list[Section] = []
    with Workspace() as ws, LoopbackServer(size.stream_chunks, env=ws.env()) as srv:
        ctx = Context(size, ws, srv.base_url, srv.port, out.parent)
        try:
            _log(f"size {size.name}; loopback server at {srv.base_url}")
            head = [server_section(ctx)]
            for key, title, fn in runners:
                if key not in only:
                    continue
                _log(f"{title} …")
                s0 = time.perf_counter()
                try:
                    section = fn(ctx)
                except Exception as exc:
                    section = Section(
                        title,
                        notes=[
                            f"this section failed: {type(exc).__name__}: {exc}",
                            "```\n" + traceback.format_exc(limit=4).strip() + "\n```",
                        ],
                    )
                _log(f"{title} done in {time.perf_counter() - s0:.0f} s")
                sections.append(section)
            ctx.close()
            headroom_note(head[0], sections)
            if size.profile:
                _log("profiling …")
                try:
                    profile_missed(ctx, sections)
                except Exception as exc:  # the measurements are still worth writing
                    head[0].notes.append(f"profiling failed: {type(exc).__name__}: {exc}")
        finally:
            ctx.close()
    elapsed = time.perf_counter() - t0
    preamble = [
        f"Generated by `python3 -m bench --size {size.name}` — do not edit by hand; "
        "rerun the command instead. Medians throughout; “×” columns are ratios.",
    ]
    from bench import _history

    commit = _history.commit_label(ROOT)
    machine = machine_section(size.name, started, elapsed, load_start, load_average())
    machine.tables[0][1].add("llmnb commit", commit)
    after: list[Section] = []
    if size.name == "full" and out == DEFAULT_OUT.resolve() and only == set(SECTIONS):
        # Only complete full runs to the default file make the record of before/after.
        date = started.strftime("%Y-%m-%d %H:%M")
        runs = _history.update(
            out.parent / "history.jsonl",
            out,
            ROOT,
            _history.run_record(date, commit, sections),
        )
        after.append(_history.history_section(runs, sections))
    text = render("llmnb benchmarks", preamble, [machine, *head], sections, after)
    findings = ROOT / "bench" / "FINDINGS.md"
    if findings.exists():
        # Hand-written and dated: the profiles behind the missed targets, and what would
        # reach them. Everything above it comes from this run.
        text += "\n" + findings.read_text(encoding="utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    _log(f"wrote {out} ({elapsed:.0f} s)")
    return 0
