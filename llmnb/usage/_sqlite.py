"""SQLite details of the usage store: schema, connection set-up, rows in and out.

Private to :mod:`llmnb.usage.sqlite_store`. ``read_usage(path)`` reads a database
read-only (``llmnb usage`` uses it).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import os
import sqlite3
from pathlib import Path
from typing import Any

from llmnb.config.folders import make_folder
from llmnb.usage._clean import clean_row, dumps
from llmnb.usage.memory import UsageStoreError
from llmnb.usage.record import (
    COLUMNS,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    UsageRecord,
    fill_later_defaults,
)

__all__ = [
    "INSERT_ONE",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SELECT",
    "TAGS",
    "Incompatible",
    "connect",
    "failure_message",
    "from_row",
    "insert",
    "is_busy",
    "read_usage",
    "shown",
    "tags_json",
    "to_row",
]

# 1: the usage table; 2: cache_write_tokens; 3: kind, round, attachments (each added to
# an older file in place).
SCHEMA_VERSION = 3

_SQL_COLUMNS = ", ".join(COLUMNS)
_ONE_ROW = f"({', '.join('?' * len(COLUMNS))})"
INSERT_ONE = f"INSERT INTO usage ({_SQL_COLUMNS}) VALUES {_ONE_ROW}"
# Rows go in multi-row statements: one sqlite3_step per statement, during which the GIL
# is free. Each step gives the GIL away, and a busy recording thread only hands it back
# after the switch interval (5 ms), so every statement costs the writer up to 5 ms:
# statements must be few. Full chunks of _CHUNK rows, then the rest in power-of-two
# pieces (never row by row: 255 single-row steps were 1.3 s of waiting for the GIL).
# SQLite before 3.32 allows 999 parameters per statement, later ones 32766 by default;
# builds may allow more (Debian's: 250000), which the connection tells (Python ≥ 3.11).
_LIMIT = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
_MAX_CHUNK = 8192  # rows per statement at most: its SQL text is compiled once per size


def _chunk(conn: sqlite3.Connection) -> int:
    """Rows per full statement: the largest power of two the parameter limit allows."""
    limit = _LIMIT
    getlimit = getattr(conn, "getlimit", None)
    if getlimit is not None:
        with contextlib.suppress(sqlite3.Error, AttributeError, TypeError, ValueError):
            limit = int(getlimit(getattr(sqlite3, "SQLITE_LIMIT_VARIABLE_NUMBER", 9)))
    return min(_MAX_CHUNK, 1 << max(0, (limit // len(COLUMNS)).bit_length() - 1))


@functools.lru_cache(maxsize=16)
def _insert_many(n: int) -> str:
    return f"INSERT INTO usage ({_SQL_COLUMNS}) VALUES " + ", ".join([_ONE_ROW] * n)


SELECT = f"SELECT {_SQL_COLUMNS} FROM usage"


def _sql_type(column: str) -> str:
    if column in INT_COLUMNS or column == "cached":
        return "INTEGER"
    return "REAL" if column in FLOAT_COLUMNS or column == "time" else "TEXT"


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    + ", ".join(f"{c} {_sql_type(c)}" for c in COLUMNS)
    + ")",
    "CREATE INDEX IF NOT EXISTS usage_time ON usage(time)",
)

_FLOAT_IDX = tuple(COLUMNS.index(c) for c in FLOAT_COLUMNS)
_CACHED = COLUMNS.index("cached")
TAGS = COLUMNS.index("tags")


class Incompatible(Exception):
    """The file was made by a newer llmnb (schema version too high)."""


# -- reading a database (llmnb usage) --------------------------------------------------


def read_usage(path: str | os.PathLike[str]) -> list[UsageRecord]:
    """Every row of a usage database, oldest first; [] when the file does not exist.

    Read-only: the file is neither created nor changed. UsageStoreError says what is
    wrong with an unreadable file.
    """
    file = Path(path).expanduser().absolute()
    if not file.exists():
        return []
    try:
        conn = sqlite3.connect(f"{file.as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise Incompatible(f"schema version {version}")
            if version < 1:
                return []
            have = _table_columns(conn)
            # An older file lacks the newer columns: they read as unknown (NULL).
            select = ", ".join(c if c in have else f"NULL AS {c}" for c in COLUMNS)
            return list(map(from_row, conn.execute(f"SELECT {select} FROM usage ORDER BY id")))
        finally:
            conn.close()
    except (sqlite3.Error, Incompatible) as exc:
        raise UsageStoreError(failure_message(file, exc)) from None


# -- helpers -------------------------------------------------------------------------------


def connect(path: Path, busy: float) -> sqlite3.Connection:
    make_folder(path.parent)  # usage history is personal: .llmnb/ stays out of git
    conn = sqlite3.connect(str(path), timeout=busy, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across crashes
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise Incompatible(f"schema version {version}")
        if version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                conn.execute(statement)
            have = _table_columns(conn)  # a file of an older version: add what it lacks
            for column in COLUMNS:
                if column not in have:
                    conn.execute(f"ALTER TABLE usage ADD COLUMN {column} {_sql_type(column)}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn


def _table_columns(conn: sqlite3.Connection) -> set[str]:
    return {row[1] for row in conn.execute("PRAGMA table_info(usage)")}


def insert(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    start, left = 0, len(rows)
    full = _chunk(conn) if left > 1 else 1
    while left:
        n = full if left >= full else 1 << (left.bit_length() - 1)
        chunk = rows[start : start + n]
        conn.execute(_insert_many(n), tuple(itertools.chain.from_iterable(chunk)))
        start += n
        left -= n


def is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def failure_message(path: Path, exc: BaseException) -> str:
    text = str(exc)
    where = shown(path)
    if isinstance(exc, Incompatible):
        fix = "it was written by a newer llmnb: upgrade llmnb, or point usage.store elsewhere"
    elif "not a database" in text or "malformed" in text or "corrupt" in text:
        fix = (
            f"the file is damaged or not a SQLite database: move it away (e.g. rename it to "
            f"{path.name}.bad) and a new one is made at the next start, or set "
            "usage.store in config/settings.yaml"
        )
    elif isinstance(exc, OSError) or "readonly" in text or "unable to open" in text:
        fix = (
            "check that the folder exists and is writable, or set usage.store in "
            "config/settings.yaml to another path (or to 'memory')"
        )
    else:
        fix = "set usage.store in config/settings.yaml to another path, or to 'memory'"
    return (
        f"cannot use the usage database {where} ({type(exc).__name__}: {text}); usage rows "
        f"are kept in memory for this session only. To fix: {fix}."
    )


def shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def tags_json(tags: Any) -> str | None:
    if tags is None or type(tags) is str:
        return tags  # type: ignore[no-any-return]
    return json.dumps(tags, default=str, ensure_ascii=False)


def to_row(rec: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row as SQL parameters SQLite always takes (see :func:`~llmnb.usage._clean.clean_row`)."""
    row = clean_row(rec)
    row[_CACHED] = 1 if row[_CACHED] else 0
    tags = row[TAGS]
    row[TAGS] = None if tags is None else dumps(tags)
    return tuple(row)


_NAN = math.nan


def from_row(row: tuple[Any, ...]) -> UsageRecord:
    values = list(row)
    for i in _FLOAT_IDX:
        if values[i] is None:
            values[i] = _NAN  # SQLite stores NaN as NULL
    values[_CACHED] = bool(values[_CACHED])
    fill_later_defaults(values)
    tags = values[TAGS]
    if tags is not None:
        try:
            values[TAGS] = json.loads(tags)
        except ValueError:
            values[TAGS] = {"tags": tags}
    return UsageRecord._make(values)
