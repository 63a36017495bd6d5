"""OpenAI's Responses API (``POST {base_url}/responses``) for ``type: openai`` profiles
with ``api: responses``, and automatically for models served only there (``-pro``
and ``codex`` families).

Input items (messages, ``function_call`` / ``function_call_output``), ``instructions``
from the leading system messages, reasoning summaries into ``Completion.reasoning``,
usage with cached and reasoning tokens, ``text.format`` for structured output, and the
SSE event stream (``response.output_text.delta`` … ``response.completed``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from llmnb.parts import ToolCall
from llmnb.types import Chunk, Completion, Request, Role, Usage

__all__ = ["body", "chunk_of", "completion_of", "error_of", "status_of", "uses_responses"]

# Models the chat-completions endpoint does not serve.
_RESPONSES_ONLY = re.compile(r"(^|[-/])(o\d+-pro|gpt-[\d.]+-pro|codex)", re.IGNORECASE)


def uses_responses(profile: Mapping[str, Any], model: str) -> bool:
    api = profile.get("api")
    if api is not None:
        return str(api) == "responses"
    return bool(_RESPONSES_ONLY.search(model.rsplit("/", 1)[-1]))


def _items(request: Request) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    instructions: list[str] = []
    for m in request.messages:
        if m.role is Role.SYSTEM and not items:
            instructions.append(m.content)
        elif m.role is Role.TOOL and m.tool_call_id:
            items.append(
                {"type": "function_call_output", "call_id": m.tool_call_id, "output": m.content}
            )
        else:
            role = "user" if m.role is Role.TOOL else m.role.value
            if m.content or not m.tool_calls:
                items.append({"role": role, "content": m.content})
            for c in m.tool_calls:
                items.append(
                    {
                        "type": "function_call",
                        "call_id": c.id,
                        "name": c.name,
                        "arguments": json.dumps(dict(c.arguments)),
                    }
                )
    return items, "\n\n".join(instructions)


def body(request: Request, reasoning_model: bool) -> dict[str, Any]:
    items, instructions = _items(request)
    out: dict[str, Any] = {"model": request.model, "input": items}
    if instructions:
        out["instructions"] = instructions
    if request.temperature is not None and not reasoning_model:
        out["temperature"] = request.temperature
    if request.max_tokens is not None:
        out["max_output_tokens"] = request.max_tokens
    if request.stream:
        out["stream"] = True
    if request.response_schema is not None:
        out["text"] = {
            "format": {
                "type": "json_schema",
                "name": request.schema_name or "answer",
                "schema": dict(request.response_schema),
                "strict": True,
            }
        }
    if request.tools:
        out["tools"] = [
            {
                "type": "function",
                "name": t["name"],
                "description": t.get("description") or "",
                "parameters": dict(t["parameters"]),
                "strict": False,
            }
            for t in request.tools
        ]
        choice = request.tool_choice
        if choice in ("auto", "required", "none"):
            out["tool_choice"] = choice
        elif choice:
            out["tool_choice"] = {"type": "function", "name": choice}
    out.update(request.extra)
    return out


def _usage(raw: Mapping[str, Any] | None) -> Usage | None:
    if not raw:
        return None
    inp = raw.get("input_tokens_details") or {}
    outp = raw.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0),
        completion_tokens=int(raw.get("output_tokens") or 0),
        cached_tokens=int(inp.get("cached_tokens") or 0),
        reasoning_tokens=int(outp.get("reasoning_tokens") or 0),
    )


def _tool_call(item: Mapping[str, Any]) -> ToolCall:
    raw = item.get("arguments") or "{}"
    try:
        args = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except ValueError:
        args = {"_raw": raw}
    if not isinstance(args, dict):
        args = {"_raw": raw}
    return ToolCall(
        str(item.get("name") or ""), args, str(item.get("call_id") or item.get("id") or "")
    )


def _finish(data: Mapping[str, Any], calls: list[ToolCall]) -> str:
    if calls:
        return "tool_calls"
    if data.get("status") == "incomplete":
        reason = (data.get("incomplete_details") or {}).get("reason")
        return "length" if reason == "max_output_tokens" else "content_filter"
    return "stop"


# An error event's code -> the HTTP status the same error comes with as a response.
_STATUS = {
    "invalid_api_key": 401,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "invalid_prompt": 400,
    "server_error": 500,
    "server_is_overloaded": 503,
}


def status_of(code: Any) -> int:
    if isinstance(code, int) and 400 <= code < 600:
        return code
    return _STATUS.get(str(code), 500)


def error_of(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The error of a failed response (``status: failed``) or an error envelope."""
    error = data.get("error")
    if isinstance(error, Mapping) and (error.get("message") or error.get("code")):
        return error
    return None


def completion_of(data: Mapping[str, Any], request: Request) -> Completion:
    text: list[str] = []
    summary: list[str] = []
    calls: list[ToolCall] = []
    for item in data["output"]:
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    text.append(str(part.get("text") or ""))
        elif kind == "reasoning":
            summary += [str(s.get("text") or "") for s in item.get("summary") or ()]
        elif kind == "function_call":
            calls.append(_tool_call(item))
    return Completion(
        content="".join(text),
        model=str(data.get("model") or request.model),
        usage=_usage(data.get("usage")) or Usage(),
        finish_reason=_finish(data, calls),
        reasoning="\n\n".join(summary),
        raw=data,
        tool_calls=calls,
    )


def chunk_of(data: Mapping[str, Any]) -> tuple[Chunk | None, bool]:
    """One stream event as a chunk, and whether it ends the stream. ``response.failed``
    and ``error`` events are the caller's to raise (see :func:`error_of`)."""
    kind = data.get("type")
    if kind == "response.output_text.delta":
        return Chunk(content=str(data.get("delta") or "")), False
    if kind == "response.reasoning_summary_text.delta":
        return Chunk(reasoning=str(data.get("delta") or "")), False
    if kind == "response.output_item.done":
        item = data.get("item") or {}
        if item.get("type") == "function_call":
            return Chunk(tool_calls=(_tool_call(item),)), False
        return None, False
    if kind in ("response.completed", "response.incomplete"):
        response = data.get("response") or {}
        calls = [o for o in response.get("output") or () if o.get("type") == "function_call"]
        finish = _finish(response, [_tool_call(c) for c in calls])
        return Chunk(
            finish_reason=finish, usage=_usage(response.get("usage")), model=response.get("model")
        ), True
    return None, False
