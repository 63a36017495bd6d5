"""PostgreSQL details of the usage store: URLs, rows in and out, and failure messages.

Private to :mod:`llmnb.usage.postgres_store`. SQLAlchemy is imported only inside the
functions that need it, so importing this module (``llmnb usage`` checks a URL with
:func:`is_postgres_url`) stays light.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from typing import TYPE_CHECKING, Any

from llmnb.usage._clean import INT32, clean_row, clean_text
from llmnb.usage.postgres_schema import SQL_TEAM, TABLE, Incompatible, table
from llmnb.usage.record import (
    COLUMNS,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    UsageRecord,
    fill_later_defaults,
)
from llmnb.usage.team import TEAM_COLUMNS

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

__all__ = [
    "brief",
    "clean_params",
    "create_engine",
    "driver_url",
    "failure_message",
    "from_row",
    "hidden",
    "is_postgres_url",
    "last_id",
    "refused_row",
    "select",
    "team_frame",
    "to_params",
    "unreachable_message",
]

_TIME = COLUMNS.index("time")
_TAGS = COLUMNS.index("tags")
_INT_IDX = tuple(COLUMNS.index(c) for c in INT_COLUMNS)
_FLOAT_IDX = tuple(COLUMNS.index(c) for c in FLOAT_COLUMNS)
_CACHED = COLUMNS.index("cached")
_NAN = math.nan

# -- URLs ---------------------------------------------------------------------------------


def is_postgres_url(spec: str) -> bool:
    """True for ``postgresql://…``, ``postgresql+psycopg://…`` and ``postgres://…``."""
    head = spec.strip().lower().partition("://")[0]
    return head in ("postgres", "postgresql") or head.startswith("postgresql+")


def driver_url(spec: str) -> str:
    """``spec`` with a bare ``postgres(ql)://`` scheme made ``postgresql+psycopg://``."""
    # llmnb talks to PostgreSQL through psycopg 3; a bare scheme would make SQLAlchemy
    # look for psycopg2.
    scheme, sep, rest = spec.strip().partition("://")
    if scheme.lower() in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    return f"{scheme}{sep}{rest}"


def hidden(url: str) -> str:
    """``url`` with a password masked (for a URL SQLAlchemy could not even parse)."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if at and ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{creds}{at}{host}" if sep else url


def create_engine(url: sa.URL, overrides: dict[str, Any]) -> sa.Engine:
    """An engine with a small pool that checks connections before use; ``overrides`` win."""
    import sqlalchemy as sa

    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": 2,
        "max_overflow": 2,
        "connect_args": {"connect_timeout": 5},
    }
    options.update(overrides)
    return sa.create_engine(url, **options)


# -- rows in and out ----------------------------------------------------------------------


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        return None


def to_params(rec: Any, who: dict[str, str | None]) -> dict[str, Any]:
    """One record as INSERT parameters, team columns from its tags or else from ``who``."""
    values = list(rec)
    out: dict[str, Any] = {}
    for i, name in enumerate(COLUMNS):
        v = values[i]
        if i in _FLOAT_IDX:
            v = _number(v, float)
            v = None if v is None or v != v else v  # NaN → NULL: SUM() skips it
        elif i in _INT_IDX:
            v = _number(v, int)
        elif v is not None and not isinstance(v, (str, bool)):
            v = str(v)  # an odd object as a model name must not lose the row
        out[name] = v
    out["time"] = _dt.datetime.fromtimestamp(float(values[_TIME]), _dt.timezone.utc)
    out["cached"] = bool(values[_CACHED])
    tags = values[_TAGS]
    out["tags"] = None if tags is None else json.loads(json.dumps(tags, default=str))
    for name, column in SQL_TEAM.items():
        given = tags.get(name) if isinstance(tags, dict) else None
        out[column] = str(given) if given is not None else who.get(name)
    return out


_INT_LIMITS = {"attempt": INT32, "cell": INT32}  # INTEGER columns; the other counts BIGINT


def clean_params(rec: Any, who: dict[str, str | None]) -> dict[str, Any]:
    """:func:`to_params` for a row PostgreSQL refused: every value one it takes (see
    :func:`~llmnb.usage._clean.clean_row`); never raises."""
    values = clean_row(rec, _INT_LIMITS)
    out = dict(zip(COLUMNS, values, strict=True))
    out["time"] = _dt.datetime.fromtimestamp(values[_TIME], _dt.timezone.utc)
    tags = values[_TAGS]
    for name, column in SQL_TEAM.items():
        given = tags.get(name) if isinstance(tags, dict) else None
        mine = who.get(name)
        value = given if given is not None else mine
        out[column] = None if value is None else clean_text(str(value))
    return out


def refused_row(exc: BaseException) -> bool:
    """True when ``exc`` is about a value of a row (the row is at fault, not the server)."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, (sa_exc.DataError, sa_exc.IntegrityError)):
        return True
    if isinstance(exc, sa_exc.StatementError) and not isinstance(exc, sa_exc.DBAPIError):
        return True  # raised while binding the parameters (e.g. a UnicodeEncodeError)
    return isinstance(exc, (ValueError, TypeError, OverflowError))


def select(start: _dt.datetime | None, max_id: int | None, user: str | None) -> sa.Select[Any]:
    """The usage columns then the team columns, in id order, of the rows asked for."""
    import sqlalchemy as sa

    t = table()
    query = sa.select(
        *(t.c[c] for c in COLUMNS), *(t.c[SQL_TEAM[c]] for c in TEAM_COLUMNS)
    ).order_by(t.c.id)
    if start is not None:
        query = query.where(t.c.time >= start)
    if max_id is not None:
        query = query.where(t.c.id <= max_id)
    if user is not None:
        query = query.where(t.c.user_name == user)
    return query


def last_id(conn: sa.Connection) -> int:
    """The largest row id in the usage table (0 when it is empty)."""
    import sqlalchemy as sa

    return int(conn.execute(sa.text(f"SELECT COALESCE(MAX(id), 0) FROM {TABLE}")).scalar_one())


def from_row(row: Any) -> UsageRecord:
    """A selected row (usage columns first) as a record; NULL costs become NaN."""
    values = list(row[: len(COLUMNS)])
    when = values[_TIME]
    values[_TIME] = when.timestamp() if isinstance(when, _dt.datetime) else float(when)
    for i in _FLOAT_IDX:
        if values[i] is None:
            values[i] = _NAN
    values[_CACHED] = bool(values[_CACHED])
    fill_later_defaults(values)
    return UsageRecord._make(values)


def team_frame(rows: list[Any]) -> pd.DataFrame:
    """Selected rows as the usage DataFrame plus categorical ``user``, ``host``, ``notebook``."""
    import pandas as pd

    from llmnb.usage.report import records_to_dataframe

    df = records_to_dataframe(from_row(r) for r in rows)
    n = len(COLUMNS)
    for i, name in enumerate(TEAM_COLUMNS):
        df[name] = pd.Series([r[n + i] for r in rows], dtype="category")
    return df


# -- failure messages ---------------------------------------------------------------------


def brief(exc: BaseException) -> str:
    """``Type: first line`` of the driver's error (SQLAlchemy wraps it in ``orig``)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return f"{type(orig).__name__}: {text}"


def unreachable_message(shown: str, exc: BaseException, n: int) -> str:
    """The database ``shown`` cannot be reached now; ``n`` rows wait in memory."""
    return (
        f"the usage database {shown} is unreachable ({brief(exc)}); {n} usage "
        "rows are kept in memory and written once it is back"
    )


def failure_message(shown: str, exc: BaseException) -> str:
    """What went wrong with the database ``shown`` and what to do about it."""
    if isinstance(exc, Incompatible):
        fix = "it was set up by a newer llmnb: upgrade llmnb, or point usage.store elsewhere"
    else:
        fix = (
            "check the URL in usage.store (or $LLMNB_USAGE_STORE), that the database exists "
            "and that this user may create tables in it"
        )
    return (
        f"cannot use the usage database {shown} ({brief(exc)}); usage rows are kept in "
        f"memory for this session only. To fix: {fix}."
    )
