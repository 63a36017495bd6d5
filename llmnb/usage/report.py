"""Usage rows as pandas: the DataFrame of :mod:`llmnb.usage.record` and its summaries.

Imported only when a report is asked for, so that ``import llmnb.usage`` stays free of
pandas. Columns are built one by one with numpy (no row-wise DataFrame construction):
a million rows take well under a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

import numpy as np
import pandas as pd

from llmnb.usage.record import (
    CATEGORY_COLUMNS,
    COLUMNS,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    CodedColumn,
    UsageRecord,
)

__all__ = ["SUMMARY_COLUMNS", "columns_to_dataframe", "records_to_dataframe", "summarize"]

#: Columns of :func:`summarize`, in order.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "calls",
    "attempts",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "unknown_cost",
    "latency_p50_s",
)

# Grouping by a dict column cannot work; "day" is derived from "time".
_GROUPABLE: tuple[str, ...] = (*(c for c in COLUMNS if c != "tags"), "day")


def records_to_dataframe(records: Iterable[UsageRecord]) -> pd.DataFrame:
    """A usage DataFrame from rows (e.g. a store's ``load()``)."""
    rows = list(records)
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in COLUMNS]
    return columns_to_dataframe(columns)


def columns_to_dataframe(columns: Sequence[Any], n: int | None = None) -> pd.DataFrame:
    """A usage DataFrame from one sequence (or :class:`CodedColumn`) per column, in
    :data:`COLUMNS` order; only the first ``n`` items of each are read (default: all)."""
    if len(columns) != len(COLUMNS):
        raise ValueError(
            f"expected {len(COLUMNS)} columns ({', '.join(COLUMNS)}), got {len(columns)}"
        )
    if n is None:
        first = columns[0]
        n = len(first.codes if isinstance(first, CodedColumn) else first)
    data: dict[str, Any] = {}
    for name, col in zip(COLUMNS, columns, strict=True):
        if name in CATEGORY_COLUMNS:
            data[name] = _category(col, n)
        elif name in INT_COLUMNS:
            data[name] = _int64(col, n)
        elif name in FLOAT_COLUMNS:
            data[name] = _float64(col, n)
        elif name == "time":
            # epoch seconds -> ns, rounded to the microsecond a float can hold exactly
            us = np.rint(_float64(col, n) * 1e6).astype(np.int64)
            data[name] = pd.DatetimeIndex((us * 1000).view("M8[ns]")).tz_localize("UTC")
        elif name == "cached":
            data[name] = np.fromiter(col, dtype=bool, count=n)
        else:  # error, call_id, key_id, tags: Python objects, None kept as None
            # an explicit object Series: pandas 3 would otherwise infer its "str" dtype
            # for some of them (and NaN for None), depending on the content.
            objects = np.fromiter(col, dtype=object, count=n)
            data[name] = pd.Series(objects, dtype=object, copy=False)
    df: pd.DataFrame = pd.DataFrame(data, columns=list(COLUMNS), copy=False)
    return df


def summarize(df: pd.DataFrame, by: str | Sequence[str] = "model") -> pd.DataFrame:
    """Per group of ``by``: calls (distinct call_id), attempts (rows), errors, tokens, cost
    (sum of known costs, NaN if none is known), unknown_cost (rows without a known cost)
    and latency_p50_s; costliest group first. ``by="day"`` groups by UTC date."""
    keys = [by] if isinstance(by, str) else list(by)
    bad = [k for k in keys if k not in _GROUPABLE]
    if bad or not keys:
        raise ValueError(
            f"cannot summarize by {bad or keys!r}: use one or more of {', '.join(_GROUPABLE)}"
        )
    frame = df.assign(
        _error=df["status"].astype(object) != "ok",
        _unknown=df["cost_usd"].isna(),
    )
    if "day" in keys:
        frame["day"] = frame["time"].dt.date
    # dropna=False: rows without a model (or agent…) form their own group, not vanish.
    g = frame.groupby(keys, observed=True, dropna=False, sort=True)
    out = pd.DataFrame(
        {
            "calls": g["call_id"].nunique(),
            "attempts": g.size(),
            "errors": g["_error"].sum(),
            "prompt_tokens": g["prompt_tokens"].sum(min_count=1),
            "completion_tokens": g["completion_tokens"].sum(min_count=1),
            "total_tokens": g["total_tokens"].sum(min_count=1),
            "cost_usd": g["cost_usd"].sum(min_count=1),
            "unknown_cost": g["_unknown"].sum(),
            "latency_p50_s": g["latency_s"].median(),
        },
        columns=list(SUMMARY_COLUMNS),
    )
    out = out.astype(
        {
            "calls": "int64",
            "attempts": "int64",
            "errors": "int64",
            "unknown_cost": "int64",
            "cost_usd": "float64",
            "latency_p50_s": "float64",
        }
    )
    ordered: pd.DataFrame = out.sort_values(
        "cost_usd", ascending=False, na_position="last", kind="stable"
    )
    return ordered


# -- column builders ---------------------------------------------------------------------


def _category(col: Sequence[Any] | CodedColumn, n: int) -> pd.Categorical:
    if isinstance(col, CodedColumn):
        codes = np.frombuffer(col.codes, dtype=np.int32, count=n) if n else np.empty(0, np.int32)
        values = col.categories
    else:
        # pd.Categorical(list_of_str) hashes through pandas' string machinery (~150 ms per
        # million rows); a column holds a handful of distinct objects: map them directly.
        code_of: dict[Any, int] = {None: -1}
        values = []
        for v in set(islice(col, n)):
            if v is not None:
                code_of[v] = len(values)
                values.append(v)
        codes = np.fromiter(map(code_of.__getitem__, col), dtype=np.int32, count=n)
    # Categories sorted, as pandas does; a lookup table re-maps the codes (-1 stays -1).
    try:
        order = sorted(range(len(values)), key=values.__getitem__)
    except TypeError:  # mixed types (an int step name): still deterministic
        order = sorted(range(len(values)), key=lambda i: str(values[i]))
    new_code = np.empty(len(values) + 1, dtype=np.int32)
    new_code[order] = np.arange(len(values), dtype=np.int32)
    new_code[-1] = -1
    return pd.Categorical.from_codes(
        new_code[codes], categories=pd.Index([values[i] for i in order])
    )


def _int64(col: Sequence[Any], n: int) -> pd.api.extensions.ExtensionArray:
    try:
        values = np.fromiter(col, dtype=np.int64, count=n)
        mask = np.zeros(n, dtype=bool)
    except TypeError:  # some None (unknown): go through float, where None becomes NaN
        floats = np.array(col[:n], dtype=np.float64)
        mask = np.isnan(floats)
        values = np.where(mask, 0, floats).astype(np.int64)
    return pd.arrays.IntegerArray(values, mask)


def _float64(col: Sequence[Any], n: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    try:
        return np.fromiter(col, dtype=np.float64, count=n)
    except TypeError:  # None -> NaN
        return np.array(col[:n], dtype=np.float64)
