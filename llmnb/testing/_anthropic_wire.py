"""The Anthropic Messages wire format: ``POST /v1/messages``, JSON or named SSE events.

Requests are checked the way the real API checks them where a provider bug would
show: ``max_tokens`` is required, and ``system`` belongs at the top level, not in
``messages``. A request that forces a tool (``tool_choice: {"type": "tool"}``) is
answered with that tool's ``input`` (the reply parsed as JSON), as Claude does.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from llmnb.testing._faults import ErrorInfo
from llmnb.testing._wire import ChatCall, RecordedRequest, Reply, sse

__all__ = ["AnthropicMessagesWire", "anthropic_error"]

_ids = itertools.count(1)

# HTTP status -> the error type Anthropic sends with it.
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ANTHROPIC_TYPES = frozenset(_TYPE_BY_STATUS.values())
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _error_type(status: int, error: ErrorInfo) -> str:
    if error.type in _ANTHROPIC_TYPES:
        return error.type
    if status in _TYPE_BY_STATUS:
        return _TYPE_BY_STATUS[status]
    return "api_error" if status >= 500 or status == 200 else "invalid_request_error"


def anthropic_error(status: int, error: ErrorInfo) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}}``; OpenAI types are translated."""
    return {
        "type": "error",
        "error": {"type": _error_type(status, error), "message": error.message},
        "request_id": f"req_fake{next(_ids):08d}",
    }


def _text(content: Any) -> str:
    """A message's text: a plain string or the text blocks of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b
        )
    return ""


def _tool_input(text: str) -> dict[str, Any]:
    """The forced tool's ``input``: the reply when it is a JSON object, else wrapped."""
    try:
        value = json.loads(text)
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"value": value}


class AnthropicMessagesWire:
    """``POST /v1/messages`` (``anthropic-version: 2023-06-01`` shapes)."""

    name = "anthropic"

    def parse(self, request: RecordedRequest, match: re.Match[str], model: str) -> ChatCall:
        body = request.json
        if not isinstance(body, dict):
            return ChatCall(model, problem="the request body must be a JSON object")
        requested = body.get("model")
        call_model = requested if isinstance(requested, str) and requested else model
        stream = body.get("stream") is True
        if not isinstance(requested, str) or not requested:
            return ChatCall(call_model, stream, True, problem="model: Field required")
        limit = body.get("max_tokens")
        if not isinstance(limit, int) or isinstance(limit, bool):
            return ChatCall(call_model, stream, True, problem="max_tokens: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return ChatCall(
                call_model, stream, True, problem="messages: Input should be a valid list"
            )
        for i, m in enumerate(messages):
            if m.get("role") not in ("user", "assistant"):
                return ChatCall(
                    call_model,
                    stream,
                    True,
                    problem=(
                        f"messages.{i}: Unexpected role {m.get('role')!r}. The Messages API "
                        'accepts a top-level `system` parameter, not "system" as an input '
                        "message role."
                    ),
                )
        texts = [_text(body.get("system"))] + [_text(m.get("content")) for m in messages]
        last_user = next(
            (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        choice = body.get("tool_choice")
        tool = None
        if isinstance(choice, dict) and choice.get("type") == "tool":
            tool = str(choice.get("name") or "")
        return ChatCall(call_model, stream, True, "".join(texts), last_user, limit, tool)

    # -- bodies --------------------------------------------------------------------------

    def _usage(self, reply: Reply) -> dict[str, Any]:
        if reply.usage_override is not None:
            return dict(reply.usage_override)
        return {
            "input_tokens": reply.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": reply.completion_tokens + reply.reasoning_tokens,
        }

    def _stop_reason(self, call: ChatCall, reply: Reply) -> str:
        if call.tool and reply.finish_reason == "stop":
            return "tool_use"
        return _STOP_REASONS.get(reply.finish_reason, reply.finish_reason)

    def _blocks(self, call: ChatCall, reply: Reply) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if reply.reasoning:
            blocks.append({"type": "thinking", "thinking": reply.reasoning, "signature": "c2ln"})
        if call.tool:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_fake{next(_ids):08d}",
                    "name": call.tool,
                    "input": _tool_input(reply.content),
                }
            )
        else:
            blocks.append({"type": "text", "text": reply.content})
        return blocks

    def completion(self, call: ChatCall, reply: Reply) -> dict[str, Any]:
        return {
            "id": f"msg_fake{next(_ids):08d}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": self._blocks(call, reply),
            "stop_reason": self._stop_reason(call, reply),
            "stop_sequence": None,
            "usage": self._usage(reply),
        }

    def stream_events(self, call: ChatCall, reply: Reply, chunk_size: int = 4) -> list[bytes]:
        usage = self._usage(reply)
        # message_start carries the input side; output_tokens there is a placeholder and
        # message_delta brings the cumulative count, as the real API does.
        start_usage = {k: v for k, v in usage.items() if k != "output_tokens"}
        start_usage["output_tokens"] = 1
        message: dict[str, Any] = {
            "id": f"msg_fake{next(_ids):08d}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        events = [sse({"type": "message_start", "message": message}, "message_start")]
        size = max(1, chunk_size)
        index = 0

        def block(start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
            nonlocal index
            events.append(
                sse(
                    {"type": "content_block_start", "index": index, "content_block": start},
                    "content_block_start",
                )
            )
            if index == 0:
                events.append(sse({"type": "ping"}, "ping"))
            for delta in deltas:
                events.append(
                    sse(
                        {"type": "content_block_delta", "index": index, "delta": delta},
                        "content_block_delta",
                    )
                )
            events.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
            index += 1

        def pieces(text: str) -> list[str]:
            return [text[i : i + size] for i in range(0, len(text), size)]

        if reply.reasoning:
            thinking = [{"type": "thinking_delta", "thinking": p} for p in pieces(reply.reasoning)]
            thinking.append({"type": "signature_delta", "signature": "c2ln"})
            block({"type": "thinking", "thinking": "", "signature": ""}, thinking)
        if call.tool:
            text = json.dumps(_tool_input(reply.content))
            start = {
                "type": "tool_use",
                "id": f"toolu_fake{next(_ids):08d}",
                "name": call.tool,
                "input": {},
            }
            block(start, [{"type": "input_json_delta", "partial_json": p} for p in pieces(text)])
        else:
            deltas = [{"type": "text_delta", "text": p} for p in pieces(reply.content)]
            block({"type": "text", "text": ""}, deltas)
        delta = {"stop_reason": self._stop_reason(call, reply), "stop_sequence": None}
        out_usage = {"output_tokens": usage.get("output_tokens", 0)}
        events.append(
            sse({"type": "message_delta", "delta": delta, "usage": out_usage}, "message_delta")
        )
        events.append(sse({"type": "message_stop"}, "message_stop"))
        return events

    def error_body(self, status: int, error: ErrorInfo) -> dict[str, Any]:
        return anthropic_error(status, error)

    def stream_error_event(self, error: ErrorInfo) -> bytes:
        return sse(anthropic_error(200, error), "error")

    def malformed_event(self) -> bytes:
        return (
            b"event: content_block_delta\n"
            b'data: {"type": "content_block_delta", "index": 0, "delta": {"text": "Hi\n\n'
        )
