"""LLMManager: named clients, a default, a failover sequence and their status.

A manager knows profiles by name — those of the settings file (``from_settings``) and
those added with :meth:`LLMManager.add_provider` — and builds one client per name on
first use. Its clients fail over: when a call fails for a reason that is the
provider's (retries exhausted, or a failure retrying cannot fix — not the caller's own
bad request), the next profile of the failover sequence (``llm.fallbacks``) answers
the same call (same ``call_id``; every attempt is a usage row; ``completion.profile``
says who answered).

Example::

    manager = llmnb.get_llm_manager()                 # from config/settings.yaml
    client = manager.get_client()                     # the active profile, with failover
    manager.get_status("openrouter")                  # keys, queue, p50/p95 latency…

    with llmnb.LLMManager() as m:
        m.add_provider("a", "openai", {"model": "gpt-4o-mini", "api_keys": ["sk-1", "sk-2"]})
        m.add_provider("b", "openrouter", {"model": "openai/gpt-4o-mini"})
        m.set_failover_sequence(["a", "b"])
        m.get_client("a").complete("hi").profile      # "a", or "b" if a failed
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import llmnb.client.registry as _registry
from llmnb import config, errors
from llmnb.client.client import LLMClient
from llmnb.middleware.base import Clock, Middleware
from llmnb.middleware.keypool import KeyPool
from llmnb.middleware.metrics import MetricsMiddleware
from llmnb.middleware.ratelimit import RateLimiter
from llmnb.providers.base import Provider, key_fingerprint
from llmnb.types import Completion, MessagesLike
from llmnb.usage import UsageTracker

__all__ = ["SETTINGS_FAILOVER", "LLMManager", "get_llm_manager", "reset_llm_manager"]

log = logging.getLogger("llmnb.manager")


class LLMManager:
    """Named LLM clients with a default and a failover sequence.

    ``tracker`` (default: the active one), ``clock`` (rate limits, cooldowns; tests
    pass a :class:`~llmnb.middleware.base.ManualClock`) and ``middleware`` apply to
    every client the manager builds.
    """

    def __init__(
        self,
        *,
        tracker: UsageTracker | None = None,
        clock: Clock | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        self._tracker = tracker
        self._clock = clock
        self._middleware: list[Middleware] = list(middleware)
        self._added: dict[str, config.Profile] = {}
        self._classes: dict[str, Any] = {}
        self._clients: dict[str, LLMClient] = {}
        self._metrics: dict[str, MetricsMiddleware] = {}
        self._default: str | None = None
        self._failover: list[str] = []
        self._failover_set = False
        self._use_settings = False
        self._settings: Any = None
        self._settings_profiles: dict[str, config.Profile] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_settings(
        cls,
        *,
        tracker: UsageTracker | None = None,
        clock: Clock | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> LLMManager:
        """A manager for every profile of the settings file, following its edits:
        default = the active profile, failover = ``llm.fallbacks``."""
        manager = cls(tracker=tracker, clock=clock, middleware=middleware)
        manager._use_settings = True
        manager._sync()
        return manager

    # --- configuration ------------------------------------------------------------
    def add_provider(
        self, name: str, provider_type: str, config_: Mapping[str, Any] | None = None
    ) -> None:
        """Add (or replace) profile ``name`` of type ``provider_type``; ``config_`` holds
        the profile fields (``model``, ``base_url``, ``api_keys``, ``rate_limits``…)."""
        if not isinstance(name, str) or not name.strip():
            raise errors.InvalidOptionError("add_provider(name, ...): name must be a non-empty str")
        if not isinstance(provider_type, str) or not provider_type.strip():
            raise errors.InvalidOptionError(
                f"add_provider({name!r}, provider_type=...): give a type such as 'openai', "
                "'anthropic', 'mock' or one registered with register_provider_class()."
            )
        fields = dict(config_ or {})
        fields["type"] = provider_type.strip().lower()
        self._validate(name, fields)
        with self._lock:
            self._added[name] = config.Profile({"name": name, **fields})
            self._drop(name)

    def register_provider_class(self, provider_type: str, cls: Any) -> None:
        """Use ``cls`` (a Provider subclass or a factory) for ``provider_type`` in this
        manager only; ``llmnb.register_provider`` registers process-wide."""
        if not isinstance(provider_type, str) or not provider_type.strip():
            raise errors.InvalidOptionError("register_provider_class: type must be a non-empty str")
        if not callable(cls):
            raise errors.InvalidOptionError(
                f"register_provider_class({provider_type!r}, ...): {cls!r} is not a Provider "
                "subclass or a factory(profile, model_name, agent)."
            )
        with self._lock:
            self._classes[provider_type.strip().lower()] = cls

    def set_default_provider(self, name: str | None) -> None:
        """The profile ``get_client()`` returns without a name (None: the active one)."""
        with self._lock:
            if name is not None:
                self._profile(name)  # raises ProviderNotFoundError, listing the names
            self._default = name

    def set_failover_sequence(self, names: Sequence[str]) -> None:
        """Profiles tried in this order when a call fails (each at most once a call)."""
        names = list(names)
        with self._lock:
            seen: set[str] = set()
            for name in names:
                self._profile(name)
                if name in seen:
                    raise errors.InvalidOptionError(
                        f"set_failover_sequence: {name!r} is listed twice; a failover "
                        "sequence visits each profile once."
                    )
                seen.add(name)
            self._failover = names
            self._failover_set = True

    def add_middleware(self, middleware: Middleware) -> None:
        """Add a middleware to every client of this manager (built or not yet)."""
        with self._lock:
            self._middleware.append(middleware)
            for client in self._clients.values():
                client.add_middleware(middleware)

    # --- clients ------------------------------------------------------------------
    def get_client(self, name: str | None = None) -> LLMClient:
        """The client of profile ``name`` (default: the default provider), built once."""
        with self._lock:
            self._sync()
            name = name or self._default_name()
            client = self._clients.get(name)
            if client is None:
                client = self._clients[name] = self._build(name, self._profile(name))
            return client

    def get_available_providers(self) -> list[str]:
        """Names of the profiles that can take a call now (a key present and not every
        key cooling down), in settings/added order."""
        out = []
        for name in self._names():
            try:
                if self.get_status(name)["available"]:
                    out.append(name)
            except errors.LLMError:
                continue  # a profile that cannot be built is not available
        return out

    def fallbacks_for(self, profile: str | None) -> Iterator[LLMClient]:
        """The failover sequence's clients other than ``profile``, in order."""
        with self._lock:
            self._sync()
            names = [n for n in self._failover if n != profile]
        for name in names:
            try:
                yield self.get_client(name)
            except errors.LLMError as exc:
                log.warning("failover: skipping profile %r, which cannot be built: %s", name, exc)

    def complete(
        self, messages: MessagesLike, provider: str | None = None, **params: Any
    ) -> Completion:
        """``get_client(provider).complete(messages, **params)``."""
        return self.get_client(provider).complete(messages, **params)

    async def acomplete(
        self, messages: MessagesLike, provider: str | None = None, **params: Any
    ) -> Completion:
        """``await get_client(provider).acomplete(messages, **params)``."""
        return await self.get_client(provider).acomplete(messages, **params)

    # --- status -------------------------------------------------------------------
    def get_status(self, name: str | None = None) -> dict[str, Any]:
        """Availability, connections, queue, per-key health and rate-limit state,
        success rate and p50/p95 latency of one profile. Keys appear as fingerprints."""
        client = self.get_client(name)
        provider = client.provider
        pool = next((m for m in client.middleware if isinstance(m, KeyPool)), None)
        limiter = next((m for m in client.middleware if isinstance(m, RateLimiter)), None)
        limits = limiter.status() if limiter is not None else None
        if pool is not None:
            pool_status = pool.status()
            keys = pool_status["keys"]
            available = any(k["healthy"] for k in keys)
            connections = {
                "total": pool_status["total_connections"],
                "available": pool_status["available_connections"],
                "in_flight": pool_status["in_flight"],
            }
            queue = pool_status["waiting"]
        else:
            found = config.resolve_api_keys(client.profile, provider.profile, provider.key_env_var)
            needs = provider.needs_key or bool(provider.profile.get("api_key_env"))
            keys = [{"key_id": key_fingerprint(k), "healthy": True} for k in found[:1]]
            available = bool(found) or not needs
            connections = {"total": None, "available": None, "in_flight": None}
            queue = 0
        if limits is not None:
            queue += limits["waiting"]
            for row in keys:
                row["rate_limit"] = limits["keys"].get(row["key_id"])
        metrics = self._metrics.get(client.profile or "")
        snap = metrics.snapshot() if metrics is not None else {}
        return {
            "name": client.profile,
            "type": provider.type_name,
            "model": client.model,
            "available": available,
            "connections": connections,
            "queue": queue,
            "keys": keys,
            "rate_limits": limits,
            **snap,
        }

    # --- lifecycle ----------------------------------------------------------------
    def close(self) -> None:
        """Close every client's connections (clients reconnect if used again)."""
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            client.close()

    async def aclose(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            await client.aclose()

    def __enter__(self) -> LLMManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> LLMManager:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"<LLMManager providers={self._names()!r} default={self._default!r} "
            f"failover={self._failover!r}>"
        )

    # --- internals ----------------------------------------------------------------
    def _sync(self) -> None:
        """Follow settings edits: drop clients whose profile changed."""
        if not self._use_settings:
            return
        settings = config.load_settings()
        if settings is self._settings:
            return
        profiles = {name: config.get_profile(name) for name in settings.profile_names()}
        for name, old in self._settings_profiles.items():
            if profiles.get(name) != old and name not in self._added:
                self._drop(name)
        self._settings = settings
        self._settings_profiles = profiles
        if not self._failover_set:
            self._failover = list(settings.llm.fallbacks)

    def _names(self) -> list[str]:
        with self._lock:
            self._sync()
            names = list(self._settings_profiles)
            return names + [n for n in self._added if n not in self._settings_profiles]

    def _profile(self, name: str) -> config.Profile:
        if name in self._added:
            return self._added[name]
        if name in self._settings_profiles:
            return self._settings_profiles[name]
        names = self._names()
        from llmnb.config.schema import suggest

        near = suggest(name, names)
        hint = f" Did you mean {near!r}?" if near else ""
        raise errors.ProviderNotFoundError(
            f"LLMManager has no provider named {name!r}.{hint} Known: "
            f"{', '.join(names) or 'none'}. Add it with add_provider() or under "
            "llm.providers in config/settings.yaml."
        )

    def _default_name(self) -> str:
        if self._default is not None:
            return self._default
        if self._use_settings:
            active = config.get_active_profile()
            if active is not None:
                return active[0]
        names = self._names()
        if names:
            return names[0]
        raise errors.ConfigError(
            "LLMManager has no providers: add one with add_provider(name, type, config), "
            "or use LLMManager.from_settings() with profiles in config/settings.yaml."
        )

    def _drop(self, name: str) -> None:
        client = self._clients.pop(name, None)
        self._metrics.pop(name, None)
        if client is not None:
            client.close()

    def _validate(self, name: str, fields: dict[str, Any]) -> None:
        from pydantic import ValidationError

        from llmnb.config.schema import FactoryProfileConfig, ProfileConfig
        from llmnb.providers import BUILTINS

        # Built-in types get the settings file's checks (typos named); others may carry
        # any keys their provider reads.
        builtin = fields["type"] in BUILTINS and fields["type"] not in self._classes
        schema = ProfileConfig if builtin else FactoryProfileConfig
        try:
            schema.model_validate(fields)
        except ValidationError as exc:
            problems = []
            for err in exc.errors(include_url=False, include_input=False):
                loc = ".".join(str(part) for part in err["loc"]) or "(config)"
                msg = err["msg"]
                if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
                    msg = "unknown key — " + ProfileConfig.unknown_key_hint(str(err["loc"][0]))
                problems.append(f"{loc}: {msg}")
            raise errors.ConfigError(
                f"LLMManager.add_provider({name!r}, {fields['type']!r}, ...): "
                + "; ".join(problems)
                + "."
            ) from None

    def _build(self, name: str, profile: config.Profile) -> LLMClient:
        model = profile.get("model")
        if not model:
            raise errors.ConfigError(
                f"provider {name!r} has no `model`: add model to its config "
                "(add_provider(..., {'model': ...}) or llm.providers in the settings)."
            )
        spec = profile.get("provider_factory")
        type_name = str(profile.get("type") or spec or "").strip().lower()
        if type_name in self._classes:
            factory = self._classes[type_name]
        elif spec:
            factory = _registry.import_factory(str(spec), name)
        else:
            factory = _registry.lookup_type(type_name, name)
        built = _registry.build_provider(factory, type_name, name, profile, str(model), None)
        metrics = MetricsMiddleware()
        self._metrics[name] = metrics
        if isinstance(built, LLMClient):  # a factory made its own client: wire it in
            built.failover = self
            for m in (metrics, *self._middleware):
                built.add_middleware(m)
            return built
        assert isinstance(built, Provider)
        defaults = {
            "temperature": profile.get("temperature"),
            "max_tokens": profile.get("max_tokens"),
            "timeout": profile.get("timeout"),
            **(profile.get("params") or {}),
        }
        return LLMClient(
            built,
            profile=name,
            model=str(model),
            params=defaults,
            tracker=self._tracker,
            middleware=[metrics, *self._middleware],
            clock=self._clock,
            failover=self,
        )


_manager: LLMManager | None = None
_manager_lock = threading.Lock()


def get_llm_manager() -> LLMManager:
    """The process-wide manager over the settings file (built on first use).

    Example::

        llmnb.get_llm_manager().get_client("claude").complete("hi")
    """
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = LLMManager.from_settings()
        return _manager


def reset_llm_manager() -> None:
    """Close the process-wide manager; the next :func:`get_llm_manager` builds a new one."""
    global _manager
    with _manager_lock:
        manager, _manager = _manager, None
    if manager is not None:
        manager.close()


class _SettingsFailover:
    """``llm.fallbacks`` of the settings, for clients no manager built (the %%llm magic,
    ``create_llm_client_from_profile``). Read only when a call fails: free otherwise."""

    def fallbacks_for(self, profile: str | None) -> Iterable[LLMClient]:
        settings = config.load_settings()
        if profile not in settings.llm.providers or not settings.llm.fallbacks:
            return ()
        return get_llm_manager().fallbacks_for(profile)

    def __repr__(self) -> str:
        return "<llm.fallbacks of the settings>"


SETTINGS_FAILOVER = _SettingsFailover()
