"""Creating llmnb's own folders: what llmnb creates under ``.llmnb/`` stays out of git.

Private helper of ``llmnb.config``, used by everything that writes a file of its own
(the usage database, the response cache, ``state.json``, CLI traces). Those files hold
prompts, answers, costs and personal choices; a ``git add .`` should not pick them up.

Example::

    make_folder(Path(".llmnb/traces"))   # creates .llmnb/ with a .gitignore of `*`
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PRIVATE_FOLDER", "make_folder"]

PRIVATE_FOLDER = ".llmnb"


def make_folder(folder: Path) -> None:
    """Create ``folder`` and its parents. When the first folder created is ``.llmnb`` or
    lies inside one, it gets a ``.gitignore`` of ``*`` (a folder that already existed is
    the user's: left as it is). OSError as from ``mkdir``."""
    if folder.is_dir():  # the common case: one stat
        return
    top = folder.absolute()
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    folder.mkdir(parents=True, exist_ok=True)
    if PRIVATE_FOLDER in top.parts:
        ignore = top / ".gitignore"
        if not ignore.exists():  # two kernels may race here; both write the same text
            ignore.write_text("*\n", encoding="utf-8")
