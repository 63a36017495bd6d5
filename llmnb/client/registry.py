"""The provider registry: provider types, ``provider_factory`` imports, building providers.

A profile names its implementation by ``type`` (looked up case-insensitively here) or
by ``provider_factory: "module:function"``. What is registered may be a
:class:`~llmnb.providers.Provider` subclass, or a factory
``factory(profile: dict, model_name: str, agent: str | None)`` returning an
:class:`LLMClient`, a ``Provider``, or any object with
``generate(messages, temperature, max_tokens, timeout) -> str`` — the last is wrapped
so that it is tracked and usable from the magic like a built-in.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib
import inspect
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from llmnb import errors
from llmnb.client.client import LLMClient
from llmnb.providers.base import Provider
from llmnb.providers.mock import estimate_tokens
from llmnb.types import Completion, Request, Usage

__all__ = [
    "GenerateAdapter",
    "build_provider",
    "import_factory",
    "list_providers",
    "lookup_type",
    "register_provider",
]

Factory = Callable[..., Any]

_lock = threading.Lock()
_registry: dict[str, Factory] = {}


class _LazyBuiltin:
    """A built-in provider type whose module is imported on first use."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def resolve(self) -> Factory:
        module_name, _, attr = self.spec.partition(":")
        module = importlib.import_module(module_name)
        if attr.endswith("]"):  # "PRESETS[name]": one entry of a table
            table, _, key = attr[:-1].partition("[")
            return getattr(module, table)[key]  # type: ignore[no-any-return]
        return getattr(module, attr)  # type: ignore[no-any-return]


def _builtins() -> dict[str, Factory]:
    from llmnb.providers import BUILTINS

    return {name: _LazyBuiltin(spec) for name, spec in BUILTINS.items()}  # type: ignore[misc]


def _table() -> dict[str, Factory]:
    with _lock:
        if not _registry:
            _registry.update(_builtins())
        return _registry


def register_provider(provider_type: str, factory: Factory) -> None:
    """Register a provider type; ``type: <provider_type>`` in a profile then uses it.

    Example::

        class EchoBot:
            def generate(self, messages, temperature=None, max_tokens=None, timeout=None):
                return messages[-1]["content"]

        llmnb.register_provider("echo", lambda profile, model_name, agent: EchoBot())
    """
    if not isinstance(provider_type, str) or not provider_type.strip():
        raise ValueError("provider_type must be a non-empty string, e.g. 'my_provider'")
    if not callable(factory):
        raise TypeError(
            f"factory for {provider_type!r} must be callable "
            "(a Provider subclass or factory(profile, model_name, agent)), "
            f"got {type(factory).__name__}"
        )
    _table()[provider_type.strip().lower()] = factory


def list_providers() -> list[str]:
    """Registered provider types, built-ins included, sorted."""
    return sorted(_table())


class GenerateAdapter(Provider):
    """Wraps an object with ``generate(...) -> str`` so it behaves like a provider.

    Such objects report no usage, so tokens are estimated from text length and the
    rows say so (``cost_source`` is ``estimate`` or ``unknown``).
    """

    type_name: ClassVar[str] = "custom"
    can_stream: ClassVar[bool] = False

    def __init__(
        self, target: Any, type_name: str, profile_name: str, profile: Mapping[str, Any], model: str
    ) -> None:
        super().__init__(profile_name, profile, model)
        self.target = target
        self.type_name = type_name  # type: ignore[misc]

    def _call(self, request: Request) -> Completion:
        messages = [m.to_dict() for m in request.messages]
        try:
            text = self.target.generate(
                messages,
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                timeout=request.timeout,
            )
        except errors.LLMError:
            raise  # already typed (a custom provider may raise RateLimitError to be retried)
        except Exception as exc:
            failure = errors.ProviderError(
                f"{type(self.target).__name__}.generate() raised {type(exc).__name__}: {exc}",
                provider=self.type_name,
                profile=self.profile_name,
                model=request.model,
            )
            failure.retryable = False  # see _Core._as_provider_error: a bug is not retried
            raise failure from exc
        if not isinstance(text, str):
            raise errors.ResponseFormatError(
                f"{type(self.target).__name__}.generate() returned {type(text).__name__}; "
                "a custom provider must return the answer as a str.",
                provider=self.type_name,
                profile=self.profile_name,
                model=self.model,
            )
        prompt = sum(estimate_tokens(m.content) for m in request.messages)
        usage = Usage(prompt, estimate_tokens(text), estimated=True)
        return Completion(content=text, model=request.model, usage=usage, finish_reason="stop")

    def complete(self, request: Request) -> Completion:
        return self._call(request)

    async def acomplete(self, request: Request) -> Completion:
        # A plain generate() blocks: keep the event loop free while it runs.
        return await asyncio.to_thread(self._call, request)

    def close(self) -> None:
        closer = getattr(self.target, "close", None)
        if callable(closer):
            closer()


def import_factory(spec: str, profile_name: str) -> Factory:
    """The callable named by a profile's ``provider_factory: "module:function"``.

    ``profile_name`` is only used to name the profile in errors. Raises
    :class:`~llmnb.errors.ConfigError` (naming the profile and field) when the spec is
    malformed, the module cannot be imported, or the attribute is missing or not callable.
    """
    where = f"profile {profile_name!r}, field provider_factory"
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise errors.ConfigError(
            f"{where}: {spec!r} is not of the form 'module:function' "
            "(e.g. 'my_pkg.my_provider:create_client')."
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code
        raise errors.ConfigError(
            f"{where}: cannot import module {module_name!r} from {spec!r} "
            f"({type(exc).__name__}: {exc}). Is the package installed and on sys.path?"
        ) from exc
    try:
        factory = getattr(module, attr)
    except AttributeError as exc:
        raise errors.ConfigError(
            f"{where}: module {module_name!r} has no attribute {attr!r} (from {spec!r})."
        ) from exc
    if not callable(factory):
        raise errors.ConfigError(f"{where}: {spec!r} is not callable.")
    return factory  # type: ignore[no-any-return]


def lookup_type(type_name: str, profile_name: str) -> Factory:
    """The class or factory registered for ``type_name`` (case-insensitive).

    A built-in's module is imported here, on first lookup; nothing is built or sent.
    ``profile_name`` is only used to name the profile in errors. Raises
    :class:`~llmnb.errors.ProviderNotFoundError` listing the registered types (and the
    nearest ones) for an unknown type.
    """
    table = _table()
    key = type_name.strip().lower()
    if key in table:
        found = table[key]
        if isinstance(found, _LazyBuiltin):
            found = table[key] = found.resolve()
        return found
    near = difflib.get_close_matches(key, list(table), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
    raise errors.ProviderNotFoundError(
        f"profile {profile_name!r}: unknown provider type {type_name!r}.{hint} "
        f"Registered types: {', '.join(sorted(table))}. "
        "Use one of them, or llmnb.register_provider() / provider_factory for your own."
    )


def build_provider(
    factory: Factory,
    type_name: str,
    name: str,
    profile: Mapping[str, Any],
    model: str,
    agent: str | None = None,
) -> LLMClient | Provider:
    """Call ``factory`` for profile ``name`` and return a client or a provider.

    A :class:`~llmnb.providers.Provider` subclass is instantiated; any other factory is
    called as ``factory(profile, model, agent)``. A factory may return an
    :class:`LLMClient` (returned as-is), a ``Provider``, or an object with
    ``generate(...) -> str`` (wrapped in :class:`GenerateAdapter`). Anything else, or a
    factory that cannot take those arguments, raises :class:`~llmnb.errors.ConfigError`.
    ``type_name`` names the provider type in errors and on wrapped objects.
    """
    spec = profile.get("provider_factory")
    what = f"provider_factory {spec!r}" if spec else f"the factory for type {type_name!r}"
    if inspect.isclass(factory) and issubclass(factory, Provider):
        what = f"{factory.__name__}(...) ({what})"
        try:
            provider: Provider = factory(name, profile, model)
        except errors.LLMError:
            raise
        except Exception as exc:
            raise _factory_failed(name, what, exc) from exc
        return provider
    call: Callable[..., Any] = factory
    try:
        inspect.signature(call).bind(profile, model, agent)
    except TypeError as exc:
        raise errors.ConfigError(
            f"profile {name!r}: the factory for {type_name!r} "
            f"({getattr(call, '__name__', type(call).__name__)}) cannot be called as "
            f"factory(profile, model_name, agent): {exc}."
        ) from exc
    except ValueError:
        pass  # no signature to inspect (a builtin): call it and see
    try:
        made = call(profile, model, agent)  # user code: any object may come back
    except errors.LLMError:
        raise  # already says what is wrong (a MissingAPIKeyError, a ConfigError)
    except Exception as exc:
        raise _factory_failed(name, what, exc) from exc
    if isinstance(made, (LLMClient, Provider)):
        return made
    if callable(getattr(made, "generate", None)):
        return GenerateAdapter(made, type_name, name, profile, model)
    raise errors.ConfigError(
        f"profile {name!r}: the factory for {type_name!r} returned {type(made).__name__}, "
        "which has no generate(messages, temperature, max_tokens, timeout) method. "
        "Return an llmnb.LLMClient, a Provider, or an object with generate()."
    )


def _factory_failed(name: str, what: str, exc: Exception) -> errors.ConfigError:
    return errors.ConfigError(
        f"profile {name!r}: {what} raised {type(exc).__name__}: {exc}. Fix the factory "
        "(it is called as factory(profile, model_name, agent)), or the profile it reads."
    )
