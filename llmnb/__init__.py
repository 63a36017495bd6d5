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
import sys
from typing import TYPE_CHECKING, Any

from llmnb.types import Completion, Message, Role, Usage

__version__ = "0.1.0"

__all__ = [
    "Audio",
    "Completion",
    "Document",
    "Embeddings",
    "Image",
    "LLMClient",
    "LLMManager",
    "Message",
    "Role",
    "Text",
    "ToolCall",
    "Usage",
    "__version__",
    "config",
    "connect",
    "create_llm_client_from_profile",
    "errors",
    "get_llm_manager",
    "list_providers",
    "middleware",
    "models",
    "register_provider",
    "testing",
    "usage",
]

# name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "LLMClient": ("llmnb.client.client", "LLMClient"),
    "create_llm_client_from_profile": ("llmnb.client.profiles", "create_llm_client_from_profile"),
    "connect": ("llmnb.client.profiles", "connect"),
    "register_provider": ("llmnb.client.registry", "register_provider"),
    "list_providers": ("llmnb.client.registry", "list_providers"),
    "config": ("llmnb.config", None),
    "errors": ("llmnb.errors", None),
    "usage": ("llmnb.usage", None),
    "testing": ("llmnb.testing", None),
    "LLMManager": ("llmnb.client.manager", "LLMManager"),
    "get_llm_manager": ("llmnb.client.manager", "get_llm_manager"),
    "middleware": ("llmnb.middleware", None),
    "Text": ("llmnb.parts", "Text"),
    "Image": ("llmnb.parts", "Image"),
    "Document": ("llmnb.parts", "Document"),
    "Audio": ("llmnb.parts", "Audio"),
    "ToolCall": ("llmnb.parts", "ToolCall"),
    "models": ("llmnb.client.models", "models"),
    "Embeddings": ("llmnb.types", "Embeddings"),
}

if TYPE_CHECKING:
    from llmnb import config, errors, middleware, testing, usage
    from llmnb.client.client import LLMClient
    from llmnb.client.manager import LLMManager, get_llm_manager
    from llmnb.client.profiles import connect, create_llm_client_from_profile
    from llmnb.client.registry import list_providers, register_provider
    from llmnb.parts import Audio, Document, Image, Text, ToolCall


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


# -- `df.llm` without importing pandas ------------------------------------------------------
# The accessor (llmnb.batch.accessor) is registered as soon as pandas is imported: at once
# when it already is, else by a one-shot import hook that wraps pandas' own loader. The
# hook lives here, not in llmnb.batch, so that `import llmnb` imports no llmnb module but
# this one and llmnb.types.


def _register_accessor() -> None:
    try:
        importlib.import_module("llmnb.batch.accessor").register()
    except Exception:  # a broken pandas must not break `import llmnb` or pandas' import
        import logging

        logging.getLogger("llmnb").debug("the .llm accessor could not be registered", exc_info=True)


class _AfterPandas:
    """A meta-path finder that wraps pandas' loader once, to register after it ran."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "pandas":
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if f is not self]  # one shot
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader:
    """pandas' own loader, plus the accessor's registration after the module executed."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._inner.exec_module(module)
        _register_accessor()

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, get_source, …
        return getattr(self._inner, name)


def _install_accessor() -> None:
    if "pandas" in sys.modules:
        _register_accessor()
    elif not any(isinstance(f, _AfterPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterPandas())


_install_accessor()
