"""A response cache in an SQLite file: answers survive kernel restarts.

One table, ``llmnb_cache(key, created, used, value)``: ``key`` is the request hash
(never an API key), ``value`` the answer as JSON. Expired rows (``ttl``) are dropped
when read; beyond ``max_entries`` the least recently used rows are dropped on write.
Times are wall-clock seconds (``time.time``) so a TTL holds across processes.

Example::

    cache = SQLiteCache(".llmnb/cache.db", ttl=24 * 3600, max_entries=10_000)
    cache = SQLiteCache.from_url("sqlite:///.llmnb/cache.db")
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmnb import errors

__all__ = ["SQLiteCache"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS llmnb_cache (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    used REAL NOT NULL,
    value TEXT NOT NULL
)
"""


class SQLiteCache:
    """An SQLite-backed cache. ``path`` may be ``":memory:"``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        ttl: float | None = None,
        max_entries: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            # One connection guarded by a lock: notebooks call from threads and tasks.
            self._db = sqlite3.connect(
                os.path.expanduser(self.path), check_same_thread=False, isolation_level=None
            )
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise errors.ConfigError(
                f"cannot open the cache database {self.path!r} ({exc}); check `cache.backend` "
                "in config/settings.yaml points at a writable file."
            ) from exc
        self._lock = threading.Lock()

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

    def get(self, key: str) -> dict[str, Any] | None:
        now = self.clock()
        with self._lock:
            row = self._db.execute(
                "SELECT created, value FROM llmnb_cache WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            created, value = row
            if self.ttl is not None and now - created >= self.ttl:
                self._db.execute("DELETE FROM llmnb_cache WHERE key = ?", (key,))
                return None
            self._db.execute("UPDATE llmnb_cache SET used = ? WHERE key = ?", (now, key))
        data: dict[str, Any] = json.loads(value)
        return data

    def set(self, key: str, value: dict[str, Any]) -> None:
        now = self.clock()
        text = json.dumps(value, separators=(",", ":"))
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO llmnb_cache (key, created, used, value) "
                "VALUES (?, ?, ?, ?)",
                (key, now, now, text),
            )
            if self.max_entries is not None:
                self._db.execute(
                    "DELETE FROM llmnb_cache WHERE key IN (SELECT key FROM llmnb_cache "
                    "ORDER BY used DESC, rowid DESC LIMIT -1 OFFSET ?)",
                    (int(self.max_entries),),
                )

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM llmnb_cache")

    def __len__(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM llmnb_cache").fetchone()
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"SQLiteCache({self.path!r}, ttl={self.ttl}, max_entries={self.max_entries})"
