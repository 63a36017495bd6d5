"""What the SQLite and PostgreSQL usage stores share: an in-memory view for reads, a
queue, and the background writer thread that drains it into the database.

A subclass writes batches (``_write``), starts the thread (``_wake``) and loads the
history (``_merge_history``); this base answers the store protocol from the view, so
``record()`` never waits for the database, and runs the writer's loop:

- **Prompt when idle, batched under load.** A row that comes after a quiet spell of
  ``flush_interval`` seconds is written at once; while rows keep coming, one write per
  ``flush_interval`` takes them all (or sooner once ``batch_rows`` are queued). With the
  default 0.02 s a row is in the database within a few tens of milliseconds.
- **The writer never dies.** A value the database refuses is cleaned
  (:mod:`llmnb.usage._clean`) and the batch written again; a row refused even then is
  kept in this session's view (one warning, :meth:`health` says ``degraded``) while its
  batch-mates are written; anything unexpected is caught the same way.
- **Signals.** SIGTERM and SIGHUP write the queue before the process ends
  (:mod:`llmnb.usage._exit`).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections import deque
from typing import Any

import llmnb.usage._exit as _exit
from llmnb.usage._clean import scrub_problem
from llmnb.usage.memory import MemoryStore, StoreStatus, UsageStoreWarning
from llmnb.usage.record import UsageRecord

__all__ = ["Flush", "QueuedStore"]


class Flush:
    """A marker in the queue: set ``done`` once every row queued before it was tried."""

    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


class QueuedStore:
    """The store protocol over an in-memory view plus a write queue (see module docs)."""

    _view: MemoryStore
    _batch_rows: int
    _interval: float
    _history_pending: bool
    _history_rows: int
    _status: str
    _problem: str | None
    _inflight: int
    _written: int
    #: Seconds before the first retry after a failed write (then doubled, up to 5 s).
    _retry_after = 0.1
    #: close() stops the writer even while the database is away (rows stay queued).
    _give_up_on_close = False
    _unwritten = 0  # rows the database refused even cleaned: in the view only
    _refusal: str | None = None  # why the last of them was refused

    def _reset_threading(self) -> None:
        self._queue: deque[Any] = deque()
        self._kick = threading.Event()  # something is queued
        self._urgent = threading.Event()  # a batch is full, or flush()/close() waits
        self._lock = threading.Lock()
        # Held by the writer while it is inside the database library: fork() waits for
        # it (see _before_fork), so a child never inherits a library lock mid-call.
        self._db_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closing = False
        self._last_write = time.monotonic()
        _exit.register(self)
        _exit.install()

    def _wake(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must start its writer in _wake()")

    def _merge_history(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must load history")

    def _write(self, rows: list[Any]) -> bool:
        """Write ``rows`` in one go: True when each is stored or refused for good; False
        to retry later (``rows`` then holds those still to write)."""
        raise NotImplementedError(f"{type(self).__name__} must write rows")

    # -- the store protocol (called under the tracker's lock) -------------------------

    def append_one(self, record: UsageRecord) -> None:
        """Add one row: to memory now, to the database in the background."""
        self._view.append_one(record)
        q = self._queue
        q.append(record)
        if len(q) == 1:
            self._wake()  # once per batch: the writer sleeps while the queue is empty
        elif len(q) >= self._batch_rows and not self._urgent.is_set():
            self._urgent.set()

    def append(self, records: list[UsageRecord]) -> None:
        for record in records:
            self.append_one(record)

    def load(self) -> list[UsageRecord]:
        self._merge_history()
        return self._view.load()

    def columns(self) -> tuple[int, list[Any]]:
        """``(n, columns)`` like :meth:`MemoryStore.columns`, history included."""
        self._merge_history()
        return self._view.columns()

    def clear(self) -> None:
        """Empty the in-memory view; the database keeps its rows (others share it)."""
        self._view = MemoryStore()
        self._history_pending = False

    def __len__(self) -> int:
        self._merge_history()
        return len(self._view)

    # -- state -------------------------------------------------------------------------

    @property
    def status(self) -> str:
        """``idle`` (nothing written yet), ``ok``, a retrying state, or ``failed``."""
        return self._status

    @property
    def problem(self) -> str | None:
        """What went wrong with the database, and what to do; None when all is well."""
        return self._problem

    @property
    def pending(self) -> int:
        """Rows recorded but not yet written (queued, or being written)."""
        queued = sum(1 for item in tuple(self._queue) if type(item) is not Flush)
        return queued + self._inflight

    @property
    def unwritten(self) -> int:
        """Rows the database refused even after cleaning: in this session's view only."""
        return self._unwritten

    @property
    def history_rows(self) -> int:
        """Rows loaded from the database at the first read (earlier sessions)."""
        return self._history_rows

    def health(self) -> StoreStatus:
        """``ok`` / ``degraded`` / ``failed``, rows pending, the last problem (scrubbed)."""
        pending = self.pending
        thread = self._thread
        stopped = (
            pending > 0
            and thread is not None
            and not thread.is_alive()
            and self._pid == os.getpid()
            and not self._closing
        )
        problem = self._problem
        if self._status == "failed":
            state = "failed"
        elif self._status not in ("ok", "idle") or self._unwritten or stopped:
            state = "degraded"
            if problem is None:
                problem = self._refusal if not stopped else "the usage writer is not running"
        else:
            state, problem = "ok", None
        describe = getattr(self, "describe", None)
        where = str(describe()) if callable(describe) else type(self).__name__
        return StoreStatus(state, pending, scrub_problem(problem), self._unwritten, where)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Write every row queued so far now; True when they are all stored.

        False when the store is locked (the rows stay queued and are retried), failed
        (the rows stay in memory only), refused a row, or ``timeout`` seconds passed first.
        """
        if self._status == "failed":
            return False
        if not self._queue and not self._thread_alive():
            return True
        marker = Flush()
        self._queue.append(marker)
        self._urgent.set()
        self._wake()
        return marker.done.wait(timeout) and marker.ok

    def _flush_now(self, timeout: float) -> bool:
        """:meth:`flush` for a signal handler, which may have interrupted this very store
        while it held its lock: never wait for that lock."""
        if self._status == "failed" or self._pid != os.getpid():
            return False
        if not self._queue and not self._inflight:
            return True
        if not self._thread_alive():
            if not self._lock.acquire(blocking=False):
                return False  # the interrupted code is starting the writer right now
            self._lock.release()
        return self.flush(timeout)

    def _thread_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and self._pid == os.getpid()

    # -- the writer thread --------------------------------------------------------------

    def _run(self) -> None:
        rows: list[Any] = []  # taken from the queue, not yet written
        backoff = 0.0
        try:
            with self._db_lock:
                self._prepare()  # open the database while the first batch fills
        except Exception:
            pass  # the first write tries again and reports what is wrong
        while True:
            self._pace(backoff)
            self._kick.clear()
            self._urgent.clear()
            closing = self._closing
            markers: list[Flush] = []
            written = True
            try:
                refused = self._unwritten
                self._drain(rows, markers)
                self._inflight = len(rows)
                if rows and self._status != "failed":
                    with self._db_lock:
                        written = self._write(rows)
                if written or self._status == "failed":
                    rows.clear()  # stored, or kept in the view only (the database is unusable)
                    backoff = 0.0
                else:
                    backoff = min(max(backoff * 2, self._retry_after), 5.0)
                ok = not rows and self._status in ("ok", "idle") and self._unwritten == refused
            except Exception as exc:  # a bug must not stop the writer: keep the rows in view
                self._keep(len(rows), exc)
                rows.clear()
                ok = False
            for marker in markers:
                marker.ok = ok
                marker.done.set()
            if rows:
                self._requeue(rows)  # at the queue's front: counted by `pending`, retried
                rows.clear()
            self._inflight = 0
            if closing and (not self._queue or (not written and self._give_up_on_close)):
                break
        with self._db_lock:
            self._stopped()

    def _pace(self, backoff: float) -> None:
        # Sleep until rows arrive (or, after a failed write, until it is time to retry),
        # then write at once after a quiet spell, else one flush_interval after the last
        # write — unless a batch is full or someone waits in flush()/close().
        self._kick.wait(backoff or None)
        if not self._closing and not self._urgent.is_set():
            wait = self._last_write + self._interval - time.monotonic()
            if wait > 0:
                self._urgent.wait(wait)
        self._last_write = time.monotonic()

    def _drain(self, rows: list[Any], markers: list[Flush]) -> None:
        q = self._queue
        while q:
            item = q.popleft()
            (markers if type(item) is Flush else rows).append(item)

    def _requeue(self, rows: list[Any]) -> None:
        self._queue.extendleft(reversed(rows))

    def _prepare(self) -> None:
        """Called once as the writer starts: connect, set up the schema."""

    def _stopped(self) -> None:
        """The writer's loop ended (close()); release what it held."""

    def _keep(self, n: int, exc: BaseException) -> None:
        """``n`` rows cannot be written: they stay in the view; one warning per store."""
        if not n:
            return
        first = not self._unwritten
        self._unwritten += n
        self._refusal = (
            f"{self._unwritten:,} usage rows could not be written to {self._where()} "
            f"({type(exc).__name__}: {exc}); they are in this session's tracker only"
        )
        if first:
            message = f"llmnb: {scrub_problem(self._refusal)}."
            warnings.warn(message, UsageStoreWarning, stacklevel=2)

    def _where(self) -> str:
        return type(self).__name__


# -- fork ----------------------------------------------------------------------------------

_FORK_WAIT_S = 10.0
_held: list[threading.Lock] = []


def _before_fork() -> None:
    # Wait for each writer to leave the database library (a write takes milliseconds;
    # a lock wait at most busy_timeout), bounded so that fork() never hangs.
    deadline = time.monotonic() + _FORK_WAIT_S
    for store in list(_exit.live()):
        lock = getattr(store, "_db_lock", None)
        if lock is not None and lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            _held.append(lock)


def _after_fork_in_parent() -> None:
    while _held:
        _held.pop().release()


def _after_fork_in_child() -> None:
    _held.clear()  # each store's _forked() gives it new locks


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
