"""USD budgets — the project's (``usage.budget_usd``) and each profile's — that hold under
concurrency and across kernels.

Before each attempt is sent its cost is estimated — input tokens from the prompt's length,
output tokens from ``max_tokens`` (else :data:`DEFAULT_OUTPUT_TOKENS`, or the most this
model has answered so far if more), at the profile's ``pricing`` or the genai-prices
table — and **reserved** while the attempt is in flight. When the attempt ends the
reservation is replaced by its real cost (a failed or cancelled attempt costs what its
usage row says: usually nothing). An attempt is refused — :class:`~llmnb.errors.
BudgetExceededError`, nothing sent, a usage row with ``cost_source="not_sent"`` — when
what was spent plus its estimate would pass a limit; when only other calls' reservations
stand in the way it waits (up to :data:`RESERVATION_WAIT` s) for them to settle. So with
any concurrency the spend stays within the limit, give or take how far real costs pass
their estimates. Cache hits cost 0; a model with no price and no cost reported can only
be stopped once the budget is already spent.

What a budget counts is its window (``usage.budget_window``, per profile
``budget_window``): ``session`` — the calls of this kernel; ``day`` / ``week`` /
``month`` — the calls since local midnight / Monday / the 1st, of *every* kernel whose
rows go to the same usage store (``.llmnb/usage.db``, a team's PostgreSQL), so a budget
survives a restart and two notebooks share one. ``budget_warn_at: 0.8`` logs one warning
when a budget is 80 % spent (once per window).

Example::

    from llmnb.middleware.budget import set_session_budget, budget_status
    set_session_budget(2.50)      # USD; None: no limit, whatever the settings say
    budget_status()               # [BudgetState(scope='session', limit_usd=2.5, …)]
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from llmnb import errors
from llmnb.middleware._budget_estimate import (
    DEFAULT_OUTPUT_TOKENS,
    estimate_cost,
    forget_seen,
    learn,
)
from llmnb.middleware._budget_window import (
    OtherKernels,
    Scope,
    day_of,
    refusal,
    scope_name,
    today,
    window_start,
    window_text,
)
from llmnb.middleware.base import Call, Middleware
from llmnb.types import Completion

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "RESERVATION_WAIT",
    "BudgetMiddleware",
    "BudgetState",
    "budget_status",
    "get_profile_spend",
    "get_session_budget",
    "get_session_reserved",
    "get_session_spend",
    "reset_session_budget",
    "reset_spend",
    "set_session_budget",
    "window_start",
]

log = logging.getLogger("llmnb.budget")

#: Seconds an attempt may wait for other calls' reservations to settle, then is refused.
RESERVATION_WAIT = 30.0
_POLL = 0.02  # seconds between looks while waiting for reservations to settle

_UNSET = object()
_lock = threading.Lock()
_session_limit: Any = _UNSET  # float | None once set_session_budget() was called
_spent = 0.0  # this process, every window
_spent_by_profile: dict[str, float] = {}
_by_day: dict[tuple[str | None, int], float] = {}  # (profile, local day) -> USD, this process
_reserved: dict[int, tuple[str | None, tuple[int, int], float]] = {}  # id -> profile, owner, USD
_ids = itertools.count(1)
# Totals of _reserved: None -> every profile, name -> that profile's; [USD, attempts].
_held: dict[str | None, list[float]] = {}
_ZERO = (0.0, 0)
_warned: set[tuple[Any, ...]] = set()
_others = OtherKernels()


class _UsageBudget(NamedTuple):
    limit: float | None
    window: str
    warn_at: float | None


def _from_settings() -> _UsageBudget:
    from llmnb import config

    try:
        usage = config.load_settings().usage
    except errors.ConfigError:
        return _UsageBudget(None, "session", None)  # the call itself reports the file
    return _UsageBudget(usage.budget_usd, usage.budget_window, usage.budget_warn_at)


def set_session_budget(usd: float | None) -> None:
    """Set the project's USD budget for this kernel (``None``: no limit, whatever the
    settings say). The window stays ``usage.budget_window``."""
    global _session_limit
    if usd is not None:
        if (
            isinstance(usd, bool)
            or not isinstance(usd, (int, float))
            or not usd > 0
            or not math.isfinite(usd)
        ):
            raise errors.InvalidOptionError(
                f"the session budget must be a positive number of USD or None, got {usd!r}"
            )
        usd = float(usd)
    with _lock:
        _session_limit = usd


def reset_session_budget() -> None:
    """Forget :func:`set_session_budget`: the settings' ``usage.budget_usd`` applies again."""
    global _session_limit
    with _lock:
        _session_limit = _UNSET


def get_session_budget() -> float | None:
    """The project's USD budget: the one set, else ``usage.budget_usd``, else None."""
    limit = _session_limit
    if limit is _UNSET:
        return _from_settings().limit
    return limit  # type: ignore[no-any-return]


def get_session_spend() -> float:
    """USD spent by the calls of this process whose cost is known."""
    return _spent


def get_session_reserved() -> float:
    """USD reserved by the attempts of this process in flight under a budget."""
    return _held.get(None, _ZERO)[0]


def get_profile_spend(profile: str) -> float:
    """USD spent through ``profile`` in this process."""
    return _spent_by_profile.get(profile, 0.0)


def reset_spend() -> None:
    """Start counting this process's spend from zero (a new session, or a test)."""
    global _spent
    with _lock:
        _spent = 0.0
        _spent_by_profile.clear()
        _by_day.clear()
        _warned.clear()
    forget_seen()
    _others.forget()


def _local_spent(scope: Scope, since: float | None) -> float:
    """This process's spend under ``scope`` since ``since`` (None: ever). Under _lock."""
    if since is None:
        return _spent if scope.profile is None else _spent_by_profile.get(scope.profile, 0.0)
    first = day_of(since)
    p = scope.profile
    return math.fsum(v for (q, d), v in _by_day.items() if d >= first and (p is None or q == p))


def _record(profile: str | None, cost: float) -> None:
    global _spent
    day = today()
    with _lock:
        _spent += cost
        if profile is not None:
            _spent_by_profile[profile] = _spent_by_profile.get(profile, 0.0) + cost
        key = (profile, day)
        _by_day[key] = _by_day.get(key, 0.0) + cost
        if len(_by_day) > 512:  # a kernel alive for months: keep what a month window needs
            for old in [k for k in _by_day if k[1] < day - 40]:
                del _by_day[old]


def _hold(profile: str | None, usd: float, n: int) -> None:
    """Add (or with negative values take) a reservation to the totals. Under _lock."""
    for key in (None, profile) if profile is not None else (None,):
        total = _held.setdefault(key, [0.0, 0])
        total[1] += n
        # Exactly 0 once nothing is in flight: no rounding residue left behind.
        total[0] = total[0] + usd if total[1] > 0 else 0.0


def _owner() -> tuple[int, int]:
    """Who holds a reservation: this thread, and its asyncio task if any. A call cannot
    wait for a reservation of its own owner (a stream it has not finished reading)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return threading.get_ident(), id(task) if task is not None else 0


class _Ticket(NamedTuple):
    rid: int | None  # the reservation, None when no budget applied
    attempt: int  # call.attempt when admitted: the attempt was sent if it grew


class BudgetMiddleware(Middleware):
    """Reserves each attempt's estimated cost under the project's and the profile's
    budget, waits or refuses when they are spent, and settles with the real cost.

    Every client has one (spend must be counted even before a budget is set).
    """

    def __init__(
        self,
        profile: str | None = None,
        profile_limit: float | None = None,
        profile_window: str | None = None,
        profile_warn_at: float | None = None,
    ) -> None:
        self.profile = profile
        self.profile_limit = profile_limit
        self.profile_window = profile_window
        self.profile_warn_at = profile_warn_at
        # usage.* as of the last look: read now, then at most once a second
        # (on every call it would cost a stat() of the settings file).
        self._settings = _from_settings()
        self._checked = time.monotonic()
        self._warned = False
        self._waiting = object()  # call.data key: when this attempt began to wait

    def _usage(self) -> _UsageBudget:
        now = time.monotonic()
        if now - self._checked >= 1.0:
            self._settings = _from_settings()
            self._checked = now
        return self._settings

    def scopes(self) -> list[Scope]:
        """The budgets that apply to this client's calls now."""
        usage = self._usage()
        limit = _session_limit
        if limit is _UNSET:
            limit = usage.limit
        if limit is None and self.profile_limit is None:
            return []
        out = []
        if limit is not None:
            out.append(Scope("session", None, limit, usage.window, usage.warn_at))
        if self.profile_limit is not None:
            out.append(
                Scope(
                    f"profile {self.profile}",
                    str(self.profile),
                    float(self.profile_limit),
                    self.profile_window or usage.window,
                    self.profile_warn_at if self.profile_warn_at is not None else usage.warn_at,
                )
            )
        return out

    def before_attempt(self, call: Call) -> float:
        scopes = self.scopes()
        if not scopes:
            call.data[self] = _Ticket(None, call.attempt)  # no budget: count, reserve nothing
            return 0.0
        estimate = estimate_cost(call)
        if math.isnan(estimate):
            if not self._warned:
                self._warned = True  # once per client: a notebook should not fill with it
                log.warning(
                    "profile %r (model %r) has no known price: its calls cannot be counted "
                    "against the budget; add `pricing:` to the profile",
                    call.profile,
                    call.request.model,
                )
            estimate = 0.0
        # Other kernels' spend is read before taking the lock (it may touch the disk).
        starts = [None if s.window == "session" else window_start(s.window) for s in scopes]
        others = [0.0] * len(scopes)
        for i, since in enumerate(starts):
            if since is not None:
                others[i] = _others.spent(_tracker_of(call), since, scopes[i].profile)
        owner = _owner()
        blocked: tuple[Scope, float, float, float | None, bool] | None = None
        with _lock:
            for scope, since, other in zip(scopes, starts, others, strict=True):
                spent = _local_spent(scope, since) + other
                reserved = _held.get(scope.profile, _ZERO)[0]
                if spent < scope.limit and spent + reserved + estimate <= scope.limit:
                    continue
                mine = (r for r in _reserved.values() if r[1] == owner)
                own = math.fsum(r[2] for r in mine if scope.profile in (None, r[0]))
                # Waiting helps only if calls other than this one's own (a stream it has
                # not finished reading) are in flight: they may settle below their estimates.
                can_wait = spent < scope.limit and spent + own + estimate <= scope.limit
                blocked = (scope, spent, reserved, since, can_wait)
                break
            else:
                rid = next(_ids)
                _reserved[rid] = (call.profile, owner, estimate)
                _hold(call.profile, estimate, 1)
                call.data[self] = _Ticket(rid, call.attempt)
                call.data.pop(self._waiting, None)
                return 0.0
        scope, spent, reserved, since, can_wait = blocked
        if can_wait:
            now = self.clock.now()
            began = call.data.setdefault(self._waiting, now)
            if now - began < RESERVATION_WAIT:
                return _POLL  # calls in flight may settle below their estimates
        call.data.pop(self._waiting, None)
        raise refusal(scope, since, spent, reserved, estimate, call)

    def after_attempt(
        self, call: Call, completion: Completion | None, error: BaseException | None
    ) -> None:
        ticket: _Ticket | None = call.data.pop(self, None)
        call.data.pop(self._waiting, None)
        if ticket is None:
            return  # refused (or interrupted) here: nothing reserved, nothing sent
        if ticket.rid is not None:
            with _lock:
                held = _reserved.pop(ticket.rid, None)
                if held is not None:
                    _hold(held[0], -held[2], -1)
        if call.attempt <= ticket.attempt:
            return  # a middleware further in refused it: not sent
        cost = call.cost
        if cost > 0:  # NaN (unknown) and 0 (cache) compare False
            _record(call.profile, cost)
        if ticket.rid is None:
            return  # no budget applied: nothing to learn for, nothing to warn about
        if completion is not None:
            learn(call, completion)
        if cost > 0 and (self._settings.warn_at is not None or self.profile_warn_at is not None):
            self._maybe_warn(call)

    def _maybe_warn(self, call: Call) -> None:
        tracker = _tracker_of(call)
        for scope in self.scopes():
            if scope.warn_at is None:
                continue
            since = window_start(scope.window)
            key = (scope.name, scope.limit, scope.window, since)
            if key in _warned:
                continue
            other = 0.0 if since is None else _others.spent(tracker, since, scope.profile)
            with _lock:
                spent = _local_spent(scope, since) + other
                if spent < scope.warn_at * scope.limit or key in _warned:
                    continue
                _warned.add(key)
            from llmnb.usage.format import money

            log.warning(
                "llmnb: %s of %s is spent: %s of %s%s",
                f"{scope.warn_at:.0%}",
                scope_name(scope),
                money(spent),
                money(scope.limit),
                window_text(scope.window, since),
            )

    def __repr__(self) -> str:
        return f"BudgetMiddleware(profile={self.profile!r}, profile_limit={self.profile_limit})"


def _tracker_of(call: Call) -> Any:
    tracker = getattr(call.client, "tracker", None)
    if tracker is None:
        from llmnb.usage import get_tracker

        tracker = get_tracker()
    return tracker


@dataclass(frozen=True)
class BudgetState:
    """One budget as it stands: what ``%llm budget`` shows.

    ``since`` is the window's start (UTC epoch seconds; None for ``session``),
    ``spent_usd`` the spend in the window (other kernels' included for day/week/month),
    ``reserved_usd`` the estimates of this kernel's attempts in flight.
    """

    scope: str
    limit_usd: float
    window: str
    since: float | None
    spent_usd: float
    reserved_usd: float
    warn_at: float | None


def budget_status(tracker: Any = None) -> list[BudgetState]:
    """The project's budget and each profile's (those with ``budget_usd``), as they stand.

    ``tracker`` (default: the active one) says which usage store other kernels' spend is
    read from."""
    from llmnb import config

    if tracker is None:
        from llmnb.usage import get_tracker

        tracker = get_tracker()
    scopes = BudgetMiddleware().scopes()
    try:
        for name, prof in config.load_settings().llm.providers.items():
            if prof.budget_usd is not None:
                window, warn = prof.budget_window, prof.budget_warn_at
                mw = BudgetMiddleware(name, prof.budget_usd, window, warn)
                scopes.extend(s for s in mw.scopes() if s.profile is not None)
    except errors.ConfigError:
        pass  # a broken settings file is reported where it matters
    out = []
    for scope in scopes:
        since = window_start(scope.window)
        other = 0.0 if since is None else _others.spent(tracker, since, scope.profile)
        with _lock:
            spent = _local_spent(scope, since) + other
            reserved = _held.get(scope.profile, _ZERO)[0]
        out.append(
            BudgetState(
                scope=scope.name,
                limit_usd=scope.limit,
                window=scope.window,
                since=since,
                spent_usd=spent,
                reserved_usd=reserved,
                warn_at=scope.warn_at,
            )
        )
    return out
