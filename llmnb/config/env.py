"""Finding files and reading ``.env`` without touching ``os.environ``.

Private helper of ``llmnb.config``. Files are watched by ``(mtime_ns, size)`` so that an
edited ``.env`` or ``settings.yaml`` takes effect in a running kernel at the cost of one
``stat`` per look-up.
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

from llmnb.errors import ConfigError

__all__ = ["Stamp", "find_env_path", "find_upwards", "project_root", "read_dotenv", "stamp"]

Stamp = tuple[int, int]

ENV_FILE_VAR = "LLMNB_ENV_FILE"

# resolved path -> (stamp when read, values)
_dotenv_cache: dict[Path, tuple[Stamp, dict[str, str]]] = {}


def stamp(path: Path) -> Stamp | None:
    """``(mtime_ns, size)`` of ``path``, or None when it does not exist."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def find_upwards(relative: str, start: Path) -> Path | None:
    """The first ``<folder>/<relative>`` that is a file, from ``start`` up to the root."""
    for folder in (start, *start.parents):
        candidate = folder / relative
        if candidate.is_file():
            return candidate
    return None


def project_root(settings_path: Path) -> Path:
    """The folder holding ``config/`` for ``config/settings.yaml``, else the file's folder."""
    folder = settings_path.absolute().parent
    return folder.parent if folder.name == "config" else folder


def find_env_path(settings_path: Path | None) -> Path | None:
    """``$LLMNB_ENV_FILE`` > ``.env`` in the project root > ``.env`` in cwd or its parents."""
    explicit = os.environ.get(ENV_FILE_VAR)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"{ENV_FILE_VAR} is set to {explicit!r}, but there is no such file. "
                f"Create it, or unset {ENV_FILE_VAR} to use the .env next to config/."
            )
        return path
    if settings_path is not None:
        candidate = project_root(settings_path) / ".env"
        if candidate.is_file():
            return candidate
    return find_upwards(".env", Path.cwd())


def read_dotenv(path: Path) -> dict[str, str]:
    """The ``KEY=value`` pairs of a ``.env`` file, re-read only when it changed."""
    key = path.absolute()
    current = stamp(key)
    if current is None:
        return {}
    cached = _dotenv_cache.get(key)
    if cached is not None and cached[0] == current:
        return cached[1]
    from io import StringIO

    from llmnb.config.schema import decode_utf8, display_path

    try:
        raw = key.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read {display_path(key)}: {exc.strerror}") from None
    # Decoded here so that a bad byte is reported by file and line, never quoted (it
    # may sit inside a key).
    text = decode_utf8(raw, display_path(key), ".env file")
    # dotenv_values, not load_dotenv: llmnb never writes into os.environ.
    values = {k: v for k, v in dotenv_values(stream=StringIO(text)).items() if v is not None}
    _dotenv_cache[key] = (current, values)
    return values
