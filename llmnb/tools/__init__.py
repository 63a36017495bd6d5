"""Tools: Python functions and pydantic models a model may call (``tools=[...]``).

Example::

    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict:
        \"\"\"Current weather for a city.\"\"\"
    client.complete("Umbrella in Paris?", tools=[get_weather]).tool_calls
"""

from __future__ import annotations

from typing import Any

from llmnb.tools.run import arun_calls, result_text, run_calls, tool_choice
from llmnb.tools.schema import Tool, as_tool, as_tools

__all__ = [
    "Tool",
    "arun_calls",
    "as_tool",
    "as_tools",
    "result_text",
    "run_calls",
    "tool",
    "tool_choice",
]


def tool(fn: Any, *, name: str | None = None, timeout: float | None = None) -> Tool:
    """``fn`` as a :class:`Tool` with its own ``name`` or ``timeout`` (seconds)."""
    return as_tool(fn, name=name, timeout=timeout)
