"""A call's arguments, checked before anything is sent.

A NaN temperature, ``model=5`` or a parameter that cannot be encoded would otherwise
fail deep inside the HTTP library (a bare ``ValueError`` from the JSON encoder, an
``AttributeError`` from a model-name lookup) or, worse, be sent and billed. Each check
raises :class:`~llmnb.errors.InvalidRequestError` naming the argument and what to pass.
Messages are checked by :func:`llmnb.types.normalize_messages`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

from llmnb.errors import InvalidRequestError

__all__ = ["check_fields", "check_params"]

_MAX_DEPTH = 64  # a parameter nested deeper is a mistake (or a cycle), not a request


def _refuse(name: str, value: Any, what: str) -> InvalidRequestError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return InvalidRequestError(f"{name}={shown}: {what}")


def _number(name: str, value: Any, low: float, high: float, *, low_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise _refuse(name, value, f"{name} must be a number, or None to use the default.")
    number = float(value)
    if not math.isfinite(number) or number < low or (low_open and number == low) or number > high:
        sign = ">" if low_open else ">="
        bound = f" and <= {high:g}" if math.isfinite(high) else ""
        raise _refuse(name, value, f"{name} must be a finite number {sign} {low:g}{bound}.")
    return number


def check_fields(
    model: Any, temperature: Any, max_tokens: Any, timeout: Any
) -> tuple[str | None, float | None, int | None, float | None]:
    """The four fields llmnb reads itself, checked and in their plain Python types
    (a NumPy number becomes a float or an int, which every encoder accepts)."""
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise _refuse("model", model, "model must be a model name (a non-empty str).")
    if temperature is not None:
        # The range of the settings schema (llm.providers.*.temperature): one rule.
        temperature = _number("temperature", temperature, 0.0, 2.0, low_open=False)
    if timeout is not None:
        timeout = _number("timeout", timeout, 0.0, math.inf, low_open=True)
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, Integral) or max_tokens < 1:
            raise _refuse(
                "max_tokens", max_tokens, "max_tokens must be a whole number >= 1, or None."
            )
        max_tokens = int(max_tokens)
    return model, temperature, max_tokens, timeout


def check_params(params: Mapping[str, Any], *, json: bool) -> None:
    """Wire parameters: no NaN or infinity anywhere in them, and with ``json`` (a
    provider that sends them as a JSON body) only what JSON can carry, as UTF-8."""
    for key, value in params.items():
        _check_value(key, value, json, 0)


def _check_value(path: str, value: Any, json: bool, depth: int) -> None:
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, str):
        if json and not value.isascii():  # isascii() is O(1) in CPython
            _check_text(path, value)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _refuse(path, value, "parameter values must be finite numbers (not NaN/inf).")
        return
    if depth >= _MAX_DEPTH:
        raise InvalidRequestError(
            f"parameter {path}: nested more than {_MAX_DEPTH} levels deep (a cycle?)."
        )
    if isinstance(value, Mapping):
        for k, v in value.items():
            if json and not (k is None or isinstance(k, (str, int, float, bool))):
                raise InvalidRequestError(
                    f"parameter {path}: the key {k!r} ({type(k).__name__}) cannot be sent as "
                    "JSON; use str keys."
                )
            _check_value(f"{path}[{k!r}]", v, json, depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_value(f"{path}[{i}]", v, json, depth + 1)
        return
    if json:
        raise _refuse(
            path,
            value,
            f"{type(value).__name__} cannot be sent as JSON; pass str, int, float, bool, "
            "None, lists or dicts of those (e.g. int(x) for a NumPy number).",
        )


def _check_text(path: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(
            f"parameter {path}: has a lone surrogate ({text[exc.start]!r} at position "
            f"{exc.start}), which cannot be sent as UTF-8 — text from a broken decode. "
            "Clean it, e.g. s.encode('utf-8', 'replace').decode()."
        ) from None
