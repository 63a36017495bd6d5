"""Metrics middleware: success rate and latency percentiles over recent attempts.

Keeps the outcome and latency of the last ``window`` attempts (a ring buffer: memory
stays bounded in a long-running kernel) plus running counts. ``LLMManager.get_status``
reads it.

Example::

    metrics = MetricsMiddleware()
    client.add_middleware(metrics)
    metrics.snapshot()     # {"success_rate": 1.0, "latency_p50_s": 0.21, ...}
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from typing import Any

from llmnb.middleware.base import Call, Middleware
from llmnb.types import Completion

__all__ = ["MetricsMiddleware", "percentile"]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(q / 100.0 * len(ordered)), 1)
    return ordered[rank - 1]


class MetricsMiddleware(Middleware):
    """Counts calls, attempts, errors by type and cache hits; latency percentiles."""

    def __init__(self, window: int = 1000) -> None:
        self._ok: deque[bool] = deque(maxlen=window)
        self._latency: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self.attempts = 0
        self.calls = 0
        self.failed_calls = 0
        self.cache_hits = 0
        self.errors: Counter[str] = Counter()

    def after_attempt(
        self, call: Call, completion: Completion | None, error: BaseException | None
    ) -> None:
        with self._lock:
            self.attempts += 1
            self._ok.append(error is None)
            if error is None:
                self._latency.append(call.latency)
            else:
                self.errors[type(error).__name__] += 1

    def after_call(self, call: Call, completion: Completion) -> Completion:
        with self._lock:
            self.calls += 1
            if completion.cached:
                self.cache_hits += 1
        return completion

    def call_failed(self, call: Call, error: BaseException) -> None:
        if getattr(error, "reask", False):
            return  # a structured answer that did not validate: the call goes on
        with self._lock:
            self.failed_calls += 1

    def snapshot(self) -> dict[str, Any]:
        """Counts, the success rate of recent attempts (NaN before any) and p50/p95
        latency in seconds of recent successful attempts."""
        with self._lock:
            ok = list(self._ok)
            latencies = list(self._latency)
            return {
                "calls": self.calls,
                "failed_calls": self.failed_calls,
                "attempts": self.attempts,
                "cache_hits": self.cache_hits,
                "errors": dict(self.errors),
                "success_rate": (sum(ok) / len(ok)) if ok else math.nan,
                "latency_p50_s": percentile(latencies, 50),
                "latency_p95_s": percentile(latencies, 95),
            }

    def __repr__(self) -> str:
        return f"MetricsMiddleware(attempts={self.attempts})"
