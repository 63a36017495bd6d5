"""PostgresStore against a real PostgreSQL cluster on 127.0.0.1 (see tests/servers.py)."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import servers
import sqlalchemy as sa

import llmnb
from llmnb.usage import (
    COLUMNS,
    UsageStoreError,
    UsageStoreWarning,
    UsageTracker,
    get_tracker,
    reset_default_tracker,
)
from llmnb.usage import postgres_schema as pgs
from llmnb.usage.postgres_store import PostgresStore

pg_url = servers.postgres_url_fixture()

ALICE = {"user": "alice", "host": "ws-1", "notebook": "churn.ipynb"}
BOB = {"user": "bob", "host": "ws-2", "notebook": "pricing.ipynb"}


def _record_three(t: UsageTracker) -> None:
    t.record(1200, 300, model="gpt-4o", provider="openai", profile="oa", tags={"run": "a"})
    t.record(10, 5, model="unknown-model-xyz", provider="custom", profile="mine")  # NaN cost
    t.record_unknown(model="gpt-4o", provider="openai", status="RateLimitError", error="429")


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) and isinstance(y, float):
            if not (x == y or (math.isnan(x) and math.isnan(y)) or abs(x - y) < 1e-6):
                return False
        elif x != y:
            return False
    return True


def test_rows_written_in_the_background_come_back_in_a_new_store(pg_url: str) -> None:
    store = PostgresStore(pg_url, who=ALICE)
    t = UsageTracker(store=store)
    _record_three(t)
    assert len(t) == 3  # in the tracker at once, whatever the database does
    assert store.flush()
    assert store.written == 3 and store.status == "ok"

    later = PostgresStore(pg_url, who=ALICE)
    rows = later.load()
    assert later.history_rows == 3
    assert all(_same(a, b) for a, b in zip(t.records, rows, strict=True))
    df = UsageTracker(store=later).to_dataframe()
    assert list(df.columns) == list(COLUMNS)
    assert df["cost_usd"].isna().tolist() == [False, True, True]
    assert df["tags"].iloc[0] == {"run": "a"}
    store.close()
    later.close()


def test_history_is_this_users_rows_by_default(pg_url: str) -> None:
    for who in (ALICE, BOB):
        s = PostgresStore(pg_url, who=who)
        UsageTracker(store=s).record(10, 5, model="gpt-4o", provider="openai")
        assert s.close()
    assert len(PostgresStore(pg_url, who=ALICE).load()) == 1
    assert len(PostgresStore(pg_url, who=ALICE, history="all").load()) == 2
    assert len(PostgresStore(pg_url, who=ALICE, history="none").load()) == 0


def test_schema_is_created_with_its_version(pg_url: str) -> None:
    store = PostgresStore(pg_url, who=ALICE)
    UsageTracker(store=store).record(1, 1, model="gpt-4o", provider="openai")
    assert store.close()
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert pgs.schema_version(conn) == pgs.SCHEMA_VERSION
        cols = {c["name"] for c in sa.inspect(conn).get_columns(pgs.TABLE)}
    engine.dispose()
    # Every record column has a table column: a new record column needs a migration.
    assert set(COLUMNS) | {"id", "user_name", "host", "notebook"} == cols


def test_a_version_1_database_is_migrated_and_keeps_its_rows(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        pgs.migrate(conn, target=1)
        conn.execute(
            sa.text(
                f"INSERT INTO {pgs.TABLE} (time, session, model, prompt_tokens, "
                "completion_tokens, cost_usd, cost_source, status, call_id, attempt, cached) "
                "VALUES (now(), 'old', 'gpt-4o', 1, 2, 0.5, 'provider', 'ok', 'c1', 1, false)"
            )
        )
    with engine.connect() as conn:
        assert pgs.schema_version(conn) == 1
    store = PostgresStore(pg_url, who=ALICE, history="all")
    UsageTracker(store=store).record(1, 1, model="gpt-4o", provider="openai")
    assert store.flush()
    with engine.connect() as conn:
        assert pgs.schema_version(conn) == pgs.SCHEMA_VERSION
    team = store.team_dataframe()
    assert team["session"].astype(object).tolist()[0] == "old"
    assert team["user"].isna().tolist() == [True, False]  # the old row had no user
    assert team["user"].iloc[1] == "alice"
    # columns added after version 1 read as their defaults in the old row
    assert team[["kind", "round", "attachments"]].astype(object).values.tolist()[0] == [
        "chat",
        1,
        0,
    ]
    store.close()
    engine.dispose()


def test_a_newer_schema_is_left_alone_and_rows_stay_in_memory(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        pgs.migrate(conn)
        conn.execute(sa.text(f"UPDATE {pgs.VERSION_TABLE} SET version = 99"))
    engine.dispose()
    store = PostgresStore(pg_url, who=ALICE)
    t = UsageTracker(store=store)
    with pytest.warns(UsageStoreWarning, match="newer llmnb"):
        t.record(1, 1, model="gpt-4o", provider="openai")
        assert not store.flush()
    assert store.status == "failed"
    assert len(t) == 1
    with pytest.raises(UsageStoreError, match="newer llmnb"):
        store.team_dataframe()


def test_an_unreachable_server_warns_once_keeps_rows_and_hides_the_password() -> None:
    url = f"postgresql://team:s3cret-pw@127.0.0.1:{servers.closed_port()}/llmnb"
    store = PostgresStore(url, who=ALICE)
    t = UsageTracker(store=store)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            t.record(10, 5, model="gpt-4o", provider="openai")  # never raises
            assert not store.flush(timeout=10)
    ours = [w for w in caught if issubclass(w.category, UsageStoreWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert "unreachable" in str(ours[0].message)
    assert store.status == "unavailable" and store.pending == 3 and len(t) == 3
    shown = " ".join([repr(store), store.describe(), str(ours[0].message), store.url])
    assert "s3cret-pw" not in shown and "team" in shown
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UsageStoreWarning)
        assert not store.close(timeout=1)


def test_team_summary_by_user_host_and_notebook(pg_url: str) -> None:
    for who, n in ((ALICE, 3), (BOB, 1)):
        s = PostgresStore(pg_url, who=who)
        t = UsageTracker(store=s)
        for _ in range(n):
            t.record(1000, 1000, model="gpt-4o", provider="openai", pricing=_PRICE)
        assert s.close()
    # A row's tags may name another user (a service account recording for someone).
    s = PostgresStore(pg_url, who=ALICE)
    UsageTracker(store=s).record(
        1000, 1000, model="gpt-4o", provider="openai", pricing=_PRICE, tags={"user": "carol"}
    )
    assert s.flush()

    by_user = s.summary(by="user")
    assert by_user.index.name == "user"
    assert by_user["attempts"].to_dict() == {"alice": 3, "bob": 1, "carol": 1}
    assert by_user["cost_usd"].round(6).to_dict() == {"alice": 0.006, "bob": 0.002, "carol": 0.002}
    assert s.summary(by="host")["attempts"].to_dict() == {"ws-1": 4, "ws-2": 1}
    assert s.summary(by="notebook")["calls"].to_dict() == {"churn.ipynb": 4, "pricing.ipynb": 1}
    both = s.summary(by=["user", "model"])
    assert both.index.names == ["user", "model"]
    assert both.loc[("alice", "gpt-4o"), "attempts"] == 3
    s.close()


_PRICE = {"input_per_mtok": 1.0, "output_per_mtok": 1.0}

_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from llmnb.usage import UsageTracker
    from llmnb.usage.postgres_store import PostgresStore

    url, user, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    store = PostgresStore(url, who={"user": user, "host": "h", "notebook": "nb"},
                          batch_rows=50, flush_interval=0.01)
    t = UsageTracker(store=store)
    while not go.exists():          # start together, so the inserts interleave
        time.sleep(0.005)
    for i in range(n):
        # a reported cost: no price-table lookup, so the worker starts fast
        t.record(10, 5, model="gpt-4o", provider="openai", call_id=f"{user}-{i}", cost_usd=1e-6)
    # no flush, no close: the rows still queued are written at exit
    """
)


def test_four_processes_writing_at_once_lose_no_row(pg_url: str, tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    go = tmp_path / "go"
    n = 500
    procs = [
        subprocess.Popen([sys.executable, str(script), pg_url, f"w{i}", str(n), str(go)])
        for i in range(4)
    ]
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]

    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        total, distinct = conn.execute(
            sa.text(f"SELECT COUNT(*), COUNT(DISTINCT call_id) FROM {pgs.TABLE}")
        ).one()
    engine.dispose()
    assert (total, distinct) == (4 * n, 4 * n)
    team = PostgresStore(pg_url).summary(by="user")
    assert team["attempts"].to_dict() == {f"w{i}": n for i in range(4)}


def test_the_settings_store_feeds_the_default_tracker_and_llmnb_usage(
    pg_url: str,
    write_settings: Callable[[dict[str, Any]], Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llmnb.__main__ import main

    demo = {"type": "mock", "model": "mock-1", "pricing": _PRICE}
    write_settings(
        {
            "llm": {"active_provider": "demo", "providers": {"demo": demo}},
            "usage": {"store": pg_url},
        }
    )
    monkeypatch.setenv("LLMNB_USER", "dana")
    reset_default_tracker()
    try:
        llmnb.create_llm_client_from_profile().complete("hello")
        store = get_tracker().store
        assert isinstance(store, PostgresStore)
        assert store.flush()
    finally:
        reset_default_tracker()
    assert main(["usage", "--by", "user"]) == 0
    out = capsys.readouterr().out
    assert "1 calls" in out and "dana" in out
    assert main(["usage", "--by", "model", "--since", "1h"]) == 0
    assert "mock-1" in capsys.readouterr().out
