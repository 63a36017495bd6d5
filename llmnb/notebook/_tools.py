"""``%%llm --tools NAMES``: the notebook's functions as tools, ``--approve`` asking
before each call, and the calls shown as they ran."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from IPython.core.error import UsageError

__all__ = ["resolve_tools", "show_calls"]


def resolve_tools(
    names: str,
    namespace: Mapping[str, Any],
    approve: bool,
    ask: Callable[[str], str] | None = None,
) -> list[Any]:
    """The callables ``names`` (comma-separated) name in the notebook; with ``approve``
    each asks ``y/n`` before it runs (a refusal is what the model reads)."""
    from llmnb.tools import as_tool

    out = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        if name not in namespace:
            raise UsageError(f"--tools: {name!r} is not defined in the notebook; define it first")
        obj = namespace[name]
        if not callable(obj):
            raise UsageError(f"--tools: {name!r} is a {type(obj).__name__}, not a function")
        tool = as_tool(obj, name=name, where="--tools")
        if approve:
            tool.fn = _gated(tool.name, tool.fn, ask)  # input() outside a frontend
            tool.is_async = False
        out.append(tool)
    if not out:
        raise UsageError("--tools needs at least one function name, e.g. --tools get_weather")
    return out


class RefusedError(Exception):
    """The user said no to a tool call."""


def _gated(
    name: str, fn: Callable[..., Any], ask: Callable[[str], str] | None
) -> Callable[..., Any]:
    @functools.wraps(fn)
    def gate(**kwargs: Any) -> Any:
        shown = json.dumps(kwargs, default=repr)
        answer = (ask or input)(f"run {name}({shown})? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise RefusedError("the user did not allow this call")
        result = fn(**kwargs)
        if inspect.isawaitable(result):
            import asyncio

            return asyncio.run(result)  # type: ignore[arg-type]
        return result

    return gate


def show_calls(calls: Sequence[Any]) -> str:
    """One line per call: name(arguments) → result, or ✗ error."""
    lines = []
    for c in calls:
        args = ", ".join(f"{k}={v!r}" for k, v in dict(c.arguments).items())
        outcome = f"✗ {c.error}" if c.error is not None else f"→ {c.result!r}"
        if len(outcome) > 300:
            outcome = outcome[:297] + "..."
        lines.append(f"🔧 {c.name}({args}) {outcome}")
    return "\n".join(lines)
