"""``core/manager.py``: the awaitable manager and its clients, over llmnb's LLMManager.

One llmnb profile per module provider (``anthropic``, ``openai``, ``google``, ``groq``,
``local``), built from ``config/llm.yaml`` or the environment (:mod:`.config`). A
client's ``complete`` returns an :class:`LLMResponse` — or, with ``response_model=``, the
validated model instance, as the module did (the llmnb Completion is then on
``client.last_completion``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from llmnb.compat.llm_module.core.config import find_config, load_profiles
from llmnb.compat.llm_module.core.types import LLMProvider, LLMRequest, LLMResponse
from llmnb.compat.llm_module.middleware.base import MetricsMiddleware, MiddlewareChain
from llmnb.types import Message, MessagesLike, Role, normalize_messages

if TYPE_CHECKING:
    from llmnb.client.client import LLMClient as CoreClient
    from llmnb.client.manager import LLMManager as CoreManager
    from llmnb.middleware.base import Middleware as CoreMiddleware
    from llmnb.types import Completion
    from llmnb.usage import UsageTracker

__all__ = ["LLMManager", "ModuleClient", "get_llm_manager", "reset_llm_manager"]

_RETRY_KEYS = ("max_retries", "retry_delay")


def _name(provider: LLMProvider | str | None) -> str | None:
    if provider is None:
        return None
    return provider.value if isinstance(provider, LLMProvider) else str(provider)


class ModuleClient:
    """One provider's client: ``await complete(messages, **params)``,
    ``async for piece in stream_complete(messages)``, a ``middleware_chain``."""

    def __init__(self, client: CoreClient, provider: str | None = None) -> None:
        self.client = client
        self.provider = provider or client.profile
        self.last_completion: Completion | None = None
        self._variants: dict[tuple[Any, Any], CoreClient] = {}
        self.middleware_chain = MiddlewareChain(self._core_changed)
        self.middleware_chain.add(MetricsMiddleware())

    # --- calls --------------------------------------------------------------------------
    async def complete(
        self, messages: MessagesLike, response_model: Any = None, **params: Any
    ) -> Any:
        """An :class:`LLMResponse`; with ``response_model=`` the validated instance."""
        client, request, context = await self._prepare(messages, params)
        if response_model is not None:
            completion = await client.acomplete(
                request.messages, response_model=response_model, **request.params
            )
            self.last_completion = completion
            await self.middleware_chain.response(LLMResponse.from_completion(completion), context)
            return completion.parsed
        completion = await client.acomplete(request.messages, **request.params)
        self.last_completion = completion
        return await self.middleware_chain.response(
            LLMResponse.from_completion(completion), context
        )

    async def stream_complete(self, messages: MessagesLike, **params: Any) -> AsyncIterator[str]:
        """The answer as text pieces; ``last_completion`` is set when it ends."""
        client, request, context = await self._prepare(messages, params)
        stream = client.astream(request.messages, **request.params)
        async for piece in stream:
            yield piece
        self.last_completion = stream.completion
        if stream.completion is not None:
            await self.middleware_chain.response(
                LLMResponse.from_completion(stream.completion), context
            )

    async def _prepare(
        self, messages: MessagesLike, params: dict[str, Any]
    ) -> tuple[CoreClient, LLMRequest, dict[str, Any]]:
        params = dict(params)
        retry = tuple(params.pop(k, None) for k in _RETRY_KEYS)
        system_prompt = params.pop("system_prompt", None)
        msgs = list(normalize_messages(messages))
        if system_prompt and not any(m.role is Role.SYSTEM for m in msgs):
            msgs.insert(0, Message(Role.SYSTEM, str(system_prompt)))
        context: dict[str, Any] = {}
        request = await self.middleware_chain.request(
            LLMRequest(msgs, params, provider=self.provider), context
        )
        return self._variant(retry), request, context

    # --- per-call retry settings ----------------------------------------------------------
    def _variant(self, retry: tuple[Any, Any]) -> CoreClient:
        """The client, or a sibling with the same provider, profile and middlewares
        but another retry policy (LLMConfig's max_retries / retry_delay)."""
        if retry == (None, None):
            return self.client
        found = self._variants.get(retry)
        if found is None:
            from llmnb.client.client import LLMClient
            from llmnb.middleware.retry import RetryPolicy

            base = self.client
            retries, delay = retry
            policy = RetryPolicy(
                max_retries=base.retry.max_retries if retries is None else int(retries),
                base_delay=base.retry.base_delay if delay is None else float(delay),
            )
            found = self._variants[retry] = LLMClient(
                base.provider,
                profile=base.profile,
                model=base.model,
                params=base.params,
                retry=policy,
                agent=base.agent,
                step=base.step,
                middleware=self.middleware_chain.core,
                failover=base.failover,
            )
        return found

    def _core_changed(self, middleware: CoreMiddleware, added: bool) -> None:
        for client in (self.client, *self._variants.values()):
            if added:
                client.add_middleware(middleware)
            else:
                client.remove_middleware(middleware)

    async def close(self) -> None:
        await self.client.aclose()

    def __repr__(self) -> str:
        return f"<ModuleClient provider={self.provider!r} model={self.client.model!r}>"


class _PoolView:
    """What ``manager._pools[provider]`` held: its clients (``_clients``)."""

    def __init__(self, clients: Sequence[ModuleClient]) -> None:
        self._clients = list(clients)

    def __repr__(self) -> str:
        return f"<pool of {len(self._clients)} client(s)>"


class LLMManager:
    """The module's manager: ``get_client(LLMProvider.X)``, ``get_status(...)``, ``close()``.

    ``config_path`` is a ``config/llm.yaml``-style file (default: ``$LLM_MODULE_CONFIG``,
    else ``./config/llm.yaml`` if present, else the environment's keys).
    """

    def __init__(
        self,
        config_path: str | os.PathLike[str] | None = None,
        *,
        tracker: UsageTracker | None = None,
    ) -> None:
        from llmnb.client.manager import LLMManager as Core

        self.config_path = find_config(config_path)
        self.core: CoreManager = Core(tracker=tracker)
        self._names: list[str] = []
        for name, (ptype, fields) in load_profiles(self.config_path).items():
            self.core.add_provider(name, ptype, fields)
            self._names.append(name)
        self._clients: dict[str, ModuleClient] = {}
        self._lock = threading.Lock()

    def get_client(self, provider: LLMProvider | str | None = None) -> ModuleClient:
        """The client of ``provider`` (default: the first configured), built once."""
        name = _name(provider)
        with self._lock:
            key = name or ""
            found = self._clients.get(key)
            if found is None:
                found = self._clients[key] = ModuleClient(self.core.get_client(name), name)
            return found

    def list_providers(self) -> list[str]:
        return list(self._names)

    def get_status(self, provider: LLMProvider | str | None = None) -> dict[str, Any]:
        """``available_clients``, ``total_clients``, ``queue_size`` and per key
        ``client_statuses`` (``client_id`` is the key's fingerprint, ``rate_limit_status``
        holds ``tokens_remaining`` / ``requests_remaining`` when limits are set)."""
        status = self.core.get_status(_name(provider))
        keys = status["keys"]
        connections = status["connections"]
        limits = status["rate_limits"]
        healthy = sum(1 for k in keys if k["healthy"])
        total = connections["total"] if connections["total"] is not None else len(keys)
        available = connections["available"] if connections["available"] is not None else healthy
        return {
            "provider": status["name"],
            "model": status["model"],
            "available": status["available"],
            "available_clients": available,
            "total_clients": total,
            "queue_size": status["queue"],
            "client_statuses": [
                {
                    "client_id": k["key_id"],
                    "healthy": k["healthy"],
                    "in_flight": k.get("in_flight", 0),
                    "rate_limit_status": _rate_limit_status(limits),
                }
                for k in keys
            ],
            "success_rate": status.get("success_rate"),
        }

    @property
    def _pools(self) -> dict[Any, _PoolView]:
        """Per provider (by ``LLMProvider`` and by name), the clients built so far."""
        out: dict[Any, _PoolView] = {}
        with self._lock:
            clients = dict(self._clients)
        for name, client in clients.items():
            view = _PoolView([client])
            out[name] = view
            with contextlib.suppress(ValueError):
                out[LLMProvider(name)] = view
        return out

    async def close(self) -> None:
        """Close every connection; the next ``get_llm_manager()`` builds a new manager."""
        global _manager
        await self.core.aclose()
        with _manager_lock:
            if _manager is self:
                _manager = None

    def __repr__(self) -> str:
        return f"<LLMManager(llm_module) providers={self.list_providers()!r}>"


def _rate_limit_status(limits: dict[str, Any] | None) -> dict[str, Any] | None:
    if limits is None:
        return None
    configured, used = limits["limits"], limits["window_used"]

    def remaining(dim: str) -> float | None:
        if dim not in configured:
            return None
        return max(float(configured[dim]) - float(used.get(dim, 0.0)), 0.0)

    return {
        "requests_remaining": remaining("requests"),
        "tokens_remaining": remaining("input_tokens"),
        "output_tokens_remaining": remaining("output_tokens"),
        "waiting": limits["waiting"],
    }


_manager: LLMManager | None = None
_manager_lock = threading.Lock()


async def get_llm_manager(config_path: str | os.PathLike[str] | None = None) -> LLMManager:
    """The process-wide manager (built on first use): ``manager = await get_llm_manager()``."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = LLMManager(config_path)
        return _manager


def reset_llm_manager() -> None:
    """Forget the process-wide manager, closing its connections."""
    global _manager
    with _manager_lock:
        manager, _manager = _manager, None
    if manager is not None:
        manager.core.close()
