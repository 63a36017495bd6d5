"""Usage rows as pandas: the DataFrame of :mod:`llmnb.usage.record` and its summaries.

Imported only when a report is asked for, so that ``import llmnb.usage`` stays free of
pandas. Columns are built one by one with numpy (no row-wise DataFrame construction):
a million rows take well under a second.

Also here: :func:`totals` (the dashboard's headline numbers), :func:`parse_since` /
:func:`since_filter` (time windows such as ``"24h"``), :func:`format_cost` (NaN → ``n/a``,
never ``$0``) and :func:`summary_html` (the tracker's notebook repr).
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import re
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

__all__ = [
    "GROUPABLE",
    "SUMMARY_COLUMNS",
    "columns_to_dataframe",
    "format_cost",
    "parse_since",
    "records_to_dataframe",
    "since_filter",
    "summarize",
    "summary_html",
    "totals",
]

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

#: Columns ``summarize`` / ``plot_costs`` group by. A dict column ("tags") cannot be
#: grouped; "day" is the UTC date of "time"; "cell" is the notebook execution count.
GROUPABLE: tuple[str, ...] = (*(c for c in COLUMNS if c != "tags"), "day")
_GROUPABLE = GROUPABLE


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


def totals(df: pd.DataFrame) -> dict[str, Any]:
    """Headline numbers of a usage DataFrame.

    ``requests`` (distinct calls), ``attempts`` (rows), ``errors`` (failed attempts),
    ``prompt_tokens``, ``completion_tokens``, ``cost_usd`` (sum of known costs; NaN when
    there are rows but no cost is known), ``unknown_cost`` (rows without a known cost),
    ``latency_p50_s`` (median, NaN without rows).
    """
    n = len(df)
    cost = df["cost_usd"]
    known = cost.notna()
    return {
        "requests": int(df["call_id"].nunique()),
        "attempts": n,
        "errors": int((df["status"].astype(object) != "ok").sum()),
        "prompt_tokens": int(df["prompt_tokens"].sum()),
        "completion_tokens": int(df["completion_tokens"].sum()),
        "cost_usd": float(cost[known].sum()) if known.any() or n == 0 else math.nan,
        "unknown_cost": int(n - known.sum()),
        "latency_p50_s": float(df["latency_s"].median()) if n else math.nan,
    }


def format_cost(value: float | None) -> str:
    """``$1.23``, ``$0.0029``; ``n/a`` for an unknown (NaN) cost (:mod:`llmnb.usage.format`)."""
    from llmnb.usage.format import money

    return money(value)


_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_S = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str | None, now: _dt.datetime | None = None) -> _dt.datetime | None:
    """The start of a time window, as an aware UTC datetime; None means "all time".

    ``"30m"``, ``"24h"``, ``"7d"``, ``"2w"``; ``"today"`` (since UTC midnight); an ISO date
    or date-time (naive means UTC); ``"all"`` / ``None``. ValueError lists the forms.
    """
    if text is None or not str(text).strip() or str(text).strip().lower() == "all":
        return None
    raw = str(text).strip()
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if raw.lower() == "today":
        return now.astimezone(_dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if m := _SPAN.match(raw):
        return now - _dt.timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2).lower()])
    try:
        when = _dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            f"{raw!r} is not a time window: use e.g. 30m, 24h, 7d, 2w, today, all, or a date "
            "such as 2025-01-31 (UTC)"
        ) from None
    return when.replace(tzinfo=_dt.timezone.utc) if when.tzinfo is None else when


def since_filter(df: pd.DataFrame, since: str | _dt.datetime | None) -> pd.DataFrame:
    """The rows of ``df`` at or after ``since`` (a :func:`parse_since` text or a datetime)."""
    start = since if isinstance(since, _dt.datetime) else parse_since(since)
    if start is None:
        return df
    if start.tzinfo is None:
        start = start.replace(tzinfo=_dt.timezone.utc)
    kept: pd.DataFrame = df[df["time"] >= pd.Timestamp(start)]
    return kept


def summary_html(df: pd.DataFrame, by: str = "model", max_groups: int = 12) -> str:
    """A compact HTML table per ``by`` group plus a total line; unknown costs read ``n/a``."""
    t = totals(df)
    head = (
        f"<b>llmnb usage</b>: {t['requests']:,} calls, {t['attempts']:,} attempts, "
        f"{t['prompt_tokens']:,} → {t['completion_tokens']:,} tokens, "
        f"{html.escape(format_cost(t['cost_usd']))}"
    )
    if t["unknown_cost"]:
        from llmnb.usage.format import plural

        head += f" (+ {plural(t['unknown_cost'], 'row')} of unknown cost)"
    if t["errors"]:
        head += f", {t['errors']:,} errors"
    if not len(df):
        return f"<div>{head}</div>"
    table = summarize(df, by)
    cells = ["calls", "errors", "prompt_tokens", "completion_tokens", "cost_usd"]
    rows = []
    for key, row in islice(table.iterrows(), max_groups):
        label = "(none)" if key is None or (isinstance(key, float) and key != key) else str(key)
        tds = [f"<td style='text-align:left'>{html.escape(label)}</td>"]
        for c in cells:
            v = row[c]
            text = format_cost(v) if c == "cost_usd" else ("–" if pd.isna(v) else f"{int(v):,}")
            tds.append(f"<td>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    more = len(table) - max_groups
    if more > 0:
        rows.append(f"<tr><td colspan=6 style='text-align:left'>… {more} more</td></tr>")
    header = "".join(
        f"<th>{h}</th>" for h in (html.escape(by), "calls", "errors", "tokens in", "tokens out")
    )
    return (
        f"<div>{head}<table><thead><tr>{header}<th>cost</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


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
