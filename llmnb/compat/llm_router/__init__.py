"""The llm_router backend on llmnb: ``from backends import LLMRouterBackend`` and
``from ipfs_datasets_py.llm_router import generate_text`` become
``from llmnb.compat.llm_router import LLMRouterBackend, generate_text``.

Example::

    from llmnb.compat.llm_router import generate_text
    generate_text("Summarise SSE", provider="openrouter", model_name="openai/gpt-4o-mini")
"""

from __future__ import annotations

from llmnb.compat.llm_router.backend import LLMRouter, LLMRouterBackend
from llmnb.compat.llm_router.router import (
    PROVIDER_ALIASES,
    PROVIDERS,
    generate_text,
    get_llm_provider,
    reset_router,
)

__all__ = [
    "PROVIDERS",
    "PROVIDER_ALIASES",
    "LLMRouter",
    "LLMRouterBackend",
    "generate_text",
    "get_llm_provider",
    "reset_router",
]
