"""PostgresStore: a team's usage rows in one PostgreSQL table, written in the background.

Example::

    from llmnb.usage import UsageTracker
    from llmnb.usage.postgres_store import PostgresStore

    store = PostgresStore("postgresql+psycopg://llmnb@db.internal/llmnb")
    t = UsageTracker(store=store)
    t.record(1200, 300, model="gpt-4o", provider="openai")   # in t at once, in the DB soon
    store.flush()                            # True once every row so far is committed
    store.summary(by="user", since="7d")     # the whole team's spend, per person

Or in ``config/settings.yaml``: ``usage: {store: "postgresql+psycopg://…"}`` — the
default tracker, the dashboards and ``llmnb usage`` then read and write it.

How it behaves (as :class:`~llmnb.usage.sqlite_store.SQLiteStore` does):

- **Off the hot path.** ``append_one`` adds the row to an in-memory view and a queue; a
  daemon thread inserts the queue through SQLAlchemy (one transaction per batch, rows
  sent as multi-row ``INSERT … VALUES``): at once after a quiet spell, else at most every
  ``flush_interval`` seconds (0.02). Rows still queued at exit are written by an
  ``atexit`` hook, and on SIGTERM/SIGHUP by a signal handler.
- **Team columns.** Each row also carries ``user_name``, ``host`` and ``notebook`` (the
  writing process's; a row's ``tags`` may override them with ``user``/``host``/
  ``notebook`` keys). :meth:`team_dataframe` and :meth:`summary` read every member's rows.
- **Schema.** Created on first use and migrated by version: ``llmnb_schema_version``
  holds ``('usage', N)``; migrations run under a PostgreSQL advisory lock, so kernels
  starting together do not race. A database written by a newer llmnb is left alone.
- **Nothing is lost, nothing crashes.** When the server is unreachable the rows stay
  queued (and in this session's view) and are retried with back-off; one
  :class:`~llmnb.usage.UsageStoreWarning` says so. A value PostgreSQL refuses (NUL or
  a lone surrogate in text, NaN in tags, an integer beyond the column) is cleaned and
  its note put in ``error``; one bad row never marks the store failed. Recording never
  raises.
- **History.** The first read loads earlier rows of this user (``history="user"``, the
  default), of everyone (``"all"``) or none (``"none"``), so dashboards survive a restart.

Passwords in the URL never appear in a repr, a warning or :meth:`describe`; prefer
``PGPASSWORD`` / ``~/.pgpass``, which libpq reads.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import logging
import os
import threading
import warnings
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import llmnb.usage._exit as _exit
from llmnb.usage._postgres_sql import (
    clean_params,
    create_engine,
    driver_url,
    failure_message,
    from_row,
    hidden,
    last_id,
    refused_row,
    select,
    team_frame,
    to_params,
    unreachable_message,
)
from llmnb.usage._postgres_sql import is_postgres_url as is_postgres_url
from llmnb.usage._queued import QueuedStore
from llmnb.usage.memory import MemoryStore, UsageStoreError, UsageStoreWarning
from llmnb.usage.postgres_schema import SCHEMA_VERSION as SCHEMA_VERSION
from llmnb.usage.postgres_schema import Incompatible, migrate, table
from llmnb.usage.team import TEAM_COLUMNS, identity, summarize_team

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

__all__ = [
    "SCHEMA_VERSION",
    "TEAM_COLUMNS",
    "PostgresStore",
    "identity",
    "is_postgres_url",
    "summarize_team",
]

log = logging.getLogger("llmnb.usage")


class PostgresStore(QueuedStore):
    """Usage rows in PostgreSQL; reads of this session are served from memory.

    ``url`` is a SQLAlchemy URL (``postgresql+psycopg://user@host/db``; a bare
    ``postgresql://`` means psycopg too). ``history``: ``"user"``, ``"all"`` or ``"none"``.
    ``who`` overrides :func:`identity` (tests, service accounts).
    """

    _retry_after = 0.25
    _give_up_on_close = True  # an unreachable server must not hold up close() or exit

    def __init__(
        self,
        url: str,
        *,
        batch_rows: int = 500,
        flush_interval: float = 0.02,
        history: str = "user",
        who: dict[str, str | None] | None = None,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        from sqlalchemy.engine import make_url

        if history not in ("user", "all", "none"):
            raise ValueError(f"history must be 'user', 'all' or 'none', got {history!r}")
        try:
            self._url = make_url(driver_url(url))
        except Exception as exc:
            raise ValueError(
                f"{hidden(url)!r} is not a database URL: use "
                "'postgresql+psycopg://user@host:5432/database'"
            ) from exc
        self._shown = self._url.render_as_string(hide_password=True)
        self._batch_rows = max(1, int(batch_rows))
        self._interval = max(0.0, float(flush_interval))
        self._history = history
        self._who = dict(who) if who is not None else None
        self._engine_options = dict(engine_options or {})
        self._engine: sa.Engine | None = None
        self._engine_lock = threading.Lock()
        self._ready = False  # schema checked / migrated by this store
        self._boundary: int | None = None  # last row id that counts as history
        self._view = MemoryStore()
        self._history_pending = history != "none"
        self._history_rows = 0
        self._status = "idle"  # idle / ok / unavailable / failed
        self._problem: str | None = None
        self._written = 0
        self._inflight = 0
        self._reset_threading()
        _live.add(self)

    # -- state ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return self._shown

    @property
    def written(self) -> int:
        """Rows this store has committed."""
        return self._written

    def describe(self) -> str:
        """One line for dashboards and ``llmnb doctor``."""
        if self._status in ("failed", "unavailable"):
            return f"⚠ {self._problem}"
        more = f", {self._history_rows:,} rows from earlier sessions" if self._history_rows else ""
        return f"PostgreSQL {self._shown}{more}"

    def __repr__(self) -> str:
        return f"<PostgresStore {self._shown!r} status={self._status} rows={len(self._view)}>"

    # -- flushing -------------------------------------------------------------------------

    def close(self, timeout: float | None = 10.0) -> bool:
        """Write what is queued, stop the writer and the connections; True if nothing is
        left unwritten. The store stays usable (a later row starts a new writer)."""
        ok = self.flush(timeout)
        self._closing = True
        self._kick.set()
        self._urgent.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            thread.join(timeout)
        left = self.pending
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()
        if left:
            warnings.warn(
                f"llmnb: {left} usage rows could not be written to {self._shown} "
                f"({self._problem or 'the writer did not finish in time'}); they were in "
                "this session's tracker only.",
                UsageStoreWarning,
                stacklevel=2,
            )
        return ok and not left

    # -- team views -----------------------------------------------------------------------

    def spent_since(
        self, since: float, *, profile: str | None = None, exclude_session: str | None = None
    ) -> float:
        """USD of the table's rows with a known cost since ``since`` (UTC epoch seconds) —
        every process's, rows still queued here excepted — of ``profile`` only if given,
        leaving out ``exclude_session``'s. Raises UsageStoreError when it cannot be read."""
        from sqlalchemy import exc as sa_exc

        from llmnb.usage._spent import postgres_spent_since

        if self._status in ("failed", "unavailable"):  # do not wait on a server known away
            raise UsageStoreError(self._problem or f"{self._shown} is unavailable")
        try:
            return postgres_spent_since(self._connect(), since, profile, exclude_session)
        except (sa_exc.SQLAlchemyError, Incompatible, OSError) as exc:
            raise UsageStoreError(failure_message(self._shown, exc)) from None

    def team_dataframe(self, since: str | _dt.datetime | None = None) -> pd.DataFrame:
        """Every member's rows (the usage columns plus ``user``, ``host``, ``notebook``).

        ``since`` is a window such as ``"24h"``, ``"7d"``, ``"today"`` or a datetime.
        Raises :class:`UsageStoreError` when the database cannot be read.
        """
        from llmnb.usage.report import parse_since

        start = since if isinstance(since, _dt.datetime) else parse_since(since)
        return team_frame(self._select(start=start))

    def summary(
        self,
        by: str | Sequence[str] = "user",
        since: str | _dt.datetime | None = None,
    ) -> pd.DataFrame:
        """The team's calls, tokens and cost per ``by`` group (``"user"``, ``"host"``,
        ``"notebook"`` or any usage column), costliest first.

        Example::

            store.summary(by=["user", "model"], since="30d")
        """
        return summarize_team(self.team_dataframe(since), by)

    # -- the writer thread ----------------------------------------------------------------

    def _wake(self) -> None:
        if not self._thread_alive():
            with self._lock:
                if not self._thread_alive():
                    self._closing = False
                    self._pid = os.getpid()
                    self._thread = threading.Thread(
                        target=self._run, name="llmnb-usage-writer:postgres", daemon=True
                    )
                    self._thread.start()
        _exit.install()  # cheap once done; tried again here from the main thread
        self._kick.set()

    def _write(self, rows: list[Any]) -> bool:
        from sqlalchemy import exc as sa_exc

        try:
            engine = self._connect()
            who = self._who if self._who is not None else identity()  # once per batch
            written, refused = self._insert(engine, rows, who)
        except (sa_exc.OperationalError, sa_exc.InterfaceError, OSError) as exc:
            self._unavailable(exc, len(rows))
            return False
        except (sa_exc.SQLAlchemyError, Incompatible, ValueError, TypeError) as exc:
            self._fail(exc)
            return False
        if self._status != "ok" and self._status != "idle":
            log.warning("llmnb: usage database %s is reachable again", self._shown)
        self._written += written
        self._status, self._problem = "ok", None
        if refused:
            self._keep(len(refused), refused[-1])
        return True

    def _insert(
        self, engine: sa.Engine, rows: list[Any], who: dict[str, str | None]
    ) -> tuple[int, list[BaseException]]:
        """Insert ``rows``: (rows written, errors of the rows refused even cleaned).

        Row by row only after a refusal, each in its own transaction; the rows written
        so far leave ``rows``, so that a lost connection retries only the others.
        """
        insert = table().insert()
        for convert in (to_params, clean_params):
            try:
                params = [convert(r, who) for r in rows]
                with engine.begin() as conn:
                    for start in range(0, len(params), self._batch_rows):
                        conn.execute(insert, params[start : start + self._batch_rows])
                return len(rows), []
            except Exception as exc:
                if not refused_row(exc):
                    raise
        refused: list[BaseException] = []
        done = 0
        try:
            for rec in rows:
                try:
                    with engine.begin() as conn:
                        conn.execute(insert, [clean_params(rec, who)])
                except Exception as exc:
                    if not refused_row(exc):
                        raise
                    refused.append(exc)
                done += 1
        finally:
            del rows[:done]
        return done - len(refused), refused

    def _where(self) -> str:
        return self._shown

    # -- connection and schema ------------------------------------------------------------

    def _engine_or_new(self) -> sa.Engine:
        with self._engine_lock:  # the writer thread and a reader may both get here first
            if self._engine is None:
                self._engine = create_engine(self._url, self._engine_options)
            return self._engine

    def _connect(self) -> sa.Engine:
        engine = self._engine_or_new()
        if not self._ready:
            with engine.begin() as conn:
                migrate(conn)
            self._claim_boundary(engine)
            self._ready = True
        return engine

    def _claim_boundary(self, engine: sa.Engine) -> int:
        # The first touch fixes which rows are "history": those already there. This
        # store's own rows get larger ids.
        with self._lock:
            if self._boundary is None:
                with engine.connect() as conn:
                    self._boundary = last_id(conn)
            return self._boundary

    def _select(
        self,
        start: _dt.datetime | None = None,
        max_id: int | None = None,
        user: str | None = None,
    ) -> list[Any]:
        from sqlalchemy import exc as sa_exc

        try:
            engine = self._connect()
            with engine.connect() as conn:
                return list(conn.execute(select(start, max_id, user)))
        except (sa_exc.SQLAlchemyError, Incompatible, OSError) as exc:
            raise UsageStoreError(failure_message(self._shown, exc)) from None

    def _merge_history(self) -> None:
        # Reads run under the tracker's lock: while the server is known to be away, do not
        # try again here (the writer finds out when it is back), so recording never waits.
        if not self._history_pending or self._status in ("failed", "unavailable"):
            return
        try:
            engine = self._connect()
            boundary = self._claim_boundary(engine)
            me = (self._who or identity()).get("user") if self._history == "user" else None
            rows = self._select(max_id=boundary, user=me)
        except Exception as exc:  # never break a dashboard: try again at the next read
            from sqlalchemy import exc as sa_exc

            cause = exc.__cause__ or exc.__context__ or exc
            if isinstance(cause, (sa_exc.OperationalError, sa_exc.InterfaceError, OSError)):
                self._unavailable(cause, self.pending)
            log.debug("llmnb: usage history not loaded from %s: %s", self._shown, exc)
            return
        merged = MemoryStore()
        merged.append([from_row(r) for r in rows])
        merged.append(self._view.load())
        self._view = merged
        self._history_rows = len(rows)
        self._history_pending = False

    def _unavailable(self, exc: BaseException, n: int) -> None:
        first = self._status != "unavailable"
        self._status = "unavailable"
        self._problem = unreachable_message(self._shown, exc, n)
        if first:
            warnings.warn(f"llmnb: {self._problem}.", UsageStoreWarning, stacklevel=2)

    def _fail(self, exc: BaseException) -> None:
        if self._status == "failed":
            return
        self._status = "failed"
        self._problem = failure_message(self._shown, exc)
        warnings.warn(f"llmnb: {self._problem}", UsageStoreWarning, stacklevel=2)

    def _forked(self) -> None:
        # A forked child must not use the parent's connections; it makes its own.
        if self._engine is not None:
            self._engine.dispose(close=False)
            self._engine = None
        self._reset_threading()


# -- process exit and fork ------------------------------------------------------------------

_live: weakref.WeakSet[PostgresStore] = weakref.WeakSet()


def _close_all(timeout: float = 10.0) -> None:
    for store in list(_live):
        if store._queue or store._inflight:
            store.close(timeout)


def _after_fork_in_child() -> None:
    for store in list(_live):
        store._forked()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
