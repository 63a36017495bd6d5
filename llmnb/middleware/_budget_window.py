"""Budget windows: where a ``day`` / ``week`` / ``month`` starts, and what other kernels
spent in it according to the usage store.

Private to :mod:`llmnb.middleware.budget`. A window starts at local midnight of the day,
of the week's Monday, or of the month's first day. This kernel's own spend is counted
in memory by the budget (exactly, reservations included); what the store adds is the
rows of *other* sessions (kernels, processes, teammates on one PostgreSQL), read with
the store's ``spent_since`` at most once a second per budget.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from llmnb import errors

if TYPE_CHECKING:
    from llmnb.middleware.base import Call

__all__ = [
    "ERROR_TTL",
    "STORE_TTL",
    "WINDOWS",
    "OtherKernels",
    "Scope",
    "day_of",
    "refusal",
    "scope_name",
    "today",
    "window_start",
    "window_text",
]

log = logging.getLogger("llmnb.budget")

WINDOWS = ("session", "day", "week", "month")
#: Seconds a store's answer is reused: a query per call would cost more than the call's
#: bookkeeping, and other kernels' rows reach the store with a delay anyway.
STORE_TTL = 1.0
#: Seconds before a store that could not be read is asked again.
ERROR_TTL = 30.0


def window_start(window: str, now: float | None = None) -> float | None:
    """UTC epoch seconds at which ``window`` began (local time); None for ``session``."""
    if window == "session":
        return None
    if window not in WINDOWS:
        raise ValueError(f"budget window {window!r}: use one of {', '.join(WINDOWS)}")
    t = time.localtime(now)
    day = _dt.date(t.tm_year, t.tm_mon, t.tm_mday)
    if window == "week":
        day -= _dt.timedelta(days=day.weekday())
    elif window == "month":
        day = day.replace(day=1)
    # isdst=-1: mktime finds out whether that midnight was summer time.
    return time.mktime((day.year, day.month, day.day, 0, 0, 0, 0, 0, -1))


def day_of(epoch: float) -> int:
    """The local calendar day of ``epoch`` as a date ordinal."""
    t = time.localtime(epoch)
    return _dt.date(t.tm_year, t.tm_mon, t.tm_mday).toordinal()


_today: tuple[float, float, int] = (0.0, 0.0, 0)  # [start, end) of the day known, its ordinal


def today() -> int:
    """``day_of(time.time())``, without a localtime() per call."""
    global _today
    now = time.time()
    start, end, day = _today
    if not start <= now < end:
        day = day_of(now)
        start = window_start("day", now) or now
        # The next midnight: noon tomorrow, back to its midnight (DST days are not 24 h).
        end = window_start("day", start + 36 * 3600) or now
        _today = (start, end, day)
    return day


class OtherKernels:
    """USD other sessions spent since a window's start, from a tracker's store (cached)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], tuple[float, float]] = {}
        self._warned: set[int] = set()

    def spent(self, tracker: Any, since: float, profile: str | None) -> float:
        store = tracker.store
        session = tracker.session
        key = (id(store), since, profile, session)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now < hit[0]:
            return hit[1]
        last = hit[1] if hit is not None else 0.0
        reader = getattr(store, "spent_since", None)
        ttl = STORE_TTL
        if reader is None:
            self._warn_once(
                store,
                f"the usage store {type(store).__name__} cannot say what other kernels spent "
                "(it has no spent_since()); day/week/month budgets count this kernel only",
            )
            value = 0.0
            ttl = ERROR_TTL
        else:
            try:
                value = float(reader(since, profile=profile, exclude_session=session))
            except Exception as exc:  # never cost the user the call: count what is known
                self._warn_once(
                    store,
                    f"other kernels' spend could not be read from the usage store ({exc}); "
                    "the budget counts this kernel's spend and the last figure read",
                )
                value, ttl = last, ERROR_TTL  # and do not wait on it at every call
            if not value >= 0.0:  # NaN from a damaged row: ignore it rather than block
                value = last
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = (now + ttl, value)
        return value

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    def _warn_once(self, store: Any, message: str) -> None:
        if id(store) in self._warned:
            return
        self._warned.add(id(store))
        log.warning("llmnb: %s", message)


class Scope(NamedTuple):
    name: str  # "session" or "profile <name>"
    profile: str | None  # None: every profile
    limit: float
    window: str
    warn_at: float | None


def scope_name(scope: Scope) -> str:
    if scope.profile is None:
        return "the session budget" if scope.window == "session" else "the budget"
    return f"the budget of profile {scope.profile!r} (llm.providers.{scope.profile}.budget_usd)"


def window_text(window: str, since: float | None) -> str:
    if since is None:
        return " in this kernel"
    when = _dt.datetime.fromtimestamp(since).strftime("%Y-%m-%d %H:%M")
    return f" since {when} (budget_window: {window}; every kernel using this usage store)"


def refusal(
    scope: Scope,
    since: float | None,
    spent: float,
    reserved: float,
    estimate: float,
    call: Call,
) -> errors.BudgetExceededError:
    if scope.profile is None:
        how = (
            "raise it with `%llm budget USD` or "
            "llmnb.middleware.budget.set_session_budget(usd), or usage.budget_usd in "
            "config/settings.yaml"
        )
    else:
        how = f"raise llm.providers.{scope.profile}.budget_usd in config/settings.yaml"
    from llmnb.usage.format import money

    held = f", {money(reserved)} reserved by calls in flight" if reserved > 0 else ""
    return errors.BudgetExceededError(
        f"{scope_name(scope)} of {money(scope.limit)} would be exceeded: {money(spent)} spent"
        f"{window_text(scope.window, since)}{held}, and this call (model "
        f"{call.request.model!r}) may cost up to {money(estimate)}. Nothing was sent; {how}.",
        scope=scope.name,
        limit_usd=scope.limit,
        spent_usd=spent,
        estimate_usd=estimate,
        reserved_usd=reserved,
        window=scope.window,
    )
