"""SQLiteStore: usage rows kept in a SQLite file, written by a background thread.

Example::

    from llmnb.usage import UsageTracker
    from llmnb.usage.sqlite_store import SQLiteStore

    t = UsageTracker(store=SQLiteStore(".llmnb/usage.db"))
    t.record(1200, 300, model="gpt-4o", provider="openai")  # in t at once, on disk soon
    t.store.flush()          # True once every row so far is on disk
    t.to_dataframe()         # earlier sessions' rows (history) + this session's

How it behaves:

- **Off the hot path, on disk within tens of milliseconds.** ``append_one`` adds the
  row to an in-memory view (a :class:`~llmnb.usage.MemoryStore`) and to a queue; a
  daemon thread writes the queue in one transaction per batch: at once after a quiet
  spell, else at most every ``flush_interval`` seconds (0.02) or once ``batch_rows`` are
  queued. A committed row survives a SIGKILL of the process (WAL). Rows left at exit are
  written by an ``atexit`` hook (and by a ``multiprocessing`` finalizer in worker
  processes, which skip ``atexit``), and on SIGTERM/SIGHUP by a signal handler.
- **Several kernels at once.** WAL journal, ``BEGIN IMMEDIATE`` transactions,
  ``busy_timeout``, and retries with back-off while another process holds the lock.
- **History.** The first read loads the rows that were in the file when this store first
  touched it (the rows of earlier kernels), so dashboards survive a restart; this
  session's rows come from memory. Rows other kernels write later are not merged in
  (``llmnb usage`` reads the whole file).
- **Nothing is lost, nothing crashes.** A locked, unreadable or damaged file gives one
  :class:`UsageStoreWarning` naming the file and what to do; the rows stay in the
  in-memory view (and, while the file is only locked, are written once it is free).
  Any value is stored: lone surrogates and NUL in text become U+FFFD, an integer SQLite
  cannot hold is stored as NULL with the value noted in ``error``. Recording never
  raises because of the database, and :meth:`health` tells how the store is doing.

``clear()`` empties the in-memory view only: the file is shared with other kernels, so
deleting history is left to the user (delete the file).
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import sys
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import Any

import llmnb.usage._exit as _exit
from llmnb.usage._queued import Flush, QueuedStore
from llmnb.usage._sqlite import (
    INSERT_ONE,
    SCHEMA_VERSION,
    SELECT,
    TAGS,
    Incompatible,
    connect,
    failure_message,
    from_row,
    insert,
    is_busy,
    read_usage,
    shown,
    tags_json,
    to_row,
)
from llmnb.usage.memory import MemoryStore, UsageStoreWarning

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "read_usage"]


class SQLiteStore(QueuedStore):
    """Usage rows in a SQLite file; reads are served from memory. See the module docs.

    ``busy_timeout`` is how long one write waits for another process's lock (seconds);
    ``history=False`` skips loading earlier sessions' rows.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_rows: int = 512,
        flush_interval: float = 0.02,
        busy_timeout: float = 5.0,
        history: bool = True,
    ) -> None:
        self._path = Path(path).expanduser().absolute()
        self._batch_rows = max(1, int(batch_rows))
        self._interval = max(0.0, float(flush_interval))
        self._busy = max(0.0, float(busy_timeout))
        self._view = MemoryStore()
        self._history_pending = bool(history)
        self._history_rows = 0
        self._boundary: int | None = None  # last row id that counts as history
        self._status = "idle"  # idle / ok / locked / failed
        self._problem: str | None = None
        self._written = 0
        self._inflight = 0  # rows the writer has taken from the queue and not yet written
        self._conn: sqlite3.Connection | None = None  # the writer thread's
        self._reset_threading()
        _live.add(self)

    # -- the store protocol (called under the tracker's lock) -------------------------

    # -- state -------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    def describe(self) -> str:
        """One line for dashboards and ``llmnb doctor``."""
        where = shown(self._path)
        if self._status == "failed":
            return f"⚠ {self._problem}"
        if self._status == "locked":
            return f"⚠ SQLite {where} is locked by another process; rows wait in memory"
        if self._history_rows:
            return f"SQLite {where}, {self._history_rows:,} rows from earlier sessions"
        return f"SQLite {where}"

    def __repr__(self) -> str:
        return f"<SQLiteStore {str(self._path)!r} status={self._status} rows={len(self._view)}>"

    def spent_since(
        self, since: float, *, profile: str | None = None, exclude_session: str | None = None
    ) -> float:
        """USD of the file's rows with a known cost since ``since`` (UTC epoch seconds) —
        every kernel's, rows still queued here excepted — of ``profile`` only if given,
        leaving out ``exclude_session``'s. Raises UsageStoreError for an unreadable file."""
        from llmnb.usage._spent import sqlite_spent_since

        return sqlite_spent_since(self._path, since, profile, exclude_session)

    # -- flushing ----------------------------------------------------------------------

    def close(self, timeout: float | None = 10.0) -> bool:
        """Write what is queued and stop the writer; True when nothing is left unwritten.

        The store stays usable: a later row starts a new writer.
        """
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            return not self.pending or self._status == "failed"
        self._closing = True
        self._urgent.set()
        self._kick.set()
        thread.join(timeout)
        left = self.pending
        if left and self._status != "failed":
            warnings.warn(
                f"llmnb: {left} usage rows could not be written to {self._path} before "
                f"closing ({self._problem or 'the writer did not finish in time'}); they "
                "were in this session's tracker only.",
                UsageStoreWarning,
                stacklevel=2,
            )
        return not left

    # -- the writer thread --------------------------------------------------------------

    def _wake(self) -> None:
        if not self._thread_alive():
            with self._lock:
                if not self._thread_alive():
                    self._closing = False
                    self._pid = os.getpid()
                    self._thread = threading.Thread(
                        target=self._run, name=f"llmnb-usage-writer:{self._path.name}", daemon=True
                    )
                    self._thread.start()
                    _register_exit_hooks()
        _exit.install()  # cheap once done; tried again here from the main thread
        self._kick.set()

    def _drain(self, rows: list[Any], markers: list[Flush]) -> None:
        q = self._queue
        while True:
            try:
                item = q.popleft()
            except IndexError:
                return
            kind = type(item)
            if kind is Flush:
                markers.append(item)
            elif kind is _Unwritten:
                rows.append(item.row)
            elif item[TAGS] is None:
                # A record binds as it is (bool → 0/1, NaN → NULL): no per-row Python
                # work here keeps the writer from competing with the recording thread.
                rows.append(item)
            else:
                try:
                    rows.append((*item[:TAGS], tags_json(item[TAGS]), *item[TAGS + 1 :]))
                except Exception:  # tags json.dumps cannot take (a cycle, odd keys)
                    rows.append(to_row(item))

    def _requeue(self, rows: list[Any]) -> None:
        self._queue.extendleft(_Unwritten(r) for r in reversed(rows))

    def _prepare(self) -> None:
        if self._status != "failed":
            self._connection()

    def _stopped(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _write(self, rows: list[Any]) -> bool:
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                refused = _insert(conn, rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError, Incompatible) as exc:
            if is_busy(exc):
                self._set_locked(len(rows))
            else:
                self._fail(exc)
            if self._conn is not None and self._status == "failed":
                self._conn.close()
                self._conn = None
            return False
        self._written += len(rows) - len(refused)
        self._status, self._problem = "ok", None
        if refused:
            self._keep(len(refused), refused[-1])
        return True

    def _where(self) -> str:
        return shown(self._path)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = connect(self._path, self._busy)
            try:
                self._claim_boundary(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _claim_boundary(self, conn: sqlite3.Connection) -> int:
        # The first to touch the file (writer or history reader) fixes which rows are
        # "history": those already there. Our own rows get larger ids.
        with self._lock:
            if self._boundary is None:
                row = conn.execute("SELECT COALESCE(MAX(id), 0) FROM usage").fetchone()
                self._boundary = int(row[0])
            return self._boundary

    def _set_locked(self, n: int) -> None:
        first = self._status != "locked"
        self._status = "locked"
        self._problem = (
            f"the usage database {self._path} is locked by another process (waited "
            f"{self._busy:g} s); {n} usage rows are kept in memory and written once it is free"
        )
        if first:
            warnings.warn(
                f"llmnb: {self._problem}. If this lasts, close the program holding the file.",
                UsageStoreWarning,
                stacklevel=2,
            )

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._status == "failed":
                return
            self._status = "failed"
            self._problem = failure_message(self._path, exc)
        warnings.warn(f"llmnb: {self._problem}", UsageStoreWarning, stacklevel=2)

    # -- history -----------------------------------------------------------------------

    def _merge_history(self) -> None:
        if not self._history_pending:
            return
        if self._status == "failed":
            self._history_pending = False
            return
        try:
            conn = connect(self._path, min(self._busy, 2.0))
            try:
                boundary = self._claim_boundary(conn)
                cursor = conn.execute(f"{SELECT} WHERE id <= ? ORDER BY id", (boundary,))
                history = list(map(from_row, cursor))
            finally:
                conn.close()
        except (sqlite3.Error, OSError, Incompatible) as exc:
            if is_busy(exc):
                return  # try again at the next read; recording goes on meanwhile
            self._fail(exc)
            self._history_pending = False
            return
        merged = MemoryStore()
        merged.append(history)
        merged.append(self._view.load())
        self._view = merged
        self._history_rows = len(history)
        self._history_pending = False

    def _forked(self) -> None:
        # In a forked child the writer thread does not exist and the parent's connection
        # must not be used or closed here; the parent writes the rows it had queued.
        if self._conn is not None:
            _orphans.append(self._conn)
            self._conn = None
        self._reset_threading()


# Errors that are about a value of a row, not about the database.
_REFUSED = (
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
    sqlite3.IntegrityError,
    ValueError,
    TypeError,
    OverflowError,
)


def _insert(conn: sqlite3.Connection, rows: list[Any]) -> list[BaseException]:
    """Insert ``rows`` in the open transaction; the errors of the rows refused even
    cleaned (``rows`` is cleaned in place when a value was refused)."""
    try:
        insert(conn, rows)
        return []
    except _REFUSED:
        pass
    # An odd value (a lone surrogate, 10**20 tokens, a numpy int): clean every row …
    conn.execute("ROLLBACK")
    conn.execute("BEGIN IMMEDIATE")
    rows[:] = map(to_row, rows)
    try:
        insert(conn, rows)
        return []
    except _REFUSED:
        pass
    # … and if the database still refuses one, write them one by one and keep that one.
    conn.execute("ROLLBACK")
    conn.execute("BEGIN IMMEDIATE")
    refused: list[BaseException] = []
    for row in rows:
        try:
            conn.execute(INSERT_ONE, row)
        except _REFUSED as exc:
            refused.append(exc)
    return refused


class _Unwritten:
    """A converted row put back in the queue after a failed (locked) write."""

    __slots__ = ("row",)

    def __init__(self, row: tuple[Any, ...]) -> None:
        self.row = row


# -- process exit and fork ---------------------------------------------------------------

_live: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()
_orphans: list[sqlite3.Connection] = []
_hooks_pid: int | None = None


def _close_all(timeout: float = 5.0) -> None:
    """Write what every store still has queued; bounded, silent unless rows are left."""
    deadline = time.monotonic() + timeout
    for store in list(_live):
        store.close(max(0.0, deadline - time.monotonic()))


def _register_exit_hooks() -> None:
    global _hooks_pid
    if _hooks_pid == os.getpid():
        return
    _hooks_pid = os.getpid()
    # multiprocessing workers leave through os._exit(), skipping atexit; its own exit
    # function runs finalizers, so register there too when it is in use.
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.Finalize(None, _close_all, exitpriority=100)


def _after_fork_in_child() -> None:
    for store in list(_live):
        store._forked()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
