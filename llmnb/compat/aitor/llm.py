"""``aitor.llm``: ``LLMManager`` with named providers, custom provider classes, failover.

Example::

    from llmnb.compat.aitor.llm import LLMManager

    llm_manager = LLMManager()
    llm_manager.add_provider(name="openai", provider="openai",
                             config={"api_key": "sk-…", "model": "gpt-4", "max_tokens": 500})
    text = await llm_manager.generate_response("openai", [{"role": "user", "content": "hi"}])

Each provider is an llmnb profile (retries, key pools, failover, a usage row per attempt).
Config keys map onto profile fields: ``max_completion_tokens`` is ``max_tokens`` (llmnb
sends it as ``max_completion_tokens`` and drops ``temperature`` for o-series models);
``top_p`` / ``frequency_penalty`` / ``presence_penalty`` travel on the wire;
``retry_delay`` is the first backoff; ``connection_pool_size`` is the concurrent calls
per key; ``connection_pool_maxsize``, ``keep_alive`` and ``backoff_factor`` are accepted
and have no effect (llmnb's HTTP pool keeps connections alive; its backoff doubles).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from llmnb.compat._env import with_env_base_url
from llmnb.errors import APIError, LLMError, ProviderError, RateLimitError
from llmnb.providers.base import Provider
from llmnb.types import Completion, Request, Usage

if TYPE_CHECKING:
    from llmnb.client.client import LLMClient
    from llmnb.client.manager import LLMManager as CoreManager

__all__ = ["APIError", "LLMError", "LLMManager", "LLMProvider", "RateLimitError"]

_WIRE = ("top_p", "frequency_penalty", "presence_penalty", "stop", "seed")
_PROFILE = ("api_key", "model", "base_url", "temperature", "max_tokens", "timeout", "max_retries")
_NO_EFFECT = ("connection_pool_maxsize", "keep_alive", "backoff_factor")
_MOCK = ("responses", "default_response", "delay")


class LLMProvider:
    """Base class of custom providers: implement ``async generate_response(messages,
    **kwargs) -> str``. ``__init__(config)`` is yours; nothing is required of it."""

    async def generate_response(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement generate_response()")

    async def generate_structured_response(
        self, messages: list[dict[str, str]], response_format: dict[str, Any], **kwargs: Any
    ) -> dict[str, Any]:
        import json

        messages = [dict(m) for m in messages]
        messages[-1]["content"] += (
            f"\nPlease respond in the following JSON format: {response_format}"
        )
        text = await self.generate_response(messages, **kwargs)
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return {"response": text}
        return data if isinstance(data, dict) else {"response": data}


class _CustomProvider(Provider):
    """An Aitor ``LLMProvider`` instance as an llmnb provider (tokens estimated)."""

    type_name: ClassVar[str] = "custom"
    can_stream: ClassVar[bool] = False

    def __init__(
        self, target: Any, type_name: str, name: str, profile: Mapping[str, Any], model: str
    ) -> None:
        super().__init__(name, profile, model)
        self.target = target
        self.type_name = type_name  # type: ignore[misc]

    async def acomplete(self, request: Request) -> Completion:
        from llmnb.providers.mock import estimate_tokens

        kwargs = dict(request.extra)
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        messages = [m.to_dict() for m in request.messages]
        try:
            text = await self.target.generate_response(messages, **kwargs)
        except LLMError:
            raise
        except Exception as exc:  # the provider's own failure: retryable, may fail over
            raise ProviderError(
                f"{type(self.target).__name__}.generate_response failed: "
                f"{type(exc).__name__}: {exc}",
                provider=self.type_name,
                profile=self.profile_name,
                model=self.model,
            ) from exc
        if not isinstance(text, str):
            raise ProviderError(
                f"{type(self.target).__name__}.generate_response returned "
                f"{type(text).__name__}; it must return the answer as a str.",
                provider=self.type_name,
                profile=self.profile_name,
            )
        prompt = sum(estimate_tokens(m.content) for m in request.messages)
        usage = Usage(prompt, estimate_tokens(text), estimated=True)
        return Completion(content=text, model=request.model, usage=usage, finish_reason="stop")

    def complete(self, request: Request) -> Completion:
        return asyncio.run(self.acomplete(request))


class _BoundProvider(LLMProvider):
    """A provider of the manager, as Aitor code holding one sees it."""

    def __init__(self, manager: LLMManager, name: str) -> None:
        self.manager = manager
        self.name = name

    async def generate_response(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
        return await self.manager.generate_response(self.name, messages, **kwargs)

    def __repr__(self) -> str:
        return f"<provider {self.name!r} of {self.manager!r}>"


def _profile(name: str, ptype: str, config: Mapping[str, Any], custom: bool) -> dict[str, Any]:
    if custom:  # the class reads its own config; the profile keeps it for the factory
        fields = {k: v for k, v in config.items() if k not in ("type", "name")}
        fields.setdefault("model", "default")
        return fields
    fields = {}
    params: dict[str, Any] = {}
    for key, value in config.items():
        if key in _PROFILE or (ptype == "mock" and key in _MOCK):
            fields[key] = value
        elif key == "max_completion_tokens":
            fields["max_tokens"] = value
        elif key in _WIRE:
            params[key] = value
        elif key == "connection_pool_size":
            fields["max_connections_per_key"] = value
        elif key in _NO_EFFECT or key == "retry_delay":
            continue
        else:
            from llmnb.errors import ConfigError

            known = sorted(
                {
                    *_PROFILE,
                    *_WIRE,
                    *_NO_EFFECT,
                    "max_completion_tokens",
                    "connection_pool_size",
                    "retry_delay",
                }
            )
            raise ConfigError(
                f"add_provider({name!r}, {ptype!r}, config): unknown key {key!r}; "
                f"known keys: {', '.join(known)}."
            )
    if params:
        fields["params"] = params
    if ptype == "mock":
        fields.setdefault("model", "mock-1")
    return with_env_base_url(ptype, fields)


class LLMManager:
    """Aitor's manager over llmnb's: ``add_provider``, ``register_provider_class``,
    ``set_default_provider``, ``set_failover_sequence``, ``get_available_providers``,
    ``await generate_response(provider_name, messages, **kwargs)``, ``get_usage_report()``."""

    def __init__(self) -> None:
        from llmnb.client.manager import LLMManager as Core

        self.core: CoreManager = Core()
        self._classes: dict[str, type[Any]] = {}
        self._retry: dict[str, float] = {}
        self._names: list[str] = []
        self._default: str | None = None

    def add_provider(self, name: str, provider: str, config: Mapping[str, Any]) -> None:
        ptype = str(provider).strip().lower()
        fields = _profile(name, ptype, config or {}, ptype in self._classes)
        self.core.add_provider(name, ptype, fields)
        if config and config.get("retry_delay") is not None:
            self._retry[name] = float(config["retry_delay"])
        else:
            self._retry.pop(name, None)
        if name not in self._names:
            self._names.append(name)

    def register_provider_class(self, provider_type: str, cls: type[Any]) -> None:
        ptype = str(provider_type).strip().lower()

        def factory(profile: Mapping[str, Any], model_name: str, agent: str | None) -> Provider:
            config = {k: v for k, v in profile.items() if k not in ("name", "type")}
            return _CustomProvider(
                cls(config), ptype, str(profile.get("name")), profile, model_name
            )

        self._classes[ptype] = cls
        self.core.register_provider_class(ptype, factory)

    def set_default_provider(self, name: str) -> None:
        self.core.set_default_provider(name)
        self._default = name

    def set_failover_sequence(self, names: Sequence[str]) -> None:
        self.core.set_failover_sequence(names)

    def get_available_providers(self) -> list[str]:
        """Providers that can take a call now (a key present, not every key cooling)."""
        return self.core.get_available_providers()

    def get_provider(self, name: str | None = None) -> LLMProvider:
        """Provider ``name`` (default: the default) as an ``LLMProvider`` object."""
        name = name or self._default or (self._names[0] if self._names else None)
        self.core.get_client(name)  # raises ProviderNotFoundError listing the names
        assert name is not None
        return _BoundProvider(self, name)

    def get_client(self, name: str | None = None) -> LLMClient:
        """The llmnb client behind provider ``name``."""
        client = self.core.get_client(name)
        delay = self._retry.get(str(client.profile))
        if delay is not None and not math.isclose(client.retry.base_delay, delay):
            client.retry.base_delay = delay
        return client

    async def generate_response(
        self, provider_name: str | None, messages: Any, **kwargs: Any
    ) -> str:
        """The answer of ``provider_name`` (None: the default); fails over in the
        sequence set with :meth:`set_failover_sequence`."""
        for name in (provider_name, *self._names):
            if name in self._retry:
                self.get_client(name)  # apply its retry_delay before any failover
        completion = await self.get_client(provider_name).acomplete(messages, **kwargs)
        return completion.content

    def get_usage_report(self) -> dict[str, Any]:
        """Calls, errors, tokens and USD of this manager's providers (the active tracker)."""
        from llmnb.usage import get_tracker

        names = set(self._names)
        rows = [r for r in get_tracker().records if r.profile in names]
        calls: dict[str, dict[str, Any]] = {}
        for r in rows:
            c = calls.setdefault(r.call_id, {"profile": r.profile, "ok": False})
            if r.status == "ok":
                c["ok"], c["profile"] = True, r.profile
        by: dict[str, dict[str, Any]] = {}
        for r in rows:
            p = by.setdefault(
                str(r.profile), {"requests": 0, "errors": 0, "tokens": 0, "cost_usd": 0.0}
            )
            p["requests"] += 1
            p["errors"] += r.status != "ok"
            p["tokens"] += r.total_tokens or 0
            if not math.isnan(r.cost_usd):
                p["cost_usd"] += r.cost_usd
        total = len(calls)
        failed = sum(1 for c in calls.values() if not c["ok"])
        return {
            "total_requests": total,
            "total_errors": failed,
            "success_rate": (total - failed) / max(1, total),
            "total_attempts": len(rows),
            "total_tokens": sum(r.total_tokens or 0 for r in rows),
            "total_cost_usd": sum(p["cost_usd"] for p in by.values()),
            "by_provider": by,
        }

    async def close(self) -> None:
        await self.core.aclose()

    def __repr__(self) -> str:
        return f"<LLMManager(aitor) providers={self._names!r}>"
