"""Team views of usage: who wrote a row (user, host, notebook) and summaries by them.

The record schema (:mod:`llmnb.usage.record`) has no team columns; stores that serve a
team (:class:`~llmnb.usage.postgres_store.PostgresStore`) keep them beside each row and
add them to their team DataFrames, which :func:`summarize_team` groups like
:func:`llmnb.usage.report.summarize` does (same columns, costliest first).

Example::

    summarize_team(store.team_dataframe(since="7d"), by=["user", "model"])
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TEAM_COLUMNS", "identity", "summarize_team"]

#: The team columns of a team DataFrame, after the usage columns.
TEAM_COLUMNS: tuple[str, ...] = ("user", "host", "notebook")


def identity() -> dict[str, str | None]:
    """Who writes the rows: ``user``, ``host`` and ``notebook`` of this process.

    ``$LLMNB_USER`` and ``$LLMNB_NOTEBOOK`` override the login name and the notebook
    (otherwise Jupyter's ``JPY_SESSION_NAME``, VS Code's ``__vsc_ipynb_file__``, or the
    script's file name).
    """
    user = os.environ.get("LLMNB_USER")
    if not user:
        try:
            user = getpass.getuser()
        except Exception:  # no login name in some containers
            user = None
    return {"user": user, "host": socket.gethostname(), "notebook": _notebook()}


def _notebook() -> str | None:
    for var in ("LLMNB_NOTEBOOK", "JPY_SESSION_NAME"):
        value = os.environ.get(var)
        if value:
            return value
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    ns = getattr(shell, "user_ns", None) or {}
    for name in ("__vsc_ipynb_file__", "__session__"):
        if isinstance(ns.get(name), str):
            return str(ns[name])
    main = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c") else None
    return os.path.basename(main) if main else None


def summarize_team(df: pd.DataFrame, by: str | Sequence[str]) -> pd.DataFrame:
    """:func:`llmnb.usage.report.summarize`, also by ``user``, ``host`` and ``notebook``."""
    from llmnb.usage.report import summarize

    keys = [by] if isinstance(by, str) else list(by)
    team = [k for k in keys if k in TEAM_COLUMNS]
    if not team:
        return summarize(df, keys)
    # summarize() groups by the record's own columns only: lend each team column the
    # slot of a category column that is not grouped on, then give the name back.
    spare = [c for c in ("agent", "step", "provider", "profile", "model") if c not in keys]
    slots = dict(zip(team, spare, strict=False))
    frame = df.assign(**{slots[t]: df[t] for t in team})
    out = summarize(frame, [slots.get(k, k) for k in keys])
    renamed: pd.DataFrame = out.rename_axis(index=keys if len(keys) > 1 else keys[0])
    return renamed
