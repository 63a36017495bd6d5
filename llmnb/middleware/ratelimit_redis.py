"""A rate limiter shared by every process through Redis: one budget for the whole team.

Same algorithm and semantics as :class:`~llmnb.middleware.ratelimit.RateLimiter` — a
sliding-window log per dimension (requests, input tokens, output tokens); an attempt is
admitted only if the last 60 s plus its own amounts stay within every limit, else it is
told when enough old entries leave the window; input tokens are estimated and output
tokens reserved from ``max_tokens`` before sending, then corrected to the reported usage
— but the log lives in Redis, and admission is one Lua script, so it is atomic across
processes and machines. Times are the Redis server's (``TIME``), so clocks of different
machines need not agree.

Redis keys are ``llmnb:rl:{<profile>:<key fingerprint>}:…`` (a SHA-256 prefix of the
API key, never the key; the braces keep one limiter's keys in one cluster slot). They
expire a little after the window once idle. A 429 with ``Retry-After`` pauses every
process using the limiter, not only the one that got it. Limits a provider reports in
its headers are learned per process, as the in-process limiter does.

If Redis cannot be reached, a warning is logged once and this process falls back to
in-process limiting (other processes' calls are then not counted); Redis is tried
again every ``retry_interval`` seconds. A call never fails because Redis is down.

Example::

    limiter = RedisRateLimiter("redis://cache.internal:6379/0", requests_per_minute=500,
                               input_tokens_per_minute=200_000, profile="openai",
                               key_fingerprint="k-1a2b3c4d")
    client.add_middleware(limiter)   # or: rate_limits: {backend: "redis://…"} in a profile
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llmnb import errors
from llmnb.middleware._redis_lua import ACQUIRE as _ACQUIRE
from llmnb.middleware._redis_lua import BLOCK as _BLOCK
from llmnb.middleware._redis_lua import CORRECT as _CORRECT
from llmnb.middleware.base import SYSTEM_CLOCK, Call, Clock, Middleware, shared
from llmnb.middleware.ratelimit import WINDOW, RateLimiter, estimate_input_tokens
from llmnb.middleware.retry import server_wait
from llmnb.types import Completion, Request

if TYPE_CHECKING:
    import redis

    from llmnb.providers.base import Provider

__all__ = [
    "REDIS_URL_VAR",
    "RedisRateLimiter",
    "is_redis_url",
    "redis_client",
    "redis_limiter_for",
    "shown_url",
]

log = logging.getLogger("llmnb.ratelimit")

#: Environment variable naming the Redis server when a profile's rate_limits name none.
REDIS_URL_VAR = "LLMNB_REDIS_URL"
_DIMS = ("requests", "input_tokens", "output_tokens")


class _Ticket:
    __slots__ = ("amounts", "entry", "fallback", "waiting")

    def __init__(self, amounts: dict[str, float]) -> None:
        self.amounts = amounts
        self.entry: str | None = None  # the Redis log entry id, once admitted there
        self.fallback = False  # admitted by the in-process limiter instead
        self.waiting = False


class RedisRateLimiter(Middleware):
    """Per-minute limits kept in Redis, shared by every process that uses them.

    ``url`` is a ``redis://`` / ``rediss://`` URL or a ``redis.Redis`` client.
    ``profile`` and ``key_fingerprint`` name the shared budget (processes with the same
    pair share it). ``clock`` — given only in tests — replaces the server's time, so
    windows can be compressed with a :class:`~llmnb.middleware.base.ManualClock`;
    ``window`` (seconds, default 60) likewise.
    """

    #: How often a caller waiting on a token limit asks again (reservations may shrink).
    recheck = 0.25

    def __init__(
        self,
        url: Any,
        requests_per_minute: float | None = None,
        input_tokens_per_minute: float | None = None,
        output_tokens_per_minute: float | None = None,
        *,
        profile: str | None = None,
        key_fingerprint: str | None = None,
        clock: Clock | None = None,
        window: float = WINDOW,
        default_output: int = 1024,
        prefix: str = "llmnb",
        retry_interval: float = 30.0,
    ) -> None:
        self._client = url if not isinstance(url, str) else None
        self._url = url if isinstance(url, str) else None
        self.where = shown_url(url) if isinstance(url, str) else repr(url)
        self._server_time = clock is None
        self.clock = clock or SYSTEM_CLOCK
        self.profile = profile
        self.window = float(window)
        self.default_output = int(default_output)
        self.retry_interval = float(retry_interval)
        self.limits = {
            "requests": requests_per_minute,
            "input_tokens": input_tokens_per_minute,
            "output_tokens": output_tokens_per_minute,
        }
        self._dims = [d for d in _DIMS if self.limits[d] is not None]
        self._shrinkable = any(d != "requests" for d in self._dims)
        base = f"{prefix}:rl:{{{profile or '-'}:{key_fingerprint or 'nokey'}}}"
        self.keys = {"seq": f"{base}:seq", "block": f"{base}:block"}
        self._dim_keys = {d: [f"{base}:{d}:{k}" for k in ("log", "amt", "total")] for d in _DIMS}
        # Learns provider headers per key (and serves alone while Redis is down).
        self._headers = RateLimiter(profile=profile, clock=self.clock)
        self._fallback = RateLimiter(
            requests_per_minute,
            input_tokens_per_minute,
            output_tokens_per_minute,
            profile=profile,
            clock=self.clock,
            default_output=default_output,
        )
        self._scripts: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._down_until: float | None = None  # falling back until then (clock time)
        self.waiting = 0
        self.admitted = 0
        #: Window times (server or clock) of this process's recent admissions.
        self.admissions: deque[float] = deque(maxlen=4096)

    # --- the hooks ----------------------------------------------------------------
    def before_attempt(self, call: Call) -> float:
        ticket: _Ticket | None = call.data.get(self)
        if ticket is None:
            ticket = _Ticket(self._amounts(call.request))
            call.data[self] = ticket
            self._check_fits(ticket.amounts)
        if ticket.fallback:
            return self._fallback.before_attempt(call)
        if ticket.entry is None:
            wait = self._acquire(ticket)
            if ticket.fallback:
                return self._fallback.before_attempt(call)
            if wait > 0:
                self._set_waiting(ticket, True)
                if self._shrinkable:
                    # Answers arriving anywhere may give back part of their token
                    # reservations before the oldest entry leaves: look again soon.
                    wait = min(wait, self.recheck)
                return wait
            self._set_waiting(ticket, False)
        # Admitted by Redis; a provider's reported limits for this key may still hold it.
        return self._headers.before_attempt(call)

    def after_attempt(
        self, call: Call, completion: Completion | None, error: BaseException | None
    ) -> None:
        ticket: _Ticket | None = call.data.pop(self, None)
        if ticket is None:
            return
        self._set_waiting(ticket, False)
        if ticket.fallback:
            self._fallback.after_attempt(call, completion, error)
            return
        self._headers.after_attempt(call, completion, error)
        if ticket.entry is None:
            return
        actual: dict[str, float] = {}
        if completion is None:
            actual = {"output_tokens": 0.0}  # nothing generated: give the reservation back
        elif not completion.usage.estimated:
            actual = {
                "input_tokens": float(completion.usage.prompt_tokens),
                "output_tokens": float(completion.usage.completion_tokens),
            }
        dims = [d for d in self._dims if d in actual and actual[d] != ticket.amounts[d]]
        if dims:
            keys = [k for d in dims for k in self._dim_keys[d]]
            self._run("correct", _CORRECT, keys, [ticket.entry, *(actual[d] for d in dims)])
        if isinstance(error, errors.RateLimitError):
            if error.retry_after is None:
                wait: float | None = 1.0
            else:  # beyond the retry cap, inf or NaN: the server is asked again
                wait = server_wait(error.retry_after, call.client)
            if wait is not None:
                self._run("block", _BLOCK, [self.keys["block"]], [wait, self._now_arg()])

    # --- Redis ----------------------------------------------------------------------
    def _amounts(self, request: Request) -> dict[str, float]:
        inp = float(estimate_input_tokens(request))
        out = float(request.max_tokens if request.max_tokens else self.default_output)
        return {"requests": 1.0, "input_tokens": inp, "output_tokens": out}

    def _check_fits(self, amounts: Mapping[str, float]) -> None:
        for dim in self._dims:
            limit = float(self.limits[dim])  # type: ignore[arg-type]
            if amounts[dim] > limit + 1e-9:
                who = f"profile {self.profile!r}" if self.profile else "this rate limiter"
                field = f"rate_limits.{dim}_per_minute"
                raise errors.RequestExceedsLimitError(
                    f"{who}: this call needs {amounts[dim]:.0f} {dim.replace('_', ' ')} but "
                    f"{field} is {limit:g}, so it could never be sent. Raise {field}, lower "
                    "max_tokens, or shorten the prompt."
                )

    def _now_arg(self) -> str:
        return "" if self._server_time else repr(self.clock.now())

    def _acquire(self, ticket: _Ticket) -> float:
        keys = [self.keys["seq"], self.keys["block"]]
        args: list[Any] = [len(self._dims), self.window, self._now_arg()]
        for d in self._dims:
            keys += self._dim_keys[d]
            args += [self.limits[d], ticket.amounts[d]]
        reply = self._run("acquire", _ACQUIRE, keys, args)
        if reply is None:
            ticket.fallback = True
            return 0.0
        admitted, value, now = int(reply[0]), reply[1], float(reply[2])
        if not admitted:
            return float(value)
        ticket.entry = value.decode() if isinstance(value, bytes) else str(value)
        with self._lock:
            self.admitted += 1
            self.admissions.append(now)
        return 0.0

    def _run(self, name: str, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script; None (and in-process limiting for a while) if Redis fails."""
        if self._down_until is not None and self.clock.now() < self._down_until:
            return None
        import redis as redis_lib

        try:
            script = self._scripts.get(name)
            if script is None:
                script = self._scripts[name] = self._redis().register_script(source)
            reply = script(keys=keys, args=args)
        except redis_lib.RedisError as exc:
            self._went_down(exc)
            return None
        if self._down_until is not None:
            self._down_until = None
            log.warning("llmnb: Redis rate limiter at %s is reachable again", self.where)
        return reply

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis_client(str(self._url))
        return self._client

    def _went_down(self, exc: BaseException) -> None:
        first = self._down_until is None
        self._down_until = self.clock.now() + self.retry_interval
        if first:
            log.warning(
                "llmnb: the Redis rate limiter at %s cannot be used (%s: %s); limiting "
                "%s in this process only, so other processes' calls are not counted. "
                "Retrying Redis every %g s; check the server or rate_limits.backend / $%s.",
                self.where,
                type(exc).__name__,
                exc,
                f"profile {self.profile!r}" if self.profile else "calls",
                self.retry_interval,
                REDIS_URL_VAR,
            )

    def _set_waiting(self, ticket: _Ticket, waiting: bool) -> None:
        if ticket.waiting != waiting:
            ticket.waiting = waiting
            with self._lock:
                self.waiting += 1 if waiting else -1

    # --- reporting ------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        """True while Redis is unusable and limits hold in this process only."""
        return self._down_until is not None

    def status(self) -> dict[str, Any]:
        """Limits, what the shared window holds, backend, waiting and admitted calls."""
        used: dict[str, float] = {}
        if not self.degraded:
            try:
                r = self._redis()
                for d in self._dims:
                    total = r.get(self._dim_keys[d][2])
                    used[d] = float(total) if total is not None else 0.0  # type: ignore[arg-type]
            except Exception as exc:
                log.debug("llmnb: Redis status unavailable: %s", exc)
        return {
            "backend": "memory (Redis unreachable)" if self.degraded else f"redis {self.where}",
            "limits": {d: v for d, v in self.limits.items() if v is not None},
            "window_used": used,
            "waiting": self.waiting,
            "admitted": self.admitted,
            "keys": self._headers.status()["keys"],
        }

    def __repr__(self) -> str:
        limits = ", ".join(f"{d}={v:g}" for d, v in self.limits.items() if v is not None)
        return f"RedisRateLimiter({self.where}, {limits or 'headers only'})"


def shown_url(url: str) -> str:
    """A Redis URL with any password masked."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if at and creds:
        user = creds.split(":", 1)[0]
        creds = f"{user}:***" if ":" in creds else "***"
    return f"{scheme}{sep}{creds}{at}{host}" if sep else url


def redis_client(url: str) -> redis.Redis:
    """One client per URL in the process (its connection pool is thread-safe)."""

    def make() -> redis.Redis:
        import redis as redis_lib

        # Short timeouts: a hook must not hold a call for long when Redis is away.
        return redis_lib.Redis.from_url(
            url, socket_connect_timeout=1.0, socket_timeout=1.0, health_check_interval=30
        )

    return shared(("redis-client", url), make)


def _key_fingerprint(provider: Provider, profile_name: str) -> str:
    from llmnb import config
    from llmnb.providers.base import key_fingerprint

    keys = config.resolve_api_keys(profile_name, provider.profile, provider.key_env_var)
    return key_fingerprint("\n".join(sorted(keys))) or "nokey"


def redis_limiter_for(
    provider: Provider,
    profile_name: str,
    clock: Clock,
    url: str,
    limits: Mapping[str, Any],
    scope: str = "",
) -> RedisRateLimiter:
    """The process's shared Redis limiter for this profile and key (``rate_limits``);
    ``scope`` (the settings file) keeps same-named profiles of two projects apart."""
    rpm = limits.get("requests_per_minute")
    itpm = limits.get("input_tokens_per_minute")
    otpm = limits.get("output_tokens_per_minute")
    fp = _key_fingerprint(provider, profile_name)
    # The system clock means "the Redis server's time"; another clock is a test's.
    test_clock = None if clock is SYSTEM_CLOCK else clock
    return shared(
        ("ratelimit-redis", scope, url, profile_name, fp, rpm, itpm, otpm, clock),
        lambda: RedisRateLimiter(
            url, rpm, itpm, otpm, profile=profile_name, key_fingerprint=fp, clock=test_clock
        ),
    )


def is_redis_url(text: object) -> bool:
    """True for ``redis://``, ``rediss://`` (TLS) and ``unix://`` (socket) URLs."""
    return isinstance(text, str) and text.strip().lower().startswith(
        ("redis://", "rediss://", "unix://")
    )
