"""Which store the default tracker uses: ``usage: {store: ...}`` in the settings.

Example::

    from llmnb.usage.stores import open_store
    open_store("sqlite:///.llmnb/usage.db", root=Path("/my/project"))  # -> SQLiteStore
    open_store("memory")                                                 # -> MemoryStore

Store addresses:

- ``sqlite:///relative/path.db`` — relative to the project root (the folder holding
  ``config/``; the working folder when there is no settings file). The default is
  ``sqlite:///.llmnb/usage.db``.
- ``sqlite:////absolute/path.db`` (four slashes) or ``sqlite:///~/usage.db``.
- ``memory`` — rows are kept in this process only.
- ``postgresql+psycopg://user@host:5432/db`` — a team's PostgreSQL database
  (:mod:`llmnb.usage.postgres_store`; needs ``pip install 'llmnb[team]'``).

``$LLMNB_USAGE_STORE`` overrides the settings (handy for CI: ``LLMNB_USAGE_STORE=memory``).
This module imports ``llmnb.config`` only inside :func:`configured_store`, so the usage
package stays importable without the settings machinery.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmnb.errors import ConfigError
from llmnb.usage.memory import UsageStoreError, UsageStoreWarning

if TYPE_CHECKING:
    from llmnb.usage.memory import UsageStore

__all__ = [
    "STORE_VAR",
    "UsageStoreError",
    "UsageStoreWarning",
    "configured_store",
    "describe_store",
    "open_store",
    "store_path",
]

STORE_VAR = "LLMNB_USAGE_STORE"


def store_path(spec: str, root: Path | None = None) -> Path | None:
    """The file a ``sqlite:///…`` address points at (absolute), or None for ``memory``
    and database servers (``postgresql…``).

    Raises ``ValueError`` saying which forms are accepted for anything else.
    """
    from llmnb.config.schema import parse_store_spec

    kind, where = parse_store_spec(spec)
    if kind != "sqlite" or where is None:  # memory, or a database server
        return None
    path = Path(where).expanduser()
    if not path.is_absolute():
        path = (root if root is not None else Path.cwd()) / path
    return path.absolute()


def open_store(spec: str, root: Path | None = None, **options: Any) -> UsageStore:
    """A store for the address ``spec``; ``options`` go to :class:`SQLiteStore` (or
    :class:`~llmnb.usage.postgres_store.PostgresStore` for a ``postgresql…`` URL)."""
    from llmnb.config.schema import parse_store_spec
    from llmnb.usage.memory import MemoryStore

    if parse_store_spec(spec)[0] == "postgresql":
        from llmnb.usage.postgres_store import PostgresStore

        return PostgresStore(spec, **options)
    path = store_path(spec, root)
    if path is None:
        return MemoryStore()
    from llmnb.usage.sqlite_store import SQLiteStore

    return SQLiteStore(path, **options)


def configured_store() -> UsageStore:
    """The store named by ``$LLMNB_USAGE_STORE``, else by ``usage.store`` in the settings.

    Raises ConfigError naming the variable or the settings file for a malformed address.
    """
    from llmnb import config
    from llmnb.config import env as _env

    settings = config.load_settings()
    root = _env.project_root(settings.path) if settings.path is not None else Path.cwd()
    explicit = os.environ.get(STORE_VAR, "").strip()
    spec = explicit or settings.usage.store
    try:
        return open_store(spec, root)
    except ValueError as exc:
        where = STORE_VAR if explicit else f"usage.store in {settings.source}"
        raise ConfigError(f"{where}: {exc}") from None


def describe_store(store: object) -> str:
    """One line about where rows go, for dashboards and ``llmnb doctor``."""
    describe = getattr(store, "describe", None)
    if callable(describe):
        return str(describe())
    if type(store).__name__ == "MemoryStore":
        return "in memory only (this kernel); set usage.store to keep history"
    return type(store).__name__
