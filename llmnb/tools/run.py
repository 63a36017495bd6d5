"""Running the tool calls a model asked for: validate, run (with a timeout), and turn
the outcome into the text the model reads. Never raises for a tool's own failure: the
model sees the error and may correct itself."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Mapping, Sequence
from typing import Any

from llmnb.parts import ToolCall
from llmnb.tools.schema import Tool

__all__ = ["arun_calls", "result_text", "run_calls", "tool_choice"]

_CHOICES = ("auto", "required", "none")


def tool_choice(choice: Any, tools: Sequence[Tool]) -> str | None:
    """``tool_choice=`` checked: ``auto`` / ``required`` / ``none`` / a tool's name."""
    from llmnb.errors import InvalidRequestError

    if choice is None:
        return None
    if isinstance(choice, str) and (choice in _CHOICES or choice in {t.name for t in tools}):
        return choice
    if isinstance(choice, Tool) or callable(choice):
        name = getattr(choice, "name", None) or getattr(choice, "__name__", None)
        if name in {t.name for t in tools}:
            return str(name)
    names = ", ".join(t.name for t in tools) or "(no tools)"
    raise InvalidRequestError(
        f"tool_choice={choice!r}: use 'auto', 'required', 'none' or the name of one of "
        f"the tools passed ({names})."
    )


def result_text(call: ToolCall) -> str:
    """What the model reads back for a call: the error, or the result as JSON/text."""
    if call.error is not None:
        return f"Error: {call.error}"
    value = call.result
    if isinstance(value, str):
        return value
    try:
        from pydantic_core import to_json

        return to_json(value, fallback=repr).decode()
    except Exception:  # anything pydantic cannot encode is still shown
        return json.dumps(repr(value))


def _unknown(call: ToolCall, tools: Mapping[str, Tool]) -> bool:
    if call.name in tools:
        return False
    call.error = f"there is no tool named {call.name!r}; the tools are: " + ", ".join(tools)
    return True


def _validated(call: ToolCall, tool: Tool) -> dict[str, Any] | None:
    import pydantic

    if not isinstance(call.arguments, Mapping):
        call.error = f"the arguments must be a JSON object, got {call.arguments!r}"
        return None
    try:
        return tool.validate(call.arguments)
    except pydantic.ValidationError as exc:
        lines = [
            f"{'.'.join(str(x) for x in e['loc']) or '(arguments)'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
        call.error = "invalid arguments for " + tool.name + ": " + "; ".join(lines)
        return None


def _failed(call: ToolCall, exc: BaseException) -> None:
    call.error = f"{type(exc).__name__}: {exc}"


def _timed_out(call: ToolCall, tool: Tool) -> None:
    call.error = f"the tool {tool.name!r} did not finish within {tool.timeout} s"


def _run_one(call: ToolCall, tools: Mapping[str, Tool]) -> None:
    if _unknown(call, tools):
        return
    tool = tools[call.name]
    args = _validated(call, tool)
    if args is None:
        return
    try:
        if tool.is_async:
            # In a thread: the caller (a notebook cell) may already run an event loop.
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llmnb-tool") as p:
                call.result = p.submit(asyncio.run, _await(tool, args)).result()
        elif tool.timeout is None:
            call.result = tool.fn(**args)
        else:
            # A sync function cannot be interrupted: it runs on in its thread, and the
            # model hears that it timed out.
            pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llmnb-tool")
            try:
                call.result = pool.submit(tool.fn, **args).result(tool.timeout)
            finally:
                pool.shutdown(wait=False)
    except (TimeoutError, concurrent.futures.TimeoutError):
        _timed_out(call, tool)
    except Exception as exc:
        _failed(call, exc)


async def _await(tool: Tool, args: dict[str, Any]) -> Any:
    if tool.is_async:
        return await asyncio.wait_for(tool.fn(**args), tool.timeout)
    return await asyncio.wait_for(asyncio.to_thread(tool.fn, **args), tool.timeout)


def run_calls(calls: Sequence[ToolCall], tools: Mapping[str, Tool]) -> None:
    """Run each call in order, setting its ``result`` or ``error``."""
    for call in calls:
        _run_one(call, tools)


async def _arun_one(call: ToolCall, tools: Mapping[str, Tool]) -> None:
    if _unknown(call, tools):
        return
    tool = tools[call.name]
    args = _validated(call, tool)
    if args is None:
        return
    try:
        call.result = await _await(tool, args)
    except (TimeoutError, asyncio.TimeoutError):
        _timed_out(call, tool)
    except Exception as exc:
        _failed(call, exc)


async def arun_calls(calls: Sequence[ToolCall], tools: Mapping[str, Tool]) -> None:
    """Run the calls concurrently (sync tools in threads)."""
    await asyncio.gather(*(_arun_one(c, tools) for c in calls))
