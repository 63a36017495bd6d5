"""Is the usage store keeping up? ``store_status()`` answers in one small value.

Example::

    >>> from llmnb.usage import store_status
    >>> s = store_status()          # the current tracker's store
    >>> s.state                     # "ok", "degraded" or "failed"
    'ok'
    >>> s.pending, s.unwritten, s.error
    (0, 0, None)

``degraded``: rows wait in memory (the SQLite file is locked by another process, the
PostgreSQL server is away) or some rows could not be written at all and live only in
this session's tracker; ``failed``: the store cannot be used this session (a damaged
file, a missing permission) and every row stays in memory. ``%llm usage`` and the usage
dashboard show :meth:`StoreStatus.line` whenever the state is not ``ok``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmnb.usage.memory import StoreStatus

if TYPE_CHECKING:
    from llmnb.usage.tracker import UsageTracker

__all__ = ["StoreStatus", "store_status"]


def store_status(tracker: UsageTracker | None = None) -> StoreStatus:
    """The health of ``tracker``'s store (default: the current tracker's, see
    :func:`~llmnb.usage.get_tracker`). Cheap: no database is touched."""
    from llmnb.usage.stores import describe_store
    from llmnb.usage.tracker import get_tracker

    store = (tracker or get_tracker()).store
    health = getattr(store, "health", None)
    if callable(health):
        status = health()
        if isinstance(status, StoreStatus):
            return status
    return StoreStatus("ok", 0, None, 0, describe_store(store))
