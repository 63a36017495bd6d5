"""The OpenAI chat-completions wire format (also spoken by OpenRouter, Groq, vLLM, ...)."""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

from llmnb.testing._faults import ErrorInfo
from llmnb.testing._wire import ChatCall, RecordedRequest, Reply, sse

__all__ = ["OpenAIChatWire", "openai_error"]

_ids = itertools.count(1)


def openai_error(error: ErrorInfo) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``."""
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": None,
            "code": error.code,
        }
    }


def _text(content: Any) -> str:
    """A message's text: a plain string or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


class OpenAIChatWire:
    """``POST /v1/chat/completions``: JSON answers and ``data: {...}`` SSE chunks."""

    name = "openai"

    def parse(self, request: RecordedRequest, match: re.Match[str], model: str) -> ChatCall:
        body = request.json
        if not isinstance(body, dict):
            return ChatCall(model, problem="the request body must be a JSON object")
        stream = body.get("stream") is True
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        requested = body.get("model")
        call_model = requested if isinstance(requested, str) and requested else model
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return ChatCall(
                call_model, stream, include_usage, problem="'messages' must be a list of objects"
            )
        texts = [_text(m.get("content")) for m in messages]
        last_user = next(
            (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        max_tokens = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        return ChatCall(call_model, stream, include_usage, "".join(texts), last_user, max_tokens)

    def _usage(self, reply: Reply) -> dict[str, Any]:
        if reply.usage_override is not None:
            usage = dict(reply.usage_override)
        else:
            usage = {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            }
        if reply.reasoning and reply.usage_override is None:
            usage["completion_tokens"] += reply.reasoning_tokens
            usage["total_tokens"] += reply.reasoning_tokens
            usage["completion_tokens_details"] = {"reasoning_tokens": reply.reasoning_tokens}
        if reply.cost is not None:
            usage.setdefault("cost", reply.cost)
        return usage

    def completion(self, call: ChatCall, reply: Reply) -> dict[str, Any]:
        message = {"role": "assistant", "content": reply.content}
        if reply.reasoning:
            message["reasoning"] = reply.reasoning
        return {
            "id": f"chatcmpl-fake{next(_ids):08d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": self._usage(reply),
        }

    def stream_events(self, call: ChatCall, reply: Reply, chunk_size: int = 4) -> list[bytes]:
        head = {
            "id": f"chatcmpl-fake{next(_ids):08d}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": call.model,
        }
        # With include_usage, OpenAI puts "usage": null on every chunk but the last.
        tail: dict[str, Any] = {"usage": None} if call.include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return sse({**head, "choices": [choice], **tail})

        events = [chunk({"role": "assistant", "content": ""})]
        text = reply.content
        size = max(1, chunk_size)
        events += [
            chunk({"reasoning": reply.reasoning[i : i + size]})
            for i in range(0, len(reply.reasoning), size)
        ]
        events += [chunk({"content": text[i : i + size]}) for i in range(0, len(text), size)]
        events.append(chunk({}, reply.finish_reason))
        if call.include_usage:
            events.append(sse({**head, "choices": [], "usage": self._usage(reply)}))
        events.append(sse("[DONE]"))
        return events

    def error_body(self, status: int, error: ErrorInfo) -> dict[str, Any]:
        return openai_error(error)

    def stream_error_event(self, error: ErrorInfo) -> bytes:
        return sse(openai_error(error))

    def malformed_event(self) -> bytes:
        return b'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"content": "Hi\n\n'
