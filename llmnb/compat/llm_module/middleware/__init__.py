"""``llm.middleware``: request/response middlewares and the client's chain."""

from __future__ import annotations

from llmnb.compat.llm_module.middleware.base import (
    LoggingMiddleware,
    MetricsMiddleware,
    Middleware,
    MiddlewareChain,
)

__all__ = ["LoggingMiddleware", "MetricsMiddleware", "Middleware", "MiddlewareChain"]
