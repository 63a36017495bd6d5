"""§4 Streaming: one long SSE answer, read piece by piece through each client.

The server streams ``size.stream_chunks`` content chunks (4 characters each, then the
finish and usage events and ``[DONE]``). Chunks/s is content pieces received per wall
second. Time to first token (TTFT) — from the call to the first non-empty piece — is
measured on a short stream (``SHORT_CHUNKS`` chunks), where the server's own time to
render the answer is negligible; its overhead is the difference from raw httpx's.
"""

from __future__ import annotations

from bench._context import Context
from bench._driver import WorkerError
from bench._report import Section, Target
from bench._server import SHORT_CHUNKS, SHORT_PROMPT, STREAM_PROMPT
from bench._stats import Schedule, median, ratio
from bench.contenders import CONTENDERS, DIAGNOSTICS

__all__ = ["run"]

KEYS = ("httpx", "httpx2", "openai", "litellm", "llmnb")
FLOOR_KEYS = ("httpx", "httpx2")  # raw stream + json.loads per event; the faster is the floor
# llmnb on httpx, and the server's own ceiling, read by a raw socket client: all in the
# same rounds.
DIAG_KEYS = ("llmnb-httpx",)
CEILING = "raw-socket"


def run(ctx: Context) -> Section:
    size = ctx.size
    section = Section(
        "4. Streaming",
        f"A {size.stream_chunks:,}-chunk SSE answer (`stream=True`), {size.stream_samples} "
        "interleaved samples per contender after one warm-up stream; TTFT from "
        f"{size.ttft_samples} interleaved {SHORT_CHUNKS}-chunk streams; medians.",
    )
    samples: dict[str, list[dict[str, float]]] = {}
    cmd = {"op": "stream", "prompt": STREAM_PROMPT}
    for key in (*KEYS, *DIAG_KEYS, CEILING):
        worker = ctx.worker(key)
        if worker is None:
            continue
        try:
            worker.request(cmd)
            samples[key] = []
        except WorkerError as exc:
            ctx.fail(key, str(exc))
    schedule = Schedule(list(samples), size.stream_samples, size.budget("stream"))
    for _, key in schedule:
        worker = ctx.workers.get(key)
        if worker is None:
            continue
        try:
            samples[key].append(worker.request(cmd))
        except WorkerError as exc:
            ctx.fail(key, str(exc))

    if schedule.note:
        section.notes.append(f"long streams: {schedule.note}")
    ttft = _ttft(ctx, list(samples), section)
    stats: dict[str, dict[str, float]] = {}
    for key, runs in samples.items():
        if key not in ctx.workers or not runs:
            continue
        stats[key] = {
            "cps": median([r["pieces"] / r["total"] for r in runs]),
            "ttft_ms": median(ttft.get(key, [])),
            "total_ms": median([r["total"] * 1e3 for r in runs]),
            "pieces": median([r["pieces"] for r in runs]),
        }
    section.data["stats"] = stats
    floors = [k for k in FLOOR_KEYS if k in stats]
    floor_key = max(floors, key=lambda k: stats[k]["cps"]) if floors else ""
    base = stats.get(floor_key, {})
    ours = stats.get("llmnb", {})
    section.data["floor"] = floor_key
    table = section.table(
        "Streaming (chunks/s higher is better; TTFT lower is better)",
        [
            "contender",
            "chunks/s",
            "× floor",
            "× llmnb",
            "whole stream ms",
            f"TTFT ms ({SHORT_CHUNKS}-chunk stream)",
            "TTFT overhead vs floor ms",
            "pieces received",
        ],
    )
    for key in (*KEYS, *DIAG_KEYS, CEILING):
        label = (CONTENDERS.get(key) or DIAGNOSTICS[key]).label
        if key not in stats:
            table.add(label, ctx.status(key), None, None, None, None, None, 0)
            continue
        s = stats[key]
        table.add(
            label,
            s["cps"],
            ratio(s["cps"], base.get("cps", float("nan"))),
            ratio(s["cps"], ours.get("cps", float("nan"))),
            s["total_ms"],
            s["ttft_ms"],
            s["ttft_ms"] - base.get("ttft_ms", float("nan")),
            int(s["pieces"]),
        )
        if int(s["pieces"]) != size.stream_chunks:
            section.notes.append(
                f"{label} yielded {int(s['pieces']):,} pieces for {size.stream_chunks:,} "
                "content chunks (it merges or splits chunks), so its chunks/s counts its "
                "own pieces."
            )
    section.targets.append(
        Target(
            f"llmnb streaming chunks/s ({size.stream_chunks:,}-chunk answer) vs the faster "
            "of raw httpx / httpx2 stream + json.loads per event",
            ratio(ours.get("cps", float("nan")), base.get("cps", float("nan"))),
            0.95,
            "×",
            ">=",
            f"floor: raw {floor_key}" if floor_key else "",
        )
    )
    return section


def _ttft(ctx: Context, keys: list[str], section: Section) -> dict[str, list[float]]:
    """Milliseconds to the first piece of short streams, per contender."""
    cmd = {"op": "stream", "prompt": SHORT_PROMPT}
    out: dict[str, list[float]] = {k: [] for k in keys}
    schedule = Schedule(keys, ctx.size.ttft_samples, ctx.size.budget("ttft"))
    for _, key in schedule:
        worker = ctx.workers.get(key)
        if worker is None:
            continue
        try:
            answer = worker.request(cmd)
        except WorkerError as exc:
            ctx.fail(key, str(exc))
            continue
        if answer["ttft"] is not None:
            out[key].append(answer["ttft"] * 1e3)
    if schedule.note:
        section.notes.append(f"TTFT: {schedule.note}")
    return out
