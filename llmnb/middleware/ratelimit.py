"""Client-side rate limits: callers wait instead of receiving 429s.

Algorithm: a **sliding-window log** per limited dimension (requests, input tokens,
output tokens, and total tokens when a provider reports that). Each admitted attempt
appends ``(time, amount)``; an attempt is admitted only if the amounts within the last
60 s plus its own stay within the limit, else it is told exactly when enough old
entries leave the window. So no 60-second window ever holds more than the limit (of
the reserved amounts) — unlike a token bucket or GCRA, which are smooth but only
approximate a per-minute cap. A burst of a whole minute's quota is allowed at once.

Amounts: input tokens are estimated before sending (about 4 characters a token);
output tokens are reserved from ``max_tokens`` (:attr:`RateLimiter.default_output`
when the call sets none). When the answer arrives both are corrected to the reported
usage; a failed attempt gives its output reservation back. Upward corrections
(the estimate was low) count against later calls.

Provider headers tighten the limits per key: ``x-ratelimit-{limit,remaining,reset}-
{requests,tokens}`` (OpenAI style) and ``anthropic-ratelimit-{requests,tokens,
input-tokens,output-tokens}-{limit,remaining,reset}``. A reported ``limit`` becomes a
per-key window; ``remaining``/``reset`` cap what is sent until the reset; a 429's
``Retry-After`` blocks the key until then — up to the client's ``max_retry_after``
(60 s): a longer wait was raised to the caller at once and blocks nobody. Streams are
limited like other calls, but their headers are not read (a stream's answer carries no
headers object).

Example::

    limiter = RateLimiter(requests_per_minute=50, input_tokens_per_minute=40_000)
    client.add_middleware(limiter)        # or `rate_limits:` in the profile
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmnb import errors
from llmnb.middleware.base import SYSTEM_CLOCK, Call, Clock, Middleware
from llmnb.middleware.retry import server_wait
from llmnb.types import Completion, Request

__all__ = ["HeaderLimit", "RateLimiter", "parse_rate_limit_headers"]

WINDOW = 60.0
DIMENSIONS = ("requests", "input_tokens", "output_tokens", "tokens")
_EPS = 1e-9


class _Window:
    """The admissions of the last ``span`` seconds in one dimension."""

    __slots__ = ("entries", "limit", "span", "total")

    def __init__(self, limit: float | None, span: float = WINDOW) -> None:
        self.limit = limit
        self.span = span
        self.entries: deque[list[float]] = deque()  # [time, amount, alive]
        self.total = 0.0

    def prune(self, now: float) -> None:
        horizon = now - self.span
        entries = self.entries
        while entries and entries[0][0] <= horizon:
            e = entries.popleft()
            self.total -= e[1]
            e[2] = 0.0
        if not entries:
            self.total = 0.0  # no float drift once empty

    def wait(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` fits under the limit (0: it fits now)."""
        limit = self.limit
        if limit is None:
            return 0.0
        self.prune(now)
        excess = self.total + amount - limit
        if excess <= _EPS:
            return 0.0
        freed = 0.0
        for t, a, _ in self.entries:
            freed += a
            if freed >= excess - _EPS:
                return max(t + self.span - now, _EPS)
        return self.span  # unreachable while amount <= limit

    def add(self, amount: float, now: float) -> list[float]:
        # Pruned here too: a window with no limit (yet) is never asked to wait, and a
        # long-running kernel must keep only the last minute.
        self.prune(now)
        entry = [now, amount, 1.0]
        self.entries.append(entry)
        self.total += amount
        return entry

    def correct(self, entry: list[float], amount: float) -> None:
        if entry[2]:  # still in the window
            self.total += amount - entry[1]
            entry[1] = amount

    def used(self, now: float) -> float:
        self.prune(now)
        return self.total


@dataclass(slots=True)
class HeaderLimit:
    """One dimension of a provider's rate-limit headers."""

    limit: float | None = None
    remaining: float | None = None
    reset_s: float | None = None


_PREFIXES = (
    ("x-ratelimit-limit-", "x-ratelimit-remaining-", "x-ratelimit-reset-"),
    ("anthropic-ratelimit-", "anthropic-ratelimit-", "anthropic-ratelimit-"),
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_ANTHROPIC_DIM = {
    "requests": "requests",
    "tokens": "tokens",
    "input-tokens": "input_tokens",
    "output-tokens": "output_tokens",
}


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _reset_seconds(text: str | None) -> float | None:
    """``"6m0s"`` / ``"20ms"`` / ``"1.5"`` (seconds) / an RFC 3339 time → seconds from now."""
    if not text:
        return None
    text = text.strip()
    plain = _float(text)
    if plain is not None:
        return plain
    parts = _DURATION.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        return sum(float(n) * _UNIT[u] for n, u in parts)
    try:
        when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    # An absolute time is on the wall clock, whatever clock the limiter runs on.
    return max(when.timestamp() - time.time(), 0.0)


def parse_rate_limit_headers(headers: Mapping[str, str] | None) -> dict[str, HeaderLimit]:
    """The rate-limit state a response reports, by dimension (``requests``, ``tokens``,
    ``input_tokens``, ``output_tokens``); empty when it reports none."""
    if not headers:
        return {}
    if not hasattr(headers, "get_list"):  # not httpx.Headers: make lookups case-insensitive
        headers = {str(k).lower(): str(v) for k, v in headers.items()}
    out: dict[str, HeaderLimit] = {}
    get = headers.get
    for dim in ("requests", "tokens"):  # OpenAI style
        limit = _float(get(f"x-ratelimit-limit-{dim}"))
        remaining = _float(get(f"x-ratelimit-remaining-{dim}"))
        if limit is None and remaining is None:
            continue
        out[dim] = HeaderLimit(limit, remaining, _reset_seconds(get(f"x-ratelimit-reset-{dim}")))
    for wire, dim in _ANTHROPIC_DIM.items():
        base = f"anthropic-ratelimit-{wire}-"
        limit = _float(get(base + "limit"))
        remaining = _float(get(base + "remaining"))
        if limit is None and remaining is None:
            continue
        out[dim] = HeaderLimit(limit, remaining, _reset_seconds(get(base + "reset")))
    return out


class _Hint:
    """A provider said ``remaining`` are left until ``reset_at``: send no more."""

    __slots__ = ("remaining", "reset_at", "used")

    def __init__(self, remaining: float, reset_at: float) -> None:
        self.remaining = remaining
        self.reset_at = reset_at
        self.used = 0.0


class _KeyState:
    """Per-key windows (limits learned from headers) and remaining/reset hints."""

    __slots__ = ("hints", "windows")

    def __init__(self) -> None:
        self.windows = {dim: _Window(None) for dim in DIMENSIONS}
        self.hints: dict[str, _Hint] = {}


class _Ticket:
    __slots__ = ("amounts", "entries", "key_id", "waiting")

    def __init__(self, amounts: dict[str, float], key_id: str | None) -> None:
        self.amounts = amounts
        self.key_id = key_id
        self.entries: list[tuple[_Window, list[float], str]] = []
        self.waiting = False


def estimate_input_tokens(request: Request, provider_type: str = "openai") -> int:
    """About four characters a token, plus a few per message for the wire's framing,
    plus the attachments by ``provider_type``'s image-token formula."""
    chars = sum(len(m.content) for m in request.messages)
    tokens = math.ceil(chars / 4) + 4 * len(request.messages)
    if any(m.parts for m in request.messages):
        from llmnb.providers._parts_cost import attachment_tokens

        tokens += attachment_tokens(provider_type, request.messages)
    return tokens


class RateLimiter(Middleware):
    """Per-minute limits for one profile (shared by all its clients), per key learned.

    ``profile`` only names the limit in messages. ``default_output`` is the output
    reservation of a call without ``max_tokens``. While calls are in flight a waiting
    caller looks again every ``recheck`` seconds (their reservations may shrink).
    """

    recheck = 0.25

    def __init__(
        self,
        requests_per_minute: float | None = None,
        input_tokens_per_minute: float | None = None,
        output_tokens_per_minute: float | None = None,
        *,
        profile: str | None = None,
        clock: Clock | None = None,
        default_output: int = 1024,
    ) -> None:
        self.clock = clock or SYSTEM_CLOCK
        self.profile = profile
        self.default_output = int(default_output)
        self.limits = {
            "requests": requests_per_minute,
            "input_tokens": input_tokens_per_minute,
            "output_tokens": output_tokens_per_minute,
        }
        self._windows = {dim: _Window(limit) for dim, limit in self.limits.items()}
        self._keys: dict[str | None, _KeyState] = {}
        self._lock = threading.Lock()
        self.waiting = 0
        self.admitted = 0
        self.in_flight = 0  # admitted, usage not reported yet: reservations may shrink

    # --- the hooks ----------------------------------------------------------------
    def before_attempt(self, call: Call) -> float:
        ticket: _Ticket | None = call.data.get(self)
        if ticket is None or ticket.key_id != call.key_id:
            ticket = _Ticket(self._amounts(call.request), call.key_id)
            call.data[self] = ticket
        now = self.clock.now()
        with self._lock:
            wait = self._wait(ticket, now)
            if wait > 0:
                if not ticket.waiting:
                    ticket.waiting = True
                    self.waiting += 1
                if self.in_flight:
                    # An answer arriving may give back part of its reservation before
                    # the oldest entry leaves the window: look again soon.
                    wait = min(wait, self.recheck)
                return wait
            if ticket.waiting:
                ticket.waiting = False
                self.waiting -= 1
            self._admit(ticket, now)
        return 0.0

    def after_attempt(
        self, call: Call, completion: Completion | None, error: BaseException | None
    ) -> None:
        ticket: _Ticket | None = call.data.pop(self, None)
        if ticket is None:
            return
        now = self.clock.now()
        with self._lock:
            if ticket.waiting:
                self.waiting -= 1
            if not ticket.entries:
                return
            self.in_flight -= 1
            self._correct(ticket, completion)
            headers = completion.headers if completion is not None else None
            if error is not None:
                headers = getattr(error, "headers", None)
            self._observe(ticket.key_id, headers, now)
            if isinstance(error, errors.RateLimitError):
                if error.retry_after is None:
                    wait: float | None = 1.0
                else:  # beyond the retry cap, inf or NaN: the server is asked again
                    wait = server_wait(error.retry_after, call.client)
                if wait is not None:
                    state = self._key(ticket.key_id)
                    state.hints["requests"] = _Hint(0.0, now + wait)

    # --- decisions ----------------------------------------------------------------
    def _amounts(self, request: Request) -> dict[str, float]:
        inp = float(estimate_input_tokens(request))
        out = float(request.max_tokens if request.max_tokens else self.default_output)
        return {"requests": 1.0, "input_tokens": inp, "output_tokens": out, "tokens": inp + out}

    def _key(self, key_id: str | None) -> _KeyState:
        state = self._keys.get(key_id)
        if state is None:
            state = self._keys[key_id] = _KeyState()
        return state

    def _wait(self, ticket: _Ticket, now: float) -> float:
        wait = 0.0
        amounts = ticket.amounts
        for dim, window in self._windows.items():
            if window.limit is not None:
                self._check_fits(dim, amounts[dim], window.limit, configured=True)
                wait = max(wait, window.wait(amounts[dim], now))
        state = self._keys.get(ticket.key_id)
        if state is None:
            return wait
        for dim, window in state.windows.items():
            if window.limit is not None:
                self._check_fits(dim, amounts[dim], window.limit, configured=False)
                wait = max(wait, window.wait(amounts[dim], now))
        for dim, hint in list(state.hints.items()):
            if now >= hint.reset_at:
                del state.hints[dim]
            elif hint.used + amounts[dim] > hint.remaining + _EPS:
                wait = max(wait, hint.reset_at - now)
        return wait

    def _check_fits(self, dim: str, amount: float, limit: float, *, configured: bool) -> None:
        if amount <= limit + _EPS:
            return
        who = f"profile {self.profile!r}" if self.profile else "this rate limiter"
        if configured:
            field = f"rate_limits.{dim}_per_minute"
            raise errors.RequestExceedsLimitError(
                f"{who}: this call needs {amount:.0f} {dim.replace('_', ' ')} but {field} is "
                f"{limit:g}, so it could never be sent. Raise {field}, lower max_tokens, or "
                "shorten the prompt."
            )
        raise errors.RequestExceedsLimitError(
            f"{who}: this call needs {amount:.0f} {dim.replace('_', ' ')} but the provider "
            f"reports a limit of {limit:g} per minute for this key. Lower max_tokens or "
            "shorten the prompt."
        )

    def _admit(self, ticket: _Ticket, now: float) -> None:
        amounts = ticket.amounts
        for dim, window in self._windows.items():
            if window.limit is not None:
                ticket.entries.append((window, window.add(amounts[dim], now), dim))
        state = self._key(ticket.key_id)
        for dim, window in state.windows.items():
            ticket.entries.append((window, window.add(amounts[dim], now), dim))
        for dim, hint in state.hints.items():
            hint.used += amounts[dim]
        self.admitted += 1
        self.in_flight += 1

    def _correct(self, ticket: _Ticket, completion: Completion | None) -> None:
        actual: dict[str, float] = {}
        if completion is None:
            # Nothing was generated: give the output reservation back.
            actual = {"output_tokens": 0.0, "tokens": ticket.amounts["input_tokens"]}
        elif not completion.usage.estimated:
            u = completion.usage
            actual = {
                "input_tokens": float(u.prompt_tokens),
                "output_tokens": float(u.completion_tokens),
                "tokens": float(u.prompt_tokens + u.completion_tokens),
            }
        for window, entry, dim in ticket.entries:
            if dim in actual:
                window.correct(entry, actual[dim])

    def _observe(self, key_id: str | None, headers: Mapping[str, str] | None, now: float) -> None:
        reported = parse_rate_limit_headers(headers)
        if not reported:
            return
        state = self._key(key_id)
        for dim, info in reported.items():
            if info.limit is not None and info.limit > 0:
                state.windows[dim].limit = info.limit
            if info.remaining is not None:
                reset = info.reset_s if info.reset_s is not None else WINDOW
                state.hints[dim] = _Hint(info.remaining, now + reset)

    # --- reporting ----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Limits, what the current window holds, waiting callers, per-key state."""
        now = self.clock.now()
        with self._lock:
            keys: dict[str, Any] = {}
            for key_id, state in self._keys.items():
                learned = {d: w.limit for d, w in state.windows.items() if w.limit is not None}
                blocked = 0.0
                remaining: dict[str, float] = {}
                for dim, hint in state.hints.items():
                    if now < hint.reset_at:
                        remaining[dim] = max(hint.remaining - hint.used, 0.0)
                        if hint.used >= hint.remaining:
                            blocked = max(blocked, hint.reset_at - now)
                keys[key_id or "(no key)"] = {
                    "learned_limits": learned,
                    "remaining": remaining,
                    "blocked_for_s": round(blocked, 3),
                }
            return {
                "limits": {d: v for d, v in self.limits.items() if v is not None},
                "window_used": {
                    d: w.used(now) for d, w in self._windows.items() if w.limit is not None
                },
                "waiting": self.waiting,
                "admitted": self.admitted,
                "keys": keys,
            }

    def __repr__(self) -> str:
        limits = ", ".join(f"{d}={v:g}" for d, v in self.limits.items() if v is not None)
        return f"RateLimiter({limits or 'headers only'})"
