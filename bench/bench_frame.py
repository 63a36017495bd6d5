"""§7 DataFrame batch: ``df.llm.complete`` over many rows against the bare floor.

The floor is what a user would write by hand: ``asyncio.gather`` of ``acomplete`` with
the same concurrency (a semaphore), on the same client in the same llmnb worker. The two
alternate round by round, so the ratio holds the batch layer's own cost: rendering the
template, the lanes, the progress accounting and building the result frame.
"""

from __future__ import annotations

from typing import Any

from bench._context import Context
from bench._driver import WorkerError
from bench._report import Section, Target
from bench._stats import Schedule, median, ratio

__all__ = ["run"]

HOWS = ("accessor", "gather")
LABELS = {
    "accessor": 'df.llm.complete("{q}", concurrency=C, progress=False)',
    "gather": "asyncio.gather of client.acomplete, C in flight (a semaphore)",
}


def run(ctx: Context) -> Section:
    size = ctx.size
    n, c = size.frame_rows, 16
    section = Section(
        "7. DataFrame batch",
        f"{n:,} rows, {c} in flight, in {size.frame_rounds} interleaved rounds per variant "
        "in llmnb's worker (SQLite usage store on); rows/s is the median round.",
    )
    worker = ctx.worker("llmnb")
    got: dict[str, list[dict[str, Any]]] = {h: [] for h in HOWS}
    if worker is not None:
        try:
            for how in HOWS:  # warm-up: the accessor's imports, the pool's connections
                worker.request({"op": "frame", "n": min(n, 200), "c": c, "how": how})
            schedule = Schedule(list(HOWS), size.frame_rounds, size.budget("frame"))
            for _, how in schedule:
                answer = worker.request({"op": "frame", "n": n, "c": c, "how": how}, timeout=600)
                got[how].append(answer)
            if schedule.note:
                section.notes.append(schedule.note)
        except WorkerError as exc:
            section.notes.append(f"llmnb's worker failed: {exc}")
    rps = {h: median([n / a["s"] for a in v]) for h, v in got.items() if v}
    section.data["rps"] = rps
    table = section.table(
        "Rows per second (higher is better)",
        ["variant", "how", "rows/s", "client CPU µs/row", "failed rows", "× bare gather"],
    )
    for how in HOWS:
        v = got[how]
        if not v:
            table.add(how, LABELS[how], ctx.status("llmnb"), None, None, None)
            continue
        cpu = sum(a["cpu"] for a in v) / (n * len(v)) * 1e6
        failed = sum(int(a["failed"]) for a in v)
        table.add(how, LABELS[how], rps[how], cpu, failed, ratio(rps[how], rps.get("gather", 0)))
    section.targets.append(
        Target(
            f"`df.llm.complete` of {n:,} rows vs a bare gather of `acomplete`",
            ratio(rps.get("accessor", float("nan")), rps.get("gather", float("nan"))),
            0.97,
            "×",
            ">=",
        )
    )
    return section
