"""Usage reports: totals, time windows, cost formatting and the tracker's notebook repr."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from llmnb.usage import UsageTracker
from llmnb.usage.report import format_cost, parse_since, since_filter, summary_html, totals

NOW = dt.datetime(2025, 3, 10, 15, 30, tzinfo=dt.timezone.utc)


def test_totals_count_calls_tokens_cost_errors_and_latency() -> None:
    t = UsageTracker()
    t.record(100, 10, cost_usd=0.25, latency_s=1.0, call_id="a")
    t.record_unknown(status="RateLimitError", latency_s=0.1, call_id="b")
    t.record(50, 5, cost_usd=0.25, latency_s=3.0, call_id="b", attempt=2)
    t.record(1, 1, model="no-price", latency_s=2.0, call_id="c")
    assert totals(t.to_dataframe()) == {
        "requests": 3,
        "attempts": 4,
        "errors": 1,
        "prompt_tokens": 151,
        "completion_tokens": 16,
        "cost_usd": 0.5,
        "unknown_cost": 2,
        "latency_p50_s": 1.5,
    }


def test_totals_of_rows_whose_cost_is_all_unknown_is_nan_not_zero() -> None:
    t = UsageTracker()
    t.record(1, 1, model="no-price")
    assert math.isnan(totals(t.to_dataframe())["cost_usd"])
    empty = totals(UsageTracker().to_dataframe())
    assert empty["cost_usd"] == 0.0 and empty["requests"] == 0
    assert math.isnan(empty["latency_p50_s"])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (math.nan, "n/a"),
        (None, "n/a"),
        (0.0, "$0"),
        (1234.5, "$1,234.50"),
        (2.0, "$2.00"),
        (0.0123, "$0.012"),
        (0.000412, "$0.00041"),
        (0.5, "$0.50"),
    ],
)
def test_format_cost(value: float | None, text: str) -> None:
    assert format_cost(value) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", None),
        (None, None),
        ("30m", NOW - dt.timedelta(minutes=30)),
        ("24h", NOW - dt.timedelta(hours=24)),
        ("7d", NOW - dt.timedelta(days=7)),
        ("2w", NOW - dt.timedelta(weeks=2)),
        ("today", dt.datetime(2025, 3, 10, tzinfo=dt.timezone.utc)),
        ("2025-01-31", dt.datetime(2025, 1, 31, tzinfo=dt.timezone.utc)),
        ("2025-01-31T12:00:00+01:00", dt.datetime(2025, 1, 31, 11, tzinfo=dt.timezone.utc)),
    ],
)
def test_parse_since(text: str | None, expected: dt.datetime | None) -> None:
    assert parse_since(text, now=NOW) == expected


def test_parse_since_rejects_nonsense_listing_the_forms() -> None:
    with pytest.raises(ValueError, match=r"'yesterday-ish' is not a time window: use e.g. 30m"):
        parse_since("yesterday-ish")


def test_since_filter_and_summary_since() -> None:
    t = UsageTracker()
    t.record(1, 1, model="old", time=dt.datetime(2020, 1, 1))
    t.record(1, 1, model="new")
    assert list(since_filter(t.to_dataframe(), "1h")["model"]) == ["new"]
    assert list(t.summary(by="model", since="1h").index) == ["new"]
    assert list(t.summary(by="model", since=dt.datetime(2019, 1, 1)).index) == ["new", "old"]


def test_summary_by_notebook_cell() -> None:
    t = UsageTracker()
    t.record(10, 1, cell=4, cost_usd=0.1)
    t.record(10, 1, cell=4, cost_usd=0.1)
    t.record(10, 1, cell=7, cost_usd=0.5)
    table = t.summary(by="cell")
    assert list(table.index) == [7, 4] and list(table["calls"]) == [1, 2]


def test_tracker_html_repr_is_a_compact_table_with_na_for_unknown_costs() -> None:
    t = UsageTracker()
    t.record(1000, 100, model="gpt-4o", cost_usd=0.01)
    t.record(10, 10, model="<mystery>")
    html = t._repr_html_()
    assert "<table>" in html and "gpt-4o" in html
    assert "&lt;mystery&gt;" in html and "<mystery>" not in html  # escaped
    row = html[html.index("&lt;mystery&gt;") :]
    assert "n/a" in row[: row.index("</tr>")]
    assert "1 row of unknown cost" in html


def test_html_summary_of_no_rows_says_so_without_a_table() -> None:
    html = summary_html(UsageTracker().to_dataframe())
    assert "0 calls" in html and "<table>" not in html and "$0<" in html
