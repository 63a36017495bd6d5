"""Usage tracking: every attempt becomes a row with tokens, cost and latency.

Example::

    from llmnb.usage import get_tracker
    tracker = get_tracker()               # this task's tracker, else the process default
    tracker.record(1200, 300, model="gpt-4o", provider="openai")
    tracker.to_dataframe()                # columns: llmnb.usage.COLUMNS
    tracker.summary(by="model")           # calls, attempts, errors, tokens, cost…
    tracker.plot_costs(by="provider")     # matplotlib Axes: cumulative cost over time
    store_status()                        # StoreStatus(state='ok', pending=0, error=None…)

The row contract (columns and dtypes) is documented in :mod:`llmnb.usage.record`;
pricing rules in :mod:`llmnb.usage.pricing`; where rows are kept (SQLite by default) in
:mod:`llmnb.usage.stores` and :mod:`llmnb.usage.sqlite_store`. Importing this package
loads neither pandas, matplotlib, sqlite3, genai-prices nor IPython. It may import
``config`` (only to find the configured store) and the bottom modules, nothing above.
"""

from __future__ import annotations

from llmnb.usage.record import COLUMNS, DTYPES, UsageRecord
from llmnb.usage.status import StoreStatus, store_status
from llmnb.usage.stores import UsageStoreError, UsageStoreWarning
from llmnb.usage.tracker import (
    RECORD_FIELDS,
    SESSION_ID,
    MemoryStore,
    UsageStore,
    UsageTracker,
    get_tracker,
    reset_default_tracker,
    reset_tracker,
    set_tracker,
)

__all__ = [
    "COLUMNS",
    "DTYPES",
    "RECORD_FIELDS",
    "SESSION_ID",
    "MemoryStore",
    "StoreStatus",
    "UsageRecord",
    "UsageStore",
    "UsageStoreError",
    "UsageStoreWarning",
    "UsageTracker",
    "get_tracker",
    "reset_default_tracker",
    "reset_tracker",
    "set_tracker",
    "store_status",
]
