"""Which cassette is in use, and how: the session's choice, the environment, the settings.

Order (first found wins): ``llmnb.replay.use(...)`` / ``%llm replay …`` in this session ›
``$LLMNB_REPLAY`` (+ ``$LLMNB_REPLAY_MODE``, default ``replay``) › the settings'
``replay: {cassette, mode}``. ``{notebook}`` in a cassette path is the notebook's name
(``$LLMNB_NOTEBOOK``, else Jupyter's session name), so one setting serves a folder of
notebooks::

    LLMNB_REPLAY=notebooks/cassettes/{notebook}.jsonl LLMNB_REPLAY_MODE=replay pytest --nbval
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from llmnb import config
from llmnb.config import env as _env
from llmnb.errors import ReplayError
from llmnb.replay.cassette import Cassette

__all__ = [
    "MODES",
    "REPLAY_MODE_VAR",
    "REPLAY_VAR",
    "ReplaySession",
    "configured",
    "current",
    "in_force",
    "reset",
    "use",
]

REPLAY_VAR = "LLMNB_REPLAY"
REPLAY_MODE_VAR = "LLMNB_REPLAY_MODE"
MODES = ("off", "record", "replay", "auto")

_lock = threading.Lock()
_explicit: ReplaySession | None = None  # set by use(); a session with mode "off" wins too
_configured: tuple[tuple[object, ...], ReplaySession | None] | None = None


class ReplaySession:
    """A mode and the cassette it reads or writes."""

    def __init__(self, mode: str, cassette: Cassette | None) -> None:
        if mode not in MODES:
            raise ReplayError(f"replay mode {mode!r} is not one of {', '.join(MODES)}")
        if mode != "off" and cassette is None:
            raise ReplayError(
                f"replay mode {mode!r} needs a cassette: `%llm replay {mode} PATH`, "
                f"${REPLAY_VAR}=PATH, or replay: {{cassette: PATH}} in the settings"
            )
        self.mode = mode
        self.cassette = cassette
        if cassette is not None and self.recording:
            cassette.check_writable()

    @property
    def replaying(self) -> bool:
        return self.mode in ("replay", "auto")

    @property
    def recording(self) -> bool:
        return self.mode in ("record", "auto")

    def __repr__(self) -> str:
        return f"ReplaySession(mode={self.mode!r}, cassette={self.cassette!r})"


def notebook_name() -> str | None:
    for var in ("LLMNB_NOTEBOOK", "JPY_SESSION_NAME"):
        value = os.environ.get(var)
        if value:
            return Path(value).stem
    return None


def _resolve(path: str, root: Path | None) -> Path:
    name = notebook_name()
    if "{notebook}" in path:
        if not name:
            raise ReplayError(
                f"replay cassette {path!r} names {{notebook}}, but the notebook's name is "
                "unknown here; set LLMNB_NOTEBOOK=name (nbval and Binder set it by the "
                "notebook's file name) or give a plain path"
            )
        path = path.replace("{notebook}", name)
    p = Path(path).expanduser()
    if not p.is_absolute() and root is not None:
        p = root / p
    return p


def use(
    mode: str, cassette: str | os.PathLike[str] | None = None, *, force: bool = False
) -> ReplaySession:
    """Choose replay for this session: ``use("replay", "nb.jsonl")``, ``use("off")``.

    Example::

        llmnb.replay.use("record", "cassettes/report.jsonl")   # with real keys, once
        llmnb.replay.use("replay", "cassettes/report.jsonl")   # later: no key, no network
    """
    global _explicit
    tape = None
    if cassette is not None:
        tape = Cassette(_resolve(os.fspath(cassette), None), notebook=notebook_name(), force=force)
    session = ReplaySession(mode, tape)
    with _lock:
        _explicit = session
    return session


def reset() -> None:
    """Forget the session's choice: the environment and settings decide again."""
    global _explicit, _configured
    with _lock:
        _explicit = None
        _configured = None


def current() -> ReplaySession | None:
    """The replay session in force for new clients, or None when replay is off."""
    return in_force(configured())


def in_force(default: ReplaySession | None) -> ReplaySession | None:
    """The session's choice if one was made (``use``), else ``default``: what a client
    resolved from the environment and settings when it was built. Called per attempt,
    so it reads one global and nothing else."""
    explicit = _explicit
    if explicit is not None:
        return None if explicit.mode == "off" else explicit
    return default


def configured() -> ReplaySession | None:
    """Replay from ``$LLMNB_REPLAY`` / ``$LLMNB_REPLAY_MODE`` or the settings' ``replay:``
    (read when a client is built; a damaged cassette raises :class:`ReplayError` then)."""
    global _configured
    env_path = os.environ.get(REPLAY_VAR)
    env_mode = os.environ.get(REPLAY_MODE_VAR)
    settings = config.load_settings()
    stamp = (env_path, env_mode, id(settings), notebook_name())
    cached = _configured
    if cached is not None and cached[0] == stamp:
        return cached[1]
    with _lock:
        session = _build(env_path, env_mode, settings)
        _configured = (stamp, session)
    return session


def _build(
    env_path: str | None, env_mode: str | None, settings: config.Settings
) -> ReplaySession | None:
    root = _env.project_root(settings.path) if settings.path is not None else Path.cwd()
    section = settings.replay
    if env_path or env_mode:
        mode = (env_mode or "replay").strip().lower()
        if mode not in MODES:
            raise ReplayError(f"{REPLAY_MODE_VAR}={env_mode!r} is not one of {', '.join(MODES)}")
        path = env_path or section.cassette
        where = REPLAY_VAR if env_path else "replay.cassette in the settings"
        force = section.force
    else:
        mode, path, force = section.mode, section.cassette, section.force
        where = f"replay.cassette in {settings.path}"
    if mode == "off":
        return None
    if not path:
        raise ReplayError(
            f"replay mode {mode!r} is set ({REPLAY_MODE_VAR} or replay.mode) but no cassette "
            f"is given: set {REPLAY_VAR}=PATH or replay: {{cassette: PATH}}"
        )
    try:
        tape = Cassette(_resolve(path, root), notebook=notebook_name(), force=force)
    except ReplayError as exc:
        raise ReplayError(f"{exc} (from {where})") from None
    return ReplaySession(mode, tape)
