"""Eight processes × 5,000 rows into one SQLite usage database, all at once.

Half the writers are what a user runs — kernels whose default tracker stores to
``usage.store`` from the settings, recording through real client calls (mock profile) —
and half hammer the file with tiny batches (a transaction every few rows) so that the
writers wait on each other's locks all the time. All start together (a start file is
the barrier). Every row must arrive exactly once, and nothing — no "database is
locked", no warning — may reach a user's stderr.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from llmnb.usage.sqlite_store import read_usage

pytestmark = pytest.mark.slow

PROCESSES = 8
ROWS = 5_000

CHILD = textwrap.dedent(
    """
    import sys, time, warnings
    from pathlib import Path

    who, mode, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    while not Path("go").exists():  # the barrier: start together
        time.sleep(0.005)
    if mode == "kernel":
        import llmnb
        from llmnb.usage import get_tracker

        client = llmnb.create_llm_client_from_profile()
        for i in range(rows):
            client.complete(f"{who} call {i}", tags={"who": who})
        tracker = get_tracker()
        mine = [r for r in tracker.records if r.session == tracker.session]
        assert len(mine) == rows, len(mine)  # the rest is history: other kernels' rows
        # no close(): the exit hook writes what is left, as when a kernel stops
    else:
        from llmnb.usage import UsageTracker
        from llmnb.usage.sqlite_store import SQLiteStore

        store = SQLiteStore(".llmnb/usage.db", batch_rows=7, flush_interval=0.0)
        tracker = UsageTracker(session=who, store=store)
        for i in range(rows):
            tracker.record(3, 4, model="m", provider="p", call_id=f"{who}-{i}",
                           tags={"who": who})
        if not store.close(timeout=240):
            print("close() left rows unwritten:", store.problem, file=sys.stderr)
    """
)


def test_eight_processes_write_40000_rows_without_loss_or_lock_errors(tmp_path: Path) -> None:
    settings = {
        "llm": {
            "active_provider": "demo",
            "providers": {"demo": {"type": "mock", "model": "mock-1"}},
        },
        "usage": {"store": "sqlite:///.llmnb/usage.db"},
    }
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings.yaml").write_text(yaml.safe_dump(settings))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    modes = ["kernel" if i % 2 == 0 else "hammer" for i in range(PROCESSES)]
    env_clean = {
        k: v
        for k, v in __import__("os").environ.items()
        if not k.startswith(("LLM_", "LLMNB_")) and not k.endswith(("_API_KEY", "_API_KEYS"))
    }
    procs = [
        subprocess.Popen(
            # -W always: every warning (a UsageStoreWarning about a locked file…) is shown.
            [sys.executable, "-W", "always", str(script), f"w{i}", mode, str(ROWS)],
            cwd=tmp_path,
            env=env_clean,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, mode in enumerate(modes)
    ]
    time.sleep(0.5)  # let them import and reach the barrier (not needed for correctness)
    (tmp_path / "go").touch()
    results = [p.communicate(timeout=300) for p in procs]
    for i, (p, (out, err)) in enumerate(zip(procs, results, strict=True)):
        assert p.returncode == 0, f"w{i} ({modes[i]}) exited {p.returncode}:\n{err}"
        assert err == "", f"w{i} ({modes[i]}) wrote to stderr:\n{err}"
        assert "locked" not in out.lower()

    db = tmp_path / ".llmnb" / "usage.db"
    rows = read_usage(db)
    assert len(rows) == PROCESSES * ROWS
    per_writer: dict[str, set[str]] = {}
    for row in rows:
        per_writer.setdefault(str((row.tags or {}).get("who")), set()).add(
            f"{row.session}/{row.call_id}/{row.attempt}"
        )
    # Each writer's 5,000 rows, each once: nothing lost, nothing doubled.
    assert {w: len(ids) for w, ids in per_writer.items()} == {
        f"w{i}": ROWS for i in range(PROCESSES)
    }
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
