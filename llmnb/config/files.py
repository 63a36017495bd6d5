"""Finding and loading settings.yaml (cached by file stamp) and reading variables (env > .env)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import llmnb.config.env as _env
from llmnb.config.models import Settings
from llmnb.config.schema import parse_settings
from llmnb.errors import ConfigError

__all__ = ["SETTINGS_VAR", "find_settings_path", "get_env", "load_settings"]

SETTINGS_VAR = "LLMNB_SETTINGS"
_FIX = f"Make it the settings file (or remove it), or set {SETTINGS_VAR} to the file to use."
_DEFAULT_DATA: dict[str, Any] = {
    "llm": {
        "active_provider": "demo",
        "providers": {"demo": {"type": "mock", "model": "mock-1"}},
    }
}

# absolute settings path -> (stamp, .env path, Settings); stat-only hits keep this cheap
# enough to run on every client creation.
_cache: dict[Path, tuple[_env.Stamp, Path | None, Settings]] = {}
_default: tuple[Path | None, Settings] | None = None


def find_settings_path() -> Path | None:
    """``$LLMNB_SETTINGS`` > ``config/settings.yaml`` in cwd or its parents > None."""
    explicit = os.environ.get(SETTINGS_VAR)
    if explicit:
        path = Path(explicit).expanduser()
        fix = f"Fix the path, or unset {SETTINGS_VAR} to use config/settings.yaml."
        if not _env.is_regular_file(path, f"{SETTINGS_VAR} is set to {explicit!r}, which", fix):
            raise ConfigError(
                f"{SETTINGS_VAR} is set to {explicit!r}, but there is no such file. "
                f"Fix the path, or unset {SETTINGS_VAR} to use config/settings.yaml."
            )
        return path
    # Something there that is no file (a folder, a broken link) is an error, not a
    # reason to look further up or fall back to the demo profile.
    return _env.find_upwards("config/settings.yaml", Path.cwd(), _FIX)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Validated settings; re-read only when the file's ``(mtime_ns, size)`` changed."""
    global _default
    found = find_settings_path() if path is None else Path(path)
    env_path = _env.find_env_path(found)
    if found is None:
        if _default is None or _default[0] != env_path:
            settings = Settings.model_validate(_DEFAULT_DATA)
            settings._env_path = env_path
            _default = (env_path, settings)
        return _default[1]
    key = found.absolute()
    current = None
    if _env.is_regular_file(key, f"Settings file {found}", _FIX):
        current = _env.stamp(key)
    if current is None:
        raise ConfigError(f"Settings file {found} not found. Check the path.")
    cached = _cache.get(key)
    if cached is not None and cached[0] == current and cached[1] == env_path:
        return cached[2]
    settings = parse_settings(key)
    settings._env_path = env_path
    _cache[key] = (current, env_path, settings)
    return settings


def get_env(name: str) -> str | None:
    """The environment variable ``name``, else its ``.env`` value, else None."""
    value = os.environ.get(name)
    if value is not None:
        return value
    env_path = _env.find_env_path(find_settings_path())
    return _env.read_dotenv(env_path).get(name) if env_path else None
