"""Redaction: secrets in settings shown as ``sk-…a1b2``, in reprs, messages and displays."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from llmnb.types import Secret

__all__ = [
    "is_sensitive_key",
    "redact",
    "redact_mapping",
    "redact_url",
    "register_secrets_in",
    "url_password",
]

_SECRET_PARTS = frozenset(
    {
        *("key", "keys", "secret", "secrets", "token", "password", "passwd"),
        # gateway headers: Helicone-Auth, X-Auth-Token, Cookie, X-Credentials…
        *("auth", "cookie", "credential", "credentials", "passphrase"),
    }
)
_VAR_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
# scheme://user:password@ — base_url, a PostgreSQL or Redis URL.
_USERINFO = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:@/\s]*):(?P<password>[^@/\s]+)@", re.I)


def redact(secret: str | SecretStr | Secret | None) -> str:
    """Show a secret as ``sk-…a1b2`` (only when long enough to keep most of it hidden)."""
    if isinstance(secret, Secret):
        return secret.masked()
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    if not secret:
        return "…"
    text = str(secret)
    # 7 visible characters of a 16+ character key leave more than half of it hidden.
    return f"{text[:3]}…{text[-4:]}" if len(text) >= 16 else "…"


def is_sensitive_key(key: object) -> bool:
    """True for ``api_key``, ``api_keys``, ``x-api-key``, ``Authorization``, ``client_secret``,
    ``Helicone-Auth``, ``x-portkey-api-key``…

    Matched per word so ``max_tokens`` stays visible; ``*_env`` keys name a variable, not a
    value, so they stay visible too.
    """
    return _sensitive(str(key))


@functools.lru_cache(maxsize=1024)  # header names are checked on every call
def _sensitive(text: str) -> bool:
    text = text.lower()
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
    if isinstance(value, (str, SecretStr, Secret)):
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
    if isinstance(value, (SecretStr, Secret)):
        return redact(value)
    if isinstance(value, str):
        return redact_url(value)  # base_url, a store's URL: scheme://user:…@host
    return value


def url_password(text: str) -> str | None:
    """The password in ``scheme://user:password@host…``, or None."""
    match = _USERINFO.search(text)
    return match.group("password") if match else None


def redact_url(text: str) -> str:
    """``scheme://user:…@host``: a URL with its password hidden (anything else unchanged)."""
    return _USERINFO.sub(lambda m: f"{m.group('head')}:…@", text) if "@" in text else text


def register_secrets_in(value: Any, sensitive: bool = False) -> None:
    """Register every secret found in settings data (dicts/lists/models' values): values
    of sensitive keys, SecretStr values and URL passwords. Registered values are
    scrubbed from every message, row and log line (:func:`llmnb.types.scrub_secrets`)."""
    import urllib.parse

    if isinstance(value, SecretStr):
        Secret(value.get_secret_value())
    elif isinstance(value, str):
        if sensitive and not _VAR_REF.match(value):
            Secret(value)
        if (password := url_password(value)) is not None:
            Secret(password)
            Secret(urllib.parse.unquote(password))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            register_secrets_in(v, sensitive or is_sensitive_key(k))
    elif isinstance(value, (list, tuple)):
        for v in value:
            register_secrets_in(v, sensitive)
