"""What the SQLite and PostgreSQL usage stores share: an in-memory view for reads, and a
queue that a background writer thread drains into the database.

A subclass writes the rows (``_run``, ``flush``, ``close``, ``_wake``) and loads the
history (``_merge_history``); this base answers the store protocol from the view, so
``record()`` never waits for the database.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any

from llmnb.usage.memory import MemoryStore
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
    _history_pending: bool
    _history_rows: int
    _status: str
    _problem: str | None
    _inflight: int

    def _reset_threading(self) -> None:
        self._queue: deque[Any] = deque()
        self._kick = threading.Event()  # something is queued
        self._urgent = threading.Event()  # a batch is full, or flush()/close() waits
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closing = False

    def _wake(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must start its writer in _wake()")

    def _merge_history(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must load history")

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
    def history_rows(self) -> int:
        """Rows loaded from the database at the first read (earlier sessions)."""
        return self._history_rows

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Write every row queued so far now; True when they are all stored.

        False when the store is locked (the rows stay queued and are retried), failed
        (the rows stay in memory only), or ``timeout`` seconds passed first.
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

    def _thread_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and self._pid == os.getpid()
