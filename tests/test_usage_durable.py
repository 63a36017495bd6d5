"""Usage rows are durable: the background writer survives any value, a row the database
refuses costs no other row, rows are on disk soon after the call (a SIGKILL loses next to
nothing), SIGTERM/SIGHUP write the queue before the process ends, and the store's health
is visible (``store_status()``, ``%llm usage``, the dashboard footer)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import servers
from _magics_shell import ip_fixture, run

import llmnb
from llmnb.errors import LLMError
from llmnb.testing import FakeLLMServer, Fault
from llmnb.usage import (
    UsageStoreWarning,
    UsageTracker,
    get_tracker,
    reset_tracker,
    set_tracker,
    store_status,
)
from llmnb.usage.sqlite_store import SQLiteStore, read_usage

ROOT = Path(__file__).resolve().parents[1]
ip = ip_fixture
SETTINGS = {
    "llm": {"active_provider": "demo", "providers": {"demo": {"type": "mock", "model": "mock-1"}}},
    "usage": {"store": "sqlite:///.llmnb/usage.db"},
}


def count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM usage").fetchone()[0])


class BadStr:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


# -- any value is stored; the writer survives it ----------------------------------------

ODD_ROWS: dict[str, Callable[[UsageTracker], Any]] = {
    "lone surrogate in error": lambda t: t.record_unknown(model="m", error="bad \ud800 text"),
    "surrogate in tags": lambda t: t.record(1, 1, model="m", tags={"who": "\udcff"}),
    "surrogate in a tag key": lambda t: t.record(1, 1, model="m", tags={"\ud83d": 1}),
    "NUL in model": lambda t: t.record(1, 1, model="gpt\x00-4o"),
    "10**20 prompt tokens": lambda t: t.record(10**20, 1, model="m"),
    "-(10**30) cell": lambda t: t.record(1, 1, model="m", cell=-(10**30)),
    "10**400 as latency": lambda t: t.record(1, 1, model="m", latency_s=10**400),
    "inf as cost": lambda t: t.record(1, 1, model="m", cost_usd=float("inf")),
    "a str() that raises as model": lambda t: t.record_unknown(model=BadStr()),
    "tags with a cycle": lambda t: t.record(1, 1, model="m", tags=_cyclic()),
    "tags with tuple keys": lambda t: t.record(1, 1, model="m", tags={(1, 2): "x"}),
    "NaN and inf in tags": lambda t: t.record(1, 1, model="m", tags={"a": float("nan")}),
    "time far in the future": lambda t: t.record(1, 1, model="m", time=1e20),
}


def _cyclic() -> dict[str, Any]:
    tags: dict[str, Any] = {"name": "loop"}
    tags["self"] = tags
    return tags


@pytest.mark.parametrize("odd", list(ODD_ROWS), ids=list(ODD_ROWS))
def test_an_odd_value_is_stored_and_its_batch_mates_too(tmp_path: Path, odd: str) -> None:
    db = tmp_path / "u.db"
    store = SQLiteStore(db)
    t = UsageTracker(store=store)
    t.record(1, 1, model="before", call_id="before")
    odd_row = ODD_ROWS[odd](t)
    t.record(1, 1, model="after", call_id="after")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UsageStoreWarning)  # nothing to warn about: all stored
        # A dead writer made this wait out its timeout and say False.
        assert store.flush(timeout=20) is True
    assert count(db) == 3
    assert store_status(t).state == "ok" and store.pending == 0
    back = {r.call_id: r for r in read_usage(db)}
    assert {"before", "after", odd_row.call_id} == set(back)
    # The writer is still alive: a later row still reaches the file.
    t.record(1, 1, model="later")
    assert store.flush(timeout=20) is True and count(db) == 4
    stored = back[odd_row.call_id]
    for text in (stored.error, stored.model, json.dumps(stored.tags)):
        if text is not None:
            text.encode("utf-8")  # valid text: no lone surrogate survived
            assert "\x00" not in text or odd == "NUL in model"


def test_out_of_range_numbers_are_null_with_the_value_in_error(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "u.db")
    t = UsageTracker(store=store)
    rec = t.record(10**20, 5, model="m", error="upstream said so")
    assert store.flush(timeout=20) is True
    (row,) = read_usage(tmp_path / "u.db")
    assert row.call_id == rec.call_id and row.completion_tokens == 5
    assert row.prompt_tokens is None and row.total_tokens is None  # never a wrong number
    assert row.error is not None and row.error.startswith("upstream said so")
    assert "prompt_tokens=100000000000000000000 is out of range; stored as NULL" in row.error


def test_lone_surrogates_become_replacement_characters(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "u.db")
    t = UsageTracker(store=store)
    t.record(1, 1, model="m", error="bad \ud800 text", tags={"who": "\ud83d\ude00 \udcff"})
    assert store.flush(timeout=20) is True
    (row,) = read_usage(tmp_path / "u.db")
    assert row.error == "bad \ufffd text"
    assert row.tags == {"who": "😀 \ufffd"}  # a surrogate pair is joined into its character


def test_a_servers_error_text_with_a_lone_surrogate_is_stored(
    tmp_path: Path, write_settings: Callable[[dict[str, Any]], Path]
) -> None:
    # Through the public client: the server's JSON error escapes a lone surrogate.
    with FakeLLMServer(default_response="fine") as srv:
        write_settings(
            {
                "llm": {
                    "active_provider": "srv",
                    "providers": {
                        "srv": {
                            "type": "openai_compatible",
                            "model": "house",
                            "base_url": srv.base_url,
                            "api_key": "sk-test-0123456789abcdef",
                        }
                    },
                },
                "usage": {"store": "sqlite:///.llmnb/usage.db"},
            }
        )
        client = llmnb.create_llm_client_from_profile()
        client.complete("first")
        srv.script(Fault.status(400, body='{"error": {"message": "bad byte \\ud800 here"}}'))
        with pytest.raises(LLMError):
            client.complete("second")
        client.complete("third")
    store = get_tracker().store
    assert store.flush(timeout=20) is True  # type: ignore[attr-defined]
    rows = read_usage(tmp_path / ".llmnb" / "usage.db")
    assert len(rows) == 3
    failed = [r for r in rows if r.status != "ok"]
    assert len(failed) == 1 and failed[0].error is not None
    assert "bad byte \ufffd here" in failed[0].error
    assert store_status().state == "ok"


# -- a row the database refuses even cleaned -----------------------------------------------


def test_a_row_the_database_refuses_is_kept_in_memory_and_costs_no_other_row(
    tmp_path: Path,
) -> None:
    db = tmp_path / "u.db"
    store = SQLiteStore(db)
    t = UsageTracker(store=store)
    t.record(1, 1, model="warm-up")
    assert store.flush(timeout=20) is True
    with sqlite3.connect(db) as conn:  # someone's trigger refuses one model
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON usage WHEN NEW.model = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'poison is not welcome'); END"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(10):
            t.record(1, 1, model="poison" if i in (3, 7) else "fine")
        assert store.flush(timeout=20) is False  # not everything was stored …
        t.record(1, 1, model="fine")
        assert store.flush(timeout=20) is True  # … but the writer goes on
    assert count(db) == 1 + 8 + 1
    assert len(t) == 12  # every row is in this session's tracker
    told = [w for w in caught if issubclass(w.category, UsageStoreWarning)]
    assert len(told) == 1 and "poison is not welcome" in str(told[0].message)
    status = store_status(t)
    assert status.state == "degraded" and status.unwritten == 2 and status.pending == 0
    assert status.error is not None and "poison is not welcome" in status.error
    assert "2 rows kept in memory only" in status.line()


# -- crash durability (child interpreters) -------------------------------------------------

CHILD = """
import os, signal, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
{before}
import llmnb
client = llmnb.create_llm_client_from_profile()
for i in range({n}):
    client.complete(f"call {{i}}")
{after}
print("survived", flush=True)
"""


def run_child(
    tmp_path: Path, n: int, after: str, before: str = ""
) -> tuple[subprocess.CompletedProcess[str], int]:
    import yaml

    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "settings.yaml").write_text(yaml.safe_dump(SETTINGS))
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT), n=n, after=after, before=before))
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,  # a safety net against a hang, not a timing assertion
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
    )
    db = tmp_path / ".llmnb" / "usage.db"
    return proc, count(db) if db.exists() else 0


@pytest.mark.parametrize("n", [50, 2000])
def test_sigkill_after_a_short_pause_loses_no_row(tmp_path: Path, n: int) -> None:
    # Before: the rows waited 0.2 s for batch-mates, so all 50 (and 1,077 of 2,000) were lost.
    proc, rows = run_child(tmp_path, n, "time.sleep(0.2)\nos.kill(os.getpid(), signal.SIGKILL)")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert rows == n


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_right_after_the_calls_write_every_row(
    tmp_path: Path, name: str
) -> None:
    proc, rows = run_child(tmp_path, 500, f"os.kill(os.getpid(), signal.{name})")
    assert proc.returncode == -getattr(signal, name), proc.stderr  # the signal's usual end
    assert "survived" not in proc.stdout
    assert rows == 500
    assert proc.stderr == ""


def test_an_existing_sigterm_handler_still_runs_and_decides(tmp_path: Path) -> None:
    before = textwrap.dedent(
        """
        def mine(signum, frame):
            print("my handler ran", flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, mine)
        """
    )
    proc, rows = run_child(tmp_path, 300, "os.kill(os.getpid(), signal.SIGTERM)", before)
    assert proc.returncode == 7, proc.stderr
    assert "my handler ran" in proc.stdout and "survived" not in proc.stdout
    assert rows == 300


def test_a_handler_that_keeps_the_process_alive_is_respected(tmp_path: Path) -> None:
    before = "signal.signal(signal.SIGTERM, lambda s, f: print('ignored it', flush=True))"
    after = "os.kill(os.getpid(), signal.SIGTERM)\nprint('rows', flush=True)"
    proc, rows = run_child(tmp_path, 100, after, before)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ignored", "it", "rows", "survived"]
    assert rows == 100


def test_an_ignored_sighup_stays_ignored(tmp_path: Path) -> None:
    # nohup: SIGHUP is SIG_IGN, and must not start ending the process.
    before = "signal.signal(signal.SIGHUP, signal.SIG_IGN)"
    proc, rows = run_child(tmp_path, 100, "os.kill(os.getpid(), signal.SIGHUP)", before)
    assert proc.returncode == 0 and "survived" in proc.stdout, proc.stderr
    assert rows == 100  # at exit, as always


def test_handlers_are_set_from_the_main_thread_only(tmp_path: Path) -> None:
    # A store first used in a worker thread cannot set handlers there (signal.signal
    # would raise); the main thread's next row sets them, and SIGTERM then writes all.
    code = textwrap.dedent(
        f"""
        import os, signal, sys, threading
        sys.path.insert(0, {str(ROOT)!r})
        from llmnb.usage import UsageTracker
        from llmnb.usage.sqlite_store import SQLiteStore
        t = UsageTracker(store=None)
        def work():
            global t
            t = UsageTracker(store=SQLiteStore("u.db"))
            for i in range(100):
                t.record(1, 1, model="m")
        worker = threading.Thread(target=work)
        worker.start(); worker.join()
        print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, flush=True)
        t.store.flush()
        t.record(1, 1, model="m")
        print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert proc.stdout.split() == ["True", "False"] and proc.stderr == ""
    assert count(tmp_path / "u.db") == 101


# -- health is visible -----------------------------------------------------------------------


def test_a_memory_store_is_healthy() -> None:
    status = store_status(UsageTracker())
    assert (status.state, status.pending, status.error, status.unwritten) == ("ok", 0, None, 0)
    assert status.line() == ""


def test_a_damaged_file_is_failed_with_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    db.write_bytes(b"this is not a database" * 100)
    store = SQLiteStore(db)
    t = UsageTracker(store=store)
    with pytest.warns(UsageStoreWarning):
        t.record(1, 1, model="m")
        store.flush(timeout=20)
    status = store_status(t)
    assert status.state == "failed"
    assert status.error is not None and "damaged" in status.error and "u.db" in status.error


def test_a_locked_file_is_degraded_with_rows_pending(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    store = SQLiteStore(db, busy_timeout=0.05)
    t = UsageTracker(store=store)
    t.record(1, 1, model="m")
    assert store.flush(timeout=20) is True
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.warns(UsageStoreWarning, match="locked"):
            t.record(1, 1, model="m")
            assert store.flush(timeout=2) is False
        status = store_status(t)
        assert status.state == "degraded" and status.pending == 1
        assert "locked" in (status.error or "")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.flush(timeout=20) is True
    assert store_status(t).state == "ok" and count(db) == 2


def test_the_status_never_shows_a_url_password() -> None:
    from llmnb.usage.postgres_store import PostgresStore

    secret = "s3cret-Pa55word"
    store = PostgresStore(f"postgresql+psycopg://alice:{secret}@127.0.0.1:9/llmnb", history="none")
    t = UsageTracker(store=store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UsageStoreWarning)
        t.record(1, 1, model="m")
        store.flush(timeout=10)
        status = store_status(t)
        store.close(timeout=1)
    assert status.state == "degraded" and status.pending == 1
    assert status.error is not None and "unreachable" in status.error
    assert secret not in repr(status) and secret not in status.line()


def _poison(t: UsageTracker, db: Path) -> None:
    """Make ``t``'s SQLite file refuse one model (a trigger) and record a row of it."""
    t.record(1, 1, model="warm-up")
    assert t.store.flush(timeout=20)  # type: ignore[attr-defined]
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON usage WHEN NEW.model = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UsageStoreWarning)
        t.record(1, 1, model="poison")
        t.store.flush(timeout=20)  # type: ignore[attr-defined]


def test_llm_usage_shows_the_store_problem_only_when_not_healthy(
    ip: Any, tmp_path: Path, write_settings: Callable[[dict[str, Any]], Path]
) -> None:
    write_settings(SETTINGS)
    run(ip, "%llm hello")
    ran = run(ip, "%llm usage")
    assert ran.stderr == "" and ran.result.result is not None  # healthy: nothing extra
    t = UsageTracker(store=SQLiteStore(tmp_path / "u.db"))
    _poison(t, tmp_path / "u.db")
    token = set_tracker(t)
    try:
        ran = run(ip, "%llm usage")
    finally:
        reset_tracker(token)
    assert "⚠ usage store degraded (1 rows kept in memory only)" in ran.stderr
    assert "refused by trigger" in ran.stderr
    assert ran.result.result is not None  # the usage table is still shown


def test_the_dashboard_footer_shows_the_store_problem(tmp_path: Path) -> None:
    from llmnb.widgets import UsageDashboard

    t = UsageTracker(store=SQLiteStore(tmp_path / "u.db"))
    scheduled: list[Any] = []
    d = UsageDashboard(t, scheduler=lambda delay, fn: scheduled.append(fn))
    assert "usage store: SQLite" in d.store.value and "⚠" not in d.store.value
    _poison(t, tmp_path / "u.db")
    d.refresh()
    assert "⚠ usage store degraded" in d.store.value and "refused by trigger" in d.store.value
    d.close()


# -- PostgreSQL: one odd row never fails the store ----------------------------------------

pg_url = servers.postgres_url_fixture()
WHO = {"user": "alice", "host": "ws-1", "notebook": "n.ipynb"}

PG_ODD_ROWS: dict[str, Callable[[UsageTracker], Any]] = {
    "NUL in error": lambda t: t.record_unknown(model="m", error="a\x00b"),
    "lone surrogate in error": lambda t: t.record_unknown(model="m", error="a\ud800b"),
    "surrogate in tags": lambda t: t.record(1, 1, model="m", tags={"who": "\udcff"}),
    "NUL in a tag": lambda t: t.record(1, 1, model="m", tags={"who": "a\x00b"}),
    "NaN in tags": lambda t: t.record(1, 1, model="m", tags={"x": float("nan")}),
    "attempt beyond INTEGER": lambda t: t.record(1, 1, model="m", attempt=2**40),
    "10**20 prompt tokens": lambda t: t.record(10**20, 1, model="m"),
    "time far in the future": lambda t: t.record(1, 1, model="m", time=1e20),
    "tags with a cycle": lambda t: t.record(1, 1, model="m", tags=_cyclic()),
}


@pytest.mark.parametrize("odd", list(PG_ODD_ROWS), ids=list(PG_ODD_ROWS))
def test_postgres_stores_an_odd_value_and_stays_usable(pg_url: str, odd: str) -> None:
    from llmnb.usage.postgres_store import PostgresStore

    store = PostgresStore(pg_url, who=WHO)
    t = UsageTracker(store=store)
    t.record(1, 1, model="before", call_id="before")
    odd_row = PG_ODD_ROWS[odd](t)
    t.record(1, 1, model="after", call_id="after")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UsageStoreWarning)
        assert store.flush(timeout=20) is True  # before: "failed" for the whole session
    assert store.status == "ok" and store_status(t).state == "ok"
    t.record(1, 1, model="later", call_id="later")
    assert store.flush(timeout=20) is True
    store.close()
    back = {r.call_id: r for r in PostgresStore(pg_url, who=WHO).load()}
    assert set(back) == {"before", odd_row.call_id, "after", "later"}
    stored = back[odd_row.call_id]
    for text in (stored.error, json.dumps(stored.tags)):
        if text is not None:
            text.encode("utf-8")
            assert "\x00" not in text


def test_postgres_keeps_a_refused_row_in_memory_and_writes_the_others(pg_url: str) -> None:
    import sqlalchemy as sa

    from llmnb.usage.postgres_store import PostgresStore

    store = PostgresStore(pg_url, who=WHO)
    t = UsageTracker(store=store)
    t.record(1, 1, model="warm-up")
    assert store.flush(timeout=20) is True
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                "IF NEW.model = 'poison' THEN RAISE EXCEPTION 'poison refused' "
                "USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TRIGGER refuse BEFORE INSERT ON llmnb_usage "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(6):
            t.record(1, 1, model="poison" if i == 2 else "fine")
        assert store.flush(timeout=20) is False
        t.record(1, 1, model="fine")
        assert store.flush(timeout=20) is True
    assert store.status == "ok" and store.written == 1 + 5 + 1
    assert len([w for w in caught if issubclass(w.category, UsageStoreWarning)]) == 1
    status = store_status(t)
    assert status.state == "degraded" and status.unwritten == 1
    assert "poison refused" in (status.error or "")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM llmnb_usage")).scalar() == 7
    engine.dispose()
    store.close()
