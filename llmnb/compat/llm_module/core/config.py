"""The module's providers: from ``config/llm.yaml`` (seed 003) or the environment (001).

``config/llm.yaml``::

    providers:
      anthropic:
        api_keys: [key1, key2]            # a key pool (round-robin, cooldown on errors)
        models: [claude-3-5-haiku-20241022]   # the first is the client's model
        rate_limits:                      # llmnb applies the first entry
          - requests_per_minute: 12
            input_tokens_per_minute: 5000
            output_tokens_per_minute: 2000
    pool:
      max_size: 4                         # concurrent calls over all keys
      acquire_timeout: 30.0

Without that file every provider reads its keys from the environment:
``ANTHROPIC_API_KEY`` or ``ANTHROPIC_API_KEYS=k1,k2,k3`` (a pool), ``OPENAI_API_KEY``,
``GOOGLE_API_KEY``, ``GROQ_API_KEY``; ``<PROVIDER>_MODEL`` overrides the default model,
``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL`` the endpoint.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmnb import errors
from llmnb.compat._env import with_env_base_url

__all__ = ["CONFIG_ENV", "DEFAULT_MODELS", "find_config", "load_profiles"]

CONFIG_ENV = "LLM_MODULE_CONFIG"  # a path to use instead of ./config/llm.yaml

# module provider name -> (llmnb type, key variable)
_TYPES: dict[str, tuple[str, str | None]] = {
    "anthropic": ("anthropic", "ANTHROPIC_API_KEY"),
    "openai": ("openai", "OPENAI_API_KEY"),
    "google": ("gemini", "GOOGLE_API_KEY"),
    "groq": ("groq", "GROQ_API_KEY"),
    "local": ("local_hf", None),
}
DEFAULT_MODELS: dict[str, str] = {
    "anthropic": "claude-3-5-haiku-20241022",
    "openai": "gpt-4o-mini",
    "google": "gemini-2.0-flash",
    "groq": "llama-3.1-8b-instant",
    "local": "Qwen/Qwen2.5-0.5B-Instruct",
}
_PROVIDER_KEYS = {"api_keys", "api_key", "models", "model", "rate_limits", "base_url", "timeout"}
_POOL_KEYS = {"max_size", "acquire_timeout", "idle_timeout"}


def find_config(path: str | os.PathLike[str] | None = None) -> Path | None:
    """``path``, else ``$LLM_MODULE_CONFIG``, else ``config/llm.yaml`` here, if present."""
    if path is not None:
        found = Path(path)
        if not found.is_file():
            raise errors.ConfigError(f"LLM Module config {found} does not exist.")
        return found
    env = os.environ.get(CONFIG_ENV)
    if env:
        return find_config(env)
    default = Path.cwd() / "config" / "llm.yaml"
    return default if default.is_file() else None


def load_profiles(path: Path | None) -> dict[str, tuple[str, dict[str, Any]]]:
    """Module provider name -> (llmnb provider type, profile fields)."""
    if path is None:
        return {name: _from_env(name) for name in _TYPES}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise errors.ConfigError(f"{path}: not valid YAML ({exc}).") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("providers"), Mapping):
        raise errors.ConfigError(
            f"{path}: needs a `providers:` mapping (e.g. providers: anthropic: …)."
        )
    pool = data.get("pool") or {}
    if not isinstance(pool, Mapping) or set(pool) - _POOL_KEYS:
        raise errors.ConfigError(
            f"{path}: `pool` takes {', '.join(sorted(_POOL_KEYS))}; got {dict(pool)!r}."
        )
    return {
        str(name): _from_file(path, str(name), entry, pool)
        for name, entry in data["providers"].items()
    }


def _from_env(name: str) -> tuple[str, dict[str, Any]]:
    ptype, key_var = _TYPES[name]
    model = os.environ.get(f"{name.upper()}_MODEL") or DEFAULT_MODELS[name]
    fields: dict[str, Any] = {"model": model}
    if key_var is not None:
        # Naming the variable also makes $<VAR>S=k1,k2 a pool (decided when the client
        # is first built: a one-key pool would cool its only key down on errors).
        fields["api_key_env"] = key_var
    return ptype, with_env_base_url(ptype, fields)


def _from_file(
    path: Path, name: str, entry: Any, pool: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    where = f"{path}: providers.{name}"
    if name not in _TYPES:
        raise errors.ConfigError(f"{where}: unknown provider; use one of {', '.join(_TYPES)}.")
    if not isinstance(entry, Mapping):
        raise errors.ConfigError(f"{where} should be a mapping (api_keys, models, rate_limits).")
    unknown = set(entry) - _PROVIDER_KEYS
    if unknown:
        raise errors.ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join(sorted(_PROVIDER_KEYS))}."
        )
    ptype, env_type_default = _from_env(name)
    fields = dict(env_type_default)
    keys = entry.get("api_keys")
    if keys is not None:
        if isinstance(keys, str):
            keys = [k.strip() for k in keys.split(",") if k.strip()]
        if not isinstance(keys, list) or not keys:
            raise errors.ConfigError(f"{where}.api_keys should be a non-empty list of keys.")
        fields["api_keys"] = [str(k) for k in keys]
        fields.pop("api_key_env", None)
    if entry.get("api_key"):
        fields["api_key"] = str(entry["api_key"])
        fields.pop("api_key_env", None)
    models = entry.get("models")
    if models:
        if not isinstance(models, list):
            raise errors.ConfigError(f"{where}.models should be a list of model names.")
        fields["model"], fields["models"] = str(models[0]), [str(m) for m in models]
    if entry.get("model"):
        fields["model"] = str(entry["model"])
    for key in ("base_url", "timeout"):
        if entry.get(key) is not None:
            fields[key] = entry[key]
    limits = entry.get("rate_limits")
    if limits:
        entries = limits if isinstance(limits, list) else [limits]
        if not all(isinstance(e, Mapping) for e in entries):
            raise errors.ConfigError(f"{where}.rate_limits should be a list of mappings.")
        fields["rate_limits"] = dict(entries[0])
    if pool.get("max_size") is not None:
        n_keys = len(fields.get("api_keys") or [None])
        fields["max_connections_per_key"] = max(1, math.ceil(int(pool["max_size"]) / n_keys))
    if pool.get("acquire_timeout") is not None:
        fields["acquire_timeout"] = float(pool["acquire_timeout"])
    return ptype, fields
