"""§2 Per-call overhead: sequential non-streaming completions, contender by contender.

Each contender sends ``size.calls`` completions one after another on a kept-alive
connection; the rounds alternate between contenders (rotated order), and every call's
wall time is one sample. llmnb runs as a notebook would: its usage tracker records every
call into the SQLite store of the settings file.
"""

from __future__ import annotations

from bench._context import Context
from bench._driver import WorkerError
from bench._report import Section, Target
from bench._stats import Schedule, median, percentile, ratio, split
from bench.contenders import CONTENDERS, DIAGNOSTICS

__all__ = ["run"]

KEYS = ("httpx", "httpx2", "openai", "litellm", "llmnb")
# The floor llmnb is judged against: the faster of the two raw clients in the same
# rounds (llmnb runs on httpx2; raw httpx is kept so neither library flatters it).
FLOOR_KEYS = ("httpx", "httpx2")
# Run alongside: the SQLite store's share of llmnb's time and the server's own
# ceiling (a raw socket client) in the same rounds.
DIAG_KEYS = ("llmnb-httpx", "llmnb-memory", "raw-socket")
WARMUP = 20


def run(ctx: Context) -> Section:
    size = ctx.size
    section = Section(
        "2. Per-call overhead",
        f"{size.calls:,} sequential non-streaming completions per contender against the "
        f"loopback server, in {size.call_rounds} interleaved rounds; the time of each call "
        "is one sample.",
    )
    samples: dict[str, list[float]] = {}
    cpu: dict[str, float] = {}
    for key in KEYS + DIAG_KEYS:
        worker = ctx.worker(key)
        if worker is None:
            continue
        try:
            worker.request({"op": "calls", "n": min(WARMUP, size.calls)})
            samples[key] = []
        except WorkerError as exc:
            ctx.fail(key, str(exc))
    rounds = split(size.calls, size.call_rounds)
    schedule = Schedule(list(samples), len(rounds), size.budget("calls"))
    for r, key in schedule:
        worker = ctx.workers.get(key)
        if worker is None:
            continue
        try:
            answer = worker.request({"op": "calls", "n": rounds[r]})
        except WorkerError as exc:
            ctx.fail(key, str(exc))
            continue
        samples[key].extend(ns / 1000 for ns in answer["ns"])
        cpu[key] = cpu.get(key, 0.0) + answer["cpu"]

    if schedule.note:
        section.notes.append(schedule.note)
    med = {k: median(v) for k, v in samples.items() if k in ctx.workers and v}
    section.data["median_us"] = med
    floors = [med[k] for k in FLOOR_KEYS if k in med]
    base = min(floors) if floors else float("nan")
    ours = med.get("llmnb", float("nan"))
    floor_name = next((k for k in FLOOR_KEYS if med.get(k) == base), "n/a")
    section.data["floor_us"] = base
    headers = [
        "how",
        "median µs",
        "p10 µs",
        "p90 µs",
        "client CPU µs/call",
        "calls",
        "× floor",
        "× llmnb",
    ]
    table = section.table("Per call (µs; lower is better)", ["contender", *headers])
    diag = section.table("Diagnostics (same interleaved rounds)", ["variant", *headers])
    for key in KEYS + DIAG_KEYS:
        c = CONTENDERS.get(key) or DIAGNOSTICS[key]
        target = table if key in KEYS else diag
        if key not in med:
            target.add(c.label, c.note, ctx.status(key), None, None, None, 0, None, None)
            continue
        v = samples[key]
        target.add(
            c.label,
            c.note,
            med[key],
            percentile(v, 10),
            percentile(v, 90),
            cpu[key] / len(v) * 1e6,
            len(v),
            ratio(med[key], base),
            ratio(med[key], ours),
        )
    section.targets.append(
        Target(
            "llmnb per call vs the faster of raw httpx / raw httpx2",
            ratio(ours, base),
            1.08,
            "×",
            "<=",
            f"floor: raw {floor_name}, {ours - base:+.0f} µs per call",
        )
    )
    section.targets.append(
        Target(
            "llmnb per call vs OpenAI SDK",
            ratio(ours, med.get("openai", float("nan"))),
            1.0,
            "×",
            "<",
        )
    )
    _store_note(ctx, section)
    return section


def _store_note(ctx: Context, section: Section) -> None:
    worker = ctx.workers.get("llmnb")
    if worker is None:
        return
    try:
        info = worker.request({"op": "info"}, timeout=60)
    except WorkerError as exc:
        section.notes.append(f"could not ask llmnb's worker about its usage store: {exc}")
        return
    store = info.get("store")
    section.data["llmnb_store"] = info
    if store == "SQLiteStore":
        section.notes.append(
            f"llmnb's tracker was on with the persistent SQLite store "
            f"(`usage: {{store: sqlite:///usage.db}}`): {info.get('store_rows'):,} rows recorded "
            f"in the worker, all flushed to disk at the end: {info.get('store_flushed')}."
        )
    else:
        section.notes.append(
            f"llmnb's tracker was on, but its store is `{store}`: the SQLite store was not "
            "available in this checkout, so this is the in-memory tracker."
        )
