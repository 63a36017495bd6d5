"""What the compat packages share: base URLs from the official SDKs' variables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["BASE_URL_VARS", "env_base_url", "with_env_base_url"]

# The official SDKs read these (openai: OPENAI_BASE_URL, anthropic: ANTHROPIC_BASE_URL);
# OPENROUTER_BASE_URL is the same convention for OpenRouter's default endpoint. The seed
# systems' code relied on them, so their adapters honour them where a profile names none.
BASE_URL_VARS: dict[str, str] = {
    "openai": "OPENAI_BASE_URL",
    "anthropic": "ANTHROPIC_BASE_URL",
    "openrouter": "OPENROUTER_BASE_URL",
}


def env_base_url(provider_type: str) -> str | None:
    """The base URL the environment (or ``.env``) gives for ``provider_type``, if any."""
    var = BASE_URL_VARS.get(provider_type.strip().lower())
    if var is None:
        return None
    from llmnb import config

    value = config.get_env(var)
    return value.strip() or None if value else None


def with_env_base_url(provider_type: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` plus ``base_url`` from the environment when they name none."""
    out = dict(fields)
    if not out.get("base_url"):
        url = env_base_url(provider_type)
        if url:
            out["base_url"] = url
    return out
