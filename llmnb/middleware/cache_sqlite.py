"""A response cache in an SQLite file: answers survive kernel restarts.

One table, ``llmnb_cache(key, created, used, value)``: ``key`` is the request hash
(never an API key), ``value`` the answer as JSON. Expired rows (``ttl``) are dropped
when read; beyond ``max_entries`` the least recently used rows are dropped on write.
Times are wall-clock seconds (``time.time``) so a TTL holds across processes.

A cache never costs an answer: when the file is locked by another process for longer
than ``busy_timeout``, damaged, or unwritable mid-session, one warning is logged
(``llmnb.cache``) and the cache acts as empty — calls go to the provider, answers are
not stored — trying a fresh connection every ``retry_interval`` seconds until it works.
Only a path that cannot be opened at all when the cache is created is a ConfigError.

Example::

    cache = SQLiteCache(".llmnb/cache.db", ttl=24 * 3600, max_entries=10_000)
    cache = SQLiteCache.from_url("sqlite:///.llmnb/cache.db")
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from llmnb import errors
from llmnb.config.folders import make_folder

__all__ = ["SQLiteCache"]

log = logging.getLogger("llmnb.cache")

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS llmnb_cache (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    used REAL NOT NULL,
    value TEXT NOT NULL
)
"""

# What the user can do about each kind of failure (sqlite3 error names, Python 3.11+).
_ADVICE = {
    "SQLITE_BUSY": "another process holds a lock on it",
    "SQLITE_LOCKED": "another connection holds a lock on it",
    "SQLITE_NOTADB": "the file is damaged or not a cache: delete it to start a fresh one",
    "SQLITE_CORRUPT": "the file is damaged: delete it to start a fresh one",
    "SQLITE_READONLY": "the file is read-only: check its permissions",
    "SQLITE_FULL": "the disk is full",
}


class SQLiteCache:
    """An SQLite-backed cache. ``path`` may be ``":memory:"``.

    ``busy_timeout``: seconds to wait for another process's lock before acting as
    empty; ``retry_interval``: seconds between attempts while the file is unusable.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        ttl: float | None = None,
        max_entries: int | None = None,
        clock: Callable[[], float] = time.time,
        *,
        busy_timeout: float = 2.0,
        retry_interval: float = 30.0,
    ) -> None:
        self.path = str(path)
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.busy_timeout = float(busy_timeout)
        self.retry_interval = float(retry_interval)
        self._lock = threading.Lock()  # one connection: notebooks call from threads/tasks
        self._db: sqlite3.Connection | None = None
        self._down_until: float | None = None  # monotonic; None while usable
        try:
            if self.path != ":memory:":
                make_folder(Path(self.path).expanduser().parent)
            self._db = self._connect()
        except (OSError, sqlite3.Error) as exc:
            if isinstance(exc, sqlite3.Error) and _name(exc) != "SQLITE_CANTOPEN":
                # there but unusable now (locked, damaged): a warning, not a lost call
                with self._lock:
                    self._failed(exc)
                return
            raise errors.ConfigError(
                f"cannot open the cache database {self.path!r} ({exc}); check `cache.backend` "
                "in config/settings.yaml points at a writable file."
            ) from exc

    @classmethod
    def from_url(
        cls, url: str, ttl: float | None = None, max_entries: int | None = None
    ) -> SQLiteCache:
        """``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
        ``sqlite:///:memory:``."""
        prefix = "sqlite:///"
        if not url.startswith(prefix):
            raise errors.ConfigError(
                f"cache.backend {url!r} is not an SQLite URL; use 'memory' or "
                "'sqlite:///path/to/cache.db'."
            )
        return cls(url[len(prefix) :] or ":memory:", ttl=ttl, max_entries=max_entries)

    # -- the Cache protocol ----------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        now = self.clock()

        def run(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT created, value FROM llmnb_cache WHERE key = ?", (key,))
            found = row.fetchone()
            if found is None:
                return None
            created, value = found
            if self.ttl is not None and now - created >= self.ttl:
                db.execute("DELETE FROM llmnb_cache WHERE key = ?", (key,))
                return None
            db.execute("UPDATE llmnb_cache SET used = ? WHERE key = ?", (now, key))
            return str(value)

        value = self._use(run, None)
        if value is None:
            return None
        try:
            data = json.loads(value)
        except ValueError:
            return None  # not written by llmnb: a miss, overwritten by the next answer
        return data if isinstance(data, dict) else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        now = self.clock()
        text = json.dumps(value, separators=(",", ":"))

        def run(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO llmnb_cache (key, created, used, value) "
                "VALUES (?, ?, ?, ?)",
                (key, now, now, text),
            )
            if self.max_entries is not None:
                db.execute(
                    "DELETE FROM llmnb_cache WHERE key IN (SELECT key FROM llmnb_cache "
                    "ORDER BY used DESC, rowid DESC LIMIT -1 OFFSET ?)",
                    (int(self.max_entries),),
                )

        self._use(run, None)

    def clear(self) -> None:
        self._use(lambda db: db.execute("DELETE FROM llmnb_cache"), None)

    def __len__(self) -> int:
        return int(
            self._use(lambda db: db.execute("SELECT COUNT(*) FROM llmnb_cache").fetchone()[0], 0)
        )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- the file --------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while the file is unusable and the cache acts as empty."""
        return self._down_until is not None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            os.path.expanduser(self.path),
            timeout=self.busy_timeout,
            check_same_thread=False,
            isolation_level=None,
        )
        try:
            db.execute(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _use(self, fn: Callable[[sqlite3.Connection], T], default: T) -> T:
        with self._lock:
            if self._down_until is not None and time.monotonic() < self._down_until:
                return default
            try:
                if self._db is None:  # after a failure: the file may have been replaced
                    self._db = self._connect()
                result = fn(self._db)
            except sqlite3.Error as exc:
                self._failed(exc)
                return default
            if self._down_until is not None:
                self._down_until = None
                log.warning("llmnb: the response cache %s is usable again", self.path)
            return result

    def _failed(self, exc: sqlite3.Error) -> None:
        """Act as empty for ``retry_interval``; warn once per outage. Holds the lock."""
        first = self._down_until is None
        self._down_until = time.monotonic() + self.retry_interval
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        if first:
            advice = _ADVICE.get(_name(exc), "check the file")
            log.warning(
                "llmnb: the response cache %s cannot be used (%s: %s — %s); calls go to "
                "the provider uncached, trying the file again every %g s.",
                self.path,
                type(exc).__name__,
                exc,
                advice,
                self.retry_interval,
            )

    def __repr__(self) -> str:
        return f"SQLiteCache({self.path!r}, ttl={self.ttl}, max_entries={self.max_entries})"


def _name(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", ""))
