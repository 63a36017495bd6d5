"""A profile's API keys (api_keys > api_key > $VAR + $VARS pool), or an error naming one."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

import llmnb.config.env as _env
from llmnb.config.files import get_env, load_settings
from llmnb.config.models import display_path
from llmnb.config.redact import is_sensitive_key
from llmnb.errors import ConfigError, MissingAPIKeyError
from llmnb.types import Secret

__all__ = ["require_api_key", "resolve_api_keys", "resolve_headers", "resolve_secrets"]

_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# A key with the place it came from: a variable's name, or the profile field.
_Found = tuple[Secret, str]


def _expand(value: Any, missing: list[str]) -> Secret | None:
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    unresolved = [v for v in _VAR_REF.findall(text) if not get_env(v)]
    if unresolved:
        missing.extend(unresolved)
        return None
    expanded = _VAR_REF.sub(lambda m: get_env(m.group(1)) or "", text).strip()
    return Secret(expanded) if expanded else None


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _origin(item: Any, field: str) -> str:
    text = item.get_secret_value() if isinstance(item, SecretStr) else str(item)
    refs = _VAR_REF.findall(text)
    return ", ".join(refs) if refs else field


def _unique(found: list[_Found]) -> list[_Found]:
    firsts: dict[Secret, str] = {}
    for key, origin in found:
        firsts.setdefault(key, origin)
    return list(firsts.items())


def _find_keys(
    profile: Mapping[str, Any], default_env: str | None
) -> tuple[list[_Found], list[str], bool]:
    """(keys and where each came from, variables a user could set, whether those came
    from ${VAR} in the profile). Values are wrapped as they are read: a traceback that
    passes through here shows ``Secret('sk-…a1b2')``, not a key."""
    missing: list[str] = []
    pool = profile.get("api_keys")
    single = profile.get("api_key")
    if pool or single:
        field = "api_keys" if pool else "api_key"
        items = _split(pool) if isinstance(pool, str) else list(pool or [single])
        found: list[_Found] = []
        for item in items:
            key = _expand(item, missing)
            if key:
                found.append((key, _origin(item, field)))
        return _unique(found), missing, True
    var = profile.get("api_key_env") or default_env
    if not var:
        return [], [], False
    keys: list[_Found] = []
    if (get_env(var) or "").strip():
        keys.append((Secret((get_env(var) or "").strip()), var))
    pool_var = f"{var}S" if var.endswith("_KEY") else None
    if pool_var:
        keys += [(Secret(v), pool_var) for v in _split(get_env(pool_var))]
    return _unique(keys), [var] + ([pool_var] if pool_var else []), False


def _checked(profile_name: str, found: list[_Found]) -> list[Secret]:
    """The keys, or ConfigError for one that no HTTP header can carry (this frame holds
    only wrapped keys, so even a verbose traceback of the error shows none)."""
    for key, origin in found:
        problem = key.problem()
        if problem is not None:
            where = origin if origin.isupper() else f"`{origin}:` of profile {profile_name!r}"
            raise ConfigError(
                f"The API key in {where} has {problem}: a key is printable ASCII, "
                f"so it cannot be sent. Copy it into {origin} again (a stray newline, "
                "quote or invisible character came along from where it was copied)."
            )
    return [key for key, _ in found]


def resolve_secrets(
    profile_name: str, profile: Mapping[str, Any], default_env: str | None
) -> list[Secret]:
    """:func:`resolve_api_keys`, each key wrapped in a :class:`~llmnb.types.Secret`."""
    return _checked(profile_name, _find_keys(profile, default_env)[0])


def resolve_api_keys(
    profile_name: str, profile: Mapping[str, Any], default_env: str | None
) -> list[str]:
    """Keys for a profile: ``api_keys`` > ``api_key`` > ``$<api_key_env or default_env>``
    plus the pool ``$<VAR>S=k1,k2``; ``${VAR}`` in the profile is expanded. May be empty.
    A key with a control or non-ASCII character is a ConfigError naming where it is."""
    return [key.reveal() for key in resolve_secrets(profile_name, profile, default_env)]


def resolve_headers(profile_name: str, profile: Mapping[str, Any]) -> dict[str, str | Secret]:
    """The profile's ``headers:``, ``${VAR}`` read from ``.env`` / the environment now.

    A value read through ``${VAR}`` or under a name that says it is a secret
    (``Authorization``, ``Helicone-Auth``, ``x-portkey-api-key``…) comes back as a
    :class:`~llmnb.types.Secret`, which registers it for scrubbing. A value no HTTP header
    can carry, or an unset variable, is a ConfigError naming the header.
    """
    items = tuple((str(k), str(v)) for k, v in (profile.get("headers") or {}).items())
    if not any("${" in v for _, v in items):  # nothing read from the environment
        return dict(_literal_headers(profile_name, items))
    return _headers(profile_name, items)


@functools.lru_cache(maxsize=256)  # checked once per profile, not once per call
def _literal_headers(
    profile_name: str, items: tuple[tuple[str, str], ...]
) -> dict[str, str | Secret]:
    return _headers(profile_name, items)


def _headers(profile_name: str, items: tuple[tuple[str, str], ...]) -> dict[str, str | Secret]:
    out: dict[str, str | Secret] = {}
    for name, raw in items:
        refs = _VAR_REF.findall(str(raw))
        missing: list[str] = []
        value = _expand(raw, missing) if refs else Secret(str(raw))
        where = f"headers.{name} of profile {profile_name!r}"
        if missing:
            raise MissingAPIKeyError(
                f"{where} reads ${{{missing[0]}}}, which is not set. Set it in .env or the "
                f"environment (`%env {missing[0]}=...`)."
            )
        if value is None:
            out[str(name)] = ""
            continue
        problem = value.problem()
        if problem is not None:
            source = f" (from {', '.join(refs)})" if refs else ""
            raise ConfigError(
                f"The value of {where}{source} has {problem}; header values are printable "
                "ASCII. Write it again without it."
            )
        secret = bool(refs) or is_sensitive_key(name)
        out[str(name)] = value if secret else value.reveal()
    return out


def require_api_key(profile_name: str, profile: Mapping[str, Any], default_env: str | None) -> str:
    """The first key of :func:`resolve_api_keys`, or MissingAPIKeyError naming the variable."""
    found, variables, from_profile = _find_keys(profile, default_env)
    if found:
        return _checked(profile_name, found)[0].reveal()
    settings = load_settings()
    where = f"llm.providers.{profile_name} in {settings.source}"
    if settings.env_path is not None:
        env_file = display_path(settings.env_path)
    elif settings.path is not None:
        suggested = display_path(_env.project_root(settings.path) / ".env")
        env_file = f"{suggested} (next to the config/ folder)"
    else:
        env_file = ".env in the working directory"
    if not variables:
        raise MissingAPIKeyError(
            f"No API key for profile {profile_name!r}: add `api_key_env: <VARIABLE>` or "
            f"`api_key:` under {where}."
        )
    if from_profile:
        refs = ", ".join(variables)
        raise MissingAPIKeyError(
            f"Profile {profile_name!r} reads its key from ${{{variables[0]}}} ({where}), but "
            f"{refs} is not set. Set it in {env_file} or in the environment "
            f"(`%env {variables[0]}=...`)."
        )
    pool = f" (or {variables[1]}=k1,k2 for a key pool)" if len(variables) > 1 else ""
    if profile_name in settings.llm.providers:
        other = f"put `api_key:` under {where}"
    else:  # a provider type used by name: there is no profile to put a key in
        other = f"add a profile with `api_key:` under llm.providers in {settings.source}"
    raise MissingAPIKeyError(
        f"No API key for profile {profile_name!r}: set {variables[0]}{pool} in {env_file} or "
        f"in the environment (`%env {variables[0]}=...`), or {other}."
    )
