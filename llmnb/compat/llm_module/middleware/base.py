"""``llm.middleware.base``: ``process_request`` / ``process_response`` middlewares.

A :class:`Middleware` sees each call's :class:`LLMRequest` before it is sent and its
:class:`LLMResponse` after, with a ``context`` dict shared by the two; both hooks may be
sync or async and return what they were given (or a replacement). Retries, rate limits
and key pools are not middlewares here: llmnb's client does them under every call.
llmnb middlewares (``llmnb.middleware.Middleware`` subclasses, such as
:class:`MetricsMiddleware` and :class:`LoggingMiddleware` below) may be added to the
same chain; they run inside llmnb's own chain, per attempt.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from llmnb.middleware.base import Call
from llmnb.middleware.base import Middleware as CoreMiddleware
from llmnb.middleware.log import LoggingMiddleware
from llmnb.middleware.metrics import MetricsMiddleware as CoreMetrics
from llmnb.types import Completion

if TYPE_CHECKING:
    from llmnb.compat.llm_module.core.types import LLMRequest, LLMResponse

__all__ = ["LoggingMiddleware", "MetricsMiddleware", "Middleware", "MiddlewareChain"]

M = TypeVar("M")


class Middleware:
    """Subclass and override either hook."""

    async def process_request(self, request: LLMRequest, context: dict[str, Any]) -> LLMRequest:
        return request

    async def process_response(self, response: LLMResponse, context: dict[str, Any]) -> LLMResponse:
        return response


class MetricsMiddleware(CoreMetrics):
    """llmnb's metrics, plus the module's ``get_metrics()`` (latency in milliseconds)."""

    def __init__(self, window: int = 1000) -> None:
        super().__init__(window)
        self._sum_ms = 0.0
        self._timed = 0
        self._sum_lock = threading.Lock()

    def after_attempt(
        self, call: Call, completion: Completion | None, error: BaseException | None
    ) -> None:
        super().after_attempt(call, completion, error)
        if error is None and not math.isnan(call.latency):
            with self._sum_lock:
                self._sum_ms += call.latency * 1000.0
                self._timed += 1

    def get_metrics(self) -> dict[str, Any]:
        """``total_requests``, ``successful_requests``, ``failed_requests``,
        ``avg_latency`` (ms, successful attempts), ``success_rate`` (of calls) and
        llmnb's snapshot (attempts, errors by type, p50/p95 …)."""
        snap = self.snapshot()
        calls, failed = snap["calls"], snap["failed_calls"]
        total = calls + failed
        with self._sum_lock:
            avg = self._sum_ms / self._timed if self._timed else 0.0
        return {
            **snap,
            "total_requests": total,
            "successful_requests": calls,
            "failed_requests": failed,
            "avg_latency": avg,
            "success_rate": calls / total if total else 0.0,
        }


class MiddlewareChain:
    """A client's middlewares, in the order added: ``add``, ``remove``,
    ``get_middleware(cls)``. Adding an llmnb middleware adds it to the client."""

    def __init__(self, on_core_change: Callable[[CoreMiddleware, bool], None]) -> None:
        self._items: list[Any] = []
        self._on_core_change = on_core_change

    def add(self, middleware: Any) -> None:
        if isinstance(middleware, CoreMiddleware):
            self._on_core_change(middleware, True)
        elif not (
            callable(getattr(middleware, "process_request", None))
            or callable(getattr(middleware, "process_response", None))
        ):
            from llmnb.errors import InvalidOptionError

            raise InvalidOptionError(
                f"middleware_chain.add({middleware!r}): a middleware subclasses "
                "llmnb.compat.llm_module.middleware.base.Middleware (process_request / "
                "process_response) or llmnb.middleware.Middleware."
            )
        self._items.append(middleware)

    def remove(self, middleware: Any) -> None:
        self._items.remove(middleware)
        if isinstance(middleware, CoreMiddleware):
            self._on_core_change(middleware, False)

    def get_middleware(self, cls: type[M]) -> M:
        """The first middleware that is an instance of ``cls``."""
        for m in self._items:
            if isinstance(m, cls):
                return m
        from llmnb.errors import InvalidOptionError

        raise InvalidOptionError(
            f"get_middleware({cls.__name__}): none in this chain; add one with "
            "middleware_chain.add(...)."
        )

    @property
    def middlewares(self) -> list[Any]:
        return list(self._items)

    @property
    def core(self) -> list[CoreMiddleware]:
        return [m for m in self._items if isinstance(m, CoreMiddleware)]

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    async def request(self, request: LLMRequest, context: dict[str, Any]) -> LLMRequest:
        for m in self._items:
            hook = getattr(m, "process_request", None)
            if hook is not None:
                request = await _maybe_await(hook(request, context))
        return request

    async def response(self, response: LLMResponse, context: dict[str, Any]) -> LLMResponse:
        for m in reversed(self._items):
            hook = getattr(m, "process_response", None)
            if hook is not None:
                response = await _maybe_await(hook(response, context))
        return response


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
