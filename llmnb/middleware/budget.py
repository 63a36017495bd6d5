"""USD budgets: per session (this kernel) and per profile, checked before sending.

Before a call is sent its cost is estimated — input tokens from the prompt's length,
output tokens from ``max_tokens`` (:data:`DEFAULT_OUTPUT_TOKENS` when unset) — at the
profile's ``pricing`` or the genai-prices table. If what was spent plus that estimate
would pass a budget, :class:`~llmnb.errors.BudgetExceededError` is raised and nothing
is sent (the refused attempt still leaves its usage row: cost 0,
``cost_source="not_sent"``). Spend is the sum of the known costs of every attempt made
in this process (cache hits cost 0; attempts whose cost is unknown cannot be counted,
and a model without a price can only be stopped once the budget is already spent).

The session budget is ``usage.budget_usd`` from the settings unless
:func:`set_session_budget` (``%llm budget USD``) sets one; a profile's own limit is
``budget_usd`` under its entry in ``llm.providers``.

Example::

    from llmnb.middleware.budget import set_session_budget, get_session_spend
    set_session_budget(2.50)      # USD for the rest of this session; None: no limit
    get_session_spend()           # USD spent so far
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

from llmnb import errors
from llmnb.middleware.base import Call, Middleware
from llmnb.types import Completion

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "BudgetMiddleware",
    "get_profile_spend",
    "get_session_budget",
    "get_session_spend",
    "reset_session_budget",
    "reset_spend",
    "set_session_budget",
]

log = logging.getLogger("llmnb.budget")

#: Output tokens assumed for the estimate of a call that sets no ``max_tokens``.
DEFAULT_OUTPUT_TOKENS = 256

_UNSET = object()
_lock = threading.Lock()
_session_limit: Any = _UNSET  # float | None once set_session_budget() was called
_spent = 0.0
_spent_by_profile: dict[str, float] = {}


def _from_settings() -> float | None:
    from llmnb import config

    try:
        return config.load_settings().usage.budget_usd
    except errors.ConfigError:
        return None  # a broken settings file is reported by the call itself


def set_session_budget(usd: float | None) -> None:
    """Set this session's USD budget (``None``: no limit, whatever the settings say)."""
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
    """The session's USD budget: the one set, else ``usage.budget_usd``, else None."""
    limit = _session_limit
    if limit is _UNSET:
        return _from_settings()
    return limit  # type: ignore[no-any-return]


def get_session_spend() -> float:
    """USD spent by the calls of this process whose cost is known."""
    return _spent


def get_profile_spend(profile: str) -> float:
    """USD spent through ``profile`` in this process."""
    return _spent_by_profile.get(profile, 0.0)


def reset_spend() -> None:
    """Start counting spend from zero (a new session, or a test)."""
    global _spent
    with _lock:
        _spent = 0.0
        _spent_by_profile.clear()


def _record(profile: str | None, cost: float) -> None:
    global _spent
    with _lock:
        _spent += cost
        if profile is not None:
            _spent_by_profile[profile] = _spent_by_profile.get(profile, 0.0) + cost


def estimate_cost(call: Call) -> float:
    """The estimated USD of the call's next attempt; NaN when no price is known."""
    from llmnb.providers.mock import estimate_tokens
    from llmnb.usage.pricing import cost_of, price_for

    provider = call.client.provider
    request = call.request
    pricing: Mapping[str, Any] | None = provider.profile.get("pricing")
    try:
        price = price_for(request.model, provider.type_name, provider.base_url, pricing)
    except ValueError:
        price = None
    if price is None:
        return math.nan
    prompt = sum(estimate_tokens(m.content) for m in request.messages)
    output = request.max_tokens or DEFAULT_OUTPUT_TOKENS
    return float(cost_of(price, prompt, output))


class BudgetMiddleware(Middleware):
    """Refuses calls that could pass the session or the profile budget; counts spend.

    Every client has one (spend must be counted even before a budget is set).
    """

    def __init__(self, profile: str | None = None, profile_limit: float | None = None) -> None:
        self.profile = profile
        self.profile_limit = profile_limit
        # usage.budget_usd as of the last look: read now, then at most once a second
        # (on every call it would cost a stat() of the settings file).
        self._settings_limit = _from_settings()
        self._checked = time.monotonic()
        self._warned = False

    def _session(self) -> float | None:
        limit = _session_limit
        if limit is not _UNSET:
            return limit  # type: ignore[no-any-return]
        now = time.monotonic()
        if now - self._checked >= 1.0:
            self._settings_limit = _from_settings()
            self._checked = now
        return self._settings_limit

    def before_call(self, call: Call) -> Completion | None:
        session = self._session()
        if session is None and self.profile_limit is None:
            return None
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
        if session is not None:
            self._check("session", session, _spent, estimate, call)
        if self.profile_limit is not None:
            spent = get_profile_spend(str(self.profile))
            self._check(f"profile {self.profile}", self.profile_limit, spent, estimate, call)
        return None

    def after_attempt(
        self, call: Call, completion: Completion | None, error: BaseException | None
    ) -> None:
        cost = call.cost
        if cost > 0:  # NaN (unknown) and 0 (cache) compare False
            _record(call.profile, cost)

    @staticmethod
    def _check(scope: str, limit: float, spent: float, estimate: float, call: Call) -> None:
        if spent + estimate <= limit and spent < limit:
            return
        if scope == "session":
            name = "the session budget"
            how = (
                "raise it with `%llm budget USD` or "
                "llmnb.middleware.budget.set_session_budget(usd), or usage.budget_usd in "
                "config/settings.yaml"
            )
        else:
            profile = scope.split(" ", 1)[1]
            name = f"the budget of profile {profile!r} (llm.providers.{profile}.budget_usd)"
            how = f"raise llm.providers.{profile}.budget_usd in config/settings.yaml"
        raise errors.BudgetExceededError(
            f"{name} of ${limit:.4f} would be exceeded: ${spent:.4f} spent, and this call "
            f"(model {call.request.model!r}) may cost up to ${estimate:.4f}. Nothing was sent; "
            f"{how}.",
            scope=scope,
            limit_usd=limit,
            spent_usd=spent,
            estimate_usd=estimate,
        )

    def __repr__(self) -> str:
        return f"BudgetMiddleware(profile={self.profile!r}, profile_limit={self.profile_limit})"
