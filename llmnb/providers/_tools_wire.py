"""Tool declarations, tool-call turns and tool calls on the three chat wire formats:
OpenAI chat completions, Anthropic Messages and Gemini generateContent.

Kept apart from the provider modules (which call these in a few lines) so that the
encoders of message parts and of tools change independently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llmnb.parts import ToolCall
from llmnb.types import Message, Request, Role

__all__ = [
    "ToolCallAssembler",
    "anthropic_tool_call",
    "anthropic_tools",
    "anthropic_turns",
    "gemini_tool_call",
    "gemini_tools",
    "gemini_turns",
    "has_tool_turns",
    "openai_message",
    "openai_tool_calls",
    "openai_tools",
]


def has_tool_turns(request: Request) -> bool:
    """Messages carrying tool calls or tool results by id (rounds after the first); a
    ``tool`` message without an id is plain text, as before tools existed."""
    return any(m.tool_calls or m.tool_call_id for m in request.messages)


def _arguments(raw: Any) -> Mapping[str, Any]:
    """Arguments as sent: a JSON object text (OpenAI) or an object. Text that is not a
    JSON object stays visible (``{"_raw": ...}``) so validation tells the model."""
    if isinstance(raw, Mapping):
        return dict(raw)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {"_raw": str(raw)}
    return value if isinstance(value, dict) else {"_raw": raw}


# --- OpenAI chat completions ------------------------------------------------------------
def openai_tools(request: Request) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` of the body (empty when the request has no tools)."""
    if not request.tools:
        return {}
    out: dict[str, Any] = {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t.get("description") or "",
                    "parameters": dict(t["parameters"]),
                },
            }
            for t in request.tools
        ]
    }
    choice = request.tool_choice
    if choice in ("auto", "required", "none"):
        out["tool_choice"] = choice
    elif choice:
        out["tool_choice"] = {"type": "function", "function": {"name": choice}}
    return out


def openai_message(m: Message, d: dict[str, Any]) -> dict[str, Any]:
    """The wire message ``d`` with the assistant's ``tool_calls`` or a tool's id."""
    if m.tool_calls:
        d["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(dict(c.arguments))},
            }
            for c in m.tool_calls
        ]
        if not d.get("content"):
            d["content"] = None
    if m.role is Role.TOOL and m.tool_call_id:
        d["tool_call_id"] = m.tool_call_id
        d.pop("name", None)  # not a field of tool messages: strict servers refuse it
    return d


def openai_tool_calls(message: Mapping[str, Any]) -> list[ToolCall]:
    out = []
    for c in message.get("tool_calls") or ():
        fn = c.get("function") or {}
        out.append(
            ToolCall(
                str(fn.get("name") or ""), _arguments(fn.get("arguments")), str(c.get("id") or "")
            )
        )
    return out


class ToolCallAssembler:
    """Tool calls streamed in pieces (by index): name and id first, then argument text."""

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}

    def add(self, index: int, *, id: str | None, name: str | None, arguments: str | None) -> None:
        slot = self._calls.setdefault(index, ["", "", ""])
        if id:
            slot[0] = id
        if name and not slot[1]:  # some servers repeat the name on every delta
            slot[1] = name
        if arguments:
            slot[2] += arguments

    def __contains__(self, index: int) -> bool:
        return index in self._calls

    def add_openai(self, deltas: Sequence[Mapping[str, Any]]) -> None:
        for i, d in enumerate(deltas):
            fn = d.get("function") or {}
            index = d.get("index")
            self.add(
                index if isinstance(index, int) else i,
                id=d.get("id"),
                name=fn.get("name"),
                arguments=fn.get("arguments"),
            )

    def done(self) -> tuple[ToolCall, ...]:
        """The calls assembled so far (then forgotten)."""
        calls = tuple(
            ToolCall(name, _arguments(args), id)
            for _, (id, name, args) in sorted(self._calls.items())
        )
        self._calls.clear()
        return calls


# --- Anthropic Messages ---------------------------------------------------------------
def anthropic_tools(request: Request) -> dict[str, Any]:
    if not request.tools:
        return {}
    out: dict[str, Any] = {
        "tools": [
            {
                "name": t["name"],
                "description": t.get("description") or "",
                "input_schema": dict(t["parameters"]),
            }
            for t in request.tools
        ]
    }
    choice = request.tool_choice
    if choice == "auto":
        out["tool_choice"] = {"type": "auto"}
    elif choice == "required":
        out["tool_choice"] = {"type": "any"}
    elif choice == "none":
        out["tool_choice"] = {"type": "none"}
    elif choice:
        out["tool_choice"] = {"type": "tool", "name": choice}
    return out


def anthropic_turns(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The turns of a conversation with tool calls, as content blocks (leading system
    messages are the caller's ``system``; later ones become user text)."""
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role.instructs and not turns:
            continue
        blocks: list[dict[str, Any]] = []
        if m.role is Role.TOOL:
            role = "user"
            blocks.append(
                {"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.content}
            )
        else:
            role = "assistant" if m.role is Role.ASSISTANT else "user"
            text = f"<system>{m.content}</system>" if m.role.instructs else m.content
            if text:
                blocks.append({"type": "text", "text": text})
            for c in m.tool_calls:
                blocks.append(
                    {"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)}
                )
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def anthropic_tool_call(block: Mapping[str, Any]) -> ToolCall:
    return ToolCall(
        str(block.get("name") or ""), _arguments(block.get("input")), str(block.get("id") or "")
    )


# --- Gemini generateContent -------------------------------------------------------------
def gemini_tools(request: Request) -> dict[str, Any]:
    if not request.tools:
        return {}
    out: dict[str, Any] = {
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": t["name"],
                        "description": t.get("description") or "",
                        "parametersJsonSchema": dict(t["parameters"]),
                    }
                    for t in request.tools
                ]
            }
        ]
    }
    choice = request.tool_choice
    if choice:
        mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}.get(choice, "ANY")
        config: dict[str, Any] = {"mode": mode}
        if choice not in ("auto", "required", "none"):
            config["allowedFunctionNames"] = [choice]
        out["toolConfig"] = {"functionCallingConfig": config}
    return out


def _response_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def gemini_turns(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """``contents`` of a conversation with function calls and responses."""
    contents: list[dict[str, Any]] = []
    for m in messages:
        if m.role.instructs:
            continue
        parts: list[dict[str, Any]] = []
        if m.role is Role.TOOL:
            role = "user"
            response: dict[str, Any] = {
                "name": m.name or "",
                "response": _response_object(m.content),
            }
            if m.tool_call_id and not m.tool_call_id.startswith("gemini-"):
                response["id"] = m.tool_call_id
            parts.append({"functionResponse": response})
        else:
            role = "model" if m.role is Role.ASSISTANT else "user"
            if m.content:
                parts.append({"text": m.content})
            for c in m.tool_calls:
                call: dict[str, Any] = {"name": c.name, "args": dict(c.arguments)}
                if c.id and not c.id.startswith("gemini-"):
                    call["id"] = c.id
                parts.append({"functionCall": call})
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents


def gemini_tool_call(part: Mapping[str, Any], n: int) -> ToolCall:
    """A ``functionCall`` part; Gemini may send no id, so one is made up (``gemini-N``)."""
    fc = part["functionCall"]
    return ToolCall(
        str(fc.get("name") or ""), _arguments(fc.get("args")), str(fc.get("id") or f"gemini-{n}")
    )
