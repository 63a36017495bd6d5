"""Usage tables as people read them: a pandas ``Styler`` in a notebook, aligned text in a
terminal, both with the numbers of :mod:`llmnb.usage.format`.

Example::

    from llmnb.usage.table import UsageFrame, styled, text
    frame = UsageFrame(summarize(df, "model"))   # still a DataFrame (.loc, .sum …)
    frame                                        # in Jupyter: right-aligned, units in headers
    print(text(frame))                           # the same table for a terminal

Numbers are right-aligned, units are in the headers (``cost (USD)``, ``latency``), and an
unknown value reads ``n/a``. The data itself is never rounded: only its display is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from llmnb.usage import format as fmt

__all__ = ["HEADERS", "UsageFrame", "cell_text", "styled", "text"]

#: Column → header with its unit.
HEADERS: dict[str, str] = {
    "calls": "calls",
    "attempts": "attempts",
    "errors": "errors",
    "prompt_tokens": "tokens in",
    "completion_tokens": "tokens out",
    "total_tokens": "tokens",
    "cost_usd": "cost (USD)",
    "unknown_cost": "rows n/a cost",
    "latency_p50_s": "median latency",
    "latency_s": "latency",
}


def _missing(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _formatter(column: str) -> Callable[[Any], str] | None:
    if column.endswith("_usd"):
        return lambda v: "n/a" if _missing(v) else fmt.money(float(v))
    if column.endswith("tokens"):
        return lambda v: "n/a" if _missing(v) else fmt.tokens(float(v))
    if column.startswith("latency") and column.endswith("_s"):
        return lambda v: "n/a" if _missing(v) else fmt.duration(float(v))
    if column in HEADERS:
        return lambda v: "n/a" if _missing(v) else f"{int(v):,}"
    return None


def cell_text(column: str, value: Any) -> str:
    """One cell as shown: formatted by its column, ``n/a`` when unknown."""
    formatter = _formatter(column)
    if formatter is not None:
        return formatter(value)
    return "n/a" if _missing(value) else str(value)


def _numeric(frame: pd.DataFrame) -> list[Any]:
    return [c for c in frame.columns if _formatter(str(c)) is not None]


def styled(frame: pd.DataFrame) -> Styler:
    """``frame`` as a Styler: formatted, numbers right-aligned, units in the headers."""
    style = frame.style.format(
        {c: _formatter(str(c)) for c in _numeric(frame)}, na_rep="n/a"
    ).format_index(lambda v: "n/a" if _missing(v) else str(v))
    numbers = _numeric(frame)
    if numbers:
        style = style.set_properties(subset=numbers, **{"text-align": "right"})
    style = style.relabel_index([HEADERS.get(str(c), str(c)) for c in frame.columns], axis=1)
    result: Styler = style.set_table_styles(
        [
            {"selector": "th.col_heading", "props": "text-align: right; white-space: nowrap"},
            {"selector": "td, th", "props": "padding: 2px 8px; white-space: nowrap"},
        ]
    )
    return result


def text(frame: pd.DataFrame) -> str:
    """``frame`` as aligned plain text (numbers right-aligned) for a terminal."""
    names = [str(n) if n is not None else "" for n in frame.index.names]
    headers = [*names, *(HEADERS.get(str(c), str(c)) for c in frame.columns)]
    numeric = [False] * len(names) + [_formatter(str(c)) is not None for c in frame.columns]
    rows: list[list[str]] = []
    for key, row in frame.iterrows():
        keys = key if isinstance(key, tuple) else (key,)
        cells = ["(none)" if _missing(k) else str(k) for k in keys][: len(names)]
        cells += [cell_text(str(c), row[c]) for c in frame.columns]
        rows.append(cells)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


class UsageFrame(pd.DataFrame):
    """A DataFrame that shows itself as :func:`styled` / :func:`text`; its data is as is."""

    @property
    def _constructor(self) -> Any:
        return pd.DataFrame  # slices and arithmetic give plain DataFrames

    def _repr_html_(self) -> str:
        html: str = styled(pd.DataFrame(self)).to_html()
        return html

    def __repr__(self) -> str:
        return text(pd.DataFrame(self))
