"""The built-in middlewares a client gets from its profile and the settings.

Every client gets, outer to inner: a cache (when the settings have a ``cache:``
section; without one the client adds the process-wide memory cache on its first
``cache=True`` call), the budget check, then — only when the
profile asks for them, so the default path stays free — a key pool (several keys, or
``max_connections_per_key`` / ``cooldown`` / ``acquire_timeout`` set) and a rate
limiter (``rate_limits:`` set). Pools, limiters and caches are shared by every client
of the same profile (and clock) in the process: limits hold across clients, and the
``%%llm`` magic may build a client per cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmnb import errors
from llmnb.middleware.base import SYSTEM_CLOCK, Clock, Middleware, shared
from llmnb.middleware.budget import BudgetMiddleware
from llmnb.middleware.cache import Cache, CacheMiddleware, MemoryCache
from llmnb.types import Secret

if TYPE_CHECKING:
    from llmnb.middleware.keypool import KeyPool
    from llmnb.middleware.ratelimit import RateLimiter
    from llmnb.middleware.ratelimit_redis import RedisRateLimiter
    from llmnb.providers.base import Provider

__all__ = ["builtin_middleware", "cache_from_settings", "key_pool_for", "rate_limiter_for"]

_POOL_FIELDS = ("max_connections_per_key", "cooldown", "acquire_timeout")


def _settings() -> Any:
    from llmnb import config

    return config.load_settings()


def cache_from_settings(settings: Any = None) -> Cache | None:
    """The shared cache the settings' ``cache:`` section describes, or None."""
    from llmnb.config import env as _env

    settings = settings if settings is not None else _settings()
    section = getattr(settings, "cache", None)
    if section is None:
        return None
    backend, ttl, max_entries = section.backend, section.ttl, section.max_entries
    if backend == "memory":
        # One memory cache per settings file (and configuration), shared by its clients.
        return shared(
            ("cache", "memory", str(settings.path), ttl, max_entries),
            lambda: MemoryCache(max_entries=max_entries or 1024, ttl=ttl),
        )
    if backend.lower().startswith(("redis://", "rediss://")):  # a team's shared cache

        def make_redis() -> Cache:
            from llmnb.middleware.cache_redis import RedisCache

            return RedisCache(backend, ttl, max_entries)

        return shared(("cache", "redis", backend, ttl, max_entries), make_redis)
    where = backend[len("sqlite:///") :]
    path = Path(where)
    if where != ":memory:" and not path.is_absolute():
        root = _env.project_root(settings.path) if settings.path else Path.cwd()
        path = (root / path).resolve()

    def make() -> Cache:
        from llmnb.middleware.cache_sqlite import SQLiteCache

        return SQLiteCache(path if where != ":memory:" else ":memory:", ttl, max_entries)

    return shared(("cache", "sqlite", str(path), ttl, max_entries), make)


def key_pool_for(
    provider: Provider, profile_name: str, clock: Clock, scope: str = ""
) -> KeyPool | None:
    """The profile's key pool, when it has several keys or pool settings; else None."""
    from llmnb import config
    from llmnb.middleware.keypool import KeyPool

    profile: Mapping[str, Any] = provider.profile
    env_var = provider.key_env_var

    def keys() -> list[Secret]:
        return config.resolve_secrets(profile_name, profile, env_var)

    settings = {f: profile.get(f) for f in _POOL_FIELDS}
    if len(keys()) < 2 and all(v is None for v in settings.values()):
        return None
    pool = shared(
        (
            "keypool",
            scope,
            profile_name,
            provider.type_name,
            provider.base_url,
            *settings.values(),
            clock,
        ),
        lambda: KeyPool(
            keys,
            profile=profile_name,
            max_connections_per_key=settings["max_connections_per_key"],
            cooldown=10.0 if settings["cooldown"] is None else float(settings["cooldown"]),
            acquire_timeout=30.0
            if settings["acquire_timeout"] is None
            else float(settings["acquire_timeout"]),
            clock=clock,
        ),
    )
    pool.set_source(keys)  # the newest client's profile: keys edited in settings apply
    return pool


def rate_limiter_for(
    provider: Provider, profile_name: str, clock: Clock, scope: str = ""
) -> RateLimiter | RedisRateLimiter | None:
    """The profile's rate limiter when it has ``rate_limits:``; else None."""
    from llmnb.middleware.ratelimit import RateLimiter

    limits = provider.profile.get("rate_limits")
    if limits is None:
        return None
    if not isinstance(limits, Mapping):
        raise errors.ConfigError(
            f"profile {profile_name!r}: rate_limits should be a mapping such as "
            "{requests_per_minute: 50, input_tokens_per_minute: 40000}."
        )
    backend = limits.get("backend")
    if backend is None:  # a team may point every profile at one Redis
        from llmnb import config
        from llmnb.middleware.ratelimit_redis import REDIS_URL_VAR

        backend = config.get_env(REDIS_URL_VAR) or None
    if isinstance(backend, str) and backend.lower().startswith(
        ("redis://", "rediss://", "unix://")
    ):
        from llmnb.middleware.ratelimit_redis import redis_limiter_for

        return redis_limiter_for(provider, profile_name, clock, backend, limits, scope)
    if backend not in (None, "memory"):
        raise errors.ConfigError(
            f"profile {profile_name!r}: rate_limits.backend {backend!r} is not supported; "
            "use 'memory' (limits are kept in this process), 'redis://host:6379/0' "
            "(shared by every process), or remove the key."
        )
    rpm = limits.get("requests_per_minute")
    itpm = limits.get("input_tokens_per_minute")
    otpm = limits.get("output_tokens_per_minute")
    return shared(
        (
            "ratelimit",
            scope,
            profile_name,
            provider.type_name,
            provider.base_url,
            rpm,
            itpm,
            otpm,
            clock,
        ),
        lambda: RateLimiter(rpm, itpm, otpm, profile=profile_name, clock=clock),
    )


def builtin_middleware(
    provider: Provider, profile_name: str, clock: Clock | None = None, cache: Any = None
) -> list[Middleware]:
    """Cache, budget, key pool and rate limiter for one client (outer → inner).

    ``cache`` is a :class:`Cache` to use, ``False`` for none, or None for the settings'.
    """
    clock = clock or SYSTEM_CLOCK
    settings = _settings()
    # State is shared per settings file: a profile name means one thing per project.
    scope = str(settings.path)
    backend: Cache | None = None
    if cache is None:
        backend = cache_from_settings(settings)
    elif cache is not False:
        backend = cache
    out: list[Middleware] = []
    if backend is not None:  # else the client adds one on the first cache=True call
        out.append(CacheMiddleware(backend))
    prof = provider.profile
    out.append(
        BudgetMiddleware(
            profile_name,
            prof.get("budget_usd"),
            prof.get("budget_window"),
            prof.get("budget_warn_at"),
        )
    )
    pool = key_pool_for(provider, profile_name, clock, scope)
    if pool is not None:
        out.append(pool)
    limiter = rate_limiter_for(provider, profile_name, clock, scope)
    if limiter is not None:
        out.append(limiter)
    return out
