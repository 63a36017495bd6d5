"""What a batch returns: :class:`BatchResult` (items in input order) and :class:`DryRun`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmnb.types import Completion, MessagesLike

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_OUTPUT_ESTIMATE", "BatchItem", "BatchResult", "DryRun"]

#: Output tokens assumed per row by a dry run when the call sets no ``max_tokens``.
DEFAULT_OUTPUT_ESTIMATE = 256


@dataclass(slots=True)
class BatchItem:
    """One prompt's outcome: ``output`` (text, or the ``response_model`` object) or
    ``error`` (``"ErrorType: message"``), never both."""

    index: int
    prompt: MessagesLike
    output: Any = None
    error: str | None = None
    completion: Completion | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


class BatchResult(Sequence[BatchItem]):
    """The items of a batch, in input order, and its totals."""

    def __init__(self, items: list[BatchItem], mode: str = "direct") -> None:
        self.items = items
        self.mode = mode

    def __getitem__(self, i: Any) -> Any:
        return self.items[i]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[BatchItem]:
        return iter(self.items)

    @property
    def outputs(self) -> list[Any]:
        return [it.output for it in self.items]

    @property
    def errors(self) -> list[str | None]:
        return [it.error for it in self.items]

    @property
    def failed(self) -> int:
        return sum(1 for it in self.items if it.error is not None)

    @property
    def cached(self) -> int:
        """Rows answered from the response cache (no model call)."""
        return sum(1 for it in self.items if it.completion is not None and it.completion.cached)

    @property
    def cost_usd(self) -> float:
        """USD of the answered rows; NaN if some row's price is unknown."""
        return _sum_costs(it.completion for it in self.items)

    def summary(self) -> dict[str, Any]:
        return {
            "rows": len(self),
            "answered": len(self) - self.failed,
            "errors": self.failed,
            "cached": self.cached,
            "cost_usd": self.cost_usd,
            "mode": self.mode,
        }

    def to_dataframe(self) -> pd.DataFrame:
        """Columns ``output``, ``error``, ``cost_usd``, ``cached`` — one row per prompt."""
        import pandas as pd

        frame: pd.DataFrame = pd.DataFrame(
            {
                "output": pd.Series(self.outputs, dtype=object),
                "error": pd.Series(self.errors, dtype=object),
                "cost_usd": [
                    it.completion.cost_usd if it.completion else math.nan for it in self.items
                ],
                "cached": [bool(it.completion and it.completion.cached) for it in self.items],
            }
        )
        return frame

    def __repr__(self) -> str:
        s = self.summary()
        cost = "cost n/a" if math.isnan(s["cost_usd"]) else f"${s['cost_usd']:.4f}"
        return (
            f"<BatchResult {s['rows']} rows: {s['answered']} answered ({s['cached']} cached), "
            f"{s['errors']} errors, {cost}>"
        )


@dataclass(slots=True)
class DryRun:
    """What a batch would send and roughly cost; nothing was sent.

    ``cost_usd`` counts input tokens estimated from the text and, as output, each call's
    ``max_tokens`` (an upper bound) or :data:`DEFAULT_OUTPUT_ESTIMATE`; NaN with
    ``cost_source="unknown"`` when the model's price is unknown. ``batch_api`` halves it.
    """

    prompts: list[MessagesLike]
    input_tokens: list[int]
    output_tokens: list[int]
    cost_usd: float
    cost_source: str
    model: str
    mode: str = "direct"

    def to_dataframe(self) -> pd.DataFrame:
        import pandas as pd

        frame: pd.DataFrame = pd.DataFrame(
            {
                "prompt": pd.Series(self.prompts, dtype=object),
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
            }
        )
        return frame

    def __repr__(self) -> str:
        cost = "unknown" if math.isnan(self.cost_usd) else f"≈ ${self.cost_usd:.4f}"
        return (
            f"<DryRun {len(self.prompts)} prompts to {self.model!r} ({self.mode}): "
            f"{sum(self.input_tokens):,} input + ≤{sum(self.output_tokens):,} output tokens, "
            f"{cost}>"
        )


def _sum_costs(completions: Iterable[Completion | None]) -> float:
    # NaN propagates: a row of unknown price never makes the total look cheaper.
    return math.fsum(c.cost_usd for c in completions if c is not None)
