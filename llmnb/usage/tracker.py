"""UsageTracker: one row per attempt, priced as it is recorded; the active one is a ContextVar.

Example::

    >>> t = UsageTracker(session="demo")
    >>> rec = t.record(1200, 300, model="gpt-4o", provider="openai", profile="oa")
    >>> rec.cost_source
    'price_table'
    >>> with t.activate():
    ...     get_tracker() is t
    True

``record()`` is on every call's path, so it does no pandas, no I/O and little checking:
a few microseconds. Reports (``to_dataframe``, ``summary``) import pandas when asked,
plots (``plot_costs``) matplotlib.

The process-wide default tracker (``get_tracker()`` outside any ``set_tracker``) is made
on first use with the store the settings name (``usage.store``, default
``sqlite:///.llmnb/usage.db``; see :mod:`llmnb.usage.stores`), so usage survives a kernel
restart. ``reset_default_tracker()`` writes out and forgets it.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sized
from contextlib import contextmanager
from contextvars import ContextVar, Token
from itertools import count, islice
from random import getrandbits
from time import monotonic as _monotonic
from time import time as _now
from typing import TYPE_CHECKING, Any

from llmnb.usage._cell import notebook_cell
from llmnb.usage.memory import MemoryStore, UsageStore
from llmnb.usage.pricing import _generation, cost_of, price_for, table_price
from llmnb.usage.record import COLUMNS, UsageRecord

if TYPE_CHECKING:
    import datetime

    import pandas as pd
    from matplotlib.axes import Axes

__all__ = [
    "RECORD_FIELDS",
    "SESSION_ID",
    "MemoryStore",
    "UsageStore",
    "UsageTracker",
    "get_tracker",
    "reset_default_tracker",
    "reset_tracker",
    "set_tracker",
]

log = logging.getLogger("llmnb.usage")

#: One short random id per process (kernel); every tracker's default ``session``.
SESSION_ID: str = uuid.uuid4().hex[:12]

#: Keyword arguments ``UsageTracker.record()`` accepts besides the two token counts.
RECORD_FIELDS: tuple[str, ...] = (
    "cached_tokens",
    "reasoning_tokens",
    "model",
    "provider",
    "profile",
    "agent",
    "step",
    "cost_usd",
    "cost_source",
    "estimated",
    "latency_s",
    "ttft_s",
    "status",
    "error",
    "call_id",
    "attempt",
    "cached",
    "key_id",
    "cell",
    "tags",
    "pricing",
    "base_url",
    "time",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "kind",
    "round",
    "attachments",
)
_UNKNOWN_TOKEN_FIELDS = tuple(
    f
    for f in RECORD_FIELDS
    if f not in ("cached_tokens", "reasoning_tokens", "cache_write_tokens", "cache_write_1h_tokens")
)

Listener = Callable[[UsageRecord], object]

_new_record = tuple.__new__
_modules = sys.modules
_INF = math.inf
# Call ids of rows recorded without one: a random start, then counting — unique across
# processes sharing a store, and cheaper than formatting random bits for every row.
_next_call_id = map("{:016x}".format, count(getrandbits(63))).__next__
_COST = COLUMNS.index("cost_usd")
_CALL_ID = COLUMNS.index("call_id")


class UsageTracker:
    """Records usage rows and reports them. ``UsageTracker(session="abc", store=None)``.

    Thread- and task-safe: appends hold a lock (a :class:`MemoryStore` needs none), and
    listeners run after it is released.
    """

    def __init__(self, session: str | None = None, store: UsageStore | None = None) -> None:
        self._session = SESSION_ID if session is None else str(session)
        self._store: UsageStore = MemoryStore() if store is None else store
        append_one = getattr(self._store, "append_one", None)
        self._append_one: Callable[[UsageRecord], None] = append_one or (
            lambda rec: self._store.append([rec])
        )
        self._lock = threading.Lock()
        self._lock_free = bool(append_one and getattr(self._store, "concurrent_append", False))
        # A MemoryStore's append buffer itself: record() appends to it without a method
        # call, and flushes when it holds a chunk (see MemoryStore.buffer).
        self._buffer: list[UsageRecord] | None = (
            getattr(self._store, "buffer", None) if self._lock_free else None
        )
        self._chunk: int = int(getattr(self._store, "CHUNK", 1024))
        self._listeners: tuple[Listener, ...] = ()
        self._failed_listeners: set[int] = set()
        # (model, provider, base_url, price, price generation, valid until in wall-clock
        # seconds): record()'s last genai-prices lookup.
        self._memo: tuple[Any, ...] = (None, None, None, None, None, -_INF)

    @property
    def session(self) -> str:
        return self._session

    @property
    def store(self) -> UsageStore:
        return self._store

    # -- recording ---------------------------------------------------------------------

    def record(
        self,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        *,
        cached_tokens: int | None = 0,
        reasoning_tokens: int | None = 0,
        model: str | None = None,
        provider: str | None = None,
        profile: str | None = None,
        agent: str | None = None,
        step: str | None = None,
        cost_usd: float | None = None,
        cost_source: str | None = None,
        estimated: bool = False,
        latency_s: float = math.nan,
        ttft_s: float = math.nan,
        status: str = "ok",
        error: str | BaseException | None = None,
        call_id: str | None = None,
        attempt: int = 1,
        cached: bool = False,
        key_id: str | None = None,
        cell: int | None = None,
        tags: Mapping[str, Any] | None = None,
        pricing: Mapping[str, Any] | None = None,
        base_url: str | None = None,
        time: float | _dt.datetime | None = None,
        cache_write_tokens: int | None = 0,
        cache_write_1h_tokens: int = 0,
        kind: str = "chat",
        round: int = 1,
        attachments: int = 0,
        **unknown: Any,
    ) -> UsageRecord:
        """Record one attempt and return its row; the cost is worked out here.

        Cost rules, first match wins: ``cached`` → 0 (``"cache"``); ``cost_usd`` given →
        it (``"provider"``); a price from ``pricing`` or genai-prices → tokens × price
        (``"price_table"``, or ``"estimate"`` if ``estimated``); else NaN (``"unknown"``).
        ``cost_source`` given by the caller replaces the label. ``time`` is UTC epoch
        seconds or a datetime (naive means UTC); ``key_id`` must be a fingerprint, never a key.
        ``kind`` is ``"chat"`` or ``"embedding"``; ``round`` numbers the requests of one
        call's tool loop; ``attachments`` counts the parts other than text sent.
        """
        if unknown:
            raise _unknown_fields("record", unknown, RECORD_FIELDS)
        now = _now()
        if cached:
            cost, source = 0.0, "cache"
        elif cost_usd is not None and cost_usd == cost_usd:  # NaN means "not reported"
            cost, source = float(cost_usd), "provider"
        elif prompt_tokens is None or completion_tokens is None:
            cost, source = math.nan, "unknown"
        else:
            # The last lookup, matched by identity: a client passes the same profile
            # strings call after call, and this skips hashing a key (see _price_memo).
            memo = self._memo
            if (
                memo[0] is model
                and memo[1] is provider
                and memo[2] is base_url
                and pricing is None
                and memo[4] is _generation[0]
                and memo[5] > now
            ):
                price = memo[3]
            elif pricing is not None:
                price = price_for(model, provider, base_url, pricing)
            else:
                generation = _generation[0]
                price, until = table_price(model, provider, base_url)
                until = now + (until - _monotonic())  # the row's clock: one call fewer
                self._memo = (model, provider, base_url, price, generation, until)
            if price is None:
                cost, source = math.nan, "unknown"
            else:
                if cache_write_tokens or price.tiers or not price.simple:
                    cost = cost_of(
                        price,
                        prompt_tokens,
                        completion_tokens,
                        cached_tokens or 0,
                        cache_write_tokens or 0,
                        cache_write_1h_tokens,
                    )
                elif cached_tokens:
                    cached_n = min(cached_tokens, prompt_tokens)
                    cost = (
                        (prompt_tokens - cached_n) * price.input
                        + cached_n * price.cached_input
                        + completion_tokens * price.output
                    )
                else:
                    cost = prompt_tokens * price.input + completion_tokens * price.output
                source = "estimate" if estimated else "price_table"
        if cost_source is not None:
            source = cost_source

        if time is None:
            t = now
        elif type(time) is float:
            t = time
        else:
            t = _epoch(time)
        if cell is None and "IPython" in _modules:
            cell = notebook_cell()
        # tuple.__new__ skips NamedTuple's Python-level __new__: a third of the cost.
        rec: UsageRecord = _new_record(
            UsageRecord,
            (
                t,
                self._session,
                profile,
                provider,
                model,
                agent,
                step,
                prompt_tokens,
                completion_tokens,
                cached_tokens,
                reasoning_tokens,
                None
                if prompt_tokens is None or completion_tokens is None
                else prompt_tokens + completion_tokens,
                cost,
                source,
                latency_s,
                ttft_s,
                status,
                error if error is None or type(error) is str else _error_text(error),
                call_id or _next_call_id(),
                attempt,
                cached,
                key_id,
                cell,
                None if tags is None else _tags(tags),
                cache_write_tokens,
                kind,
                round,
                attachments,
            ),
        )
        buffer = self._buffer
        if buffer is not None:
            buffer.append(rec)
            if len(buffer) >= self._chunk:
                self._append_flush()
        elif self._lock_free:
            self._append_one(rec)
        else:
            with self._lock:
                self._append_one(rec)
        if self._listeners:
            for fn in self._listeners:
                try:
                    fn(rec)
                except Exception:
                    self._listener_failed(fn)
        return rec

    def _append_flush(self) -> None:
        flush = getattr(self._store, "flush", None)
        if flush is not None:
            flush()

    def record_unknown(self, **fields: Any) -> UsageRecord:
        """Record an attempt whose token counts are unknown (a failed call, a custom
        provider that reports nothing): tokens <NA>, cost NaN, ``cost_source="unknown"``
        — unless ``cached`` or a provider-reported ``cost_usd`` says otherwise."""
        if fields.keys() - _UNKNOWN_TOKEN_FIELDS:
            bad = {k: v for k, v in fields.items() if k not in _UNKNOWN_TOKEN_FIELDS}
            raise _unknown_fields("record_unknown", bad, _UNKNOWN_TOKEN_FIELDS)
        return self.record(
            None,
            None,
            cached_tokens=None,
            reasoning_tokens=None,
            cache_write_tokens=None,
            **fields,
        )

    # -- listeners ---------------------------------------------------------------------

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(record)`` after each record (dashboards). Its errors are logged once,
        never raised: a broken dashboard must not lose usage rows."""
        with self._lock:
            self._listeners = (*self._listeners, fn)

    def remove_listener(self, fn: Listener) -> None:
        """Stop calling ``fn``; ``ValueError`` if it was not added."""
        with self._lock:
            listeners = list(self._listeners)
            try:
                # == not `is`: ``obj.method`` is a new bound-method object on each access
                added = listeners.pop(listeners.index(fn))
            except ValueError:
                raise ValueError(f"{fn!r} is not a listener of this tracker") from None
            self._listeners = tuple(listeners)
            self._failed_listeners.discard(id(added))

    def _listener_failed(self, fn: Listener) -> None:
        if id(fn) in self._failed_listeners:
            log.debug("usage listener %r failed again", fn, exc_info=True)
            return
        self._failed_listeners.add(id(fn))
        log.warning(
            "usage listener %r raised; the row was recorded, further errors from this "
            "listener are logged at DEBUG level",
            fn,
            exc_info=True,
        )

    # -- reading -----------------------------------------------------------------------

    @property
    def records(self) -> list[UsageRecord]:
        """All rows, oldest first (a new list)."""
        with self._lock:
            return list(self._store.load())

    def __len__(self) -> int:
        with self._lock:
            if isinstance(self._store, Sized):
                return len(self._store)
            return len(self._store.load())

    def clear(self) -> None:
        """Drop all rows (of the store, if it can be cleared)."""
        clear = getattr(self._store, "clear", None)
        if clear is None:
            raise TypeError(f"{type(self._store).__name__} cannot be cleared")
        with self._lock:
            clear()

    def total_cost(self) -> float:
        """USD of the rows whose cost is known; NaN if there are rows but none is known."""
        n, cols = self._snapshot()
        known = [c for c in islice(cols[_COST], n) if c == c]
        if n and not known:
            return math.nan
        return math.fsum(known)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per attempt; columns exactly :data:`~llmnb.usage.COLUMNS` (see
        :mod:`llmnb.usage.record` for dtypes). ``tracker.to_dataframe().tail()``"""
        from llmnb.usage.report import columns_to_dataframe

        n, cols = self._snapshot()
        return columns_to_dataframe(cols, n)

    def summary(
        self,
        by: str | list[str] | tuple[str, ...] = "model",
        since: str | datetime.datetime | None = None,
    ) -> pd.DataFrame:
        """Calls, attempts, errors, tokens, cost and median latency per group, costliest
        first. ``by`` is a column name, ``"day"`` (UTC date), ``"cell"`` (notebook
        execution count) or a list of them; ``since`` a window such as ``"24h"``, ``"7d"``,
        ``"today"`` or a datetime. ``tracker.summary(by=["provider", "model"])``"""
        from llmnb.usage.report import since_filter, summarize

        return summarize(since_filter(self.to_dataframe(), since), by)

    def plot_costs(
        self,
        by: str = "model",
        kind: str = "cumulative",
        ax: Axes | None = None,
        since: str | datetime.datetime | None = None,
    ) -> Axes:
        """Plot cost per group with matplotlib and return the Axes (``ax.figure``).

        ``kind``: ``"cumulative"`` (cost over time), ``"cost"`` (bars per group) or
        ``"tokens"`` (input/output tokens per group). Never calls ``plt.show()``; works
        headless (Agg). ``tracker.plot_costs(by="provider").figure.savefig("cost.png")``
        """
        from llmnb.usage.plots import plot_costs
        from llmnb.usage.report import since_filter

        return plot_costs(since_filter(self.to_dataframe(), since), by, kind, ax)

    def _repr_html_(self) -> str:
        from llmnb.usage.report import summary_html

        return summary_html(self.to_dataframe())

    def _snapshot(self) -> tuple[int, list[Any]]:
        """``(n, columns)``: read only the first n items of each column."""
        with self._lock:
            columns = getattr(self._store, "columns", None)
            if columns is not None:
                n, cols = columns()
                return n, list(cols)
            rows = self._store.load()
        if not rows:
            return 0, [[] for _ in COLUMNS]
        return len(rows), [list(c) for c in zip(*rows, strict=True)]

    def __repr__(self) -> str:
        n, cols = self._snapshot()
        costs = list(islice(cols[_COST], n))
        calls = len(set(islice(cols[_CALL_ID], n)))
        unknown = sum(1 for c in costs if c != c)
        total = math.fsum(c for c in costs if c == c)
        tail = f" ({unknown} rows with unknown cost)" if unknown else ""
        return f"<UsageTracker {n} rows, {calls} calls, ${total:.4f}{tail}>"

    # -- activation --------------------------------------------------------------------

    @contextmanager
    def activate(self) -> Iterator[UsageTracker]:
        """Make this the current tracker inside a ``with`` block (this task/thread only)."""
        token = set_tracker(self)
        try:
            yield self
        finally:
            _current.reset(token)


# -- the current tracker ---------------------------------------------------------------

_current: ContextVar[UsageTracker | None] = ContextVar("llmnb_usage_tracker", default=None)
_default: UsageTracker | None = None
_default_lock = threading.Lock()


def get_tracker() -> UsageTracker:
    """The tracker of this context (task/thread), else the process-wide default one."""
    tracker = _current.get()
    if tracker is not None:
        return tracker
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = UsageTracker(store=_configured_store())
    return _default


def reset_default_tracker() -> None:
    """Write out and forget the default tracker; the next ``get_tracker()`` makes a new
    one from the settings (e.g. after changing ``usage.store``)."""
    global _default
    with _default_lock:
        old, _default = _default, None
    close = getattr(old.store, "close", None) if old is not None else None
    if callable(close):
        close()


def _configured_store() -> UsageStore:
    # Never let the store break the call being recorded: fall back to memory, loudly.
    try:
        from llmnb.usage.stores import configured_store

        return configured_store()
    except Exception as exc:
        from llmnb.usage.memory import UsageStoreWarning

        warnings.warn(
            f"llmnb: usage store not available ({exc}); usage is kept in memory for this "
            "session only. Once fixed, llmnb.usage.reset_default_tracker() uses it.",
            UsageStoreWarning,
            stacklevel=3,
        )
        return MemoryStore()


def set_tracker(tracker: UsageTracker) -> Token[UsageTracker | None]:
    """Make ``tracker`` current in this context; returns a token for :func:`reset_tracker`."""
    if not isinstance(tracker, UsageTracker):
        raise TypeError(f"set_tracker() needs a UsageTracker, got {type(tracker).__name__}")
    return _current.set(tracker)


def reset_tracker(token: Token[UsageTracker | None]) -> None:
    """Undo the :func:`set_tracker` call that returned ``token``."""
    _current.reset(token)


# -- helpers ---------------------------------------------------------------------------


def _unknown_fields(method: str, given: Mapping[str, Any], accepted: tuple[str, ...]) -> TypeError:
    names = ", ".join(repr(k) for k in sorted(given))
    return TypeError(
        f"UsageTracker.{method}() got unexpected keyword argument(s) {names}; "
        f"accepted: {', '.join(sorted(accepted))}"
    )


def _epoch(value: Any) -> float:
    if isinstance(value, _dt.datetime):
        when: _dt.datetime = value
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.timezone.utc)  # naive means UTC, as documented
        return when.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"time must be UTC epoch seconds or a datetime, got {type(value).__name__}"
        ) from None


def _tags(tags: Any) -> dict[str, Any]:
    # A copy: the caller's dict may change after the row is written.
    if type(tags) is dict or isinstance(tags, Mapping):
        return dict(tags)
    raise TypeError(f"tags must be a mapping such as {{'run': 'a'}}, got {type(tags).__name__}")


def _error_text(error: object) -> str:
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


def _notebook_cell() -> int | None:
    return notebook_cell()
