"""The PostgreSQL usage schema: the table, its versioned migrations, and the team columns.

``llmnb_schema_version`` holds one row per llmnb component (``('usage', N)``). Opening a
store runs :func:`migrate`: nothing when the version is current; otherwise, under a
PostgreSQL advisory lock (so kernels starting together do not race), each missing
version's DDL in order. A database whose version is newer than this llmnb's is left
alone (:class:`Incompatible`). Migrations, once released, never change.

Version 1: the usage table (the record columns) and a time index.
Version 2: the team columns ``user_name``, ``host``, ``notebook`` and a (user, time) index.
Version 3: ``cache_write_tokens`` (prompt tokens written to the provider's cache).
Version 4: ``kind`` (chat or embedding), ``round`` (tool-loop round) and ``attachments``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmnb.usage.record import COLUMNS, FLOAT_COLUMNS, INT_COLUMNS
from llmnb.usage.team import TEAM_COLUMNS

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = [
    "SCHEMA_VERSION",
    "SQL_TEAM",
    "TABLE",
    "VERSION_TABLE",
    "Incompatible",
    "migrate",
    "schema_version",
    "table",
]

SCHEMA_VERSION = 4
TABLE = "llmnb_usage"
VERSION_TABLE = "llmnb_schema_version"
#: Team column (DataFrame name) -> table column ("user" is a reserved word in SQL).
SQL_TEAM = {"user": "user_name", "host": "host", "notebook": "notebook"}
_LOCK_ID = 0x6C6C6D6E62  # "llmnb": the advisory lock that serialises migrations

# Frozen DDL per version: a migration, once released, never changes. The usage
# columns of version 1 are spelled out (not derived from COLUMNS) for that reason;
# tests/test_postgres_store.py checks that every record column has a table column.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            id BIGSERIAL PRIMARY KEY,
            time TIMESTAMPTZ NOT NULL,
            session TEXT, profile TEXT, provider TEXT, model TEXT, agent TEXT, step TEXT,
            prompt_tokens BIGINT, completion_tokens BIGINT, cached_tokens BIGINT,
            reasoning_tokens BIGINT, total_tokens BIGINT,
            cost_usd DOUBLE PRECISION, cost_source TEXT,
            latency_s DOUBLE PRECISION, ttft_s DOUBLE PRECISION,
            status TEXT, error TEXT, call_id TEXT, attempt INTEGER, cached BOOLEAN,
            key_id TEXT, cell INTEGER, tags JSONB)""",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_time ON {TABLE} (time)",
    ),
    2: (
        f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS user_name TEXT",
        f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS host TEXT",
        f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS notebook TEXT",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_user_time ON {TABLE} (user_name, time)",
    ),
    3: (f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS cache_write_tokens BIGINT",),
    4: (
        f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS kind TEXT",
        f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS round BIGINT",
        f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS attachments BIGINT",
    ),
}


class Incompatible(Exception):
    """The database was set up by a newer llmnb."""


def schema_version(conn: sa.Connection) -> int:
    """The usage schema's version in the connected database (0: not set up)."""
    import sqlalchemy as sa

    exists = conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": VERSION_TABLE}).scalar()
    if exists is None:
        return 0
    found = conn.execute(
        sa.text(f"SELECT version FROM {VERSION_TABLE} WHERE component = 'usage'")
    ).scalar()
    return int(found or 0)


def migrate(conn: sa.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the usage schema up to ``target`` inside the caller's transaction.

    Returns the version found. Raises ``Incompatible`` for a newer schema.
    """
    import sqlalchemy as sa

    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise Incompatible(f"schema version {found}, this llmnb knows {SCHEMA_VERSION}")
    if found >= target:  # the common case: no lock taken
        return found
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
    conn.execute(
        sa.text(
            f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (component TEXT PRIMARY KEY, "
            "version INTEGER NOT NULL, migrated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
    )
    found = schema_version(conn)  # again: another process may have migrated meanwhile
    if found > SCHEMA_VERSION:
        raise Incompatible(f"schema version {found}, this llmnb knows {SCHEMA_VERSION}")
    for version in range(found + 1, target + 1):
        for statement in _MIGRATIONS[version]:
            conn.execute(sa.text(statement))
    if target > found:
        conn.execute(
            sa.text(
                f"INSERT INTO {VERSION_TABLE} (component, version) VALUES ('usage', :v) "
                "ON CONFLICT (component) DO UPDATE SET version = :v, migrated_at = now()"
            ),
            {"v": target},
        )
    return found


_TABLE: Any = None


def table() -> sa.Table:
    """The table as SQLAlchemy sees it (for inserts and selects; DDL is in _MIGRATIONS)."""
    global _TABLE
    if _TABLE is None:
        import sqlalchemy as sa
        from sqlalchemy.dialects.postgresql import JSONB

        def kind(c: str) -> Any:
            if c == "time":
                return sa.DateTime(timezone=True)
            if c in INT_COLUMNS:
                return sa.BigInteger()
            if c in FLOAT_COLUMNS:
                return sa.Float(53)
            if c == "cached":
                return sa.Boolean()
            if c == "tags":
                return JSONB()
            return sa.Text()

        _TABLE = sa.Table(
            TABLE,
            sa.MetaData(),
            sa.Column("id", sa.BigInteger, primary_key=True),
            *(sa.Column(c, kind(c)) for c in COLUMNS),
            *(sa.Column(SQL_TEAM[c], sa.Text()) for c in TEAM_COLUMNS),
        )
    return _TABLE  # type: ignore[no-any-return]
