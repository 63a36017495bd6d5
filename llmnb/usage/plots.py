"""Cost and token plots of a usage DataFrame, with matplotlib.

Example::

    ax = llmnb.usage.get_tracker().plot_costs(by="provider")          # cumulative cost
    ax = tracker.plot_costs(by="model", kind="cost")                   # cost per group
    ax.figure.savefig("cost.png")

Kinds: ``"cumulative"`` (cost over time, one line per group, plus the total),
``"cost"`` (horizontal bars, USD per group) and ``"tokens"`` (input and output tokens
per group). Every function returns the matplotlib ``Axes`` it drew on (``ax.figure`` is
the Figure), and never calls ``plt.show()``. Rows of unknown cost are left out of the
dollar sums and said so in a note; a group whose cost is all unknown reads ``n/a``.

``pyplot=True`` (the tracker's default) creates the figure through pyplot so that a
notebook shows it. If no matplotlib backend was chosen (no ``MPLBACKEND``, no
``backend`` in matplotlibrc, no IPython), Agg is selected first, so scripts and CI
never need a display. ``pyplot=False`` builds a bare ``Figure`` (the dashboard renders
those to PNG itself, leaving pyplot's figure list alone).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
import sys
from typing import TYPE_CHECKING, Any

import pandas as pd
from matplotlib import dates as mdates
from matplotlib import ticker
from matplotlib.figure import Figure

from llmnb.usage.format import money_axis, tokens
from llmnb.usage.report import GROUPABLE, format_cost

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["KINDS", "plot_costs", "render_png"]

#: What ``plot_costs(kind=...)`` draws.
KINDS: tuple[str, ...] = ("cumulative", "cost", "tokens")

_MAX_GROUPS = 8  # more lines or bars than this stop being readable: the rest is "other"
_FIGSIZE = (7.5, 3.8)


def plot_costs(
    df: pd.DataFrame,
    by: str = "model",
    kind: str = "cumulative",
    ax: Axes | None = None,
    *,
    pyplot: bool = True,
) -> Axes:
    """Draw ``kind`` for the usage rows ``df`` grouped by ``by``; return the Axes."""
    if by not in GROUPABLE:
        raise ValueError(f"cannot plot by {by!r}: use one of {', '.join(GROUPABLE)}")
    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}: use one of {', '.join(KINDS)}")
    if ax is None:
        ax = _new_axes(pyplot)
    if not len(df):
        _empty(ax, "No usage recorded yet")
        return ax
    labels = _group_labels(df, by)
    if kind == "cumulative":
        _cumulative(ax, df, labels, by)
    elif kind == "cost":
        _cost_bars(ax, df, labels, by)
    else:
        _token_bars(ax, df, labels, by)
    return ax


def render_png(ax: Axes, dpi: int = 100) -> bytes:
    """The figure of ``ax`` as PNG bytes (Agg; works with any backend, no display)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig: Any = ax.figure
    fig = fig if isinstance(fig, Figure) else fig.figure  # a SubFigure's root Figure
    FigureCanvasAgg(fig)  # a bare Figure has no canvas that can print PNG yet
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# -- figures -------------------------------------------------------------------------------


def _new_axes(pyplot: bool) -> Axes:
    if pyplot:
        plt = _pyplot()
        fig = plt.figure(figsize=_FIGSIZE, layout="constrained")
    else:
        fig = Figure(figsize=_FIGSIZE, layout="constrained")
    axes: Axes = fig.add_subplot()
    return axes


def _pyplot() -> Any:
    """matplotlib.pyplot, after choosing Agg when nothing chose a backend."""
    if "matplotlib.pyplot" not in sys.modules:
        import matplotlib

        rc: Any = matplotlib.rcParams
        chosen = os.environ.get("MPLBACKEND") or rc._get_backend_or_none()
        if not chosen and "IPython" not in sys.modules:
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# -- data ------------------------------------------------------------------------------------


def _group_labels(df: pd.DataFrame, by: str) -> pd.Series:
    """One text label per row; the costliest groups keep theirs, the rest become "other"."""
    if by == "day":
        raw = df["time"].dt.strftime("%Y-%m-%d")
    else:
        raw = df[by].astype(object)
    labels = raw.map(lambda v: "(none)" if v is None or v is pd.NA or v != v else str(v))
    labels = labels.astype(object)
    if labels.nunique() > _MAX_GROUPS:
        rank = df["cost_usd"].fillna(0).groupby(labels).sum().sort_values(ascending=False)
        keep = set(rank.index[: _MAX_GROUPS - 1])
        labels = labels.where(labels.isin(keep), "other")
    result: pd.Series = labels
    return result


def _order(values: pd.Series) -> list[Any]:
    """Groups, largest first (unknown last)."""
    return list(values.sort_values(ascending=False, na_position="last").index)


# -- kinds -------------------------------------------------------------------------------


def _cumulative(ax: Axes, df: pd.DataFrame, labels: pd.Series, by: str) -> None:
    known = df["cost_usd"].notna()
    times = df["time"].dt.tz_convert("UTC").dt.tz_localize(None)
    frame = pd.DataFrame({"time": times, "group": labels, "cost": df["cost_usd"]})[known]
    frame = frame.sort_values("time", kind="stable")
    if frame.empty:
        _empty(ax, f"{len(df):,} calls, but no cost is known (n/a)")
        return
    per_group = frame.groupby("group")["cost"].sum()
    groups = _order(per_group)
    for group in groups:
        part = frame[frame["group"] == group]
        total = per_group[group]
        ax.step(
            part["time"],
            part["cost"].cumsum(),
            where="post",
            marker="o" if len(part) < 30 else None,
            markersize=3,
            label=f"{group} ({format_cost(total)})",
        )
    if len(groups) > 1:
        ax.step(
            frame["time"],
            frame["cost"].cumsum(),
            where="post",
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"total ({format_cost(per_group.sum())})",
        )
    _time_axis(ax, frame["time"])
    ax.set_ylabel("cumulative cost (USD)")
    ax.set_ylim(bottom=0)
    _dollar_axis(ax.yaxis, frame["cost"].sum())
    ax.set_title(f"Cumulative cost by {by}", loc="left")
    ax.legend(loc="upper left", fontsize="small", frameon=False)
    ax.grid(True, alpha=0.3)
    _unknown_note(ax, int((~known).sum()))


def _cost_bars(ax: Axes, df: pd.DataFrame, labels: pd.Series, by: str) -> None:
    cost = df["cost_usd"].groupby(labels).sum(min_count=1)
    groups = _order(cost)[::-1]  # barh draws bottom-up: costliest on top
    values = [0.0 if math.isnan(cost[g]) else float(cost[g]) for g in groups]
    bars = ax.barh([str(g) for g in groups], values, color="tab:blue")
    top = max(values) if values else 0.0
    for bar, group in zip(bars, groups, strict=True):
        text = format_cost(cost[group])
        ax.annotate(
            text,
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize="small",
            color="dimgray" if text == "n/a" else "black",
        )
    ax.set_xlim(0, top * 1.25 if top > 0 else 1e-3)
    _dollar_axis(ax.xaxis, top)
    ax.set_xlabel("cost (USD)")
    ax.set_title(f"Cost by {by}", loc="left")
    ax.grid(True, axis="x", alpha=0.3)
    _unknown_note(ax, int(df["cost_usd"].isna().sum()))


def _token_bars(ax: Axes, df: pd.DataFrame, labels: pd.Series, by: str) -> None:
    sums = pd.DataFrame(
        {
            "input": df["prompt_tokens"].astype("Float64").fillna(0).groupby(labels).sum(),
            "output": df["completion_tokens"].astype("Float64").fillna(0).groupby(labels).sum(),
        }
    )
    groups = _order(sums["input"] + sums["output"])[::-1]
    names = [str(g) for g in groups]
    inp = [float(sums.loc[g, "input"]) for g in groups]
    out = [float(sums.loc[g, "output"]) for g in groups]
    ax.barh(names, inp, color="tab:blue", label="input (prompt)")
    ax.barh(names, out, left=inp, color="tab:orange", label="output (completion)")
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(_tokens))
    ax.set_xlabel("tokens")
    ax.set_title(f"Tokens by {by}", loc="left")
    ax.legend(loc="lower right", bbox_to_anchor=(1, 1), ncols=2, fontsize="small", frameon=False)
    ax.grid(True, axis="x", alpha=0.3)


# -- decoration ----------------------------------------------------------------------------


class _Dollars(ticker.Formatter):
    """Ticks in llmnb's money format (``$0.0029``), so a notebook's few cents do not all
    read ``$0.00``; two ticks that would read alike get one more digit."""

    def format_ticks(self, values: Any) -> list[str]:
        labels = [money_axis(v) for v in values]
        if len(set(labels)) < len(labels):
            step = min((b - a for a, b in itertools.pairwise(values)), default=0)
            digits = max(2, 1 - math.floor(math.log10(step))) if step > 0 else 6
            labels = [f"${v:,.{digits}f}" if v > 0 else "$0" for v in values]
        return labels

    def __call__(self, x: float, pos: int | None = None) -> str:
        return money_axis(x)


def _dollar_axis(axis: Any, largest: float) -> None:
    axis.set_major_formatter(_Dollars())


#: (span up to, tick format, what the axis label adds): seconds, minutes, days, more.
_TIME_FORMATS = (
    (dt.timedelta(hours=6), "%H:%M:%S", "%Y-%m-%d"),
    (dt.timedelta(days=3), "%d %b %H:%M", "%Y"),
    (dt.timedelta.max, "%Y-%m-%d", ""),
)


def _time_axis(ax: Axes, times: pd.Series) -> None:
    """Limits around the calls (never years for one call, the points off the edges) and
    ticks that read as clock times or dates, with the date once in the axis label."""
    first, last = times.min().to_pydatetime(), times.max().to_pydatetime()
    span = last - first
    pad = max(span * 0.08, dt.timedelta(seconds=30))
    ax.set_xlim(first - pad, last + pad)  # type: ignore[arg-type]
    shown = span + 2 * pad
    tick, label = next((t, lab) for limit, t, lab in _TIME_FORMATS if shown <= limit)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter(tick))  # type: ignore[no-untyped-call]
    day = first.strftime(label) if label else ""
    if label and last.strftime(label) != day:
        day += " – " + last.strftime(label)
    ax.set_xlabel(f"time (UTC, {day})" if day else "time (UTC)")


def _tokens(value: float, _pos: Any) -> str:
    return tokens(value)


def _unknown_note(ax: Axes, unknown: int) -> None:
    if unknown:
        ax.text(
            1.0,
            1.01,
            f"{unknown:,} rows of unknown cost (n/a) not included",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize="x-small",
            color="dimgray",
        )


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="dimgray")
    ax.set_xticks([])
    ax.set_yticks([])
