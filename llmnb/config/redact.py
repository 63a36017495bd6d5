"""Redaction: secrets in settings shown as ``sk-…a1b2``, in reprs, messages and displays."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

__all__ = ["is_sensitive_key", "redact", "redact_mapping"]

_SECRET_PARTS = frozenset({"key", "keys", "secret", "secrets", "token", "password", "passwd"})
_VAR_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


def redact(secret: str | SecretStr | None) -> str:
    """Show a secret as ``sk-…a1b2`` (only when long enough to keep most of it hidden)."""
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    if not secret:
        return "…"
    text = str(secret)
    # 7 visible characters of a 16+ character key leave more than half of it hidden.
    return f"{text[:3]}…{text[-4:]}" if len(text) >= 16 else "…"


def is_sensitive_key(key: object) -> bool:
    """True for ``api_key``, ``api_keys``, ``x-api-key``, ``Authorization``, ``client_secret``…

    Matched per word so ``max_tokens`` stays visible; ``*_env`` keys name a variable, not a
    value, so they stay visible too.
    """
    text = str(key).lower()
    parts = [p for p in re.split(r"[^a-z0-9]+", text) if p]
    if parts and parts[-1] == "env":
        return False
    return "apikey" in text or "authorization" in text or any(p in _SECRET_PARTS for p in parts)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str) and _VAR_REF.match(value):
        return value  # a ${VAR} reference names a variable; showing it helps and leaks nothing
    if isinstance(value, Mapping):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    if isinstance(value, (str, SecretStr)):
        return redact(value)
    return value


def redact_mapping(value: Any) -> Any:
    """Copy ``value`` (dicts/lists nested anyhow) with values of sensitive keys redacted."""
    if isinstance(value, Mapping):
        return {
            k: _redact_value(v) if is_sensitive_key(k) else redact_mapping(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_mapping(v) for v in value]
    if isinstance(value, SecretStr):
        return redact(value)
    return value
