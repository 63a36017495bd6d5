"""The client layer: ``LLMClient`` and everything that builds or holds one.

Example::

    from llmnb.client import LLMClient, create_llm_client_from_profile
    client = create_llm_client_from_profile(profile="demo")
    client.complete("hi").content

What it holds, bottom to top (each module imports only those before it):
``structured`` (``response_model``: schema, validation, re-asks), ``core`` (``_Core``:
every non-I/O step of a call), ``client`` (``LLMClient``: the sync/async/stream shells),
``registry`` (provider types, ``provider_factory``, ``register_provider``),
``autodetect`` (``active_provider: auto``), ``manager`` (``LLMManager``, the failover
sequence), ``profiles`` (``create_llm_client_from_profile``). It may import
``middleware``, ``providers``, ``usage``, ``config`` and the bottom modules; it never
imports ``batch`` or ``notebook``.

Names resolve on first use, so ``import llmnb.client`` loads nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "LLMClient",
    "LLMManager",
    "connect",
    "create_llm_client_from_profile",
    "get_llm_manager",
    "list_providers",
    "register_provider",
]

_LAZY = {
    "LLMClient": "llmnb.client.client",
    "LLMManager": "llmnb.client.manager",
    "get_llm_manager": "llmnb.client.manager",
    "create_llm_client_from_profile": "llmnb.client.profiles",
    "connect": "llmnb.client.profiles",
    "list_providers": "llmnb.client.registry",
    "register_provider": "llmnb.client.registry",
}

if TYPE_CHECKING:
    from llmnb.client.client import LLMClient
    from llmnb.client.manager import LLMManager, get_llm_manager
    from llmnb.client.profiles import connect, create_llm_client_from_profile
    from llmnb.client.registry import list_providers, register_provider


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'llmnb.client' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
