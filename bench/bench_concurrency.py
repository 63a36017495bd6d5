"""§3 Concurrency: many requests at 64 in flight through each contender's async client.

64 lanes on one event loop each take the next request until ``size.conc_requests``
are done; rounds alternate between contenders. Throughput is requests per wall second
(the median round); CPU per request is the client process's CPU time.

The diagnostic rows explain the numbers: llmnb with an in-memory tracker (the SQLite
store's share), httpx with a larger keep-alive pool and httpx2 (pydantic's fork with a
rewritten pool: what httpcore 1.0's pool costs), and ``import sniffio`` retried on every
lock when the package is missing (anyio no longer installs it, and llmnb's own
dependencies do not either).
"""

from __future__ import annotations

from typing import Any

from bench._context import Context
from bench._driver import WorkerError
from bench._report import Section, Target
from bench._stats import Schedule, median, ratio, split
from bench.contenders import CONTENDERS, DIAGNOSTICS

__all__ = ["run"]

KEYS = ("httpx", "httpx2", "openai", "litellm", "llmnb")
FLOOR_KEYS = ("httpx", "httpx2")  # the floor: the faster raw client in the same rounds
# Other in-flight counts measured for the targets: llmnb and the two raw clients only.
LEVELS = (16, 256)


def _measure(
    ctx: Context,
    keys: list[str],
    total: int,
    rounds: int,
    budget: str,
    section: Section,
    c: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    c = c or ctx.size.concurrency
    results: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        worker = ctx.worker(key)
        if worker is None:
            continue
        try:  # open the connections first: the pool starts empty
            worker.request({"op": "conc", "n": 2 * c, "c": c})
            results[key] = []
        except WorkerError as exc:
            ctx.fail(key, str(exc))
    sizes = split(total, rounds)
    schedule = Schedule(list(results), len(sizes), ctx.size.budget(budget))
    for r, key in schedule:
        worker = ctx.workers.get(key)
        if worker is None:
            continue
        try:
            answer = worker.request({"op": "conc", "n": sizes[r], "c": c}, timeout=600)
        except WorkerError as exc:
            ctx.fail(key, str(exc))
            continue
        results[key].append({"n": sizes[r], "s": answer["s"], "cpu": answer["cpu"]})
    if schedule.note:
        section.notes.append(f"{budget}: {schedule.note}")
    return {k: v for k, v in results.items() if k in ctx.workers and v}


def _row(rounds: list[dict[str, Any]]) -> tuple[float, int, float]:
    rps = median([r["n"] / r["s"] for r in rounds])
    n = sum(r["n"] for r in rounds)
    cpu_us = sum(r["cpu"] for r in rounds) / n * 1e6
    return rps, n, cpu_us


def _spread(rounds: list[dict[str, Any]]) -> str:
    rates = [r["n"] / r["s"] for r in rounds]
    return f"{min(rates):,.0f}–{max(rates):,.0f}"


def run(ctx: Context) -> Section:
    size = ctx.size
    c = size.concurrency
    section = Section(
        "3. Concurrency",
        f"{size.conc_requests:,} non-streaming requests per contender, {c} in flight, "
        f"through each async client (`httpx.AsyncClient`, `AsyncOpenAI`, "
        f"`litellm.acompletion`, llmnb `acomplete`), in {size.conc_rounds} interleaved "
        "rounds; requests/s is the median round.",
    )
    main = _measure(ctx, list(KEYS), size.conc_requests, size.conc_rounds, "conc", section)
    rps = {k: _row(v)[0] for k, v in main.items()}
    section.data["rps"] = rps
    floors = [rps[k] for k in FLOOR_KEYS if k in rps]
    base = max(floors) if floors else float("nan")
    ours = rps.get("llmnb", float("nan"))
    table = section.table(
        "Throughput (higher is better)",
        [
            "contender",
            "requests/s",
            "rounds' range",
            "requests",
            "client CPU µs/request",
            "× floor",
            "× llmnb",
        ],
    )
    for key in KEYS:
        label = (CONTENDERS.get(key) or DIAGNOSTICS[key]).label
        if key not in main:
            table.add(label, ctx.status(key), None, 0, None, None, None)
            continue
        r, n, cpu = _row(main[key])
        table.add(label, r, _spread(main[key]), n, cpu, ratio(r, base), ratio(r, ours))
    ratios = {c: ratio(ours, base)}
    ratios.update(_levels(ctx, section))
    for level in sorted(ratios):
        section.targets.append(
            Target(
                f"llmnb async throughput at {level} in flight vs the faster of raw "
                "httpx / httpx2 AsyncClient",
                ratios[level],
                0.95,
                "×",
                ">=",
            )
        )
    _diagnostics(ctx, section, rps.get("httpx", float("nan")))
    return section


def _levels(ctx: Context, section: Section) -> dict[int, float]:
    """llmnb and the raw clients at the other in-flight counts, interleaved per level."""
    size = ctx.size
    keys = ["httpx", "httpx2", "llmnb"]
    table = section.table(
        "At other in-flight counts (llmnb and the raw clients, own interleaved rounds)",
        [
            "in flight",
            *((CONTENDERS.get(k) or DIAGNOSTICS[k]).label for k in keys),
            "llmnb × floor",
        ],
    )
    out: dict[int, float] = {}
    rounds = max(1, min(size.conc_rounds, 4))
    for level in LEVELS:
        got = _measure(ctx, keys, size.diag_requests, rounds, "diag", section, c=level)
        rps = {k: _row(v)[0] for k, v in got.items()}
        floors = [rps[k] for k in FLOOR_KEYS if k in rps]
        floor = max(floors) if floors else float("nan")
        out[level] = ratio(rps.get("llmnb", float("nan")), floor)
        table.add(level, *(rps.get(k) for k in keys), out[level])
    section.data["levels"] = out
    return out


def _diagnostics(ctx: Context, section: Section, base: float) -> None:
    size = ctx.size
    keys = ["llmnb-httpx", "llmnb-memory", "httpx-keepalive", "raw-socket"]
    sniffio_here = ctx.worker("httpx") is not None and _sniffio_loaded(ctx, "httpx")
    if sniffio_here:
        keys += ["httpx-nosniffio", "llmnb-nosniffio"]
    rounds = max(1, min(size.conc_rounds, 3))
    # Raw httpx runs again in these rounds: the ratios compare like with like in time.
    diag = _measure(ctx, ["httpx", *keys], size.diag_requests, rounds, "diag", section)
    ref = _row(diag["httpx"])[0] if "httpx" in diag else base
    table = section.table(
        "Diagnostics: what shapes the numbers above (their own interleaved rounds, "
        "raw httpx again as reference)",
        [
            "variant",
            "how",
            "requests/s",
            "requests",
            "client CPU µs/request",
            "× raw httpx",
            "failed `import sniffio` per request",
        ],
    )
    if "httpx" in diag:
        r, n, cpu = _row(diag["httpx"])
        table.add(
            "raw httpx (reference)",
            "httpx.AsyncClient() defaults, in these rounds",
            r,
            n,
            cpu,
            1.0,
            None,
        )
    for key in keys:
        d = DIAGNOSTICS[key]
        if key not in diag:
            table.add(d.label, d.note, ctx.status(key), 0, None, None, None)
            continue
        r, n, cpu = _row(diag[key])
        attempts = _sniffio_attempts(ctx, key)
        warm = 2 * size.concurrency  # the warm-up requests count too
        per = None if attempts is None else attempts / (n + warm)
        table.add(d.label, d.note, r, n, cpu, ratio(r, ref), per)
    section.data["diagnostics"] = {k: _row(v)[0] for k, v in diag.items()}
    if not sniffio_here:
        section.notes.append(
            "`sniffio` is not installed in this environment, so the rows above already show "
            "httpx without it (the case of a plain `pip install llmnb`)."
        )


def _sniffio_loaded(ctx: Context, key: str) -> bool:
    worker = ctx.workers.get(key)
    if worker is None:
        return False
    try:
        return bool(worker.request({"op": "info"}, timeout=60).get("sniffio_loaded"))
    except WorkerError:
        return False


def _sniffio_attempts(ctx: Context, key: str) -> int | None:
    worker = ctx.workers.get(key)
    if worker is None or not key.endswith("-nosniffio"):
        return None
    try:
        value = worker.request({"op": "info"}, timeout=60).get("sniffio_imports")
    except WorkerError:
        return None
    return None if value is None else int(value)
