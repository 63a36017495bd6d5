"""A profile's API keys (api_keys > api_key > $VAR + $VARS pool), or an error naming one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from llmnb.config import env as _env
from llmnb.config.files import get_env, load_settings
from llmnb.config.models import display_path
from llmnb.errors import MissingAPIKeyError

__all__ = ["require_api_key", "resolve_api_keys"]

_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: Any, missing: list[str]) -> str | None:
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    unresolved = [v for v in _VAR_REF.findall(text) if not get_env(v)]
    if unresolved:
        missing.extend(unresolved)
        return None
    return _VAR_REF.sub(lambda m: get_env(m.group(1)) or "", text).strip() or None


def _split_pool(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _find_keys(
    profile: Mapping[str, Any], default_env: str | None
) -> tuple[list[str], list[str], bool]:
    """(keys, variables a user could set, whether those came from ${VAR} in the profile)."""
    missing: list[str] = []
    pool = profile.get("api_keys")
    single = profile.get("api_key")
    if pool or single:
        items = _split_pool(pool) if isinstance(pool, str) else list(pool or [single])
        found = [key for key in (_expand(item, missing) for item in items) if key]
        return list(dict.fromkeys(found)), missing, True
    var = profile.get("api_key_env") or default_env
    if not var:
        return [], [], False
    keys = [v.strip()] if (v := get_env(var)) and v.strip() else []
    pool_var = f"{var}S" if var.endswith("_KEY") else None
    if pool_var:
        keys += _split_pool(get_env(pool_var))
    return list(dict.fromkeys(keys)), [var] + ([pool_var] if pool_var else []), False


def resolve_api_keys(
    profile_name: str, profile: Mapping[str, Any], default_env: str | None
) -> list[str]:
    """Keys for a profile: ``api_keys`` > ``api_key`` > ``$<api_key_env or default_env>``
    plus the pool ``$<VAR>S=k1,k2``; ``${VAR}`` in the profile is expanded. May be empty."""
    return _find_keys(profile, default_env)[0]


def require_api_key(profile_name: str, profile: Mapping[str, Any], default_env: str | None) -> str:
    """The first key of :func:`resolve_api_keys`, or MissingAPIKeyError naming the variable."""
    keys, variables, from_profile = _find_keys(profile, default_env)
    if keys:
        return keys[0]
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
    raise MissingAPIKeyError(
        f"No API key for profile {profile_name!r}: set {variables[0]}{pool} in {env_file} or "
        f"in the environment (`%env {variables[0]}=...`), or put `api_key:` under {where}."
    )
