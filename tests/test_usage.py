"""The usage tracker: cost rules, the DataFrame contract, summaries, contexts, listeners."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from llmnb.usage import (
    COLUMNS,
    DTYPES,
    SESSION_ID,
    MemoryStore,
    UsageRecord,
    UsageTracker,
    get_tracker,
    reset_tracker,
    set_tracker,
)
from llmnb.usage.pricing import cost_of, price_for

ROOT = Path(__file__).resolve().parents[1]
OVERRIDE = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}


def run_python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


# -- imports ----------------------------------------------------------------------------


def test_import_loads_neither_pandas_nor_genai_prices_nor_ipython() -> None:
    out = run_python(
        "import sys, llmnb.usage; "
        "print([m for m in ('pandas', 'genai_prices', 'IPython') if m in sys.modules])"
    )
    assert out == "[]"


def test_recording_with_a_price_loads_genai_prices_but_not_pandas() -> None:
    out = run_python(
        "import sys; from llmnb.usage import UsageTracker; "
        "UsageTracker().record(10, 5, model='gpt-4o', provider='openai'); "
        "print('genai_prices' in sys.modules, 'pandas' in sys.modules, 'IPython' in sys.modules)"
    )
    assert out == "True False False"


# -- cost rules -------------------------------------------------------------------------


def test_cache_hit_costs_nothing() -> None:
    rec = UsageTracker().record(100, 50, model="gpt-4o", provider="openai", cached=True)
    assert rec.cost_usd == 0.0
    assert rec.cost_source == "cache"
    assert rec.cached is True


def test_provider_reported_cost_is_used_as_is() -> None:
    rec = UsageTracker().record(100, 50, model="gpt-4o", provider="openrouter", cost_usd=0.0123)
    assert rec.cost_usd == 0.0123
    assert rec.cost_source == "provider"


def test_nan_provider_cost_means_not_reported() -> None:
    rec = UsageTracker().record(100, 50, model="gpt-4o", provider="openai", cost_usd=math.nan)
    assert rec.cost_source == "price_table"
    assert rec.cost_usd > 0


def test_pricing_override_prices_the_tokens() -> None:
    rec = UsageTracker().record(1_000_000, 1_000_000, model="my-model", pricing=OVERRIDE)
    assert rec.cost_usd == pytest.approx(3.0)
    assert rec.cost_source == "price_table"


def test_price_table_prices_a_known_model() -> None:
    rec = UsageTracker().record(1000, 200, model="gpt-4o", provider="openai")
    price = price_for("gpt-4o", "openai")
    assert price is not None
    assert rec.cost_usd == pytest.approx(cost_of(price, 1000, 200))
    assert rec.cost_source == "price_table"


def test_openrouter_style_model_id_is_priced() -> None:
    rec = UsageTracker().record(1000, 200, model="anthropic/claude-sonnet-4.5", provider=None)
    assert rec.cost_source == "price_table"
    assert rec.cost_usd > 0


def test_guessed_token_counts_are_labelled_estimate() -> None:
    rec = UsageTracker().record(1000, 200, model="gpt-4o", provider="openai", estimated=True)
    assert rec.cost_source == "estimate"
    assert rec.cost_usd > 0


def test_unknown_price_gives_nan_and_unknown_never_zero() -> None:
    rec = UsageTracker().record(1000, 200, model="mock-1", provider="mock")
    assert math.isnan(rec.cost_usd)
    assert rec.cost_source == "unknown"


def test_explicit_cost_source_wins_for_the_label() -> None:
    rec = UsageTracker().record(10, 5, cost_usd=0.5, cost_source="invoice")
    assert (rec.cost_usd, rec.cost_source) == (0.5, "invoice")


def test_cached_prompt_tokens_are_billed_at_the_cached_rate() -> None:
    pricing = {**OVERRIDE, "cached_input_per_mtok": 0.25}
    rec = UsageTracker().record(1000, 100, cached_tokens=800, pricing=pricing)
    assert rec.cost_usd == pytest.approx((200 * 1.0 + 800 * 0.25 + 100 * 2.0) / 1e6)


def test_reasoning_tokens_are_part_of_completion_and_not_billed_twice() -> None:
    t = UsageTracker()
    with_reasoning = t.record(100, 50, reasoning_tokens=30, pricing=OVERRIDE)
    without = t.record(100, 50, pricing=OVERRIDE)
    assert with_reasoning.cost_usd == without.cost_usd
    assert with_reasoning.total_tokens == 150


# -- record / record_unknown --------------------------------------------------------------


def test_record_fills_every_column() -> None:
    t = UsageTracker(session="s1")
    rec = t.record(
        10,
        5,
        cached_tokens=2,
        reasoning_tokens=1,
        model="m",
        provider="p",
        profile="prof",
        agent="planner",
        step="draft",
        latency_s=0.5,
        ttft_s=0.1,
        status="ok",
        call_id="c1",
        attempt=2,
        key_id="sk-…a1b2",
        cell=7,
        tags={"run": "a"},
        pricing=OVERRIDE,
        time=1_700_000_000.0,
        kind="embedding",
        round=2,
        attachments=3,
    )
    assert isinstance(rec, UsageRecord)
    assert rec._fields == COLUMNS
    assert rec._asdict() == {
        "time": 1_700_000_000.0,
        "session": "s1",
        "profile": "prof",
        "provider": "p",
        "model": "m",
        "agent": "planner",
        "step": "draft",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cached_tokens": 2,
        "reasoning_tokens": 1,
        "total_tokens": 15,
        "cost_usd": pytest.approx((8 * 1.0 + 2 * 1.0 + 5 * 2.0) / 1e6),
        "cost_source": "price_table",
        "latency_s": 0.5,
        "ttft_s": 0.1,
        "status": "ok",
        "error": None,
        "call_id": "c1",
        "attempt": 2,
        "cached": False,
        "key_id": "sk-…a1b2",
        "cell": 7,
        "tags": {"run": "a"},
        "cache_write_tokens": 0,
        "kind": "embedding",
        "round": 2,
        "attachments": 3,
    }
    assert t.records == [rec]


def test_default_session_is_the_process_session_id() -> None:
    assert UsageTracker().record(1, 1).session == SESSION_ID
    assert UsageTracker(session="abc").record(1, 1).session == "abc"


def test_each_record_gets_its_own_call_id_unless_given() -> None:
    t = UsageTracker()
    ids = {t.record(1, 1).call_id for _ in range(100)}
    assert len(ids) == 100
    assert t.record(1, 1, call_id="mine").call_id == "mine"


def test_tags_are_copied_so_later_changes_do_not_rewrite_history() -> None:
    tags = {"run": "a"}
    rec = UsageTracker().record(1, 1, tags=tags)
    tags["run"] = "b"
    assert rec.tags == {"run": "a"}


def test_tags_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="tags must be a mapping"):
        UsageTracker().record(1, 1, tags=["a"])  # type: ignore[arg-type]


def test_exception_as_error_is_stored_as_text() -> None:
    rec = UsageTracker().record_unknown(status="TimeoutError", error=TimeoutError("too slow"))
    assert rec.error == "TimeoutError: too slow"


def test_record_unknown_has_na_tokens_nan_cost_and_unknown_source() -> None:
    t = UsageTracker()
    rec = t.record_unknown(model="gpt-4o", provider="openai", status="APIError", error="boom")
    assert (rec.prompt_tokens, rec.completion_tokens, rec.total_tokens) == (None, None, None)
    assert (rec.cached_tokens, rec.reasoning_tokens) == (None, None)
    assert math.isnan(rec.cost_usd)
    assert rec.cost_source == "unknown"
    row = t.to_dataframe().iloc[0]
    assert row["prompt_tokens"] is pd.NA
    assert row["total_tokens"] is pd.NA
    assert row["status"] == "APIError"


def test_record_unknown_of_a_cache_hit_still_costs_nothing() -> None:
    rec = UsageTracker().record_unknown(cached=True)
    assert (rec.cost_usd, rec.cost_source) == (0.0, "cache")


def test_unknown_keyword_raises_type_error_listing_accepted_ones() -> None:
    t = UsageTracker()
    with pytest.raises(TypeError, match="'modle'") as info:
        t.record(1, 1, modle="gpt-4o")
    assert "model" in str(info.value) and "cached_tokens" in str(info.value)
    with pytest.raises(TypeError, match="'cached_tokens'"):
        t.record_unknown(cached_tokens=3)
    assert len(t) == 0


def test_datetime_time_is_stored_as_utc_and_naive_means_utc() -> None:
    t = UsageTracker()
    naive = t.record(1, 1, time=dt.datetime(2025, 1, 2, 3, 4, 5))
    aware = t.record(
        1, 1, time=dt.datetime(2025, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    )
    expected = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert naive.datetime == expected
    assert aware.datetime == expected


def test_cell_is_none_outside_ipython() -> None:
    out = run_python(
        "from llmnb.usage import UsageTracker; print(UsageTracker().record(1, 1).cell)"
    )
    assert out == "None"


def test_cell_is_the_execution_count_inside_a_running_ipython_shell() -> None:
    code = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "shell.run_cell('from llmnb.usage import UsageTracker; t = UsageTracker()',"
        " store_history=True)\n"
        "shell.run_cell('x = 1', store_history=True)\n"
        "shell.run_cell('rec = t.record(1, 1)', store_history=True)\n"
        "print(shell.user_ns['rec'].cell)\n"
    )
    assert run_python(code) == "3"


def test_cell_number_follows_every_cell_a_silent_run_and_a_replaced_shell() -> None:
    # The number is cached per execution: each new cell, a cell run silently (no new
    # number), rows recorded between cells and a new shell must still get the right one.
    code = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "from llmnb.usage import UsageTracker\n"
        "t = UsageTracker()\n"
        "shell = InteractiveShell.instance()\n"
        "shell.user_ns['t'] = t\n"
        "seen = []\n"
        "for i in range(4):\n"
        "    r = shell.run_cell('a = t.record(1, 1).cell; b = t.record(1, 1).cell',"
        " store_history=True)\n"
        "    seen.append((r.execution_count, shell.user_ns['a'], shell.user_ns['b']))\n"
        "    seen.append(('between', t.record(1, 1).cell))\n"
        "shell.run_cell('c = t.record(1, 1).cell', silent=True)\n"
        "seen.append(('silent', shell.user_ns['c']))\n"
        "InteractiveShell.clear_instance()\n"
        "other = InteractiveShell.instance()\n"
        "other.user_ns['t'] = t\n"
        "r = other.run_cell('d = t.record(1, 1).cell', store_history=True)\n"
        "seen.append(('new shell', r.execution_count, other.user_ns['d']))\n"
        "print(seen)\n"
    )
    assert run_python(code) == str(
        [
            (1, 1, 1),
            ("between", 1),
            (2, 2, 2),
            ("between", 2),
            (3, 3, 3),
            ("between", 3),
            (4, 4, 4),
            ("between", 4),
            ("silent", 4),
            ("new shell", 1, 1),
        ]
    )


# -- DataFrame contract ---------------------------------------------------------------------


def make_rows(t: UsageTracker) -> None:
    t.record(100, 20, model="gpt-4o", provider="openai", profile="oa", call_id="a", latency_s=1.0)
    t.record_unknown(model="gpt-4o", provider="openai", call_id="b", status="RateLimitError")
    t.record(100, 20, model="gpt-4o", provider="openai", call_id="b", attempt=2, latency_s=3.0)
    t.record(10, 5, model="mock-1", provider="mock", call_id="c", latency_s=0.1, tags={"k": 1})


def test_dataframe_has_exactly_the_columns_in_order_with_their_dtypes() -> None:
    t = UsageTracker()
    make_rows(t)
    df = t.to_dataframe()
    assert list(df.columns) == list(COLUMNS)
    assert df.dtypes.astype(str).to_dict() == DTYPES
    assert len(df) == 4


def test_dtype_contract_is_the_documented_one() -> None:
    assert DTYPES["time"] == "datetime64[ns, UTC]"
    for col in (
        "session",
        "profile",
        "provider",
        "model",
        "agent",
        "step",
        "cost_source",
        "status",
    ):
        assert DTYPES[col] == "category"
    for col in ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens"):
        assert DTYPES[col] == "Int64"
    for col in ("total_tokens", "attempt", "cell"):
        assert DTYPES[col] == "Int64"
    assert [DTYPES[c] for c in ("cost_usd", "latency_s", "ttft_s")] == ["float64"] * 3
    assert DTYPES["cached"] == "bool"
    assert [DTYPES[c] for c in ("error", "call_id", "key_id", "tags")] == ["object"] * 4
    assert tuple(DTYPES) == COLUMNS


def test_empty_tracker_gives_empty_dataframe_with_same_columns_and_dtypes() -> None:
    df = UsageTracker().to_dataframe()
    assert df.empty
    assert list(df.columns) == list(COLUMNS)
    assert df.dtypes.astype(str).to_dict() == DTYPES


def test_dataframe_times_are_utc() -> None:
    t = UsageTracker()
    t.record(1, 1, time=dt.datetime(2025, 6, 1, 12, 0, 0, 250000, tzinfo=dt.timezone.utc))
    stamp = t.to_dataframe()["time"].iloc[0]
    assert str(stamp.tz) == "UTC"
    assert stamp == pd.Timestamp("2025-06-01 12:00:00.25", tz="UTC")


def test_dataframe_values_match_the_records() -> None:
    t = UsageTracker()
    make_rows(t)
    df = t.to_dataframe()
    assert df["call_id"].tolist() == ["a", "b", "b", "c"]
    assert df["prompt_tokens"].tolist() == [100, pd.NA, 100, 10]
    assert df["cost_source"].tolist() == ["price_table", "unknown", "price_table", "unknown"]
    assert df["status"].tolist() == ["ok", "RateLimitError", "ok", "ok"]
    assert df["tags"].tolist() == [None, None, None, {"k": 1}]
    assert df["error"].tolist() == [None] * 4
    assert df["cost_usd"].isna().tolist() == [False, True, False, True]


def test_dataframe_is_right_across_store_chunks() -> None:
    t = UsageTracker()
    n = MemoryStore.CHUNK * 2 + 17
    for i in range(n):
        t.record(i, 1, model=f"m{i % 3}", call_id=str(i), pricing=OVERRIDE, cell=i)
    df = t.to_dataframe()
    assert len(df) == len(t) == n
    assert df["prompt_tokens"].tolist() == list(range(n))
    assert df["model"].tolist() == [f"m{i % 3}" for i in range(n)]
    assert df["call_id"].tolist() == [str(i) for i in range(n)]
    assert [r.prompt_tokens for r in t.records] == list(range(n))


def test_an_unhashable_label_is_kept_as_text_without_breaking_the_store() -> None:
    t = UsageTracker()
    t.record(1, 1, step=["not", "a", "str"])  # type: ignore[arg-type]
    t.record(1, 1, step="draft")
    df = t.to_dataframe()
    assert df["step"].tolist() == ["['not', 'a', 'str']", "draft"]
    assert len(t.records) == 2


def test_category_columns_keep_missing_values_as_nan() -> None:
    t = UsageTracker()
    t.record(1, 1, model="b", agent=None)
    t.record(1, 1, model="a", agent="x")
    df = t.to_dataframe()
    assert list(df["model"].cat.categories) == ["a", "b"]
    assert df["agent"].isna().tolist() == [True, False]


# -- summary ----------------------------------------------------------------------------


def test_summary_counts_calls_attempts_errors_and_unknown_costs_per_model() -> None:
    t = UsageTracker()
    make_rows(t)
    s = t.summary(by="model")
    assert list(s.index) == ["gpt-4o", "mock-1"]  # costliest first
    gpt = s.loc["gpt-4o"]
    assert gpt["calls"] == 2  # "a" and "b" (b was retried)
    assert gpt["attempts"] == 3
    assert gpt["errors"] == 1
    assert gpt["unknown_cost"] == 1
    assert gpt["prompt_tokens"] == 200
    assert gpt["total_tokens"] == 240
    assert gpt["latency_p50_s"] == pytest.approx(2.0)
    assert gpt["cost_usd"] == pytest.approx(t.records[0].cost_usd * 2)
    assert math.isnan(s["cost_usd"]["mock-1"])  # nothing known: NaN, not 0
    assert s.at["mock-1", "unknown_cost"] == 1


def test_summary_columns() -> None:
    t = UsageTracker()
    make_rows(t)
    assert list(t.summary().columns) == [
        "calls",
        "attempts",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_usd",
        "unknown_cost",
        "latency_p50_s",
    ]


def test_summary_by_several_columns() -> None:
    t = UsageTracker()
    make_rows(t)
    s = t.summary(by=["provider", "model"])
    assert s.index.names == ["provider", "model"]
    assert s.loc[("openai", "gpt-4o"), "attempts"] == 3


def test_summary_keeps_rows_without_a_value_as_their_own_group() -> None:
    t = UsageTracker()
    t.record(1, 1, agent="planner", pricing=OVERRIDE)
    t.record(1, 1, agent=None, pricing=OVERRIDE)
    s = t.summary(by="agent")
    assert s["attempts"].sum() == 2


def test_summary_by_day_groups_by_utc_date() -> None:
    t = UsageTracker()
    utc = dt.timezone.utc
    t.record(1, 1, pricing=OVERRIDE, time=dt.datetime(2025, 3, 1, 23, 30, tzinfo=utc))
    # 00:30 on March 2nd in UTC, although it is still March 1st in New York
    t.record(
        1,
        1,
        pricing=OVERRIDE,
        time=dt.datetime(2025, 3, 1, 19, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    )
    t.record(1, 1, pricing=OVERRIDE, time=dt.datetime(2025, 3, 2, 1, 0, tzinfo=utc))
    s = t.summary(by="day")
    assert s.index.name == "day"
    assert dict(s["attempts"]) == {dt.date(2025, 3, 1): 1, dt.date(2025, 3, 2): 2}


def test_summary_with_an_unknown_column_raises_listing_valid_ones() -> None:
    t = UsageTracker()
    with pytest.raises(ValueError, match="'modle'") as info:
        t.summary(by="modle")
    assert "model" in str(info.value) and "day" in str(info.value)
    with pytest.raises(ValueError):
        t.summary(by=["model", "nope"])


def test_summary_of_empty_tracker_is_empty_with_columns() -> None:
    s = UsageTracker().summary()
    assert s.empty
    assert "cost_usd" in s.columns


# -- reading helpers ----------------------------------------------------------------------


def test_len_clear_total_cost_and_repr() -> None:
    t = UsageTracker()
    assert t.total_cost() == 0.0
    make_rows(t)
    assert len(t) == 4
    assert t.total_cost() == pytest.approx(t.records[0].cost_usd * 2)
    assert repr(t).startswith("<UsageTracker 4 rows, 3 calls, $")
    assert "(2 rows with unknown cost)" in repr(t)
    t.clear()
    assert len(t) == 0 and t.records == []


def test_total_cost_is_nan_when_no_cost_is_known() -> None:
    t = UsageTracker()
    t.record_unknown()
    assert math.isnan(t.total_cost())


class ListStore:
    """A store with only the two required methods."""

    def __init__(self) -> None:
        self.rows: list[UsageRecord] = []

    def append(self, records: list[UsageRecord]) -> None:
        self.rows.extend(records)

    def load(self) -> list[UsageRecord]:
        return list(self.rows)


def test_a_minimal_store_receives_rows_and_feeds_reports() -> None:
    store = ListStore()
    t = UsageTracker(store=store)
    make_rows(t)
    assert len(store.rows) == 4 and len(t) == 4
    df = t.to_dataframe()
    assert df.dtypes.astype(str).to_dict() == DTYPES
    assert t.summary().loc["gpt-4o", "attempts"] == 3
    with pytest.raises(TypeError, match="cannot be cleared"):
        t.clear()


# -- current tracker ------------------------------------------------------------------------


def test_default_tracker_is_one_process_wide_tracker() -> None:
    def in_fresh_context() -> UsageTracker:
        box: list[UsageTracker] = []
        th = threading.Thread(target=lambda: box.append(get_tracker()))
        th.start()
        th.join()
        return box[0]

    first = in_fresh_context()
    assert isinstance(first, UsageTracker)
    assert in_fresh_context() is first


def test_set_tracker_and_reset() -> None:
    t = UsageTracker()
    before = get_tracker()
    token = set_tracker(t)
    try:
        assert get_tracker() is t
    finally:
        reset_tracker(token)
    assert get_tracker() is before


def test_set_tracker_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="UsageTracker"):
        set_tracker("nope")  # type: ignore[arg-type]


def test_activate_sets_the_tracker_for_a_block_and_restores_it() -> None:
    outer, inner = UsageTracker(), UsageTracker()
    with outer.activate():
        with inner.activate() as active:
            assert active is inner
            get_tracker().record(1, 1)
        assert get_tracker() is outer
    assert len(inner) == 1 and len(outer) == 0


def test_asyncio_tasks_record_into_their_own_trackers() -> None:
    async def work(tracker: UsageTracker, n: int) -> None:
        set_tracker(tracker)
        for _ in range(n):
            await asyncio.sleep(0)  # interleave with the other task
            get_tracker().record(1, 1)

    a, b = UsageTracker(), UsageTracker()

    async def main() -> None:
        await asyncio.gather(work(a, 5), work(b, 7))

    asyncio.run(main())
    assert (len(a), len(b)) == (5, 7)


def test_threads_record_into_their_own_trackers() -> None:
    trackers = [UsageTracker() for _ in range(4)]
    barrier = threading.Barrier(4)

    def work(tracker: UsageTracker, n: int) -> None:
        set_tracker(tracker)
        barrier.wait()
        for _ in range(n):
            get_tracker().record(1, 1)

    threads = [threading.Thread(target=work, args=(t, 10 + i)) for i, t in enumerate(trackers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert [len(t) for t in trackers] == [10, 11, 12, 13]


def test_concurrent_threads_lose_no_rows() -> None:
    t = UsageTracker()
    barrier = threading.Barrier(8)

    def work(k: int) -> None:
        barrier.wait()
        for i in range(1000):
            t.record(i, k, pricing=OVERRIDE, call_id=f"{k}-{i}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(t) == 8000
    df = t.to_dataframe()
    assert len(df) == 8000
    assert df["call_id"].nunique() == 8000
    # columns stay aligned: each row's call_id matches its own token counts
    assert (
        df["call_id"] == df["completion_tokens"].astype(str) + "-" + df["prompt_tokens"].astype(str)
    ).all()


def test_rows_recorded_while_reading_are_neither_lost_nor_doubled() -> None:
    # MemoryStore appends without the tracker's lock; a flush (forced here by readers)
    # must move out exactly the rows it counted. A tiny switch interval makes the threads
    # interleave inside record(), flush and the readers as often as possible.
    t = UsageTracker()
    stop = threading.Event()
    seen: list[int] = []

    def write(k: int) -> None:
        for i in range(3000):
            t.record(i, k, pricing=OVERRIDE, call_id=f"{k}-{i}")

    def read() -> None:
        while not stop.is_set():
            seen.append(len(t.to_dataframe()))

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        reader = threading.Thread(target=read)
        reader.start()
        writers = [threading.Thread(target=write, args=(k,)) for k in range(6)]
        for th in writers:
            th.start()
        for th in writers:
            th.join()
        stop.set()
        reader.join()
    finally:
        sys.setswitchinterval(old)
    df = t.to_dataframe()
    assert len(df) == len(t) == 18000
    assert df["call_id"].nunique() == 18000
    assert (
        df["call_id"] == df["completion_tokens"].astype(str) + "-" + df["prompt_tokens"].astype(str)
    ).all()
    assert seen == sorted(seen)  # a reader never sees rows vanish
    assert len(seen) > 1


# -- listeners ----------------------------------------------------------------------------


def test_listeners_receive_each_record_until_removed() -> None:
    t = UsageTracker()
    seen: list[UsageRecord] = []
    t.add_listener(seen.append)
    rec = t.record(1, 1)
    assert seen == [rec]
    t.remove_listener(seen.append)
    t.record(1, 1)
    assert seen == [rec]


def test_removing_a_listener_that_was_never_added_raises_value_error() -> None:
    with pytest.raises(ValueError, match="not a listener"):
        UsageTracker().remove_listener(print)


def test_raising_listener_does_not_break_recording(caplog: pytest.LogCaptureFixture) -> None:
    t = UsageTracker()
    seen: list[Any] = []

    def broken(record: UsageRecord) -> None:
        raise RuntimeError("dashboard is gone")

    t.add_listener(broken)
    t.add_listener(seen.append)
    with caplog.at_level(logging.WARNING, logger="llmnb.usage"):
        t.record(1, 1)
        t.record(1, 1)
    assert len(t) == 2
    assert len(seen) == 2  # later listeners still run
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # logged once, not on every row
    assert "listener" in warnings[0].getMessage()
