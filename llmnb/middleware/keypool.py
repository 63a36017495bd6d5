"""A pool of API keys for one profile: round-robin, per-key connection caps, cooldowns.

Each attempt takes the next key in round-robin order that is not cooling down and has
a free connection (``max_connections_per_key``), and sends with it
(``Request.api_key``). A key answered with 401/403, 429, a quota error or a 5xx is
cooled down — for the server's ``Retry-After`` when it sent one, else ``cooldown``
seconds, doubling with each further failure in a row (at most 10 minutes) — and comes
back afterwards. A ``Retry-After`` beyond the client's ``max_retry_after`` (60 s) cools
nothing: that call was raised at once, and later ones ask the server again. After a
401/403/429/quota error the client retries at once with another key, if one is free.
When no key frees up within ``acquire_timeout`` seconds the caller gets
:class:`~llmnb.errors.PoolExhaustedError`.

Keys are identified by fingerprint (``k-1a2b3c4d``) in status, rows and messages, and
held as :class:`~llmnb.types.Secret` (``vars(pool)`` and tracebacks show them masked);
the pool reads the key list on every attempt, so ``%env`` and ``.env`` edits apply.

Example::

    pool = KeyPool(["sk-a", "sk-b", "sk-c"], max_connections_per_key=2, cooldown=30)
    client.add_middleware(pool)     # or `api_keys: [...]` / OPENAI_API_KEYS=k1,k2 in settings
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any

from llmnb import errors
from llmnb.middleware.base import SYSTEM_CLOCK, Call, Clock, Middleware
from llmnb.middleware.retry import server_wait
from llmnb.providers.base import key_fingerprint
from llmnb.types import Completion, Secret

__all__ = ["KeyPool"]

MAX_COOLDOWN = 600.0
_EPS = 1e-9


class _Health:
    __slots__ = ("cooling_until", "failures", "in_flight", "last_error", "streak", "successes")

    def __init__(self) -> None:
        self.in_flight = 0
        self.cooling_until = 0.0
        self.streak = 0  # failures in a row: the cooldown doubles with each
        self.failures = 0
        self.successes = 0
        self.last_error: str | None = None


class _Lease:
    __slots__ = ("fp", "start", "waiting")

    def __init__(self, start: float) -> None:
        self.start = start
        self.fp: str | None = None
        self.waiting = False


def _key_specific(error: BaseException) -> bool:
    """Errors about this key (another key may work at once)."""
    return isinstance(
        error,
        (errors.AuthenticationError, errors.RateLimitError, errors.InsufficientQuotaError),
    )


def _server_side(error: BaseException) -> bool:
    status = getattr(error, "status", None)
    return isinstance(error, errors.OverloadedError) or (
        isinstance(error, errors.ProviderError) and status is not None and status >= 500
    )


class KeyPool(Middleware):
    """Round-robin over several keys of one profile, shared by all its clients.

    ``keys`` is a list or a function returning the current list. ``cooldown`` seconds
    (default 10) and ``acquire_timeout`` seconds (default 30; None waits for ever).
    ``poll`` is how often a caller waiting for a busy key looks again.
    """

    def __init__(
        self,
        keys: Sequence[str | Secret] | Callable[[], Sequence[str | Secret]],
        *,
        profile: str | None = None,
        max_connections_per_key: int | None = None,
        cooldown: float = 10.0,
        acquire_timeout: float | None = 30.0,
        clock: Clock | None = None,
        poll: float = 0.05,
    ) -> None:
        if max_connections_per_key is not None and max_connections_per_key < 1:
            raise errors.InvalidOptionError(
                f"max_connections_per_key must be >= 1, got {max_connections_per_key}"
            )
        self._source: Callable[[], Sequence[str | Secret]]
        if callable(keys):
            self._source = keys
        else:
            fixed = tuple(Secret(k) for k in keys)
            self._source = lambda: fixed
        self.profile = profile
        self.max_connections = max_connections_per_key
        self.cooldown = float(cooldown)
        self.acquire_timeout = acquire_timeout
        self.clock = clock or SYSTEM_CLOCK
        self.poll = float(poll)
        self._fps: dict[Secret, str] = {}
        self._health: dict[str, _Health] = {}
        self._next = 0
        self._lock = threading.Lock()
        self.waiting = 0

    def set_source(self, keys: Callable[[], Sequence[str | Secret]]) -> None:
        """Read the key list from ``keys()`` from now on."""
        self._source = keys

    def _keys(self) -> list[Secret]:
        return [Secret(k) for k in self._source()]

    # --- the hooks ----------------------------------------------------------------
    def before_attempt(self, call: Call) -> float:
        keys = self._keys()
        if not keys:
            return 0.0  # the provider raises MissingAPIKeyError, naming the variable
        now = self.clock.now()
        lease: _Lease | None = call.data.get(self)
        if lease is None:
            lease = call.data[self] = _Lease(now)
        tried: set[str] = call.data.setdefault((self, "tried"), set())
        with self._lock:
            picked = self._pick(keys, now, tried)
            if picked is not None:
                key, fp = picked
                self._health[fp].in_flight += 1
                lease.fp = fp
                if lease.waiting:
                    lease.waiting = False
                    self.waiting -= 1
                tried.add(fp)
                call.request = dataclasses.replace(call.request, api_key=key.reveal())
                call.key_id = fp
                return 0.0
            waited = now - lease.start
            if self.acquire_timeout is not None and waited >= self.acquire_timeout - _EPS:
                raise errors.PoolExhaustedError(
                    self._exhausted_message(waited), profile=self.profile, waited=waited
                )
            wait = self._soonest(keys, now)
            if self.acquire_timeout is not None:
                wait = min(wait, self.acquire_timeout - waited)
            if not lease.waiting:
                lease.waiting = True
                self.waiting += 1
            return max(wait, _EPS)

    def after_attempt(
        self, call: Call, completion: Completion | None, error: BaseException | None
    ) -> None:
        lease: _Lease | None = call.data.pop(self, None)
        if lease is None:
            return
        now = self.clock.now()
        with self._lock:
            if lease.waiting:
                self.waiting -= 1
            if lease.fp is None:
                return
            health = self._health[lease.fp]
            health.in_flight -= 1
            if error is None:
                health.successes += 1
                health.streak = 0
                return
            if not (_key_specific(error) or _server_side(error)):
                return  # a timeout or a bad request says nothing about the key
            health.failures += 1
            health.streak += 1
            health.last_error = type(error).__name__
            retry_after = getattr(error, "retry_after", None)
            if retry_after is None:
                pause: float | None = min(self.cooldown * 2.0 ** (health.streak - 1), MAX_COOLDOWN)
            else:  # beyond the retry cap, inf or NaN: no later call waits for it
                pause = server_wait(retry_after, call.client)
            if pause is not None:
                health.cooling_until = max(health.cooling_until, now + pause)
            if _key_specific(error):
                tried = call.data.get((self, "tried"), set())
                keys = self._keys()
                call.switch_key = self._pick(keys, now, tried, dry_run=True) is not None

    # --- decisions ----------------------------------------------------------------
    def _fp(self, key: Secret) -> str:
        fp = self._fps.get(key)
        if fp is None:
            fp = self._fps[key] = key_fingerprint(key) or "k-none"
            self._health.setdefault(fp, _Health())
        return fp

    def _free(self, fp: str, now: float) -> bool:
        health = self._health[fp]
        if health.cooling_until > now:
            return False
        return self.max_connections is None or health.in_flight < self.max_connections

    def _pick(
        self, keys: list[Secret], now: float, tried: set[str], dry_run: bool = False
    ) -> tuple[Secret, str] | None:
        """The next free key in round-robin order, preferring keys this call has not
        tried yet; None when every key is busy or cooling down."""
        n = len(keys)
        fallback: tuple[int, Secret, str] | None = None
        for i in range(n):
            idx = (self._next + i) % n
            key = keys[idx]
            fp = self._fp(key)
            if not self._free(fp, now):
                continue
            if fp in tried:
                if fallback is None:
                    fallback = (idx, key, fp)
                continue
            if not dry_run:
                self._next = idx + 1
            return key, fp
        if fallback is None or dry_run:
            return None
        self._next = fallback[0] + 1
        return fallback[1], fallback[2]

    def _soonest(self, keys: list[Secret], now: float) -> float:
        """How long until a key may be free: a cooldown's end, or a poll for a busy key."""
        wait = float("inf")
        for key in keys:
            health = self._health[self._fp(key)]
            if health.cooling_until > now:
                wait = min(wait, health.cooling_until - now)
            else:
                wait = min(wait, self.poll)
        return wait if wait != float("inf") else self.poll

    def _exhausted_message(self, waited: float) -> str:
        who = f"profile {self.profile!r}" if self.profile else "the key pool"
        busy = ", ".join(
            f"{fp}: " + ("cooling down" if h.cooling_until > self.clock.now() else "busy")
            for fp, h in self._health.items()
        )
        cap = (
            f"max_connections_per_key={self.max_connections}"
            if self.max_connections
            else "no connection cap"
        )
        return (
            f"{who}: no API key became free within acquire_timeout={self.acquire_timeout:g}s "
            f"(waited {waited:.1f}s; {busy}; {cap}). Add keys (api_keys or <VAR>S=k1,k2), "
            "raise max_connections_per_key or acquire_timeout, or wait for the cooldown."
        )

    # --- reporting ----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Connections, waiting callers and the health of each key (by fingerprint)."""
        keys = self._keys()
        now = self.clock.now()
        with self._lock:
            rows: list[dict[str, Any]] = []
            in_flight = usable = 0
            for key in keys:
                fp = self._fp(key)
                h = self._health[fp]
                healthy = h.cooling_until <= now
                in_flight += h.in_flight
                usable += healthy
                rows.append(
                    {
                        "key_id": fp,
                        "healthy": healthy,
                        "in_flight": h.in_flight,
                        "cooldown_remaining_s": round(max(h.cooling_until - now, 0.0), 3),
                        "failures": h.failures,
                        "successes": h.successes,
                        "last_error": h.last_error,
                    }
                )
            cap = self.max_connections
            return {
                "keys": rows,
                "total_connections": None if cap is None else cap * len(keys),
                "available_connections": None if cap is None else max(cap * usable - in_flight, 0),
                "in_flight": in_flight,
                "waiting": self.waiting,
            }

    def __repr__(self) -> str:
        return (
            f"KeyPool({len(self._source())} keys, "
            f"max_connections_per_key={self.max_connections}, cooldown={self.cooldown:g})"
        )
