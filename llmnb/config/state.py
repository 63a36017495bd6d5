"""``.llmnb/state.json``: choices llmnb saves for the user (the picker's "Save as default").

Private helper of ``llmnb.config``. A small JSON file of its own, next to the project's
``config/`` folder (the working folder without a settings file), so that saving a choice
never rewrites the user's ``settings.yaml`` and its comments. Read through a
``(mtime_ns, size)`` cache like the other files; written atomically (temp file + rename)
so that two kernels saving at once leave one whole file, never half of each.

Format::

    {"version": 1, "active_provider": "openrouter", "model": "openai/gpt-5.2"}
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import llmnb.config.env as _env
from llmnb.config.folders import make_folder
from llmnb.errors import ConfigError

__all__ = ["STATE_VERSION", "read_state", "state_path", "write_state"]

STATE_VERSION = 1

_cache: dict[Path, tuple[_env.Stamp, dict[str, Any]]] = {}


def state_path(settings_path: Path | None) -> Path:
    """Where the state file of the project using ``settings_path`` lives."""
    root = _env.project_root(settings_path) if settings_path is not None else Path.cwd()
    return root.absolute() / ".llmnb" / "state.json"


def read_state(path: Path) -> dict[str, Any]:
    """The saved state; ``{}`` when there is none. ConfigError for a damaged file."""
    current = _env.stamp(path)
    if current is None:
        return {}
    cached = _cache.get(path)
    if cached is not None and cached[0] == current:
        return cached[1]
    shown = _shown(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{shown} cannot be read ({exc}). It holds the default saved by the provider "
            "picker: delete the file (and save the default again) to fix this."
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{shown} should hold a JSON object such as "
            '{"active_provider": "demo"}; delete the file to fix this.'
        )
    _cache[path] = (current, data)
    return data


def write_state(path: Path, **updates: Any) -> None:
    """Merge ``updates`` into the state (a ``None`` value removes the key) and save."""
    data = {k: v for k, v in read_state(path).items() if k not in updates}
    data.update({k: v for k, v in updates.items() if v is not None})
    data["version"] = STATE_VERSION
    try:
        make_folder(path.parent)  # saved choices are personal: .llmnb/ stays out of git
        fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(
            f"Cannot save the default to {_shown(path)} ({exc.strerror or exc}). Check that "
            "the folder is writable; LLM_ACTIVE_PROVIDER or llm.active_provider in "
            "settings.yaml also set a default."
        ) from None
    _cache.pop(path, None)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
