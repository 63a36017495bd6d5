"""Small statistics and scheduling helpers shared by the benchmark sections."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

__all__ = ["Schedule", "interleaved", "median", "percentile", "ratio", "split"]

T = TypeVar("T")


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100, nearest rank), or NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN when either is missing or ``b`` is zero."""
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return math.nan
    return a / b


def split(total: int, rounds: int) -> list[int]:
    """``total`` items as ``rounds`` near-equal round sizes (none empty)."""
    rounds = max(1, min(rounds, total))
    base, extra = divmod(total, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


def interleaved(items: Sequence[T], rounds: int) -> list[tuple[int, T]]:
    """``(round, item)`` pairs: every round visits every item, in an order rotated by
    one per round, so no contender always runs first (warm caches) or last."""
    out: list[tuple[int, T]] = []
    n = len(items)
    for r in range(rounds):
        for i in range(n):
            out.append((r, items[(i + r) % n]))
    return out


class Schedule(Generic[T]):
    """``interleaved(items, rounds)``, stopping at a round boundary once ``budget_s``
    seconds have passed since the first round began: every finished round has every
    item, and the run stays bounded in time on a slow or busy machine."""

    def __init__(self, items: Sequence[T], rounds: int, budget_s: float | None = None) -> None:
        self.items = list(items)
        self.rounds = rounds
        self.budget_s = budget_s
        self.done = 0  # rounds finished

    def __iter__(self) -> Iterator[tuple[int, T]]:
        start = time.monotonic()
        n = len(self.items)
        for r in range(self.rounds):
            if r and self.budget_s is not None and time.monotonic() - start > self.budget_s:
                return
            for i in range(n):
                yield r, self.items[(i + r) % n]
            self.done = r + 1

    @property
    def note(self) -> str | None:
        """What to tell the reader when the budget cut the rounds short."""
        if self.done >= self.rounds or not self.items:
            return None
        return (
            f"stopped after {self.done} of {self.rounds} rounds: the time budget of "
            f"{self.budget_s:.0f} s was used up (the counts in the table are what ran)."
        )
