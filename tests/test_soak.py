"""The fault soak at suite size: 300 async calls at 32 concurrent, 30 % faults.

The engine (``tests/soak/_engine.py``) is shared with the on-demand run
(``python -m tests.soak``, 2,000 calls; result in ``bench/RESULTS_SOAK.md``).
"""

from __future__ import annotations

import gc
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from soak._engine import (
    SoakConfig,
    SoakResult,
    _check_half,
    _FaultPlan,
    _Outcome,
    describe,
    run_soak,
)

import llmnb
from llmnb.middleware import ManualClock
from llmnb.testing import FakeLLMServer, Fault
from llmnb.usage import UsageTracker


@pytest.mark.slow
def test_300_calls_under_30_percent_faults_keep_every_invariant(tmp_path: Path) -> None:
    cfg = SoakConfig(requests=300, concurrency=32, liveness_s=120.0)
    result = run_soak(cfg, tmp_path)
    assert result.ok, describe(result)
    # The run exercised what it claims to check (otherwise a pass would mean little).
    assert result.calls == 300
    assert result.completions > 200 and sum(result.errors_by_type.values()) > 0
    kinds = {"rate_limit", "5xx", "reset", "slow", "cut_stream", "malformed"}
    assert kinds <= set(result.faults_by_kind), result.faults_by_kind
    assert 0.2 < sum(result.faults_by_kind.values()) / result.server_requests < 0.4
    assert result.rows == result.server_requests > 300
    assert result.retried_calls > 0 and result.retry_after_gaps_checked > 10
    assert {"stream:ok", "complete:ok"} <= set(result.outcome_by_kind)
    assert len(result.blocks_after_half) == 2


def _post(srv: FakeLLMServer, n: int) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": f"soak-call-{n}"}]}
    httpx.post(f"{srv.base_url}/chat/completions", json=body, timeout=10)


def test_the_checks_catch_a_lost_row_a_wrong_attempt_count_and_an_early_retry() -> None:
    """The soak's invariants are real: a doctored run is reported, item by item."""
    cfg = SoakConfig(fault_rate=0.0)
    plan = _FaultPlan(cfg, seed=1)
    with FakeLLMServer() as srv:
        srv.set_handler(plan)
        for n in (0, 1, 1):
            _post(srv, n)
        tracker = UsageTracker()
        tracker.record(1, 1, call_id="a", attempt=1, tags={"soak": 0})
        tracker.record(1, 1, call_id="b", attempt=1, tags={"soak": 1})  # call 1's 2nd is lost
        # A 429 asking for 50 ms, answered by a retry 1 ms later.
        t0 = plan.log[1][0][0]
        plan.log[1] = [(t0, Fault.rate_limit(retry_after=0.05)), (t0 + 0.001, None)]
        outcomes = [_Outcome(0, "complete", "ok", attempts=2), _Outcome(1, "stream", "ok", 1)]
        result = SoakResult(cfg)
        _check_half(result, outcomes, tracker, srv, plan)
    text = "\n".join(result.problems)
    assert "2 usage rows but the server received 3 requests" in text
    assert "call 1: 1 rows but 2 requests received" in text
    assert "call 0: Completion.attempts=2, server saw 1" in text
    assert "call 1: retried 0.0010 s after a 429 with Retry-After 0.05" in text
    assert Counter(result.outcome_by_kind) == {"complete:ok": 1, "stream:ok": 1}


def _heap_blocks() -> int:
    gc.collect()
    return sys.getallocatedblocks()


def test_memory_stays_flat_over_many_minutes_of_rate_limited_calls(tracker) -> None:
    """A long-running kernel with ``rate_limits:``: what the limiter keeps of past calls
    is the last minute's (its sliding window), so after each minute it must not have
    grown. 2 × 2,000 calls on a manual clock, each batch in its own minute."""
    clock = ManualClock()
    limits = {"requests_per_minute": 1_000_000, "input_tokens_per_minute": 10**9}
    with llmnb.LLMManager(clock=clock, tracker=tracker) as manager:
        manager.add_provider("limited", "mock", {"model": "m", "rate_limits": limits})
        client = manager.get_client("limited")

        def a_minute_of_calls() -> int:
            for i in range(2_000):
                client.complete(f"call {i}", cache=False)
            clock.advance(61)  # the minute is over: none of these is in a window now
            client.complete("the next minute begins", cache=False)
            tracker.clear()  # the rows are meant to be kept: leave them out of the count
            return _heap_blocks()

        first = a_minute_of_calls()
        second = a_minute_of_calls()
    assert second - first < 2_000, f"{second - first:,} more heap blocks after a minute"
