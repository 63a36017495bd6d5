"""Limiter accuracy: achieved rate vs configured, and over-limit 60-second windows.

Time is compressed: every scenario runs on a :class:`llmnb.middleware.ManualClock`, so
simulated minutes take milliseconds and the numbers do not depend on the machine.

Scenarios (demand always exceeds the limits, so the limiter is what decides):

* ``requests`` — 32 concurrent callers of small prompts against ``requests_per_minute``;
* ``input_tokens`` — 16 callers of large prompts against ``input_tokens_per_minute``;
* ``output_tokens`` — 16 callers reserving ``max_tokens=512`` but using 50–400 tokens,
  against ``output_tokens_per_minute`` (reservations are corrected when answers arrive);
* ``end_to_end`` — the real client (``LLMClient.complete``) over HTTP to FakeLLMServer
  with ``rate_limits`` from the profile, one caller.

The first three drive the :class:`~llmnb.middleware.RateLimiter` hooks from a
discrete-event simulation: callers ask ``before_attempt``; a caller told to wait is
woken exactly then; an admitted call "runs" for 0.5–3 s and reports its usage through
``after_attempt``. For each scenario: ``achieved_per_min`` = amount admitted in
``[0, D)`` / ``D`` minutes, ``ratio`` = achieved / configured, and
``over_limit_windows`` = how many windows ``[t, t + 60 s)`` starting at an admission
hold more than the limit (for every limited dimension). Output tokens are counted at
admission time, which is conservative.

Run: ``python bench/bench_limiter.py [tiny|full]``; ``run(size)`` returns the dict.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/bench_limiter.py` from the project root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmnb.client.client import LLMClient
from llmnb.middleware import ManualClock, RateLimiter
from llmnb.middleware.base import Call
from llmnb.providers import Provider
from llmnb.types import Completion, Usage, normalize_messages

__all__ = ["run"]

WINDOW = 60.0
MINUTES = {"tiny": 5, "full": 30}


class _NoIO(Provider):
    """Never called: the simulation only needs a client to build Call objects."""

    type_name = "sim"


@dataclass
class _Scenario:
    name: str
    limits: dict[str, float]  # requests / input_tokens / output_tokens per minute
    callers: int
    prompt_tokens: tuple[int, int]
    max_tokens: int
    output_tokens: tuple[int, int]
    binding: str  # the dimension the demand saturates


SCENARIOS = [
    _Scenario("requests", {"requests": 120}, 32, (20, 200), 64, (5, 60), "requests"),
    _Scenario(
        "input_tokens",
        {"requests": 1000, "input_tokens": 40_000},
        16,
        (1_500, 6_000),
        256,
        (50, 250),
        "input_tokens",
    ),
    _Scenario(
        "output_tokens",
        {"requests": 1000, "output_tokens": 8_000},
        16,
        (50, 400),
        512,
        (50, 400),
        "output_tokens",
    ),
]


def over_limit_windows(events: Sequence[tuple[float, float]], limit: float) -> tuple[int, float]:
    """(windows [t, t+60) starting at an event whose total exceeds ``limit``, the largest
    window total)."""
    events = sorted(events)
    times = [t for t, _ in events]
    prefix = [0.0]
    for _, amount in events:
        prefix.append(prefix[-1] + amount)
    over, worst, j = 0, 0.0, 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + WINDOW:
            j += 1
        total = prefix[j] - prefix[i]
        worst = max(worst, total)
        if total > limit + 1e-6:
            over += 1
    return over, worst


def _simulate(sc: _Scenario, minutes: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    clock = ManualClock()
    limiter = RateLimiter(
        sc.limits.get("requests"),
        sc.limits.get("input_tokens"),
        sc.limits.get("output_tokens"),
        profile=sc.name,
        clock=clock,
    )
    client = LLMClient(_NoIO("sim", {}, "sim-model"), cache=False)
    duration = minutes * WINDOW
    admitted: list[tuple[float, float, float]] = []  # time, input tokens, output tokens
    queue: list[tuple[float, int, int, str]] = []
    calls: dict[int, tuple[Call, int]] = {}
    seq = 0

    def new_call(caller: int) -> None:
        nonlocal seq
        tokens = rng.randint(*sc.prompt_tokens)
        prompt = "x" * (4 * tokens)
        call = Call(
            client,
            normalize_messages(prompt),
            {"max_tokens": sc.max_tokens},
            call_id=f"{caller}-{seq}",
            stream=False,
            tags=None,
            cache=None,
            started=clock.now(),
        )
        calls[caller] = (call, tokens)

    for caller in range(sc.callers):
        new_call(caller)
        heapq.heappush(queue, (0.0, seq, caller, "try"))
        seq += 1
    while queue:
        t, _, caller, kind = heapq.heappop(queue)
        if t >= duration:
            break
        clock.advance(t - clock.now())
        call, _ = calls[caller]
        if kind == "try":
            wait = limiter.before_attempt(call)
            if wait > 0:
                heapq.heappush(queue, (t + wait, seq, caller, "try"))
            else:
                out = rng.randint(*sc.output_tokens)
                estimate = call.data[limiter].amounts["input_tokens"]
                admitted.append((t, estimate, float(out)))
                call.data["out"] = out
                heapq.heappush(queue, (t + rng.uniform(0.5, 3.0), seq, caller, "done"))
        else:
            usage = Usage(int(admitted_estimate(call, limiter)), int(call.data.pop("out")))
            done = Completion(content="", model="sim-model", usage=usage)
            limiter.after_attempt(call, done, None)
            new_call(caller)
            heapq.heappush(queue, (t, seq, caller, "try"))
        seq += 1
    in_window = [a for a in admitted if a[0] < duration]
    column = {"requests": 0, "input_tokens": 1, "output_tokens": 2}
    result: dict[str, Any] = {"scenario": sc.name, "simulated_min": minutes}
    overs = 0
    for dim, limit in sc.limits.items():
        events = [(a[0], 1.0 if dim == "requests" else a[column[dim]]) for a in in_window]
        over, worst = over_limit_windows(events, limit)
        overs += over
        if dim == sc.binding:
            achieved = sum(e[1] for e in events) / minutes
            result.update(
                limit_dim=dim,
                configured_per_min=limit,
                achieved_per_min=round(achieved, 1),
                ratio=round(achieved / limit, 4),
                worst_window=worst,
            )
    result["requests"] = len(in_window)
    result["over_limit_windows"] = overs
    return result


def admitted_estimate(call: Call, limiter: RateLimiter) -> float:
    """The input tokens the limiter estimated (the simulated provider reports them)."""
    ticket = call.data.get(limiter)
    return float(ticket.amounts["input_tokens"]) if ticket is not None else 0.0


def _end_to_end(minutes: int) -> dict[str, Any]:
    """The real client and HTTP: FakeLLMServer sees each request at a clock time."""
    import yaml

    import llmnb
    from llmnb.testing import FakeLLMServer
    from llmnb.usage import UsageTracker

    rpm = 100
    clock = ManualClock()
    seen: list[float] = []
    with tempfile.TemporaryDirectory() as folder, FakeLLMServer() as server:
        settings = Path(folder) / "config" / "settings.yaml"
        settings.parent.mkdir()
        profile = {
            "type": "openai_compatible",
            "model": "m",
            "base_url": server.base_url,
            "rate_limits": {"requests_per_minute": rpm},
        }
        settings.write_text(
            yaml.safe_dump({"llm": {"active_provider": "e2e", "providers": {"e2e": profile}}})
        )
        server.set_handler(lambda request: seen.append(clock.now()))  # type: ignore[func-returns-value]
        old = os.environ.get("LLMNB_SETTINGS")
        os.environ["LLMNB_SETTINGS"] = str(settings)
        try:
            manager = llmnb.LLMManager.from_settings(clock=clock, tracker=UsageTracker())
            client = manager.get_client()
            duration = minutes * WINDOW
            while clock.now() < duration:
                client.complete("hi")
            manager.close()
        finally:
            if old is None:
                os.environ.pop("LLMNB_SETTINGS", None)
            else:
                os.environ["LLMNB_SETTINGS"] = old
    in_window = [t for t in seen if t < minutes * WINDOW]
    over, worst = over_limit_windows([(t, 1.0) for t in in_window], rpm)
    achieved = len(in_window) / minutes
    return {
        "scenario": "end_to_end",
        "simulated_min": minutes,
        "limit_dim": "requests",
        "configured_per_min": rpm,
        "achieved_per_min": round(achieved, 1),
        "ratio": round(achieved / rpm, 4),
        "worst_window": worst,
        "requests": len(in_window),
        "over_limit_windows": over,
    }


def run(size: str = "full") -> dict[str, Any]:
    """Run every scenario; ``size`` is ``tiny`` (5 simulated minutes) or ``full`` (30)."""
    if size not in MINUTES:
        raise ValueError(f"size must be one of {sorted(MINUTES)}, got {size!r}")
    minutes = MINUTES[size]
    started = time.perf_counter()
    scenarios = [_simulate(sc, minutes, seed=i) for i, sc in enumerate(SCENARIOS)]
    scenarios.append(_end_to_end(min(minutes, 10)))
    return {
        "size": size,
        "algorithm": "sliding-window log per dimension (60 s)",
        "min_ratio": min(s["ratio"] for s in scenarios),
        "over_limit_windows": sum(s["over_limit_windows"] for s in scenarios),
        "wall_s": round(time.perf_counter() - started, 2),
        "scenarios": scenarios,
    }


def _print(result: dict[str, Any]) -> None:
    head = f"{'scenario':<14}{'limit':>22}{'achieved/min':>14}{'ratio':>8}{'over-limit':>12}"
    print(head)
    for s in result["scenarios"]:
        limit = f"{s['configured_per_min']:g} {s['limit_dim']}/min"
        print(
            f"{s['scenario']:<14}{limit:>22}{s['achieved_per_min']:>14}"
            f"{s['ratio']:>8.1%}{s['over_limit_windows']:>12}"
        )
    print(
        f"min ratio {result['min_ratio']:.1%}, over-limit windows "
        f"{result['over_limit_windows']}, {result['wall_s']} s wall"
    )


if __name__ == "__main__":
    res = run(sys.argv[1] if len(sys.argv) > 1 else "full")
    _print(res)
    print(json.dumps(res))
