"""Base URLs from the official SDKs' environment variables.

The vendors' own SDKs read ``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL`` and
``GROQ_BASE_URL`` when no base URL is passed; gateways and proxies rely on that. A
profile that names no ``base_url`` honours them with the same meaning: the value is what
the SDK would use, so a suffix the SDK puts in its request paths (Groq's ``/openai/v1``)
is added here. Read at call time, like keys, so ``%env`` applies to live clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["resolve_base_url"]


def resolve_base_url(
    profile: Mapping[str, Any],
    env_var: str | None,
    suffix: str,
    default: str | None,
) -> str | None:
    """``base_url`` of the profile > ``$env_var`` + ``suffix`` > ``default``, no trailing ``/``."""
    url = profile.get("base_url")
    if not url and env_var:
        from llmnb import config

        value = (config.get_env(env_var) or "").strip().rstrip("/")
        if value:
            url = value if value.endswith(suffix) else value + suffix
    url = url or default
    return str(url).rstrip("/") if url else None
