"""Middlewares: hooks around each call and attempt of an :class:`~llmnb.LLMClient`.

Built in: :class:`RetryPolicy` (the attempt loop's retry rule), :class:`KeyPool`,
:class:`RateLimiter`, :class:`CacheMiddleware` (:class:`MemoryCache`,
:class:`SQLiteCache`), :class:`BudgetMiddleware`, :class:`LoggingMiddleware` and
:class:`MetricsMiddleware`. Write your own by subclassing :class:`Middleware`
(see :mod:`llmnb.middleware.base` for the hooks and their order) and add it with
``client.add_middleware(m)`` or ``LLMManager(middleware=[m])``.

It may import ``providers``, ``usage``, ``config`` and the bottom modules, never the
client: what hooks see of the client is the ``middleware.base.CallClient`` protocol.
"""

from typing import TYPE_CHECKING, Any

from llmnb.middleware.base import Call, Clock, ManualClock, Middleware, SystemClock
from llmnb.middleware.budget import (
    BudgetMiddleware,
    get_session_budget,
    get_session_spend,
    set_session_budget,
)
from llmnb.middleware.cache import Cache, CacheMiddleware, MemoryCache
from llmnb.middleware.keypool import KeyPool
from llmnb.middleware.log import LoggingMiddleware
from llmnb.middleware.metrics import MetricsMiddleware
from llmnb.middleware.ratelimit import RateLimiter
from llmnb.middleware.retry import RetryPolicy

if TYPE_CHECKING:
    from llmnb.middleware.cache_sqlite import SQLiteCache

__all__ = [
    "BudgetMiddleware",
    "Cache",
    "CacheMiddleware",
    "Call",
    "Clock",
    "KeyPool",
    "LoggingMiddleware",
    "ManualClock",
    "MemoryCache",
    "MetricsMiddleware",
    "Middleware",
    "RateLimiter",
    "RetryPolicy",
    "SQLiteCache",
    "SystemClock",
    "get_session_budget",
    "get_session_spend",
    "set_session_budget",
]


def __getattr__(name: str) -> Any:
    # sqlite3 loads only when an SQLite cache is used.
    if name == "SQLiteCache":
        from llmnb.middleware.cache_sqlite import SQLiteCache

        return SQLiteCache
    raise AttributeError(f"module 'llmnb.middleware' has no attribute {name!r}")
