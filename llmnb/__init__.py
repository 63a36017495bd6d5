"""llmnb — LLMs in Jupyter notebooks, with every call's cost in view.

Example::

    import llmnb
    client = llmnb.create_llm_client_from_profile()     # config/settings.yaml + .env
    print(client.generate("Explain SSE in one line"))
    llmnb.usage.get_tracker().to_dataframe()

Names are resolved lazily (PEP 562) so that ``import llmnb`` and ``%load_ext llmnb``
stay light: httpx, pydantic and the providers load on first use, pandas and matplotlib
only when a report or plot is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from llmnb import _accessor
from llmnb.types import Completion, Message, Role, Usage

_accessor.install()  # `df.llm` (llmnb.batch) once pandas is imported; imports nothing now

__version__ = "0.1.0"

__all__ = [
    "Completion",
    "LLMClient",
    "LLMManager",
    "Message",
    "Role",
    "Usage",
    "__version__",
    "config",
    "create_llm_client_from_profile",
    "errors",
    "get_llm_manager",
    "list_providers",
    "middleware",
    "register_provider",
    "testing",
    "usage",
]

# name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "LLMClient": ("llmnb._client", "LLMClient"),
    "create_llm_client_from_profile": ("llmnb._registry", "create_llm_client_from_profile"),
    "register_provider": ("llmnb._registry", "register_provider"),
    "list_providers": ("llmnb._registry", "list_providers"),
    "config": ("llmnb.config", None),
    "errors": ("llmnb.errors", None),
    "usage": ("llmnb.usage", None),
    "testing": ("llmnb.testing", None),
    "LLMManager": ("llmnb.manager", "LLMManager"),
    "get_llm_manager": ("llmnb.manager", "get_llm_manager"),
    "middleware": ("llmnb.middleware", None),
}

if TYPE_CHECKING:
    from llmnb import config, errors, middleware, testing, usage
    from llmnb._client import LLMClient
    from llmnb._registry import (
        create_llm_client_from_profile,
        list_providers,
        register_provider,
    )
    from llmnb.manager import LLMManager, get_llm_manager


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'llmnb' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext llmnb``: register ``%%llm`` / ``%llm`` and the alias ``%%llmnb``."""
    from llmnb.notebook.magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext llmnb``: remove the magics and close their clients."""
    from llmnb.notebook.magics import unload

    unload(ipython)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
