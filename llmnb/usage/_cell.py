"""The notebook cell number a usage row carries, looked up once per cell execution.

Asking IPython for ``In[n]`` costs about 4 µs (``get_ipython()`` and the display hook's
``prompt_count`` property), as much as the rest of ``record()``. The answer only changes
when the shell starts a new execution, so it is kept until the shell's ``pre_execute``
event (fired after IPython bumps ``execution_count``, before the cell's code runs) and
only while that shell is still the current ``InteractiveShell``. IPython is only asked,
never imported: a plain script stays light.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["forget_cell", "notebook_cell"]

# [InteractiveShell class, the shell, its cell number]; class None = nothing cached.
_memo: list[Any] = [None, None, None]
_generation = [0]  # bumped by forget_cell: a lookup that raced with it is not kept


def notebook_cell() -> int | None:
    """``In[n]`` of the cell running now in the current IPython shell, else None."""
    cls, shell, number = _memo
    if cls is not None and cls._instance is shell:
        return number  # type: ignore[no-any-return]
    return _lookup()


def forget_cell(*_: Any) -> None:
    """Drop the cached number (the shell's ``pre_execute`` callback)."""
    _generation[0] += 1
    _memo[0] = None


def _lookup() -> int | None:
    generation = _generation[0]
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    if get_ipython is None:
        return None
    try:
        shell = get_ipython()
    except Exception:
        return None
    # The In[n] number: IPython 9 bumps execution_count *before* running a cell, 8.x
    # after; the display hook's prompt_count is n in both.
    count = getattr(getattr(shell, "displayhook", None), "prompt_count", None)
    if count is None:
        count = getattr(shell, "execution_count", None)
    number = count if isinstance(count, int) else None
    cls = _shell_class(shell)
    if cls is not None and _watch(shell) and _generation[0] == generation:
        _memo[1], _memo[2] = shell, number
        _memo[0] = cls  # last: a reader sees the class only with shell and number set
    return number


def _shell_class(shell: Any) -> Any:
    """IPython's ``InteractiveShell`` if ``shell`` is its current instance, else None
    (a stand-in shell is asked every time)."""
    module = sys.modules.get("IPython.core.interactiveshell")
    cls = getattr(module, "InteractiveShell", None)
    if cls is None or shell is None or getattr(cls, "_instance", None) is not shell:
        return None
    return cls


def _watch(shell: Any) -> bool:
    """Register :func:`forget_cell` on the shell's ``pre_execute`` event (once)."""
    try:
        callbacks = shell.events.callbacks["pre_execute"]
        if forget_cell not in callbacks:
            shell.events.register("pre_execute", forget_cell)
    except Exception:  # not a shell with IPython's event manager: never cache
        return False
    return True
