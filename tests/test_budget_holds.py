"""Budgets hold under concurrency and across kernels (issue 15, section 1).

Each attempt's estimated cost is reserved while it is in flight and settled with its
real cost, so concurrent calls cannot all pass one check; day/week/month windows are
read from the usage store, so another kernel's spend counts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import servers
from _magics_shell import ip_fixture, run

import llmnb
import llmnb.batch
from llmnb import config, errors
from llmnb.middleware import budget
from llmnb.testing import FakeLLMServer, Fault
from llmnb.usage import UsageTracker, get_tracker, set_tracker
from llmnb.usage.memory import MemoryStore
from llmnb.usage.sqlite_store import SQLiteStore

ip = ip_fixture
pg_url = servers.postgres_url_fixture()
ROOT = Path(__file__).resolve().parents[1]

# $1 per million tokens in and out.
PRICING = {"input_per_mtok": 1.0, "output_per_mtok": 1.0}
# The server's answer is longer than max_tokens, so every answer is cut at MAX_TOKENS:
# the real cost of a call is then close to its estimate (the hardest case to hold).
LONG = "word " * 400
MAX_TOKENS = 40
PROMPT = "Please answer with many words about budgets."


@pytest.fixture(autouse=True)
def _fresh_budget() -> Iterator[None]:
    budget.reset_spend()
    budget.reset_session_budget()
    yield
    budget.reset_spend()
    budget.reset_session_budget()


@pytest.fixture
def slow_server() -> Iterator[FakeLLMServer]:
    # A little latency keeps the concurrent calls in flight together.
    with FakeLLMServer(default_response=LONG, latency=0.05) as srv:
        yield srv


@pytest.fixture
def make(
    slow_server: FakeLLMServer, write_settings: Callable[[dict[str, Any]], Any]
) -> Callable[..., llmnb.LLMClient]:
    def build(usage: dict[str, Any] | None = None, **profile: Any) -> llmnb.LLMClient:
        prof = {
            "type": "openai_compatible",
            "model": "m",
            "base_url": slow_server.base_url,
            "pricing": PRICING,
            "max_tokens": MAX_TOKENS,
            "max_retries": 0,
            **profile,
        }
        data: dict[str, Any] = {"llm": {"active_provider": "p", "providers": {"p": prof}}}
        data["usage"] = {"store": "memory", **(usage or {})}
        write_settings(data)
        return llmnb.create_llm_client_from_profile()

    return build


def one_call_cost(client: llmnb.LLMClient) -> float:
    """The real cost of one call of the kind the tests make; spend is reset after it."""
    cost = client.complete(PROMPT).cost_usd
    assert cost > 0
    budget.reset_spend()
    return cost


async def gather(client: llmnb.LLMClient, n: int) -> list[Any]:
    return await asyncio.gather(
        *(client.acomplete(PROMPT) for _ in range(n)), return_exceptions=True
    )


def rows_by_status(tracker: UsageTracker) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in tracker.records:
        out[r.status] = out.get(r.status, 0) + 1
    return out


# -- concurrency -------------------------------------------------------------------------


def test_32_concurrent_calls_spend_at_most_the_limit_plus_one_call(make, slow_server, tracker):
    client = make()
    cost = one_call_cost(client)
    tracker.clear()
    before = len(slow_server.requests)
    limit = 11 * cost
    budget.set_session_budget(limit)

    results = asyncio.run(gather(client, 32))

    sent = [r for r in results if isinstance(r, llmnb.Completion)]
    refused = [r for r in results if isinstance(r, errors.BudgetExceededError)]
    assert len(sent) + len(refused) == 32, [type(r) for r in results]
    spent = budget.get_session_spend()
    assert spent <= limit + cost, f"limit ${limit:.6f}, spent ${spent:.6f}, {len(sent)} sent"
    assert len(slow_server.requests) - before == len(sent)
    # Waiting for reservations to settle (rather than refusing at once) uses the budget.
    assert len(sent) >= 8
    # Every call left exactly one row; every refusal says it was not sent.
    assert len(tracker.records) == 32
    assert rows_by_status(tracker) == {"ok": len(sent), "BudgetExceededError": len(refused)}
    for r in tracker.records:
        if r.status == "BudgetExceededError":
            assert (r.cost_source, r.cost_usd, r.prompt_tokens) == ("not_sent", 0.0, None)
    assert budget.get_session_reserved() == 0.0
    assert math_close(spent, sum(c.cost_usd for c in sent))


def math_close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-12 + 1e-9 * abs(b)


def test_threads_hold_the_budget_too(make, slow_server, tracker):
    client = make()
    cost = one_call_cost(client)
    limit = 5 * cost
    budget.set_session_budget(limit)
    outcomes: list[Any] = []

    def one() -> None:
        try:
            outcomes.append(client.complete(PROMPT))
        except errors.BudgetExceededError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 16
    assert budget.get_session_spend() <= limit + cost
    assert budget.get_session_reserved() == 0.0


def test_batch_map_at_its_default_concurrency_stays_within_the_budget(make, slow_server, tracker):
    client = make()
    cost = one_call_cost(client)
    tracker.clear()
    limit = 10 * cost
    budget.set_session_budget(limit)

    res = llmnb.batch.map([PROMPT] * 40, profile="p", progress=False)

    spent = budget.get_session_spend()
    done = [o for o in res.outputs if o is not None]
    refused = [e for e in res.errors if e and e.startswith("BudgetExceededError")]
    assert spent <= limit + cost, f"limit ${limit:.6f}, spent ${spent:.6f}, {len(done)} sent"
    assert len(done) + len(refused) == 40 and len(done) >= 7
    assert len(tracker.records) == 40
    assert sum(r.cost_source == "not_sent" for r in tracker.records) == len(refused)


def test_a_profile_budget_holds_under_concurrency(make, slow_server, tracker):
    client = make()
    cost = one_call_cost(client)
    client = make(budget_usd=6 * cost)
    results = asyncio.run(gather(client, 24))
    refused = [r for r in results if isinstance(r, errors.BudgetExceededError)]
    assert refused and all(r.scope == "profile p" for r in refused)
    assert budget.get_profile_spend("p") <= 7 * cost


# -- failures and cancellation give the reservation back -------------------------------------


def test_a_failed_call_gives_its_reservation_back(make, slow_server, tracker):
    client = make()
    cost = one_call_cost(client)
    tracker.clear()
    # Room for one call and a half: while the first call is in flight the others wait.
    budget.set_session_budget(1.5 * cost)
    slow_server.script(Fault.status(500))

    results = asyncio.run(gather(client, 3))

    kinds = sorted(type(r).__name__ for r in results)
    # The failed call cost nothing, so one more call could be answered; then it is spent.
    assert kinds == ["BudgetExceededError", "Completion", "ProviderError"], kinds
    assert budget.get_session_reserved() == 0.0
    assert math_close(budget.get_session_spend(), cost)
    assert rows_by_status(tracker) == {"ProviderError": 1, "ok": 1, "BudgetExceededError": 1}


def test_a_connection_reset_gives_its_reservation_back(make, slow_server, tracker):
    client = make()
    cost = one_call_cost(client)
    budget.set_session_budget(1.5 * cost)
    slow_server.script(Fault.reset(), Fault.reset())
    for _ in range(2):
        with pytest.raises(errors.NetworkError):
            client.complete(PROMPT)
    assert budget.get_session_reserved() == 0.0 and budget.get_session_spend() == 0.0
    assert client.complete(PROMPT).content  # the whole budget is still there


def test_a_cancelled_call_gives_its_reservation_back(make, slow_server, tracker):
    client = make()
    cost = one_call_cost(client)
    budget.set_session_budget(1.5 * cost)
    slow_server.script(Fault.slow(3))

    async def cancel_in_flight() -> None:
        before = len(slow_server.requests)
        task = asyncio.ensure_future(client.acomplete(PROMPT))
        for _ in range(500):  # until the server has the request: the call is in flight
            await asyncio.sleep(0.01)
            if len(slow_server.requests) > before:
                break
        assert budget.get_session_reserved() > 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_in_flight())
    assert budget.get_session_reserved() == 0.0
    assert tracker.records[-1].status == "cancelled"
    assert client.complete(PROMPT).content


def test_an_abandoned_stream_gives_its_reservation_back(make, slow_server, tracker):
    client = make()
    cost = one_call_cost(client)
    budget.set_session_budget(1.5 * cost)
    stream = client.stream(PROMPT)
    next(stream)
    assert budget.get_session_reserved() > 0
    stream.close()
    assert budget.get_session_reserved() == 0.0
    assert budget.get_session_spend() > 0  # the tokens that arrived are billed


def test_a_call_does_not_wait_for_its_own_unfinished_stream(make, slow_server, tracker):
    client = make()
    cost = one_call_cost(client)
    budget.set_session_budget(1.5 * cost)
    stream = client.stream(PROMPT)
    next(stream)  # in flight, held by this very thread: waiting for it would hang
    t0 = time.monotonic()
    with pytest.raises(errors.BudgetExceededError) as info:
        client.complete(PROMPT)
    assert time.monotonic() - t0 < 5
    assert info.value.reserved_usd > 0 and "reserved by calls in flight" in str(info.value)
    stream.close()


# -- windows from the usage store: other kernels count ------------------------------------------

CHILD = """
import sys, time
import llmnb
from llmnb.middleware.budget import window_start
from llmnb.usage import get_tracker

client = llmnb.create_llm_client_from_profile()
spent = 0.0
for _ in range(int(sys.argv[1])):
    spent += client.complete("Please answer with many words about budgets.").cost_usd
# A big row from before the window (yesterday, or last week): it must not count.
get_tracker().record(10, 10, model="m", provider="openai_compatible", profile="p",
                     cost_usd=100.0, time=window_start(sys.argv[2]) - 60)
print(repr(spent))
"""


def run_child(tmp_path: Path, calls: int, window: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(calls), window],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return float(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("where", ["usage", "profile"])
def test_a_day_budget_counts_what_another_kernel_spent(
    where, slow_server, write_settings, tmp_path
):
    prof: dict[str, Any] = {
        "type": "openai_compatible",
        "model": "m",
        "base_url": slow_server.base_url,
        "pricing": PRICING,
        "max_tokens": MAX_TOKENS,
    }
    usage: dict[str, Any] = {"store": "sqlite:///.llmnb/usage.db"}
    # The limit is set after the child ran (it must be able to spend freely).
    settings = {"llm": {"active_provider": "p", "providers": {"p": prof}}, "usage": usage}
    write_settings(settings)
    child_spent = run_child(tmp_path, 4, "day")  # another kernel, on the same usage.db
    cost = child_spent / 4
    limit = 7 * cost
    if where == "usage":
        usage.update(budget_usd=limit, budget_window="day")
    else:
        prof.update(budget_usd=limit, budget_window="day")
    write_settings(settings)
    client = llmnb.create_llm_client_from_profile()
    assert isinstance(get_tracker().store, SQLiteStore)

    state = {s.scope: s for s in budget.budget_status()}
    scope = "session" if where == "usage" else "profile p"
    assert state[scope].window == "day" and math_close(state[scope].spent_usd, child_spent)

    sent = 0
    with pytest.raises(errors.BudgetExceededError) as info:
        for _ in range(10):
            client.complete(PROMPT)
            sent += 1
    # Without the other kernel's 4 calls this kernel could have made 7.
    assert 1 <= sent <= 3
    assert child_spent + budget.get_session_spend() <= limit + cost
    err = info.value
    assert err.window == "day" and err.scope == scope
    assert err.spent_usd >= child_spent and "since" in str(err) and "every kernel" in str(err)


def test_a_session_budget_ignores_other_kernels(slow_server, write_settings, tmp_path):
    prof = {"type": "openai_compatible", "model": "m", "base_url": slow_server.base_url}
    prof.update(pricing=PRICING, max_tokens=MAX_TOKENS)
    settings: dict[str, Any] = {"llm": {"active_provider": "p", "providers": {"p": prof}}}
    write_settings(settings)
    child_spent = run_child(tmp_path, 3, "day")
    settings["usage"] = {"budget_usd": child_spent}  # budget_window: session (the default)
    write_settings(settings)
    client = llmnb.create_llm_client_from_profile()
    client.complete(PROMPT)  # this kernel spent nothing yet: allowed
    (state,) = budget.budget_status()
    assert state.window == "session" and state.since is None
    assert math_close(state.spent_usd, budget.get_session_spend())


def test_stores_sum_what_other_sessions_spent_since_a_time(tmp_path):
    since = time.time() - 100
    rows = [
        # (session, profile, cost, seconds after `since`)
        ("me", "p", 1.0, 10),
        ("other", "p", 2.0, 10),
        ("other", "q", 4.0, 10),
        ("other", "p", 8.0, -10),  # before the window
        ("other", "p", float("nan"), 10),  # unknown cost: not counted, not NaN
        ("other", "p", 0.0, 10),
    ]
    for store in (MemoryStore(), SQLiteStore(tmp_path / "u.db")):
        for session, profile, cost, dt in rows:
            UsageTracker(session=session, store=store).record(
                1, 1, model="m", provider="x", profile=profile, cost_usd=cost, time=since + dt
            )
        if isinstance(store, SQLiteStore):
            assert store.flush()
        assert store.spent_since(since) == 7.0
        assert store.spent_since(since, exclude_session="me") == 6.0
        assert store.spent_since(since, profile="p", exclude_session="me") == 2.0
        assert store.spent_since(since - 20) == 15.0
    assert SQLiteStore(tmp_path / "missing.db").spent_since(since) == 0.0


def test_postgres_store_sums_what_other_sessions_spent(pg_url, make, slow_server):
    from llmnb.usage.postgres_store import PostgresStore

    since = budget.window_start("month")
    assert since is not None
    other = PostgresStore(pg_url, who={"user": "bob", "host": "h", "notebook": None})
    for profile, cost, dt in [("p", 2.0, 1), ("q", 4.0, 1), ("p", 8.0, -60), ("p", math.nan, 1)]:
        UsageTracker(session="bob-kernel", store=other).record(
            1, 1, model="m", provider="x", profile=profile, cost_usd=cost, time=since + dt
        )
    assert other.close()
    mine = PostgresStore(pg_url, who={"user": "alice", "host": "h", "notebook": None})
    assert mine.spent_since(since) == 6.0
    assert mine.spent_since(since, profile="p") == 2.0
    assert mine.spent_since(since, exclude_session="bob-kernel") == 0.0
    # A month budget of $7 with $6 spent by the other kernel leaves room for ~$1.
    token = set_tracker(UsageTracker(store=mine))
    try:
        client = make(usage={"budget_usd": 7.0, "budget_window": "month"})
        (state,) = budget.budget_status()
        assert (state.window, state.spent_usd) == ("month", 6.0)
        budget.set_session_budget(6.0 + 1e-9)
        with pytest.raises(errors.BudgetExceededError) as info:
            client.complete(PROMPT)
        assert info.value.spent_usd == 6.0 and info.value.window == "month"
    finally:
        token.var.reset(token)
        mine.close()


# The store's writer warns about the damaged file in its own words, from its own thread.
@pytest.mark.filterwarnings("ignore::llmnb.usage.memory.UsageStoreWarning")
def test_a_usage_store_that_cannot_be_read_warns_once_and_counts_this_kernel(
    make, slow_server, tmp_path, caplog
):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    store = SQLiteStore(bad)
    token = set_tracker(UsageTracker(store=store))
    try:
        client = make(usage={"budget_usd": 1.0, "budget_window": "week"})
        cost = client.complete(PROMPT).cost_usd
        budget.set_session_budget(2.5 * cost)
        with pytest.raises(errors.BudgetExceededError):
            for _ in range(4):
                client.complete(PROMPT)
    finally:
        token.var.reset(token)
        store.close()
    warned = [r for r in caplog.records if "other kernels' spend could not be read" in r.message]
    assert len(warned) == 1 and "bad.db" in warned[0].message
    assert budget.get_session_spend() <= 3.5 * cost  # this kernel's own spend still counts


def test_window_starts_are_local_midnights():
    now = time.time()
    day, week, month = (budget.window_start(w, now) for w in ("day", "week", "month"))
    assert budget.window_start("session", now) is None
    assert day is not None and week is not None and month is not None
    assert month <= day and week <= day <= now < day + 25 * 3600
    for start in (day, week, month):
        t = time.localtime(start)
        assert (t.tm_hour, t.tm_min, t.tm_sec) == (0, 0, 0)
    assert time.localtime(week).tm_wday == 0 and time.localtime(month).tm_mday == 1


# -- settings ---------------------------------------------------------------------------------


def test_a_bad_window_or_warn_at_is_a_config_error_naming_the_field(write_settings):
    write_settings(
        {
            "llm": {"providers": {"p": {"type": "mock", "budget_window": "daily"}}},
            "usage": {"budget_usd": 1, "budget_window": "yearly", "budget_warn_at": 1.5},
        }
    )
    with pytest.raises(errors.ConfigError) as info:
        config.load_settings()
    text = str(info.value)
    assert "usage.budget_window: should be 'session', 'day', 'week' or 'month'" in text
    assert "llm.providers.p.budget_window" in text and "usage.budget_warn_at" in text


# -- %llm budget and budget_warn_at --------------------------------------------------------------


def test_llm_budget_shows_limit_window_spent_and_reserved(ip, slow_server, write_settings):
    prof = {"type": "openai_compatible", "model": "m", "base_url": slow_server.base_url}
    prof.update(pricing=PRICING, max_tokens=MAX_TOKENS, budget_usd=0.5, budget_window="week")
    write_settings(
        {
            "llm": {"active_provider": "p", "providers": {"p": prof}},
            "usage": {"store": "memory", "budget_usd": 2, "budget_window": "day"},
        }
    )
    shown = run(ip, "%llm budget").stdout
    today = time.strftime("%Y-%m-%d")
    assert (
        "Session budget: $2.00 · spent so far: $0 (calls with a known price in the window "
        f"— the number the budget checks) · window: day since {today} 00:00 (every kernel "
        "using this usage store) · reserved: $0\n"
    ) in shown
    assert "Profile p budget: $0.50 · spent: $0 · window: week since " in shown

    slow_server.script(Fault.slow(1.5))
    client = llmnb.create_llm_client_from_profile()
    before = len(slow_server.requests)
    worker = threading.Thread(target=lambda: client.complete(PROMPT))
    worker.start()
    try:
        for _ in range(500):
            if len(slow_server.requests) > before:
                break
            time.sleep(0.01)
        during = run(ip, "%llm budget").stdout
    finally:
        worker.join(30)
    assert "reserved: $0\n" not in during  # the call in flight holds its estimate
    assert re.search(r"reserved: \$0\.0+[1-9]", during)
    after = run(ip, "%llm budget").stdout
    assert re.search(r"spent so far: \$0\.0+[1-9]", after) and "reserved: $0\n" in after
    assert "spent: $0 " not in after


def test_budget_warn_at_warns_once_per_window(make, slow_server, tracker, caplog):
    client = make()
    cost = one_call_cost(client)
    client = make(usage={"budget_usd": 10 * cost, "budget_warn_at": 0.5})
    caplog.set_level(logging.WARNING, logger="llmnb.budget")
    for _ in range(4):
        client.complete(PROMPT)
    assert not [r for r in caplog.records if "is spent" in r.message]
    for _ in range(4):
        client.complete(PROMPT)
    warned = [r.message for r in caplog.records if "is spent" in r.message]
    assert len(warned) == 1, warned
    assert warned[0].startswith("llmnb: 50% of the session budget is spent: $")
    assert "of $0.00" in warned[0]


def test_asking_for_the_status_changes_no_client_s_budget(slow_server, write_settings, tracker):
    base = {"type": "openai_compatible", "model": "m", "base_url": slow_server.base_url}
    tight = {**base, "pricing": PRICING, "budget_usd": 1e-9}
    write_settings({"llm": {"active_provider": "q", "providers": {"p": tight, "q": base}}})
    for _ in range(2):
        assert [s.scope for s in budget.budget_status()] == ["profile p"]
    assert llmnb.create_llm_client_from_profile().complete(PROMPT).content  # q: no budget
    with pytest.raises(errors.BudgetExceededError):
        llmnb.create_llm_client_from_profile(profile="p").complete(PROMPT)
