"""The middleware protocol: hooks around one call and around each of its attempts.

A call runs through the chain like this (outer middlewares first)::

    before_call  ×N          may answer at once (cache hit) or refuse (budget)
    ┌ attempt loop (retry policy, failover, key switches) ──────────────────────┐
    │ before_attempt ×N      may ask to wait (rate limit, key pool) or pick a key │
    │ provider.complete / stream → one usage row                                │
    │ after_attempt  ×N      inner first: release the key, correct the limiter  │
    └───────────────────────────────────────────────────────────────────────────┘
    after_call   ×N          inner first; may replace the completion (store in cache)
    call_failed  ×N          instead of after_call when the call raises

Why hooks rather than ``handle(call, next)``: one set of hooks serves ``complete``,
``acomplete``, ``stream`` and ``astream``. A middleware is written once, holds only
decisions, and never sleeps: ``before_attempt`` returns how long to wait and the
client's sync or async shell does the waiting (with the middleware's ``clock``), so
sync and async cannot drift and tests compress time with a :class:`ManualClock`.

Example::

    class Stamp(Middleware):
        def before_call(self, call):
            call.request = dataclasses.replace(call.request, extra={"user": "me"})
            return None

    client.add_middleware(Stamp())
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from llmnb.types import Completion, Message, Request

if TYPE_CHECKING:
    from llmnb.providers.base import Provider
    from llmnb.usage.tracker import UsageTracker

__all__ = ["Call", "Chain", "Clock", "ManualClock", "Middleware", "SystemClock", "shared"]

T = TypeVar("T")


@runtime_checkable
class Clock(Protocol):
    """Where middlewares read the time and how the client waits for them."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


class SystemClock:
    """``time.monotonic`` with real sleeps: the default clock."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when slept on or advanced: tests and benchmarks.

    ``sleep(s)`` advances the time by ``s`` at once; ``asleep(s)`` does the same and
    yields to the event loop. Thread-safe.

    Example::

        clock = ManualClock()
        limiter = RateLimiter(requests_per_minute=60, clock=clock)
    """

    def __init__(self, start: float = 0.0) -> None:
        self._t = float(start)
        self._lock = threading.Lock()
        self.slept = 0.0

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += max(float(seconds), 0.0)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._t += max(float(seconds), 0.0)
            self.slept += max(float(seconds), 0.0)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"ManualClock(t={self._t:.3f})"


class CallClient(Protocol):
    """What a call's hooks see of the client running it (an :class:`llmnb.LLMClient`).

    Declared here so that ``middleware/`` never imports the client layer above it."""

    @property
    def profile(self) -> str | None: ...

    @property
    def provider(self) -> Provider: ...

    @property
    def tracker(self) -> UsageTracker: ...

    def _build_request(self, call: Call) -> Request: ...


class Call:
    """One logical call as the middlewares see it.

    ``request`` is what the next attempt sends (a middleware may replace it);
    ``client`` is the client running it (it changes when failover moves on);
    ``attempt`` the number of the current attempt, counted over retries, failover and
    re-asks; ``key_id`` the fingerprint of the key this attempt uses; ``cost`` the USD of
    the last attempt's usage row (NaN if unknown) and ``latency`` its seconds;
    ``data`` per-middleware scratch space
    (use your middleware object as the key).
    """

    __slots__ = (
        "attachments",
        "attempt",
        "cache",
        "call_id",
        "client",
        "cost",
        "data",
        "key_id",
        "latency",
        "messages",
        "params",
        "request",
        "round",
        "schema",
        "schema_name",
        "started",
        "stream",
        "switch_key",
        "tags",
        "tool_choice",
        "tools",
        "tried",
        "validate",
    )

    def __init__(
        self,
        client: CallClient,
        messages: tuple[Message, ...],
        params: dict[str, Any],
        *,
        call_id: str,
        stream: bool,
        tags: Mapping[str, Any] | None,
        cache: bool | None,
        started: float,
        attachments: int = 0,
    ) -> None:
        self.attachments = attachments  # how many (images, documents, audio), for rows
        self.client = client
        self.messages = messages
        self.params = params
        self.call_id = call_id
        self.stream = stream
        self.tags = tags
        self.cache = cache
        self.started = started
        self.attempt = 0
        self.key_id: str | None = None
        self.cost = math.nan
        self.latency = math.nan
        self.data: dict[Any, Any] = {}
        self.switch_key = False
        self.tried: list[str] = []
        self.schema: Mapping[str, Any] | None = None
        self.schema_name: str | None = None
        self.validate: Callable[[Completion], None] | None = None
        # The tool loop's round (1 outside a loop) and the tools this call declares.
        self.round = 1
        self.tools: tuple[Mapping[str, Any], ...] = ()
        self.tool_choice: str | None = None
        self.request: Request = client._build_request(self)

    @property
    def profile(self) -> str | None:
        """The profile of the client running this attempt."""
        return self.client.profile

    def __repr__(self) -> str:
        return (
            f"<Call {self.call_id} profile={self.profile!r} model={self.request.model!r} "
            f"attempt={self.attempt}{' stream' if self.stream else ''}>"
        )


class Middleware:
    """Base class of middlewares: override the hooks you need, leave the others.

    Hooks run inside the client's core, for sync and async calls and for streams
    (``call.stream``); they must not block. ``clock`` is what waits requested by
    :meth:`before_attempt` are measured and slept with.
    """

    clock: Clock = SYSTEM_CLOCK

    def before_call(self, call: Call) -> Completion | None:
        """Before the first attempt. Return a Completion to answer without calling
        the provider (a cache hit), raise to refuse, or return None to go on. A refusal
        is recorded as an attempt not sent (cost 0, ``cost_source="not_sent"``)."""
        return None

    def after_call(self, call: Call, completion: Completion) -> Completion:
        """After the call succeeded (also after a cache hit: ``completion.cached``).
        Return the completion, or a replacement."""
        return completion

    def call_failed(self, call: Call, error: BaseException) -> None:
        """The call raised ``error`` (after retries and failover)."""

    def before_attempt(self, call: Call) -> float:
        """Before each attempt: return 0 to proceed, or seconds to wait before being
        asked again. May set ``call.request`` (e.g. the key) and raise to refuse (recorded
        like a refusal in :meth:`before_call`)."""
        return 0.0

    def after_attempt(
        self, call: Call, completion: Completion | None, error: BaseException | None
    ) -> None:
        """After each attempt whose ``before_attempt`` was called (even if it raised):
        exactly one of ``completion`` and ``error`` is set."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _overrides(m: Middleware, name: str) -> bool:
    return getattr(type(m), name, None) is not getattr(Middleware, name)


def _ours(m: Middleware) -> bool:
    # llmnb's own middlewares are tested to answer what their hooks promise; a user's
    # hook is the boundary, where `return` forgotten (None) must not become a TypeError
    # deep in the attempt loop.
    return type(m).__module__.startswith("llmnb.")


def _wrong_answer(m: Middleware, hook: str, value: Any, expected: str) -> Exception:
    from llmnb.errors import InvalidOptionError

    return InvalidOptionError(
        f"{m!r}.{hook}() returned {value!r} ({type(value).__name__}): {expected}."
    )


def _checked_before_call(m: Middleware) -> Callable[[Call], Completion | None]:
    hook = m.before_call
    if _ours(m):
        return hook

    def before_call(call: Call) -> Completion | None:
        answer = hook(call)
        if answer is None or isinstance(answer, Completion):
            return answer
        raise _wrong_answer(
            m,
            "before_call",
            answer,
            "return None to go on, or a Completion to answer without calling the provider "
            "(raise to refuse the call)",
        )

    return before_call


def _checked_after_call(m: Middleware) -> Callable[[Call, Completion], Completion]:
    hook = m.after_call
    if _ours(m):
        return hook

    def after_call(call: Call, completion: Completion) -> Completion:
        answer = hook(call, completion)
        if answer is None:
            return completion  # a hook that only looked (no `return`): no change
        if isinstance(answer, Completion):
            return answer
        raise _wrong_answer(
            m, "after_call", answer, "return the completion it was given, or a replacement"
        )

    return after_call


class _CheckedWait(Middleware):
    """A user middleware in the before_attempt tuple, its answer checked: None is "no
    wait"; a wait that is not a finite number of seconds is refused, saying so."""

    def __init__(self, inner: Middleware) -> None:
        self.inner = inner

    @property
    def clock(self) -> Clock:
        return self.inner.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.inner.clock = clock

    def before_attempt(self, call: Call) -> float:
        wait: Any = self.inner.before_attempt(call)
        if wait is None:
            return 0.0
        if not isinstance(wait, bool) and isinstance(wait, (int, float)) and math.isfinite(wait):
            return float(wait)
        raise _wrong_answer(
            self.inner,
            "before_attempt",
            wait,
            "return 0 (or None) to go on, or the seconds (a finite number) to wait before "
            "being asked again",
        )

    def after_attempt(
        self, call: Call, completion: Completion | None, error: BaseException | None
    ) -> None:
        self.inner.after_attempt(call, completion, error)

    def __repr__(self) -> str:
        return repr(self.inner)


class Chain:
    """The hooks of a middleware list, resolved once (not per call).

    ``middlewares`` is outer → inner. "before" hooks run in that order, "after" hooks
    in reverse, as in an onion.
    """

    __slots__ = (
        "after_attempt",
        "after_call",
        "before_attempt",
        "before_call",
        "call_failed",
        "middlewares",
    )

    def __init__(self, middlewares: Sequence[Middleware]) -> None:
        for m in middlewares:
            if not isinstance(m, Middleware):
                from llmnb.errors import InvalidOptionError

                raise InvalidOptionError(
                    f"{m!r} is not a middleware: subclass llmnb.middleware.Middleware and "
                    "override the hooks you need (before_call, after_attempt, ...)."
                )
        mws = tuple(middlewares)
        inner_first = tuple(reversed(mws))
        self.middlewares = mws
        self.before_call = tuple(
            _checked_before_call(m) for m in mws if _overrides(m, "before_call")
        )
        self.after_call = tuple(
            _checked_after_call(m) for m in inner_first if _overrides(m, "after_call")
        )
        self.call_failed = tuple(m.call_failed for m in inner_first if _overrides(m, "call_failed"))
        # Objects, not bound methods: the shell sleeps on each one's clock.
        self.before_attempt = tuple(
            m if _ours(m) else _CheckedWait(m) for m in mws if _overrides(m, "before_attempt")
        )
        self.after_attempt = tuple(
            m.after_attempt
            for m in inner_first
            if _overrides(m, "after_attempt") or _overrides(m, "before_attempt")
        )

    def unwind(self, call: Call, admitted: Sequence[Middleware], error: BaseException) -> None:
        """Admission failed or was interrupted: only the middlewares whose
        ``before_attempt`` ran get ``after_attempt`` (inner first)."""
        for m in reversed(admitted):
            m.after_attempt(call, None, error)

    def __repr__(self) -> str:
        return f"Chain({list(self.middlewares)!r})"


# Process-wide state shared by the clients of one profile: a rate limit or a key pool
# must hold across every client built for that profile (the %%llm magic builds one per
# cell), so their state lives here, keyed by what defines it.
_shared: dict[tuple[Any, ...], Any] = {}
_shared_lock = threading.Lock()


def shared(key: tuple[Any, ...], factory: Callable[[], T]) -> T:
    """The object stored under ``key``, made by ``factory()`` the first time."""
    with _shared_lock:
        found = _shared.get(key)
        if found is None:
            found = _shared[key] = factory()
        return found  # type: ignore[no-any-return]


def shared_items(kind: str) -> list[tuple[tuple[Any, ...], Any]]:
    """Every shared object whose key starts with ``kind``."""
    with _shared_lock:
        return [(k, v) for k, v in _shared.items() if k and k[0] == kind]
