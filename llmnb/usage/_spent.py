""" "USD spent since T" read from a usage database: what day/week/month budgets add for
the other kernels writing to the same store.

Private to the stores (``SQLiteStore.spent_since``, ``PostgresStore.spent_since``): one
aggregate query each, kept apart from the stores' writers. Rows still queued in a
process are not in the database yet; the budget counts its own kernel's spend itself.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from llmnb.usage.memory import UsageStoreError

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["postgres_spent_since", "sqlite_spent_since"]

_SQLITE_SUM = "SELECT COALESCE(SUM(cost_usd), 0.0) FROM usage WHERE time >= ? AND cost_usd > 0"


def sqlite_spent_since(
    path: Path, since: float, profile: str | None, exclude_session: str | None
) -> float:
    """The SUM of the known costs in a SQLite usage file (0 when it does not exist yet)."""
    from llmnb.usage._sqlite import SCHEMA_VERSION, failure_message

    if not path.exists():
        return 0.0
    query = _SQLITE_SUM
    args: list[float | str] = [float(since)]
    if profile is not None:
        query += " AND profile = ?"
        args.append(profile)
    if exclude_session is not None:
        query += " AND session IS NOT ?"
        args.append(exclude_session)
    try:
        # Read-only and short: WAL readers do not wait for the writers of other kernels.
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=2.0)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < 1 or version > SCHEMA_VERSION:
                return 0.0  # no table yet (or a newer llmnb's: its writer reports that)
            return float(conn.execute(query, args).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise UsageStoreError(failure_message(path, exc)) from None


def postgres_spent_since(
    engine: sa.Engine, since: float, profile: str | None, exclude_session: str | None
) -> float:
    """The SUM of the known costs in the team's usage table."""
    import sqlalchemy as sa

    from llmnb.usage.postgres_schema import table

    t = table()
    when = _dt.datetime.fromtimestamp(float(since), _dt.timezone.utc)
    query = sa.select(sa.func.coalesce(sa.func.sum(t.c.cost_usd), 0.0)).where(
        t.c.time >= when,
        t.c.cost_usd > 0,
        t.c.cost_usd != float("nan"),  # PostgreSQL orders NaN above every number
    )
    if profile is not None:
        query = query.where(t.c.profile == profile)
    if exclude_session is not None:
        query = query.where(t.c.session.is_distinct_from(exclude_session))
    with engine.connect() as conn:
        return float(conn.execute(query).scalar_one())
