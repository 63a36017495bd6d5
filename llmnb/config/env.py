"""Finding files and reading ``.env`` without touching ``os.environ``.

Private helper of ``llmnb.config``. Files are watched by ``(mtime_ns, size)`` so that an
edited ``.env`` or ``settings.yaml`` takes effect in a running kernel at the cost of one
``stat`` per look-up.
"""

from __future__ import annotations

import errno
import os
import stat as _stat
from pathlib import Path

from dotenv import dotenv_values

from llmnb.errors import ConfigError

__all__ = [
    "Stamp",
    "find_env_path",
    "find_upwards",
    "is_regular_file",
    "project_root",
    "read_dotenv",
    "stamp",
]

Stamp = tuple[int, int]

ENV_FILE_VAR = "LLMNB_ENV_FILE"
_ENV_FIX = f"Fix or remove it (llmnb reads API keys from it), or set {ENV_FILE_VAR}."

# resolved path -> (stamp when read, values)
_dotenv_cache: dict[Path, tuple[Stamp, dict[str, str]]] = {}


def stamp(path: Path) -> Stamp | None:
    """``(mtime_ns, size)`` of ``path``, or None when it does not exist."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def is_regular_file(path: Path, subject: str, fix: str, folders_ok: bool = False) -> bool:
    """True for a file, False when nothing is at ``path``; ConfigError for something that
    is there but cannot be read as one (a folder, a dangling symlink, a symlink loop),
    which would otherwise be skipped and let another file (or the demo) answer.

    ``subject`` names the path in the message and ``fix`` says what to do; with
    ``folders_ok`` a folder counts as nothing (a virtualenv named ``.env``).
    """
    try:
        st = os.lstat(path)  # one syscall in the common cases: nothing there, or a file
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise ConfigError(f"{subject} cannot be read ({exc.strerror}). {fix}") from None
    if _stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            target = os.readlink(path)
            raise ConfigError(
                f"{subject} is a symbolic link to {target!r}, which does not exist. {fix}"
            ) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ConfigError(
                    f"{subject} is a symbolic link that leads back to itself (a loop). {fix}"
                ) from None
            raise ConfigError(f"{subject} cannot be read ({exc.strerror}). {fix}") from None
    if _stat.S_ISREG(st.st_mode):
        return True
    if _stat.S_ISDIR(st.st_mode):
        if folders_ok:
            return False
        raise ConfigError(f"{subject} is a folder, not a file. {fix}")
    raise ConfigError(f"{subject} is not a regular file (a device, pipe or socket). {fix}")


def find_upwards(relative: str, start: Path, fix: str, folders_ok: bool = False) -> Path | None:
    """The first ``<folder>/<relative>`` that is a file, from ``start`` up to the root;
    see :func:`is_regular_file` for what is there but is no file."""
    for folder in (start, *start.parents):
        candidate = folder / relative
        if is_regular_file(candidate, str(candidate), fix, folders_ok):
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
        fix = f"Fix the path, or unset {ENV_FILE_VAR} to use the .env next to config/."
        if not is_regular_file(path, f"{ENV_FILE_VAR} is set to {explicit!r}, which", fix):
            raise ConfigError(
                f"{ENV_FILE_VAR} is set to {explicit!r}, but there is no such file. "
                f"Create it, or unset {ENV_FILE_VAR} to use the .env next to config/."
            )
        return path
    # A folder named .env is skipped: it is usually a virtualenv, not a dotenv file.
    if settings_path is not None:
        candidate = project_root(settings_path) / ".env"
        if is_regular_file(candidate, str(candidate), _ENV_FIX, folders_ok=True):
            return candidate
    return find_upwards(".env", Path.cwd(), _ENV_FIX, folders_ok=True)


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
