"""The fault soak: many concurrent async calls against a FakeLLMServer that misbehaves.

Shared by the in-suite test (``tests/test_soak.py``, a few hundred calls) and the
on-demand run (``python -m tests.soak`` / ``python tests/soak/run.py``, thousands).

What one run checks, with nothing of llmnb monkeypatched — the client talks HTTP to a
real server on 127.0.0.1 whose handler injects faults with a seeded random:

- every call ends as a ``Completion`` or an ``llmnb.errors.LLMError`` (nothing else);
- every call ends at all (the whole run has a liveness bound);
- usage rows == chat requests the server received, and per call: rows == requests ==
  ``Completion.attempts``, attempts numbered 1..n, the last row's status is the outcome;
- after a 429 with ``Retry-After: r`` the next attempt of that call arrived ≥ r later
  (server-side arrival times);
- memory is flat: heap blocks and RSS after the second half are within a bound of the
  first half.

The run is split into two halves with a fresh tracker each and the server's request
log reset in between, so what is *meant* to grow (rows, the server's record of
requests) is dropped before memory is measured; what remains must not grow.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import linecache
import os
import random
import re
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import llmnb
from llmnb import errors
from llmnb.middleware import RetryPolicy
from llmnb.testing import FakeLLMServer, Fault, RecordedRequest
from llmnb.usage import UsageTracker, set_tracker

__all__ = ["SoakConfig", "SoakResult", "run_soak"]

MARK = re.compile(r"soak-call-(\d+)")
# Canary key of the soak profile: a run also checks that no row, error text or
# repr carries it.
SOAK_KEY = "sk-soak-canary-7d1f0c9a5e3b4d21"


@dataclass(frozen=True)
class SoakConfig:
    """What to run. ``fault_rate`` is the share of server answers that are faults."""

    requests: int = 300
    concurrency: int = 32
    fault_rate: float = 0.30
    stream_share: float = 0.5
    seed: int = 20240610
    # Per-attempt client timeout (s). Generous, so that only "slow" faults hit it: an
    # attempt that times out before the server read it would be a row without a request.
    timeout: float = 2.0
    slow_delay: float = 4.0  # a "slow" fault answers this late (beyond the timeout)
    max_retries: int = 3
    liveness_s: float = 120.0  # every call of a half must end within this
    # Growth allowed from the end of half 1 to the end of half 2 (same work, fresh
    # tracker): Python heap blocks (sys.getallocatedblocks; run-to-run noise is a few
    # hundred, a leak of one object per call is a block per call) and resident memory.
    memory_bound_blocks: int = 2_000
    memory_bound_rss: int = 24 * 2**20


@dataclass
class SoakResult:
    """Numbers of one run and every violated invariant (``problems``; empty = pass)."""

    config: SoakConfig
    wall_s: float = 0.0
    calls: int = 0
    completions: int = 0
    errors_by_type: Counter[str] = field(default_factory=Counter)
    outcome_by_kind: Counter[str] = field(default_factory=Counter)
    faults_by_kind: Counter[str] = field(default_factory=Counter)
    server_requests: int = 0
    rows: int = 0
    retried_calls: int = 0
    max_attempts: int = 0
    retry_after_gaps_checked: int = 0
    min_retry_after_margin_s: float = float("inf")
    blocks_after_half: list[int] = field(default_factory=list)
    rss_after_half: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def blocks_growth(self) -> int:
        b = self.blocks_after_half
        return b[-1] - b[-2] if len(b) >= 2 else 0

    @property
    def rss_growth(self) -> int:
        r = self.rss_after_half
        return r[-1] - r[-2] if len(r) >= 2 else 0


@dataclass
class _Outcome:
    n: int
    kind: str  # "complete" or "stream"
    status: str  # "ok" or the error class name
    attempts: int | None = None  # from the Completion, when there is one
    foreign: str | None = None  # a defect: a non-llmnb exception, or a leaked key


class _FaultPlan:
    """The server-side handler: decides each answer, remembers arrival time and fault."""

    def __init__(self, cfg: SoakConfig, seed: int) -> None:
        self.cfg = cfg
        self.rnd = random.Random(seed)
        self.lock = threading.Lock()
        self.log: dict[int, list[tuple[float, Fault | None]]] = defaultdict(list)
        self.kinds: Counter[str] = Counter()

    def choose(self) -> tuple[str, Fault]:
        r, cfg = self.rnd, self.cfg
        kind = r.choices(
            ["rate_limit", "5xx", "reset", "slow", "cut_stream", "malformed"],
            weights=[4, 3, 2, 1, 2, 1],
        )[0]
        if kind == "rate_limit":
            return kind, Fault.rate_limit(retry_after=r.choice([0.01, 0.02, 0.03, 0.05]))
        if kind == "5xx":
            return kind, Fault.status(r.choice([500, 502, 503, 529]))
        if kind == "reset":
            return kind, Fault.reset()
        if kind == "slow":
            return kind, Fault.slow(cfg.slow_delay)
        if kind == "cut_stream":
            return kind, Fault.cut_stream(after_chunks=r.randint(0, 4))
        return kind, r.choice(
            [Fault.malformed_json(), Fault.html(200), Fault.empty_body(), Fault.html(502)]
        )

    def __call__(self, request: RecordedRequest) -> Fault | None:
        n = _marker(request)
        with self.lock:
            fault: Fault | None = None
            if self.rnd.random() < self.cfg.fault_rate:
                kind, fault = self.choose()
                self.kinds[kind] += 1
            if n is not None:
                self.log[n].append((request.time, fault))
        return fault


def _marker(request: RecordedRequest) -> int | None:
    body = request.json
    if not isinstance(body, dict):
        return None
    for message in body.get("messages") or ():
        found = MARK.search(str(message.get("content", "")))
        if found:
            return int(found.group(1))
    return None


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # not Linux: RSS is informative only
        return 0


def write_settings(root: Path, base_url: str, cfg: SoakConfig) -> Path:
    """The soak's ``config/settings.yaml`` under ``root``."""
    profile = {
        "timeout": cfg.timeout,
        "max_retries": cfg.max_retries,
        "type": "openai_compatible",
        "model": "soak-model",
        "base_url": base_url,
        "api_key": SOAK_KEY,
        "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    }
    path = root / "config" / "settings.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump(
            {
                "llm": {"active_provider": "soak", "providers": {"soak": profile}},
                "usage": {"store": "memory"},
            }
        )
    )
    return path


async def _one(
    client: llmnb.LLMClient,
    n: int,
    kind: str,
    sem: asyncio.Semaphore,
    **params: Any,
) -> _Outcome:
    prompt = f"soak-call-{n}: say something"
    tags = {"soak": n}
    async with sem:
        try:
            if kind == "stream":
                stream = client.astream(prompt, tags=tags, **params)
                async for _ in stream:
                    pass
                assert stream.completion is not None
                return _Outcome(n, kind, "ok", stream.completion.attempts)
            completion = await client.acomplete(prompt, tags=tags, **params)
            return _Outcome(n, kind, "ok", completion.attempts)
        except errors.LLMError as exc:
            text = "".join(traceback.format_exception(exc))
            leak = (
                f"the API key appears in {type(exc).__name__}'s traceback"
                if SOAK_KEY in text
                else None
            )
            return _Outcome(n, kind, type(exc).__name__, foreign=leak)
        except Exception as exc:  # the defect this soak exists to find
            foreign = f"raised a non-llmnb {type(exc).__name__}: {exc}"
            return _Outcome(n, kind, type(exc).__name__, foreign=foreign)


async def _half(
    client: llmnb.LLMClient, numbers: range, cfg: SoakConfig, rnd: random.Random
) -> list[_Outcome]:
    sem = asyncio.Semaphore(cfg.concurrency)
    kinds = ["stream" if rnd.random() < cfg.stream_share else "complete" for _ in numbers]
    tasks = [
        asyncio.ensure_future(_one(client, n, k, sem)) for n, k in zip(numbers, kinds, strict=True)
    ]
    _, pending = await asyncio.wait(tasks, timeout=cfg.liveness_s)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
        raise TimeoutError(
            f"{len(pending)} of {len(tasks)} calls did not finish within {cfg.liveness_s} s"
        )
    await client.aclose()  # the next half reconnects: the pool must not keep dead sockets
    return [t.result() for t in tasks]


def _check_half(
    result: SoakResult,
    outcomes: list[_Outcome],
    tracker: UsageTracker,
    server: FakeLLMServer,
    plan: _FaultPlan,
) -> None:
    problems = result.problems
    chat = [r for r in server.requests if r.path.endswith("/chat/completions")]
    rows = tracker.records
    result.server_requests += len(chat)
    result.rows += len(rows)
    if len(rows) != len(chat):
        problems.append(f"{len(rows)} usage rows but the server received {len(chat)} requests")
    arrivals: Counter[int] = Counter(n for n in map(_marker, chat) if n is not None)
    rows_by_call: dict[int, list[Any]] = defaultdict(list)
    call_ids: dict[int, set[str]] = defaultdict(set)
    for row in rows:
        n = int((row.tags or {}).get("soak", -1))
        rows_by_call[n].append(row)
        call_ids[n].add(row.call_id)
        if SOAK_KEY in f"{row.error} {row.key_id} {row!r}":
            problems.append(f"call {n}: the API key appears in a usage row")
    for out in outcomes:
        result.calls += 1
        result.outcome_by_kind[f"{out.kind}:{'ok' if out.status == 'ok' else 'error'}"] += 1
        if out.foreign:
            problems.append(f"call {out.n} ({out.kind}): {out.foreign}")
        if out.status == "ok":
            result.completions += 1
        else:
            result.errors_by_type[out.status] += 1
        got = rows_by_call.get(out.n, [])
        received = arrivals.get(out.n, 0)
        result.max_attempts = max(result.max_attempts, len(got))
        result.retried_calls += len(got) > 1
        if len(got) != received:
            problems.append(f"call {out.n}: {len(got)} rows but {received} requests received")
        if len(call_ids.get(out.n, ())) > 1:
            problems.append(f"call {out.n}: rows carry several call_ids {call_ids[out.n]}")
        if out.attempts is not None and out.attempts != received:
            problems.append(
                f"call {out.n}: Completion.attempts={out.attempts}, server saw {received}"
            )
        if sorted(r.attempt for r in got) != list(range(1, len(got) + 1)):
            problems.append(f"call {out.n}: attempts {[r.attempt for r in got]} not 1..n")
        if got:
            last = max(got, key=lambda r: r.attempt)
            if last.status != out.status:
                problems.append(f"call {out.n}: last row {last.status!r}, outcome {out.status!r}")
        elif not out.foreign:
            problems.append(f"call {out.n}: no usage row at all")
    for n, seen in plan.log.items():
        seen = sorted(seen, key=lambda item: item[0])
        for (t0, fault), (t1, _) in itertools.pairwise(seen):
            if fault is None or fault.http_status != 429:
                continue
            wait = float(dict(fault.headers)["Retry-After"])
            margin = (t1 - t0) - wait
            result.retry_after_gaps_checked += 1
            result.min_retry_after_margin_s = min(result.min_retry_after_margin_s, margin)
            # 1 ms: the two arrival stamps are taken by the server thread (time.time()).
            if margin < -0.001:
                problems.append(
                    f"call {n}: retried {t1 - t0:.4f} s after a 429 with Retry-After {wait}"
                )


def _warm_up(client: llmnb.LLMClient, server: FakeLLMServer, cfg: SoakConfig) -> None:
    """Every fault once, and every fault until the retries run out, per call kind —
    unmeasured: lazy imports and caches fill up here, not in the second half where they
    would look like a leak."""
    faults = [
        Fault.rate_limit(retry_after=0.01),
        Fault.status(503),
        Fault.status(500),
        Fault.reset(),
        Fault.slow(0.3),
        Fault.cut_stream(1),
        Fault.cut_stream(3),
        Fault.malformed_json(),
        Fault.html(200),
        Fault.empty_body(),
    ]
    tracker = UsageTracker(session="soak-warm-up")
    token = set_tracker(tracker)
    try:
        for fault in faults:
            for times in (1, cfg.max_retries + 1):
                asyncio.run(_warm_up_pair(client, server, [fault] * times))
    finally:
        token.var.reset(token)
        server.reset()


async def _warm_up_pair(
    client: llmnb.LLMClient, server: FakeLLMServer, faults: list[Fault]
) -> None:
    sem = asyncio.Semaphore(1)
    for kind in ("complete", "stream"):
        server.script(*faults)
        await _one(client, -1, kind, sem, timeout=0.1)  # short: "slow" is a timeout here
    await client.aclose()


def run_soak(
    cfg: SoakConfig, root: Path, progress: Callable[[str], None] | None = None
) -> SoakResult:
    """Run the soak with ``root`` as the working folder (``config/`` is written there)."""
    if Path.cwd().resolve() != root.resolve():
        raise RuntimeError(f"run_soak needs the working folder to be {root} (it is {Path.cwd()})")
    say = progress or (lambda _: None)
    result = SoakResult(cfg)
    rnd = random.Random(cfg.seed)
    half = cfg.requests // 2
    halves = [range(0, half), range(half, cfg.requests)]
    started = time.perf_counter()
    with FakeLLMServer(default_response="The soak answer is long enough to stream.") as server:
        write_settings(root, server.base_url, cfg)
        client = llmnb.create_llm_client_from_profile()
        # Short backoff for 5xx/timeouts keeps the run fast; Retry-After still decides
        # the wait after a 429, which is what the run checks.
        client.retry = RetryPolicy(max_retries=cfg.max_retries, base_delay=0.01, max_delay=0.05)
        if repr(client).find(SOAK_KEY) >= 0:
            result.problems.append("the API key appears in repr(client)")
        _warm_up(client, server, cfg)
        for i, numbers in enumerate(halves, 1):
            plan = _FaultPlan(cfg, cfg.seed + i)
            server.reset()
            server.set_handler(plan)
            tracker = UsageTracker(session=f"soak-{i}")
            token = set_tracker(tracker)
            try:
                outcomes = asyncio.run(_half(client, numbers, cfg, rnd))
            except TimeoutError as exc:
                result.problems.append(f"half {i}: {exc}")
                break
            finally:
                token.var.reset(token)
            _check_half(result, outcomes, tracker, server, plan)
            result.faults_by_kind.update(plan.kinds)
            say(
                f"half {i}: {len(outcomes)} calls, {len(tracker)} rows, "
                f"{sum(plan.kinds.values())} faults"
            )
            del tracker, outcomes, plan
            server.reset()  # drop the recorded requests: they are meant to grow
            linecache.clearcache()  # filled by format_exception above, not by llmnb
            gc.collect()
            result.blocks_after_half.append(sys.getallocatedblocks())
            result.rss_after_half.append(_rss())
        client.close()
    result.wall_s = time.perf_counter() - started
    if len(result.blocks_after_half) == 2:
        if result.blocks_growth > cfg.memory_bound_blocks:
            result.problems.append(
                f"{result.blocks_growth:,} more Python heap blocks after the second half than "
                f"after the first (bound {cfg.memory_bound_blocks:,}): something leaks per call"
            )
        if result.rss_growth > cfg.memory_bound_rss:
            result.problems.append(
                f"resident memory grew {result.rss_growth / 2**20:.1f} MiB from the first half "
                f"to the second (bound {cfg.memory_bound_rss / 2**20:.0f} MiB)"
            )
    if result.rows and not result.retry_after_gaps_checked:
        result.problems.append("no 429 was followed by a retry: the Retry-After check saw nothing")
    return result


def describe(result: SoakResult) -> str:
    """A short plain-text summary (for test failures and the console)."""
    lines = [
        f"{result.calls} calls in {result.wall_s:.1f} s: {result.completions} completions, "
        f"errors {dict(result.errors_by_type)}",
        f"server requests {result.server_requests}, usage rows {result.rows}, "
        f"faults {dict(result.faults_by_kind)}",
        f"Retry-After gaps checked {result.retry_after_gaps_checked}, growth from half 1 to "
        f"half 2: {result.blocks_growth:,} heap blocks, {result.rss_growth / 2**20:.1f} MiB RSS",
    ]
    lines += [f"PROBLEM: {p}" for p in result.problems[:30]]
    return "\n".join(lines)


def python_info() -> str:
    return f"Python {sys.version.split()[0]} on {sys.platform}, {os.cpu_count()} CPUs"
