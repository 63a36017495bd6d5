"""Usage rows written before the process stops: on SIGTERM and SIGHUP, not only at exit.

Private to the queued stores (:mod:`llmnb.usage._queued`). ``atexit`` does not run when
a signal ends the process (a ``kill``, a closed terminal, a job scheduler's stop), so
:func:`install` sets a handler for SIGTERM and SIGHUP that writes every live store's
queued rows (bounded by :data:`SIGNAL_FLUSH_S`) and then does what was there before:

- a Python handler installed earlier is called (it decides whether the process ends);
- the default action is re-raised: the handler is reset and the signal sent again, so
  the process ends with the signal's usual status (``-15`` for SIGTERM);
- an ignored signal (``nohup``'s SIGHUP) stays ignored, and a handler set outside
  Python (``getsignal()`` is None) is left alone: neither can be chained.

Handlers can only be set from the main thread; :func:`install` is a no-op elsewhere and
is tried again each time a store starts its writer.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import weakref
from types import FrameType
from typing import Any, Protocol

__all__ = ["SIGNAL_FLUSH_S", "flush_all", "install", "live", "register"]

#: Seconds a signal handler waits, at most, for all stores to write their rows.
SIGNAL_FLUSH_S = 3.0

_SIGNALS: tuple[int, ...] = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s
)


class _Flushable(Protocol):
    def _flush_now(self, timeout: float) -> bool: ...


_live: weakref.WeakSet[Any] = weakref.WeakSet()
_previous: dict[int, Any] = {}  # signal -> the handler ours replaced
_decided: set[int] = set()  # signals looked at (installed, or left alone for good)


def register(store: _Flushable) -> None:
    """Have ``store`` written out when a signal ends the process."""
    _live.add(store)


def live() -> list[Any]:
    """The stores registered so far (and not yet collected)."""
    return list(_live)


def flush_all(timeout: float) -> None:
    """Write every live store's queued rows, ``timeout`` seconds at most for all."""
    deadline = time.monotonic() + timeout
    for store in list(_live):
        with contextlib.suppress(Exception):  # one broken store must not keep the others
            store._flush_now(max(0.0, deadline - time.monotonic()))


def install() -> None:
    """Set the SIGTERM/SIGHUP handlers once (main thread only; see the module docs)."""
    if len(_decided) == len(_SIGNALS) or threading.current_thread() is not threading.main_thread():
        return
    for signum in _SIGNALS:
        if signum in _decided:
            continue
        _decided.add(signum)
        try:
            previous = signal.getsignal(signum)
            if previous is None or previous == signal.SIG_IGN or previous is _on_signal:
                continue
            signal.signal(signum, _on_signal)
        except (ValueError, OSError):  # not the main interpreter, or not allowed here
            continue
        _previous[signum] = previous


def _on_signal(signum: int, frame: FrameType | None) -> None:
    with contextlib.suppress(Exception):
        flush_all(SIGNAL_FLUSH_S)
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    # The default action: end the process as the signal would have, status and all.
    # raise() delivers to this thread before it returns.
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
    raise SystemExit(128 + signum)  # not reached unless the signal is blocked here
