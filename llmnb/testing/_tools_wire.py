"""Scripted tool calls (``Fault.tool_call``) as each wire format sends them: OpenAI
``tool_calls`` (streamed as argument deltas), Anthropic ``tool_use`` blocks (streamed
as ``input_json_delta``), Gemini ``functionCall`` parts."""

from __future__ import annotations

import json
from typing import Any

from llmnb.testing._faults import Fault
from llmnb.testing._wire import ChatCall, sse

__all__ = ["tool_call_fault"]

Calls = tuple[tuple[str, dict[str, Any], str], ...]


def _ids(calls: Calls, prefix: str) -> Calls:
    return tuple((n, a, i or f"{prefix}{k}") for k, (n, a, i) in enumerate(calls))


def _pieces(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _openai(call: ChatCall, calls: Calls) -> Fault:
    calls = _ids(calls, "call_")
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    if not call.stream:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                for n, a, i in calls
            ],
        }
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
        return Fault.json(
            200, {"id": "chatcmpl-fake", "model": call.model, "choices": [choice], "usage": usage}
        )

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return sse({"id": "chatcmpl-fake", "model": call.model, "choices": [choice]})

    events = [chunk({"role": "assistant", "content": None})]
    for k, (n, a, i) in enumerate(calls):
        head = {"index": k, "id": i, "type": "function", "function": {"name": n, "arguments": ""}}
        events.append(chunk({"tool_calls": [head]}))
        for piece in _pieces(json.dumps(a)):
            events.append(chunk({"tool_calls": [{"index": k, "function": {"arguments": piece}}]}))
    events.append(chunk({}, "tool_calls"))
    if call.include_usage:
        events.append(
            sse({"id": "chatcmpl-fake", "model": call.model, "choices": [], "usage": usage})
        )
    events.append(b"data: [DONE]\n\n")
    return Fault.sse(*events)


def _anthropic(call: ChatCall, calls: Calls) -> Fault:
    calls = _ids(calls, "toolu_")
    usage = {"input_tokens": 10, "output_tokens": 5}
    if not call.stream:
        blocks = [{"type": "tool_use", "id": i, "name": n, "input": a} for n, a, i in calls]
        return Fault.json(
            200,
            {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": call.model,
                "content": blocks,
                "stop_reason": "tool_use",
                "usage": usage,
            },
        )

    def ev(data: dict[str, Any]) -> bytes:
        return sse(data, data["type"])

    message = {
        "id": "msg_fake",
        "model": call.model,
        "usage": {"input_tokens": 10, "output_tokens": 1},
    }
    events = [ev({"type": "message_start", "message": message})]
    for k, (n, a, i) in enumerate(calls):
        block = {"type": "tool_use", "id": i, "name": n, "input": {}}
        events.append(ev({"type": "content_block_start", "index": k, "content_block": block}))
        for piece in _pieces(json.dumps(a)):
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append(ev({"type": "content_block_delta", "index": k, "delta": delta}))
        events.append(ev({"type": "content_block_stop", "index": k}))
    events.append(
        ev(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 5},
            }
        )
    )
    events.append(ev({"type": "message_stop"}))
    return Fault.sse(*events)


def _gemini(call: ChatCall, calls: Calls) -> Fault:
    parts = [
        {"functionCall": {"name": n, "args": a, **({"id": i} if i else {})}} for n, a, i in calls
    ]
    data = {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        "modelVersion": call.model,
    }
    return Fault.sse(sse(data)) if call.stream else Fault.json(200, data)


def tool_call_fault(wire: str, call: ChatCall, fault: Fault) -> Fault:
    """The ``json`` / ``sse`` fault that plays a ``tool_call`` fault on this wire."""
    calls: Calls = fault.body
    if wire == "responses":
        from llmnb.testing._responses_wire import responses_tool_calls

        data, events = responses_tool_calls(call, calls)
        return Fault.json(200, data) if events is None else Fault.sse(*events)
    if wire == "anthropic":
        return _anthropic(call, calls)
    if wire == "gemini":
        return _gemini(call, calls)
    return _openai(call, calls)
