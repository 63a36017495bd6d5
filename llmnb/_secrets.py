"""Secrets llmnb knows: :class:`Secret` (a key, shown masked) and the registry that
``scrub`` reads, so every message, row and repr can be cleaned of every known secret.

The bottom of the package: it imports nothing from llmnb, so the error tree and the value
types can both use it (``llmnb.types`` re-exports ``Secret``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["Secret", "known_secrets", "scrub_secrets"]

# --------------------------------------------------------------------------- secrets

# Shorter values would garble ordinary text when scrubbed ("[redacted]" for every "abc").
_SCRUB_MIN = 6
_registry_lock = threading.Lock()
_registered: set[str] = set()
# Every registered value and its escaped spellings, longest first: read without the lock.
_needles: tuple[str, ...] = ()


def _spellings(value: str) -> set[str]:
    """``value`` as it may appear in text: as is, and escaped the ways Python reprs,
    bytes reprs, JSON and URLs write it (an exception quoting ``b'Bearer sk-\\n…'``)."""
    import json
    import urllib.parse

    out = {
        value,
        repr(value)[1:-1],
        repr(value.encode("utf-8", "surrogatepass"))[2:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        urllib.parse.quote(value, safe=""),
    }
    return {s for s in out if len(s) >= _SCRUB_MIN}


def _register(value: str) -> None:
    global _needles
    if len(value) < _SCRUB_MIN or value in _registered:
        return
    with _registry_lock:
        if value in _registered:
            return
        _registered.add(value)
        found = set(_needles) | _spellings(value)
        _needles = tuple(sorted(found, key=len, reverse=True))


def known_secrets() -> tuple[str, ...]:
    """Every secret value llmnb has seen (and its escaped spellings), longest first."""
    return _needles


def scrub_secrets(text: str, extra: Iterable[str | Secret] = ()) -> str:
    """``text`` with every known secret (and each of ``extra``) replaced by ``[redacted]``."""
    needles = _needles
    more = [s.reveal() if isinstance(s, Secret) else s for s in extra]
    more = [s for s in more if s and len(s) >= _SCRUB_MIN and s not in _registered]
    if more:
        needles = tuple(sorted({*needles, *more}, key=len, reverse=True))
    for needle in needles:
        if needle in text:
            text = text.replace(needle, "[redacted]")
    return text


class Secret:
    """A key or other secret value. Its ``repr`` and ``str`` show ``Secret('sk-…a1b2')``;
    only :meth:`reveal` gives the value, at the moment it goes on the wire.

    Making one registers the value, so :func:`scrub_secrets` (used for every error
    message, usage row and log line) removes it wherever a server or library quotes it.
    Locals and objects that hold keys hold them as ``Secret``, so a verbose traceback,
    ``vars()`` or a debugger shows only the masked form. Equal and hashed by value.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        self._value: str = value._value if isinstance(value, Secret) else str(value)
        _register(self._value)

    def reveal(self) -> str:
        """The secret itself: for the request that sends it, nothing else."""
        return self._value

    def masked(self) -> str:
        """``sk-…a1b2`` for a 16+ character value (more than half stays hidden), else ``…``."""
        v = self._value
        return f"{v[:3]}…{v[-4:]}" if len(v) >= 16 and v.isascii() and v.isprintable() else "…"

    def problem(self) -> str | None:
        """Why this cannot be sent in an HTTP header (a control or non-ASCII character
        — a stray newline from ``.env``, a zero-width space from a web page), or None.
        Says which character and where, never the value."""
        if self._value.isascii() and self._value.isprintable():
            return None  # the common case, checked in C on every call
        for i, ch in enumerate(self._value):
            if not (" " <= ch <= "~"):
                kind = "a non-ASCII" if ord(ch) > 0x7F else "a control"
                return f"{kind} character (U+{ord(ch):04X}) at position {i + 1}"
        return None

    def __repr__(self) -> str:
        return f"Secret({self.masked()!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        # A pickle (a cache file, a worker process) would carry the value in clear.
        raise TypeError("a Secret is not pickled; pass the profile name and read the key there")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: Any) -> Secret:
        return self
