"""What the usage dashboard shows, without any widget (plain tests cover it).

Example::

    from llmnb.notebook._dashboard_model import DashboardModel
    m = DashboardModel(tracker)
    view = m.view(by="model", window="24h")   # totals, summary table, recent rows
    view.totals["cost_usd"], view.table, view.recent
    m.plot_png(view.frame, by="model", kind="cumulative")   # PNG bytes (Agg)
    m.export_csv(view.frame, "usage.csv")

:class:`RefreshThrottle` turns a burst of new usage rows into one refresh per interval.
pandas and matplotlib are imported when a view or plot is first made, not at import.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from llmnb.usage import UsageTracker

__all__ = [
    "GROUPS",
    "PLOTS",
    "WINDOWS",
    "DashboardModel",
    "DashboardView",
    "RefreshThrottle",
    "recent_html",
    "table_html",
    "totals_html",
]

#: (label, column) choices of the group-by selector.
GROUPS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("provider", "provider"),
    ("profile", "profile"),
    ("agent", "agent"),
    ("day (UTC)", "day"),
    ("notebook cell", "cell"),
    ("session (kernel)", "session"),
    ("status", "status"),
)
#: (label, window) choices; windows are :func:`llmnb.usage.report.parse_since` texts.
WINDOWS: tuple[tuple[str, str], ...] = (
    ("all time", "all"),
    ("last hour", "1h"),
    ("last 24 hours", "24h"),
    ("last 7 days", "7d"),
    ("last 30 days", "30d"),
    ("today (UTC)", "today"),
)
#: (label, kind) choices of the plot selector.
PLOTS: tuple[tuple[str, str], ...] = (
    ("cumulative cost", "cumulative"),
    ("cost per group", "cost"),
    ("tokens per group", "tokens"),
)

_RECENT_COLUMNS = (
    "time",
    "profile",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_s",
    "status",
    "cell",
)


@dataclass(frozen=True)
class DashboardView:
    """One refresh's worth of data: the window's rows and what is shown of them."""

    frame: pd.DataFrame
    totals: dict[str, Any]
    table: pd.DataFrame
    recent: pd.DataFrame
    by: str
    window: str


class DashboardModel:
    """Reads a tracker and prepares the dashboard's numbers, tables and plots."""

    def __init__(self, tracker: UsageTracker, recent_rows: int = 10) -> None:
        self.tracker = tracker
        self.recent_rows = recent_rows

    def view(self, by: str = "model", window: str = "all") -> DashboardView:
        """Totals, the summary by ``by`` and the latest rows, for the ``window``."""
        from llmnb.usage.report import since_filter, summarize, totals

        frame = since_filter(self.tracker.to_dataframe(), window)
        table = summarize(frame, by)
        recent = frame.loc[:, list(_RECENT_COLUMNS)].tail(self.recent_rows).iloc[::-1]
        return DashboardView(frame, totals(frame), table, recent, by, window)

    def plot_png(self, frame: pd.DataFrame, by: str, kind: str) -> bytes:
        """The plot as PNG bytes, drawn on a bare Figure (no pyplot, any backend)."""
        from llmnb.usage.plots import plot_costs, render_png

        ax = plot_costs(frame, by, kind, pyplot=False)
        return render_png(ax)

    def store_line(self) -> str:
        """Where the rows are kept (and any problem with it), one line."""
        from llmnb.usage.stores import describe_store

        return describe_store(self.tracker.store)

    def store_problem(self) -> str:
        """``⚠ usage store degraded (3 rows waiting): …`` while the store is not healthy
        (see ``llmnb.usage.store_status``), else ''."""
        from llmnb.usage.status import store_status

        return store_status(self.tracker).line()

    @staticmethod
    def export_csv(frame: pd.DataFrame, path: str | Path) -> tuple[Path, int]:
        """Write ``frame`` as CSV (tags as JSON, times ISO UTC); returns (path, rows)."""
        out = Path(path).expanduser()
        if out.suffix == "":
            out = out.with_suffix(".csv")
        data = frame.copy()
        data["tags"] = data["tags"].map(lambda t: None if t is None else json.dumps(t, default=str))
        out.parent.mkdir(parents=True, exist_ok=True)
        data.to_csv(out, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
        return out, len(data)


class RefreshThrottle:
    """At most one ``refresh()`` per ``interval`` seconds, however many rows arrive.

    ``notify()`` is what a tracker listener calls (any thread, cheap): the first one
    schedules a refresh ``interval`` seconds later and the rest of the burst rides along.
    ``schedule(delay, fn)`` runs ``fn`` later (default: a daemon ``threading.Timer``);
    tests pass one that just collects ``fn``.
    """

    def __init__(
        self,
        refresh: Callable[[], object],
        interval: float = 1.0,
        schedule: Callable[[float, Callable[[], None]], object] | None = None,
    ) -> None:
        self._refresh = refresh
        self.interval = interval
        self._schedule = schedule or _timer
        self._lock = threading.Lock()
        self._pending = False
        self._cancelled = False

    @property
    def pending(self) -> bool:
        return self._pending

    def notify(self) -> None:
        with self._lock:
            if self._pending or self._cancelled:
                return
            self._pending = True
        self._schedule(self.interval, self._fire)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True

    def _fire(self) -> None:
        with self._lock:
            self._pending = False
            if self._cancelled:
                return
        self._refresh()


def _timer(delay: float, fn: Callable[[], None]) -> threading.Timer:
    timer = threading.Timer(delay, fn)
    timer.daemon = True  # a pending refresh must never keep the kernel from exiting
    timer.start()
    return timer


# -- HTML ------------------------------------------------------------------------------------


def totals_html(totals: dict[str, Any]) -> str:
    """The headline numbers as a row of small cards."""
    from llmnb.usage.format import duration, tokens
    from llmnb.usage.report import format_cost

    cost = format_cost(totals["cost_usd"])
    if totals["unknown_cost"]:
        cost += f" <small>+ {totals['unknown_cost']:,} n/a</small>"
    latency = totals["latency_p50_s"]
    cards = [
        ("requests", f"{totals['requests']:,}"),
        ("tokens in", tokens(totals["prompt_tokens"])),
        ("tokens out", tokens(totals["completion_tokens"])),
        ("cost", cost),
        ("errors", f"{totals['errors']:,}"),
        ("median latency", duration(latency)),
    ]
    cells = "".join(
        "<div style='padding:4px 14px 4px 0'>"
        f"<div style='font-size:0.8em;color:#666'>{html.escape(k)}</div>"
        f"<div style='font-size:1.3em'>{v}</div></div>"
        for k, v in cards
    )
    return f"<div style='display:flex;flex-wrap:wrap'>{cells}</div>"


def table_html(table: pd.DataFrame) -> str:
    """The summary per group (a Styler: right-aligned, units in headers, ``n/a``)."""
    from llmnb.usage.table import styled

    if table.empty:
        return "<i>No usage in this window.</i>"
    shown = table.copy()
    shown.index = shown.index.map(_label)
    return _scrolling(styled(shown).to_html())


def recent_html(recent: pd.DataFrame) -> str:
    """The latest rows, newest first."""
    from llmnb.usage.table import styled

    if recent.empty:
        return ""
    shown = recent.astype(object)
    shown["time"] = recent["time"].dt.strftime("%Y-%m-%d %H:%M:%S")
    for col in ("profile", "model", "status"):
        shown[col] = shown[col].map(_label)
    shown["cell"] = shown["cell"].map(lambda v: _count(v).replace("–", ""))
    return _scrolling(styled(shown).hide(axis="index").to_html())


def _scrolling(table: str) -> str:
    # The Styler keeps each row on one line (no wrapping); wide tables scroll sideways.
    return f"<div style='overflow-x:auto'>{table}</div>"


def _label(value: Any) -> str:
    try:
        missing = value is None or bool(value != value)
    except TypeError:  # pd.NA
        missing = True
    return "(none)" if missing else str(value)


def _count(value: Any) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "–"
