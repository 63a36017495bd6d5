"""What the provider picker shows and does, without any widget (plain tests cover it).

Example::

    from llmnb.notebook import _picker_model as pm
    [p.label for p in pm.profiles()]        # ["demo — mock · no key needed", ...]
    pm.model_options("demo")                # profile model, its `models`, built-ins
    pm.fetch_models("local")                # GET {base_url}/models
    pm.apply(pm.PickerValue("demo", "mock-2"))   # the session now uses demo / mock-2
    pm.test_call(pm.PickerValue("demo", "mock-1")).line    # "✓ ok · 12 ms · mock-1 · …"

Nothing here shows a key: a profile's label says only whether its key is set and which
variable to set.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmnb import config
from llmnb.errors import ConfigError, LLMError
from llmnb.types import Secret

__all__ = [
    "KNOWN_MODELS",
    "PickerValue",
    "ProfileInfo",
    "TestResult",
    "agents",
    "apply",
    "defaults_for",
    "fetch_models",
    "model_options",
    "profile_info",
    "profiles",
    "save_default",
    "test_call",
]

#: A few current models per provider type, offered besides a profile's own ``models``.
KNOWN_MODELS: dict[str, tuple[str, ...]] = {
    "mock": ("mock-1", "mock-2"),
    "openai": (
        "gpt-5.2",
        "gpt-5-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4o",
        "gpt-4o-mini",
        "o4-mini",
    ),
    "openrouter": (
        "openai/gpt-5.2",
        "anthropic/claude-sonnet-4.5",
        "google/gemini-2.5-flash",
        "meta-llama/llama-3.3-70b-instruct",
        "deepseek/deepseek-chat",
    ),
    "anthropic": ("claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"),
    "gemini": ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite"),
    "groq": ("llama-3.3-70b-versatile", "llama-3.1-8b-instant"),
    "together": ("meta-llama/Llama-3.3-70B-Instruct-Turbo",),
    "deepseek": ("deepseek-chat", "deepseek-reasoner"),
    "mistral": ("mistral-small-latest", "mistral-large-latest"),
    "xai": ("grok-4", "grok-3-mini"),
    "ollama": ("llama3.2", "qwen2.5"),
}

_TEST_PROMPT = "Reply with the single word: OK"
_TEST_MAX_TOKENS = 16


@dataclass(frozen=True)
class PickerValue:
    """The picker's choice. ``temperature``/``max_tokens`` None mean "the profile's"."""

    profile: str | None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    agent: str | None = None


@dataclass(frozen=True)
class ProfileInfo:
    """One profile as the picker lists it; ``key`` is ``set``, ``missing`` or ``not needed``."""

    name: str
    type: str
    model: str | None
    key: str
    key_var: str | None = None
    models: tuple[str, ...] = ()
    can_list_models: bool = False
    problem: str | None = None

    @property
    def label(self) -> str:
        """``"openrouter — openrouter · key ✓"``, ``"oa — openai · key ✗ (OPENAI_API_KEY)"``."""
        if self.problem:
            return f"{self.name} — {self.type} · ⚠ {self.problem}"
        if self.key == "set":
            key = "key ✓"
        elif self.key == "missing":
            key = f"key ✗ ({self.key_var})" if self.key_var else "key ✗"
        else:
            key = "no key needed"
        return f"{self.name} — {self.type} · {key}"


@dataclass(frozen=True)
class TestResult:
    """How a test call went, as one line (``line``) for the picker."""

    ok: bool
    latency_s: float
    line: str
    details: dict[str, Any] = field(default_factory=dict)


# -- profiles --------------------------------------------------------------------------------


def profiles() -> list[ProfileInfo]:
    """Every profile of the settings, in file order."""
    settings = config.load_settings()
    return [profile_info(name) for name in settings.profile_names()]


def profile_info(name: str) -> ProfileInfo:
    """The picker's view of profile ``name``: type, model, whether its key is set."""
    profile = config.get_profile(name)
    type_name = str(profile.get("type") or "factory")
    models = tuple(str(m) for m in profile.get("models") or ())
    model = str(profile["model"]) if profile.get("model") else None
    try:
        cls = _provider_class(profile, name)
    except LLMError as exc:
        return ProfileInfo(name, type_name, model, "unknown", models=models, problem=_one_line(exc))
    key_var = profile.get("api_key_env") or getattr(cls, "key_env_var", None)
    try:
        keys = config.resolve_api_keys(name, profile, getattr(cls, "key_env_var", None))
    except ConfigError as exc:  # a key no header can carry: say which, list the rest
        return ProfileInfo(name, type_name, model, "unknown", models=models, problem=_one_line(exc))
    explicit = any(profile.get(k) for k in ("api_key", "api_keys", "api_key_env"))
    if keys:
        key = "set"
    elif explicit or getattr(cls, "needs_key", False):
        key = "missing"
    else:
        key = "not needed"
    return ProfileInfo(
        name,
        type_name,
        model,
        key,
        key_var=str(key_var) if key_var else None,
        models=models,
        can_list_models=_protocol(cls) is not None,
    )


def model_options(name: str) -> list[str]:
    """Models to offer for profile ``name``: its ``model``, its ``models``, then built-ins."""
    info = profile_info(name)
    found = [info.model, *info.models, *KNOWN_MODELS.get(info.type.lower(), ())]
    return list(dict.fromkeys(m for m in found if m))


def agents() -> list[str]:
    """Agent names under ``llm.agents``."""
    return list(config.load_settings().llm.agents)


def defaults_for(name: str, agent: str | None = None) -> tuple[float | None, int | None]:
    """The ``(temperature, max_tokens)`` a call on ``name`` gets without the picker."""
    profile = config.get_profile(name)
    settings = config.load_settings()
    params = dict(settings.llm.params)
    for key in ("temperature", "max_tokens"):
        if profile.get(key) is not None:
            params[key] = profile[key]
    params.update(profile.get("params") or {})
    agent_cfg = settings.llm.agents.get(agent) if agent else None
    if agent_cfg is not None:
        params.update(agent_cfg.params)
    temperature = params.get("temperature")
    max_tokens = params.get("max_tokens")
    return (
        float(temperature) if isinstance(temperature, (int, float)) else None,
        int(max_tokens) if isinstance(max_tokens, int) else None,
    )


# -- actions ---------------------------------------------------------------------------------


def apply(value: PickerValue) -> None:
    """Make ``value`` the session's choice: the next ``%%llm`` and
    ``create_llm_client_from_profile()`` use its profile and model; ``temperature`` and
    ``max_tokens`` (when not None) become the session's parameters."""
    config.set_session_provider(value.profile, value.model or None)
    if value.profile is not None:
        config.set_session_params(temperature=value.temperature, max_tokens=value.max_tokens)


def save_default(value: PickerValue) -> Path:
    """Persist the profile and model as the project's default (``.llmnb/state.json``)."""
    if not value.profile:
        raise ConfigError("Choose a profile before saving it as the default.")
    return config.save_default_provider(value.profile, value.model or None)


def test_call(value: PickerValue) -> TestResult:
    """Send a minimal request with ``value``'s profile and model; never raises."""
    from llmnb.client.profiles import create_llm_client_from_profile

    if not value.profile:
        return TestResult(False, 0.0, "✗ choose a profile first")
    started = time.perf_counter()
    try:
        client = create_llm_client_from_profile(
            model_name=value.model or None, agent=value.agent, profile=value.profile
        )
        try:
            c = client.complete(
                _TEST_PROMPT,
                temperature=value.temperature,
                max_tokens=_TEST_MAX_TOKENS,
                tags={"llmnb": "picker-test"},
            )
        finally:
            client.close()
    except Exception as exc:  # any failure is the answer to "does it work?"
        took = time.perf_counter() - started
        return TestResult(False, took, f"✗ {_one_line(exc)}", {"error": type(exc).__name__})
    took = time.perf_counter() - started
    answer = " ".join(c.content.split())
    answer = answer if len(answer) <= 40 else answer[:39] + "…"
    return TestResult(
        True,
        took,
        f"✓ ok · {took * 1000:.0f} ms · {c.model} · {answer!r}",
        {"model": c.model, "content": c.content},
    )


def fetch_models(name: str, timeout: float = 15.0) -> list[str]:
    """The models the endpoint of profile ``name`` lists (``GET …/models``), sorted.

    Raises an :class:`~llmnb.errors.LLMError` (ConfigError when the provider has no such
    endpoint, the mapped HTTP error otherwise) whose message names the profile.
    """
    from llmnb._http import detach, http_library, map_http_error
    from llmnb.providers.base import wire_headers
    from llmnb.types import Request

    httpx = http_library()

    profile = config.get_profile(name)
    cls = _provider_class(profile, name)
    lister = getattr(cls, "list_models", None)
    model = str(profile.get("model") or "")
    if callable(lister):  # a provider may know better how to list its models
        provider = cls(name, profile, model)
        return sorted(str(m) for m in provider.list_models())
    protocol = _protocol(cls)
    if protocol is None:
        raise ConfigError(
            f"profile {name!r} (type {profile.get('type')}) has no model list to fetch; "
            "type the model name, or list it under `models:` in the profile."
        )
    provider = cls(name, profile, model)
    base = str(provider.base_url or "").rstrip("/")
    if not base:
        raise ConfigError(f"profile {name!r} needs a `base_url` to fetch its models.")
    key = provider.key_for(Request(messages=(), model=model))
    url, headers = _listing_request(protocol, base, key, name, profile)
    try:
        r = httpx.get(url, headers=wire_headers(headers), timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        detach(exc)  # still the error's __context__: without its request (headers)
        raise _network_error(name, url, exc) from None
    if r.status_code >= 400:
        raise map_http_error(
            r.status_code,
            r.headers,
            r.content,
            provider=str(profile.get("type")),
            profile=name,
            key_env=profile.get("api_key_env") or getattr(cls, "key_env_var", None),
            base_url=base,
            secrets=(key,) if key else (),
        )
    try:
        data = r.json()
        items = data.get("data") if protocol != "gemini" else data.get("models")
        ids = [str(m.get("id") or m.get("name")) for m in items or () if isinstance(m, Mapping)]
    except (ValueError, AttributeError, TypeError):
        raise ConfigError(
            f"profile {name!r}: {url} did not answer with a model list; check base_url."
        ) from None
    return sorted({i.removeprefix("models/") for i in ids if i and i != "None"})


# -- helpers ---------------------------------------------------------------------------------


def _provider_class(profile: Mapping[str, Any], name: str) -> Any:
    """The registered class (or factory) of a profile's ``type``; None for a factory."""
    if profile.get("provider_factory"):
        return None
    from llmnb.client import registry as _registry

    # The registry's own lookup: same case rules and "did you mean" errors as a client.
    return _registry.lookup_type(str(profile.get("type") or ""), name)


def _protocol(cls: Any) -> str | None:
    """Which ``/models`` listing the provider class speaks, if any."""
    if not isinstance(cls, type):
        return None
    from llmnb.providers.openai_compat import OpenAICompatibleProvider

    if issubclass(cls, OpenAICompatibleProvider):
        return "openai"
    kind = getattr(cls, "type_name", None)
    return kind if kind in ("anthropic", "gemini") else None


def _listing_request(
    protocol: str, base: str, key: Secret | None, name: str, profile: Mapping[str, Any]
) -> tuple[str, dict[str, str | Secret]]:
    headers = config.resolve_headers(name, profile)
    if protocol == "anthropic":
        url = base + ("/models" if base.endswith("/v1") else "/v1/models")
        headers["anthropic-version"] = str(profile.get("anthropic_version") or "2023-06-01")
        if key:
            headers["x-api-key"] = key
    elif protocol == "gemini":
        url = base + "/models"
        if key:
            headers["x-goog-api-key"] = key
    else:
        url = base + "/models"
        if key:
            headers["authorization"] = Secret(f"Bearer {key.reveal()}")
    return url, headers


def _network_error(name: str, url: str, exc: Exception) -> LLMError:
    from llmnb.errors import NetworkError

    return NetworkError(
        f"profile {name!r}: cannot fetch the model list from {url} ({type(exc).__name__}); "
        "check base_url and the network.",
        profile=name,
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= 240 else text[:239] + "…"
