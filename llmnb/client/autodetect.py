"""Auto-detect: choose a provider from what the user already has.

Used when the active provider is ``auto`` (``llm.active_provider: auto``,
``LLM_ACTIVE_PROVIDER=auto``, an agent's ``active_provider: auto``), and when nothing is
configured but an API key (or ``LLMNB_PROVIDER``) is set: no settings file, or several
profiles and none chosen. The first match wins:

1. ``LLMNB_PROVIDER``: a profile name, or a provider type (e.g. ``anthropic``).
2. API keys: the settings file's profiles whose key is set (in file order), then — with
   no profile for it — a provider whose key variable is set (``ANTHROPIC_API_KEY``,
   ``OPENAI_API_KEY``, ``GEMINI_API_KEY``/``GOOGLE_API_KEY``, ``OPENROUTER_API_KEY``…),
   with a default model (``LLM_MODEL`` overrides it).
3. Agent CLIs on PATH: ``claude``, ``codex``, ``copilot``, ``gemini``.
4. ``local_hf``, when transformers and torch are installed.

A synthesized profile is named ``auto:<type>``. When nothing is found, the
``ConfigError`` lists everything that was tried.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from llmnb import config, errors

__all__ = [
    "CLI_BINARIES",
    "DEFAULT_MODELS",
    "KEY_VARIABLES",
    "Detection",
    "detect",
    "detection_wanted",
]

AUTO = "auto"

#: provider type -> key variables, in the order auto-detect tries them.
KEY_VARIABLES: dict[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "openrouter": ("OPENROUTER_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "mistral": ("MISTRAL_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "together": ("TOGETHER_API_KEY",),
    "xai": ("XAI_API_KEY",),
}

#: provider type -> the executable auto-detect looks for on PATH.
CLI_BINARIES: dict[str, str] = {
    "claude_code": "claude",
    "codex_cli": "codex",
    "copilot_cli": "copilot",
    "gemini_cli": "gemini",
}

#: The model a synthesized profile of each type uses ("default": the CLI's own choice).
DEFAULT_MODELS: dict[str, str] = {
    "anthropic": "claude-sonnet-4-5",
    "openai": "gpt-4o-mini",
    "gemini": "gemini-2.5-flash",
    "openrouter": "openai/gpt-4o-mini",
    "groq": "llama-3.3-70b-versatile",
    "mistral": "mistral-small-latest",
    "deepseek": "deepseek-chat",
    "together": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "xai": "grok-3-mini",
    "ollama": "llama3.2",
    "mock": "mock-1",
    "claude_code": "sonnet",
    "codex_cli": "default",
    "copilot_cli": "default",
    "gemini_cli": "default",
    "local_hf": "Qwen/Qwen2.5-0.5B-Instruct",
}


@dataclass(frozen=True, slots=True)
class Detection:
    """What auto-detect chose: a profile name, its settings, and why."""

    name: str
    profile: dict[str, Any]
    reason: str


Lookup = Callable[[str], "str | None"]


def _environment(settings: config.Settings) -> Lookup:
    """``config.get_env`` for many names at once: the environment, then one ``.env`` read.

    Client creation runs this; a look-up per variable would stat the folders each time.
    """
    from llmnb.config import env as _env

    dotenv = _env.read_dotenv(settings.env_path) if settings.env_path else {}
    return lambda name: os.environ.get(name) or dotenv.get(name)


def _agent_var(agent: str) -> str:
    return f"LLM_{re.sub(r'[^A-Za-z0-9]', '_', agent).upper()}_ACTIVE_PROVIDER"


def _first_choice(
    settings: config.Settings, agent: str | None, env: Lookup
) -> tuple[str | None, str]:
    """The first provider choice in the resolution order, and where it came from."""
    candidates: list[tuple[str | None, str]] = []
    if agent:
        cfg = settings.llm.agents.get(agent)
        candidates += [
            (env(_agent_var(agent)), _agent_var(agent)),
            (cfg.active_provider if cfg else None, f"llm.agents.{agent}.active_provider"),
        ]
    candidates += [
        (config.get_session_provider()[0], "session"),
        (env("LLM_ACTIVE_PROVIDER"), "LLM_ACTIVE_PROVIDER"),
        (config.get_saved_default()[0], "saved default"),
        (settings.llm.active_provider, "llm.active_provider"),
    ]
    for value, origin in candidates:
        if value and value.strip():
            return value.strip(), origin
    return None, ""


def _key_set(var: str, env: Lookup) -> bool:
    value = env(var) or env(f"{var}S")
    return bool(value and value.strip())


def _signals_present(env: Lookup) -> bool:
    """A key variable or LLMNB_PROVIDER is set (what makes a settings-less start detect)."""
    if env("LLMNB_PROVIDER"):
        return True
    return any(_key_set(var, env) for variables in KEY_VARIABLES.values() for var in variables)


def detection_wanted(agent: str | None = None) -> bool:
    """Whether auto-detect should choose the provider instead of the settings."""
    settings = config.load_settings()
    env = _environment(settings)
    choice, origin = _first_choice(settings, agent, env)
    if choice is not None and choice.lower() == AUTO:
        return True
    if choice is None:
        # Several profiles (or none) and nothing picked: keys the user brought decide. A
        # file with one profile means that profile (config resolves it).
        return len(settings.llm.providers) != 1 and _signals_present(env)
    # The built-in default's `demo` is not the user's choice: keys they brought win.
    return settings.path is None and origin == "llm.active_provider" and _signals_present(env)


def _synthesized(ptype: str, reason: str) -> Detection:
    model = DEFAULT_MODELS.get(ptype)
    if model is None:
        raise errors.ConfigError(
            f"auto-detect chose provider type {ptype!r} ({reason}), which has no default "
            "model: set LLM_MODEL, or add a profile with `model:` to config/settings.yaml."
        )
    return Detection(f"auto:{ptype}", {"type": ptype, "model": model}, reason)


def _profile_key(name: str, profile: Mapping[str, Any]) -> tuple[bool, str] | None:
    """(key set?, variable) for a profile that takes a key, else None."""
    ptype = str(profile.get("type") or "").lower()
    variables = KEY_VARIABLES.get(ptype, ())
    explicit = profile.get("api_key_env")
    if explicit or profile.get("api_key") or profile.get("api_keys"):
        var = str(explicit or "api_key")
        return bool(config.resolve_api_keys(name, profile, None)), var
    if not variables:
        return None
    found = any(config.resolve_api_keys(name, profile, v) for v in variables)
    return found, " or ".join(variables)


def detect(agent: str | None = None) -> Detection:
    """Choose a provider (see the module docstring); ConfigError lists what was tried."""
    from llmnb.client.registry import list_providers

    settings = config.load_settings()
    tried: list[str] = []

    wanted = (config.get_env("LLMNB_PROVIDER") or "").strip()
    if wanted:
        if wanted in settings.llm.providers:
            return Detection(wanted, dict(config.get_profile(wanted)), "LLMNB_PROVIDER")
        if wanted.lower() in list_providers():
            return _synthesized(wanted.lower(), "LLMNB_PROVIDER")
        raise errors.ProviderNotFoundError(
            f"LLMNB_PROVIDER={wanted!r} is neither a profile in {settings.source} "
            f"({', '.join(settings.profile_names()) or 'none'}) nor a provider type "
            f"({', '.join(list_providers())})."
        )
    tried.append("LLMNB_PROVIDER: not set")

    checked = []
    for name in settings.profile_names():
        profile = config.get_profile(name)
        key = _profile_key(name, profile)
        if key is None:
            continue
        if key[0]:
            return Detection(name, dict(profile), f"profile {name!r} has its key ({key[1]})")
        checked.append(f"{name} ({key[1]} not set)")
    if checked:
        tried.append(f"profiles with a key in {settings.source}: " + ", ".join(checked))

    env = _environment(settings)
    for ptype, variables in KEY_VARIABLES.items():
        for var in variables:
            if _key_set(var, env):
                return _synthesized(ptype, f"{var} is set")
    names = ", ".join(v for vs in KEY_VARIABLES.values() for v in vs)
    tried.append(f"API key variables (environment and .env): none of {names} is set")

    for ptype, binary in CLI_BINARIES.items():
        if shutil.which(binary):
            return _synthesized(ptype, f"`{binary}` is on PATH")
    tried.append(f"agent CLIs on PATH: none of {', '.join(CLI_BINARIES.values())} found")

    if all(importlib.util.find_spec(m) for m in ("torch", "transformers")):
        return _synthesized("local_hf", "transformers and torch are installed")
    tried.append('local models: transformers/torch not installed (pip install "llmnb[local]")')

    who = f" for agent {agent!r}" if agent else ""
    raise errors.ConfigError(
        f"auto-detect found no provider{who}. Tried, in order:\n  - "
        + "\n  - ".join(tried)
        + "\nSet an API key (e.g. `%env ANTHROPIC_API_KEY=...` or in .env), install an agent "
        "CLI, set LLMNB_PROVIDER, or choose a profile with `llm.active_provider` in "
        f"{settings.source}."
    )
