"""Making any usage row storable: valid text, integers in range, a real time, JSON tags.

Private to the SQLite and PostgreSQL stores. Their writers bind rows as they are and
call :func:`clean_row` only for a batch the database refused, so the common path does
no per-row work. ``clean_row`` never raises: every value becomes one the database takes,
and what had to change is noted in the row's ``error`` (``prompt_tokens=10**20 is out
of range; stored as NULL``), so no number silently turns into another.
"""

from __future__ import annotations

import json
import math
import operator
import re
import time
from collections.abc import Mapping
from typing import Any

from llmnb.usage.record import COLUMNS, FLOAT_COLUMNS, INT_COLUMNS

__all__ = ["INT32", "INT64", "clean_json", "clean_row", "clean_text", "dumps", "scrub_problem"]

INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)

_TIME = COLUMNS.index("time")
_ERROR = COLUMNS.index("error")
_CACHED = COLUMNS.index("cached")
_TAGS = COLUMNS.index("tags")
_INT_IDX = frozenset(COLUMNS.index(c) for c in INT_COLUMNS)
_FLOAT_IDX = frozenset(COLUMNS.index(c) for c in FLOAT_COLUMNS)
# Times pandas can show (datetime64[ns] spans the years 1677-2262).
_TIME_LIMIT = 2.0**33
_DEPTH = 32  # nested tags deeper than this are kept as text
_SHOWN = 40  # characters of an odd value quoted in a note


def clean_text(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD (pairs are joined)."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16: a surrogate pair becomes its character, a lone one U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _str(value: Any) -> str:
    try:
        text = str(value)
    except Exception:  # a broken __str__ must not lose the row
        text = f"<{type(value).__name__} object>"
    return clean_text(text)


def _quoted(value: Any) -> str:
    text = _str(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def clean_json(value: Any, depth: int = 0) -> Any:
    """``value`` as plain JSON data: str keys, valid text, finite numbers, no cycles."""
    if value is None or type(value) is bool:
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)  # JSON has no NaN
    if depth >= _DEPTH:
        return _str(value)
    if isinstance(value, Mapping):
        try:
            items = list(value.items())
        except Exception:
            return _str(value)
        return {_str(k): clean_json(v, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [clean_json(v, depth + 1) for v in value]
    return _str(value)


def _int(value: Any, limits: tuple[int, int]) -> tuple[int | None, str | None]:
    try:
        number = operator.index(value)
    except TypeError:
        try:
            real = float(value)
        except (TypeError, ValueError, OverflowError):
            return None, "is not a number"
        if not real.is_integer():
            return None, "is not a whole number"
        number = int(real)
    if limits[0] <= number <= limits[1]:
        return number, None
    return None, "is out of range"


def _float(value: Any) -> tuple[float | None, str | None]:
    try:
        real = float(value)
    except OverflowError:
        return None, "is out of range"
    except (TypeError, ValueError):
        return None, "is not a number"
    return (None if real != real else real), None  # NaN → NULL (unknown)


def clean_row(rec: tuple[Any, ...], ints: Mapping[str, tuple[int, int]] | None = None) -> list[Any]:
    """``rec``'s values, each one a database takes (see the module docs).

    Text is valid UTF-8 without NUL; integers are within ``ints[column]`` (64-bit by
    default); floats are floats or None; ``time`` is epoch seconds pandas can show;
    ``cached`` a bool; ``tags`` plain JSON data (None stays None). Never raises.
    """
    notes: list[str] = []
    values: list[Any] = list(rec)[: len(COLUMNS)]
    values += [None] * (len(COLUMNS) - len(values))
    for i, name in enumerate(COLUMNS):
        v = values[i]
        if i == _TIME:
            t, _ = _float(v)
            if t is None or not -_TIME_LIMIT < t < _TIME_LIMIT:
                notes.append(f"time={_quoted(v)} is not a usable time; stored the time of writing")
                t = time.time()
            values[i] = t
        elif i == _CACHED:
            try:
                values[i] = bool(v)
            except Exception:
                values[i] = False
                notes.append(f"cached={_quoted(v)} is not true or false; stored false")
        elif i == _TAGS:
            values[i] = None if v is None else clean_json(v)
        elif v is None:
            continue
        elif i in _INT_IDX:
            values[i], problem = _int(v, (ints or {}).get(name, INT64))
            if problem:
                notes.append(f"{name}={_quoted(v)} {problem}; stored as NULL")
        elif i in _FLOAT_IDX:
            values[i], problem = _float(v)
            if problem:
                notes.append(f"{name}={_quoted(v)} {problem}; stored as NULL")
        else:
            values[i] = clean_text(v) if type(v) is str else _str(v)
    if notes:
        note = "llmnb: " + "; ".join(notes)
        error = values[_ERROR]
        values[_ERROR] = f"{error} [{note}]" if error else note
    return values


_URL_PASSWORD = re.compile(r"(\w[\w+.-]*://[^\s:/@]*:)[^\s@/]+@")
_KEYLIKE = re.compile(
    r"\b(sk-|sk_|pk-|rk-|AIza|xox[abp]-|gh[pousr]_|hf_|Bearer\s+)[A-Za-z0-9_\-.~+/=]{6,}"
)
_PROBLEM_CHARS = 500


def scrub_problem(text: str | None) -> str | None:
    """A store's error for display: one line, bounded, no URL passwords or key-like text."""
    if text is None:
        return None
    line = " ".join(clean_text(text).split())
    line = _URL_PASSWORD.sub(r"\1***@", line)
    line = _KEYLIKE.sub(lambda m: m.group(1) + "***", line)
    return line if len(line) <= _PROBLEM_CHARS else line[: _PROBLEM_CHARS - 1] + "…"


def dumps(value: Any) -> str:
    """Clean JSON data (from :func:`clean_json`) as text; str stays as it is."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
