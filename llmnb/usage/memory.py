"""Where usage rows go: the :class:`UsageStore` protocol and the in-memory :class:`MemoryStore`.

``MemoryStore`` keeps rows column by column (category columns as ``array("i")`` codes), so
that a DataFrame of a million rows is built without transposing or hashing, and takes
appends from many threads without a lock. The SQLite and PostgreSQL stores keep one as
their in-process view.
"""

from __future__ import annotations

import math
import threading
from array import array
from typing import Any, NamedTuple, Protocol, runtime_checkable

from llmnb.errors import LLMError
from llmnb.usage.record import CATEGORY_COLUMNS, COLUMNS, CodedColumn, UsageRecord

__all__ = ["MemoryStore", "StoreStatus", "UsageStore", "UsageStoreError", "UsageStoreWarning"]


class UsageStoreWarning(UserWarning):
    """The usage database cannot be used right now; rows are kept in memory meanwhile."""


class UsageStoreError(LLMError):
    """A usage database cannot be read (``llmnb usage`` on a damaged or foreign file)."""


class StoreStatus(NamedTuple):
    """The health of a usage store (``llmnb.usage.store_status()``); ``error`` never
    holds a password or a key. A store may offer it as ``health()``."""

    state: str  # "ok" | "degraded" | "failed"
    pending: int  # rows recorded and not yet in the store
    error: str | None  # the last problem and what to do; None when all is well
    unwritten: int = 0  # rows the store refused: in this session's memory only
    store: str = ""  # where rows go, one line

    @property
    def healthy(self) -> bool:
        return self.state == "ok"

    def line(self) -> str:
        """One line for a notebook: ``⚠ usage store degraded: …``; '' when healthy."""
        if self.healthy:
            return ""
        parts = [f"⚠ usage store {self.state}"]
        counts = []
        if self.pending:
            counts.append(f"{self.pending:,} rows waiting")
        if self.unwritten:
            counts.append(f"{self.unwritten:,} rows kept in memory only")
        if counts:
            parts.append(f" ({', '.join(counts)})")
        if self.error:
            parts.append(f": {self.error}")
        return "".join(parts)


@runtime_checkable
class UsageStore(Protocol):
    """Where rows go. The tracker calls these under its lock: a store need not be
    thread-safe. Optional extras the tracker uses when present: ``clear()``,
    ``__len__()``, ``append_one(record)`` and ``columns()`` (see :class:`MemoryStore`)."""

    def append(self, records: list[UsageRecord]) -> None: ...

    def load(self) -> list[UsageRecord]: ...


class MemoryStore:
    """The default store: rows kept in memory, lost when the kernel stops.

    Rows are buffered and moved into per-column storage every :attr:`CHUNK` rows — lists,
    and for category columns ``array("i")`` codes. A DataFrame of a million rows then needs
    neither transposing nor string hashing (together most of a second), while an append
    stays a ``list.append``.

    Appends need no lock (``concurrent_append``): the buffer is one list that is never
    replaced, ``list.append`` is atomic, and a flush moves out only the rows it counted.
    """

    CHUNK = 1024
    #: The tracker may call ``append_one`` without holding its lock.
    concurrent_append = True
    __slots__ = ("_cols", "_flush_lock", "_pending")

    def __init__(self) -> None:
        self._pending: list[UsageRecord] = []
        self._cols: list[Any] = _empty_columns()
        self._flush_lock = threading.Lock()

    def append(self, records: list[UsageRecord]) -> None:
        self._pending.extend(records)
        if len(self._pending) >= self.CHUNK:
            self._flush()

    def append_one(self, record: UsageRecord) -> None:
        """``append([record])`` without the list."""
        pending = self._pending
        pending.append(record)
        if len(pending) >= self.CHUNK:
            self._flush()

    @property
    def buffer(self) -> list[UsageRecord]:
        """The list rows are appended to; it is never replaced. ``buffer.append(row)`` is
        ``append_one(row)`` without the method call — the tracker's hot path — provided
        the appender calls :meth:`flush` once the buffer holds :attr:`CHUNK` rows."""
        return self._pending

    def flush(self) -> None:
        """Move the buffered rows into the columns."""
        self._flush()

    def load(self) -> list[UsageRecord]:
        self._flush()
        columns: list[Any] = []
        for col in self._cols:
            if isinstance(col, _Coded):
                lut = [*col.categories, None]  # code -1 -> the last item, None
                columns.append(map(lut.__getitem__, col.codes))
            else:
                columns.append(col)
        return list(map(UsageRecord._make, zip(*columns, strict=True)))

    def columns(self) -> tuple[int, list[Any]]:
        """``(n, columns)`` in :data:`COLUMNS` order, for fast DataFrames. Category columns
        are :class:`CodedColumn` copies; the others are the live lists — they only grow,
        so read only their first ``n`` items."""
        with self._flush_lock:
            self._flush_locked()
            out: list[Any] = []
            for col in self._cols:
                if isinstance(col, _Coded):
                    out.append(CodedColumn(col.codes[:], list(col.categories)))
                else:
                    out.append(col)
            return len(self._cols[0]), out

    def spent_since(
        self, since: float, *, profile: str | None = None, exclude_session: str | None = None
    ) -> float:
        """USD of the rows with a known cost since ``since`` (UTC epoch seconds), of
        ``profile`` only if given, leaving out the rows of ``exclude_session``."""
        return spent_in(self.load(), since, profile, exclude_session)

    def clear(self) -> None:
        with self._flush_lock:
            # New columns rather than emptying: a reader holding the old lists stays valid.
            self._cols = _empty_columns()
            del self._pending[:]

    def __len__(self) -> int:
        return len(self._cols[0]) + len(self._pending)

    def __repr__(self) -> str:
        return f"<MemoryStore {len(self)} rows>"

    def _flush(self) -> None:
        with self._flush_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        pending = self._pending
        n = len(pending)
        if not n:
            return
        # Rows appended from here on land after index n and stay for the next flush.
        rows = pending[:n]
        # Encode everything first: a failure must not leave the columns misaligned.
        chunks: list[Any] = []
        for col, values in zip(self._cols, zip(*rows, strict=True), strict=True):
            if isinstance(col, _Coded):
                try:
                    chunks.append(col.encode(values))
                except TypeError:  # an unhashable "model" or such: keep its text
                    chunks.append(col.encode(tuple(map(_hashable, values))))
            else:
                chunks.append(values)
        del pending[:n]
        for col, chunk in zip(self._cols, chunks, strict=True):
            (col.codes if isinstance(col, _Coded) else col).extend(chunk)


class _CodeOf(dict[Any, int]):
    """value -> code; an unseen value gets the next code (``categories`` records it)."""

    __slots__ = ("categories",)

    def __init__(self, categories: list[Any]) -> None:
        super().__init__({None: -1})
        self.categories = categories

    def __missing__(self, value: Any) -> int:
        code = len(self.categories)
        self.categories.append(value)
        self[value] = code
        return code


class _Coded:
    """A category column: int codes, and the values they stand for."""

    __slots__ = ("categories", "code_of", "codes")

    def __init__(self) -> None:
        self.codes = array("i")
        self.categories: list[Any] = []
        self.code_of = _CodeOf(self.categories)

    def encode(self, values: tuple[Any, ...]) -> array[int]:
        if len(set(values)) == 1:
            # Most chunks hold one session, status, profile…: skip the per-row lookups.
            return array("i", (self.code_of[values[0]],)) * len(values)
        return array("i", map(self.code_of.__getitem__, values))


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def spent_in(
    rows: list[UsageRecord], since: float, profile: str | None, exclude_session: str | None
) -> float:
    """What :meth:`MemoryStore.spent_since` sums, over any rows."""
    return math.fsum(
        r.cost_usd
        for r in rows
        if r.time >= since
        and r.cost_usd > 0  # NaN (unknown) compares False
        and r.session != exclude_session
        and (profile is None or r.profile == profile)
    )


def _empty_columns() -> list[Any]:
    return [_Coded() if c in CATEGORY_COLUMNS else [] for c in COLUMNS]
