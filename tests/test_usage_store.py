"""The SQLite usage store: batched background writes, several processes, history,
and failures (damaged, locked, unwritable) that never cost the user's call or its row."""

from __future__ import annotations

import math
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import llmnb
from llmnb.usage import (
    DTYPES,
    MemoryStore,
    UsageStoreError,
    UsageStoreWarning,
    UsageTracker,
    get_tracker,
    reset_default_tracker,
)
from llmnb.usage.sqlite_store import SQLiteStore, read_usage

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_default_tracker() -> Iterator[None]:
    # The default tracker is process-wide; each test here builds its own from its cwd.
    reset_default_tracker()
    yield
    reset_default_tracker()


def run_script(tmp_path: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,  # a safety net against a hang, not a timing assertion
    )


def db_rows(path: Path, sql: str = "SELECT count(*) FROM usage") -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# -- writing and reading -------------------------------------------------------------------


def test_rows_reach_the_file_with_their_values(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "u.db")
    t = UsageTracker(session="s1", store=store)
    t.record(100, 20, model="m", provider="mock", cost_usd=0.5, tags={"run": 1}, cell=3)
    t.record_unknown(model="m", status="RateLimitError", error="429", cached=False)
    t.record(10, 5, model="m", cached=True)

    assert store.flush() is True
    assert store.status == "ok" and store.pending == 0
    back = read_usage(tmp_path / "u.db")
    assert [r.call_id for r in back] == [r.call_id for r in t.records]
    first, failed, hit = back
    assert (first.prompt_tokens, first.cost_usd, first.tags, first.cell) == (
        100,
        0.5,
        {"run": 1},
        3,
    )
    assert first.session == "s1" and math.isnan(first.ttft_s)  # NaN survives (as NULL)
    assert failed.prompt_tokens is None and math.isnan(failed.cost_usd)
    assert failed.cost_source == "unknown" and failed.status == "RateLimitError"
    assert hit.cached is True and hit.cost_usd == 0.0


def test_recording_is_visible_at_once_before_the_file_has_it(tmp_path: Path) -> None:
    # A long flush interval: the row waits in the queue, yet the tracker shows it.
    store = SQLiteStore(tmp_path / "u.db", flush_interval=3600, batch_rows=10_000)
    t = UsageTracker(store=store)
    t.record(1, 1, model="m")
    assert len(t) == 1 and store.pending == 1
    assert store.flush() is True and store.pending == 0


def test_a_full_batch_is_written_without_waiting_for_the_interval(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "u.db", flush_interval=3600, batch_rows=5)
    t = UsageTracker(store=store)
    for _ in range(5):
        t.record(1, 1, model="m")
    assert store.close() is True  # close() writes what is left; nothing was left behind
    assert db_rows(tmp_path / "u.db") == [(5,)]


@pytest.mark.parametrize("n", [1, 2, 3, 255, 1023, 1025, 8192 + 8191])
def test_a_batch_of_any_size_reaches_the_file_whole_and_in_order(tmp_path: Path, n: int) -> None:
    # The writer splits a batch into multi-row statements of several sizes: every row of
    # every piece, remainder included, must land once and in order.
    store = SQLiteStore(tmp_path / "u.db", flush_interval=3600, batch_rows=10**6)
    t = UsageTracker(store=store)
    for i in range(n):
        t.record(
            i, 1, model="m", provider="mock", call_id=f"c{i}", tags={"i": i} if i % 7 else None
        )
    assert store.flush() is True
    back = read_usage(tmp_path / "u.db")
    assert [r.call_id for r in back] == [f"c{i}" for i in range(n)]
    assert [r.prompt_tokens for r in back] == list(range(n))
    assert back[-1].tags == ({"i": n - 1} if (n - 1) % 7 else None)
    store.close()


def test_odd_values_are_stored_as_text_and_numbers(tmp_path: Path) -> None:
    import numpy as np

    store = SQLiteStore(tmp_path / "u.db")
    t = UsageTracker(store=store)
    t.record(np.int64(7), np.int64(3), model=("tuple", "model"), latency_s=np.float32(0.5))
    assert store.flush() is True
    (row,) = read_usage(tmp_path / "u.db")
    assert (row.prompt_tokens, row.completion_tokens) == (7, 3)
    assert row.model == "('tuple', 'model')"
    assert row.latency_s == pytest.approx(0.5)


def test_clear_empties_the_view_but_keeps_the_file(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "u.db")
    t = UsageTracker(store=store)
    t.record(1, 1)
    store.flush()
    t.clear()
    assert len(t) == 0
    assert len(read_usage(tmp_path / "u.db")) == 1


def test_the_folder_is_created_and_kept_out_of_git(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / ".llmnb" / "usage.db")
    UsageTracker(store=store).record(1, 1)
    assert store.flush()
    assert (tmp_path / ".llmnb" / ".gitignore").read_text() == "*\n"


# -- history and restarts -----------------------------------------------------------------


def test_a_new_process_reads_the_rows_an_earlier_one_wrote(tmp_path: Path) -> None:
    # The child neither flushes nor closes: the atexit hook writes its rows.
    out = run_script(
        tmp_path,
        """
        from llmnb.usage import UsageTracker
        from llmnb.usage.sqlite_store import SQLiteStore
        t = UsageTracker(session="before-restart", store=SQLiteStore("u.db", flush_interval=60))
        for i in range(300):
            t.record(10, 5, model="m", provider="mock", cost_usd=0.001, call_id=f"c{i}")
        """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == out.stderr == ""  # nothing printed at exit

    t = UsageTracker(session="after-restart", store=SQLiteStore(tmp_path / "u.db"))
    t.record(1, 1, model="m", call_id="new")
    df = t.to_dataframe()
    assert len(df) == 301
    assert list(df["call_id"][:3]) == ["c0", "c1", "c2"] and df["call_id"].iat[-1] == "new"
    assert set(df["session"]) == {"before-restart", "after-restart"}
    assert t.store.history_rows == 300
    assert {c: str(df[c].dtype) for c in df.columns} == DTYPES  # same contract as memory
    assert t.total_cost() == pytest.approx(0.3)


def test_history_is_the_rows_there_before_this_store_opened(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    first = SQLiteStore(path)
    UsageTracker(store=first).record(1, 1, call_id="old")
    assert first.flush()
    mine = SQLiteStore(path)
    t = UsageTracker(store=mine)
    t.record(1, 1, call_id="mine")
    assert mine.flush()
    UsageTracker(store=first).record(1, 1, call_id="other-kernel-later")
    assert first.flush()
    # Other kernels' later rows are in the file (llmnb usage) but not merged in here.
    assert [r.call_id for r in t.records] == ["old", "mine"]
    assert [r.call_id for r in read_usage(path)] == ["old", "mine", "other-kernel-later"]


def test_history_can_be_skipped(tmp_path: Path) -> None:
    seed = SQLiteStore(tmp_path / "u.db")
    UsageTracker(store=seed).record(1, 1)
    seed.flush()
    t = UsageTracker(store=SQLiteStore(tmp_path / "u.db", history=False))
    assert len(t) == 0


# -- several processes ---------------------------------------------------------------------


WRITER = """
import sys
from llmnb.usage import UsageTracker
from llmnb.usage.sqlite_store import SQLiteStore
who, n, close = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "close"
store = SQLiteStore("shared.db", batch_rows=50, flush_interval=0.001)
t = UsageTracker(session=who, store=store)
for i in range(n):
    t.record(10, 5, model="m", call_id=f"{who}-{i}")
if close:
    assert store.close(), store.problem
"""


def test_four_processes_writing_at_once_lose_no_row(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    # Two close their store, two rely on the exit hook; all write in small batches so
    # that their transactions interleave and wait for each other's locks.
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), f"w{i}", "2000", "close" if i % 2 else "exit"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert err == ""
    rows = db_rows(
        tmp_path / "shared.db",
        "SELECT session, count(*), count(DISTINCT call_id) FROM usage GROUP BY session",
    )
    assert sorted(rows) == [(f"w{i}", 2000, 2000) for i in range(4)]
    assert db_rows(tmp_path / "shared.db") == [(8000,)]


def test_multiprocessing_workers_write_their_rows_when_they_finish(tmp_path: Path) -> None:
    # A user's script with a process pool: workers leave through os._exit(), skipping
    # atexit, so the store's multiprocessing finalizer is what writes their rows.
    out = run_script(
        tmp_path,
        """
        import multiprocessing
        from llmnb.usage import UsageTracker
        from llmnb.usage.sqlite_store import SQLiteStore

        def work(who):
            t = UsageTracker(session=who, store=SQLiteStore("mp.db", flush_interval=60))
            for i in range(400):
                t.record(1, 1, call_id=f"{who}-{i}")
            return who  # no close()

        if __name__ == "__main__":
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                print(sorted(pool.map(work, ["p0", "p1"])))
                pool.close()
                pool.join()
        """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['p0', 'p1']"
    rows = db_rows(tmp_path / "mp.db", "SELECT session, count(*) FROM usage GROUP BY session")
    assert sorted(rows) == [("p0", 400), ("p1", 400)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_writes_its_own_rows_and_not_the_parents(tmp_path: Path) -> None:
    path = tmp_path / "fork.db"
    store = SQLiteStore(path, flush_interval=60)
    t = UsageTracker(session="parent", store=store)
    t.record(1, 1, call_id="parent-0")  # queued: the parent's writer thread holds it
    ctx = multiprocessing.get_context("fork")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        child = ctx.Process(target=_record_in_child, args=(t,))
        child.start()
    child.join(timeout=300)
    assert child.exitcode == 0
    assert store.flush()
    ids = sorted(r[0] for r in db_rows(path, "SELECT call_id FROM usage"))
    assert ids == ["child-0", "child-1", "parent-0"]  # parent's row once, child's own rows


def _record_in_child(t: UsageTracker) -> None:
    t.record(1, 1, call_id="child-0")
    t.record(1, 1, call_id="child-1")


def test_exit_is_prompt_and_silent_with_rows_still_queued(tmp_path: Path) -> None:
    out = run_script(
        tmp_path,
        """
        from llmnb.usage import UsageTracker
        from llmnb.usage.sqlite_store import SQLiteStore
        t = UsageTracker(store=SQLiteStore("q.db", flush_interval=3600, batch_rows=10**6))
        for _ in range(50):
            t.record(1, 1)
        print("done")
        """,
    )
    assert out.returncode == 0
    assert (out.stdout, out.stderr) == ("done\n", "")
    assert db_rows(tmp_path / "q.db") == [(50,)]


# -- failures never cost the call or its row ------------------------------------------------


def test_a_damaged_file_warns_once_and_keeps_rows_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    path.write_bytes(b"this is not a database" * 100)
    store = SQLiteStore(path)
    t = UsageTracker(store=store)
    with pytest.warns(UsageStoreWarning, match="usage.db") as caught:
        t.record(5, 5, model="m")
        assert store.flush() is False
    message = str(caught[0].message)
    assert "not a database" in message and "move it away" in message
    assert store.status == "failed" and "usage.db.bad" in (store.problem or "")
    t.record(1, 1, model="m")  # still fine, still recorded
    assert len(t) == 2
    assert path.read_bytes().startswith(b"this is not a database")  # left as it was


def test_a_damaged_default_store_does_not_break_a_client_call(tmp_path: Path) -> None:
    (tmp_path / ".llmnb").mkdir()
    (tmp_path / ".llmnb" / "usage.db").write_text("garbage, not SQLite")
    client = llmnb.create_llm_client_from_profile()  # built-in demo profile, offline
    with pytest.warns(UsageStoreWarning, match="not a database"):
        answer = client.complete("hello")
        df = get_tracker().to_dataframe()
    assert answer.content
    assert list(df["call_id"]) == [answer.call_id]
    assert get_tracker().store.status == "failed"


def test_a_locked_file_keeps_rows_and_writes_them_once_free(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    seed = SQLiteStore(path)
    UsageTracker(store=seed).record(1, 1, call_id="seed")
    assert seed.flush()

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process's long write transaction
    store = SQLiteStore(path, busy_timeout=0.05)
    t = UsageTracker(store=store)
    try:
        with pytest.warns(UsageStoreWarning, match="locked by another process"):
            for i in range(3):
                t.record(1, 1, call_id=f"waiting-{i}")
            assert store.flush() is False
        assert store.status == "locked" and store.pending == 3
        # The calls' rows are there meanwhile (and WAL lets the history be read).
        assert [r.call_id for r in t.records] == ["seed", "waiting-0", "waiting-1", "waiting-2"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.flush() is True
    assert store.status == "ok" and store.problem is None
    ids = sorted(r.call_id for r in read_usage(path))
    assert ids == ["seed", "waiting-0", "waiting-1", "waiting-2"]


def test_a_folder_that_cannot_be_made_gives_guidance(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    store = SQLiteStore(tmp_path / "afile" / "usage.db")
    t = UsageTracker(store=store)
    with pytest.warns(UsageStoreWarning, match="writable"):
        t.record(1, 1)
        assert store.flush() is False
    assert len(t) == 1


def test_a_file_from_a_newer_llmnb_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    store = SQLiteStore(path)
    with pytest.warns(UsageStoreWarning, match="newer llmnb"):
        UsageTracker(store=store).record(1, 1)
        assert store.flush() is False
    assert db_rows(path, "SELECT count(*) FROM sqlite_master") == [(0,)]
    with pytest.raises(UsageStoreError, match="newer llmnb"):
        read_usage(path)


def test_reading_a_damaged_file_raises_usage_store_error(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    path.write_text("nope" * 200)
    with pytest.raises(UsageStoreError, match=r"u\.db.*not a database"):
        read_usage(path)


# -- the default tracker ------------------------------------------------------------------


def test_default_tracker_keeps_usage_in_the_working_folder_without_settings(
    tmp_path: Path,
) -> None:
    store = get_tracker().store
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / ".llmnb" / "usage.db"


def test_default_store_is_relative_to_the_project_root_from_a_subfolder(
    tmp_path: Path, write_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_settings({"llm": {"providers": {"demo": {"type": "mock", "model": "m"}}}})
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    store = get_tracker().store
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / ".llmnb" / "usage.db"


def test_settings_can_choose_memory_or_another_file(tmp_path: Path, write_settings) -> None:
    write_settings({"usage": {"store": "memory"}})
    assert isinstance(get_tracker().store, MemoryStore)
    reset_default_tracker()
    write_settings({"usage": {"store": "sqlite:///data/calls.db"}})
    store = get_tracker().store
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "data" / "calls.db"


def test_environment_variable_overrides_the_settings(
    tmp_path: Path, write_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_settings({"usage": {"store": "sqlite:///x.db"}})
    monkeypatch.setenv("LLMNB_USAGE_STORE", "memory")
    assert isinstance(get_tracker().store, MemoryStore)


def test_a_bad_store_address_warns_and_falls_back_to_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMNB_USAGE_STORE", "mysql://nope")
    with pytest.warns(UsageStoreWarning, match="LLMNB_USAGE_STORE.*sqlite:///"):
        tracker = get_tracker()
    assert isinstance(tracker.store, MemoryStore)
    tracker.record(1, 1)  # recording works all the same
    assert len(tracker) == 1


def test_calls_through_the_default_tracker_survive_a_restart(tmp_path: Path) -> None:
    out = run_script(
        tmp_path,
        """
        import llmnb
        llmnb.create_llm_client_from_profile().complete("hello")
        """,
    )
    assert out.returncode == 0, out.stderr
    df = get_tracker().to_dataframe()
    assert list(df["profile"]) == ["demo"] and df["session"].iat[0] != get_tracker().session


def test_importing_llmnb_loads_no_sqlite_and_starts_no_thread(tmp_path: Path) -> None:
    out = run_script(
        tmp_path,
        """
        import sys, threading
        import llmnb, llmnb.usage
        print("sqlite3" in sys.modules, threading.active_count())
        """,
    )
    assert out.stdout.split() == ["False", "1"], out.stderr


def test_a_version_2_file_gains_kind_round_and_attachments_and_old_rows_read_as_defaults(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v2.db"
    later = ("kind", "round", "attachments")
    cols = [c for c in UsageTracker().record(1, 1)._fields if c not in later]
    conn = sqlite3.connect(path)  # as llmnb wrote files at schema version 2
    conn.execute(f"CREATE TABLE usage (id INTEGER PRIMARY KEY AUTOINCREMENT, {', '.join(cols)})")
    conn.execute("INSERT INTO usage (time, session, cost_usd, cached) VALUES (1.0, 'old', 0.5, 0)")
    conn.execute("PRAGMA user_version=2")
    conn.commit()
    conn.close()
    old = read_usage(path)  # read-only: the file is not changed
    assert [(r.kind, r.round, r.attachments) for r in old] == [("chat", 1, 0)]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    conn.close()

    store = SQLiteStore(path)
    UsageTracker(store=store).record(3, 0, kind="embedding", round=2, attachments=4)
    assert store.flush() is True
    store.close()
    back = read_usage(path)
    first = back[0]
    assert (first.session, first.kind, first.round, first.attachments) == ("old", "chat", 1, 0)
    assert (back[1].kind, back[1].round, back[1].attachments) == ("embedding", 2, 4)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()
    df = UsageTracker(store=SQLiteStore(path)).to_dataframe()
    assert str(df["kind"].dtype) == "category" and str(df["round"].dtype) == "Int64"
    assert df["attachments"].tolist() == [0, 4]
