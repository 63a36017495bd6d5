"""OpenAI's Responses API wire format (``POST /v1/responses``): JSON answers with
``output`` items, and the typed SSE event stream ending in ``response.completed``."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from llmnb.testing._faults import ErrorInfo
from llmnb.testing._openai_wire import openai_error
from llmnb.testing._wire import ChatCall, RecordedRequest, Reply, sse

__all__ = ["ResponsesWire", "responses_tool_calls"]

_ids = itertools.count(1)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _response(
    call: ChatCall, output: list[dict[str, Any]], usage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": f"resp_fake{next(_ids):08d}",
        "object": "response",
        "status": "completed",
        "model": call.model,
        "output": output,
        "usage": usage,
    }


def _usage(prompt: int, completion: int, reasoning: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion + reasoning,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion + reasoning,
    }


def _ev(data: dict[str, Any]) -> bytes:
    return sse(data, str(data["type"]))


class ResponsesWire:
    """``POST /v1/responses``."""

    name = "responses"

    def parse(self, request: RecordedRequest, match: re.Match[str], model: str) -> ChatCall:
        body = request.json
        if not isinstance(body, dict):
            return ChatCall(model, problem="the request body must be a JSON object")
        stream = body.get("stream") is True
        requested = body.get("model")
        call_model = requested if isinstance(requested, str) and requested else model
        items = body.get("input")
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        if not isinstance(items, list) or not all(isinstance(m, dict) for m in items):
            return ChatCall(
                call_model, stream, problem="'input' must be a string or a list of items"
            )
        texts = [_text(m.get("content") or m.get("output")) for m in items]
        last_user = next(
            (_text(m.get("content")) for m in reversed(items) if m.get("role") == "user"), ""
        )
        limit = body.get("max_output_tokens")
        max_tokens = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        prompt = str(body.get("instructions") or "") + "".join(texts)
        return ChatCall(call_model, stream, True, prompt, last_user, max_tokens)

    def _output(self, reply: Reply) -> list[dict[str, Any]]:
        output: list[dict[str, Any]] = []
        if reply.reasoning:
            summary = [{"type": "summary_text", "text": reply.reasoning}]
            output.append({"type": "reasoning", "id": "rs_fake", "summary": summary})
        part = {"type": "output_text", "text": reply.content, "annotations": []}
        output.append(
            {
                "type": "message",
                "id": "msg_fake",
                "role": "assistant",
                "status": "completed",
                "content": [part],
            }
        )
        return output

    def _usage(self, reply: Reply) -> dict[str, Any]:
        if reply.usage_override is not None:
            return dict(reply.usage_override)
        return _usage(
            reply.prompt_tokens,
            reply.completion_tokens,
            reply.reasoning_tokens if reply.reasoning else 0,
        )

    def completion(self, call: ChatCall, reply: Reply) -> dict[str, Any]:
        data = _response(call, self._output(reply), self._usage(reply))
        if reply.finish_reason == "length":
            data["status"] = "incomplete"
            data["incomplete_details"] = {"reason": "max_output_tokens"}
        return data

    def stream_events(self, call: ChatCall, reply: Reply, chunk_size: int = 4) -> list[bytes]:
        size = max(1, chunk_size)
        events = [_ev({"type": "response.created", "response": _response(call, [], {})})]
        for i in range(0, len(reply.reasoning), size):
            delta = reply.reasoning[i : i + size]
            events.append(_ev({"type": "response.reasoning_summary_text.delta", "delta": delta}))
        text = reply.content
        for i in range(0, len(text), size):
            events.append(_ev({"type": "response.output_text.delta", "delta": text[i : i + size]}))
        events.append(_ev({"type": "response.output_text.done", "text": text}))
        done = self.completion(call, reply)
        kind = "response.incomplete" if done["status"] == "incomplete" else "response.completed"
        events.append(_ev({"type": kind, "response": done}))
        return events

    def error_body(self, status: int, error: ErrorInfo) -> dict[str, Any]:
        return openai_error(error)

    def stream_error_event(self, error: ErrorInfo) -> bytes:
        return _ev({"type": "error", "code": error.code or error.type, "message": error.message})

    def malformed_event(self) -> bytes:
        return (
            b"event: response.output_text.delta\n"
            b'data: {"type": "response.output_text.delta", "delta": "Hi\n\n'
        )


def responses_tool_calls(
    call: ChatCall, calls: tuple[tuple[str, dict[str, Any], str], ...]
) -> tuple[Any, list[bytes] | None]:
    """A Responses answer asking for ``(name, arguments, id)`` calls: the JSON body, or
    (streamed) the events, arguments sent as ``function_call_arguments.delta`` pieces."""
    items = [
        {
            "type": "function_call",
            "id": f"fc_fake{k}",
            "call_id": i or f"call_fake{k}",
            "name": n,
            "arguments": json.dumps(a),
            "status": "completed",
        }
        for k, (n, a, i) in enumerate(calls)
    ]
    data = _response(call, items, _usage(10, 5))
    if not call.stream:
        return data, None
    events = [_ev({"type": "response.created", "response": _response(call, [], {})})]
    for k, item in enumerate(items):
        events.append(
            _ev(
                {
                    "type": "response.output_item.added",
                    "output_index": k,
                    "item": {**item, "arguments": ""},
                }
            )
        )
        args = item["arguments"]
        for j in range(0, len(args), 8):
            piece = {
                "type": "response.function_call_arguments.delta",
                "output_index": k,
                "delta": args[j : j + 8],
            }
            events.append(_ev(piece))
        events.append(_ev({"type": "response.output_item.done", "output_index": k, "item": item}))
    events.append(_ev({"type": "response.completed", "response": data}))
    return data, events
