"""The Gemini API wire format: ``models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse``.

The model is in the path, the key in ``x-goog-api-key``; turns are ``contents`` with
roles ``user`` and ``model`` (anything else is rejected, as the real API does), the
system prompt is ``systemInstruction``. A stream has no end marker: the last event
carries ``finishReason`` and the full ``usageMetadata``, then the body ends.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from llmnb.testing._faults import ErrorInfo
from llmnb.testing._wire import ChatCall, RecordedRequest, Reply, sse

__all__ = ["GeminiWire", "gemini_error"]

_ids = itertools.count(1)

# HTTP status -> google.rpc status name.
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}


def _seconds(value: float) -> str:
    return f"{int(value)}s" if float(value).is_integer() else f"{value}s"


def gemini_error(status: int, error: ErrorInfo) -> dict[str, Any]:
    """``{"error": {"code", "message", "status"}}`` with RetryInfo when a wait is known."""
    code = status if status >= 400 else 500
    body: dict[str, Any] = {
        "code": code,
        "message": error.message,
        "status": _STATUS.get(code, "INTERNAL" if code >= 500 else "FAILED_PRECONDITION"),
    }
    if error.retry_after is not None:
        body["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": _seconds(error.retry_after),
            }
        ]
    return {"error": body}


def _text(content: Any) -> str:
    """The text of a ``Content`` object (its ``parts``)."""
    if not isinstance(content, dict):
        return ""
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


class GeminiWire:
    """``POST /v1beta/models/{model}:generateContent`` / ``:streamGenerateContent``."""

    name = "gemini"

    def parse(self, request: RecordedRequest, match: re.Match[str], model: str) -> ChatCall:
        path_model = match.group("model") or model
        stream = match.group("method") == "streamGenerateContent"
        body = request.json
        if stream and "alt=sse" not in request.query.split("&"):
            return ChatCall(
                path_model,
                stream,
                True,
                problem="this fake server streams only Server-Sent Events: add ?alt=sse",
            )
        if not isinstance(body, dict):
            return ChatCall(path_model, stream, True, problem="the request body must be JSON")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return ChatCall(
                path_model, stream, True, problem="* GenerateContentRequest.contents: contents "
                "is not specified",
            )  # fmt: skip
        for m in contents:
            if not isinstance(m, dict) or m.get("role", "user") not in ("user", "model"):
                role = m.get("role") if isinstance(m, dict) else m
                return ChatCall(
                    path_model,
                    stream,
                    True,
                    problem=f"Please use a valid role: user, model. (got {role!r})",
                )
        texts = [_text(body.get("systemInstruction"))] + [_text(m) for m in contents]
        last_user = next(
            (_text(m) for m in reversed(contents) if m.get("role", "user") == "user"), ""
        )
        config = body.get("generationConfig")
        limit = config.get("maxOutputTokens") if isinstance(config, dict) else None
        max_tokens = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        return ChatCall(path_model, stream, True, "".join(texts), last_user, max_tokens)

    # -- bodies --------------------------------------------------------------------------

    def _usage(self, reply: Reply) -> dict[str, Any]:
        if reply.usage_override is not None:
            return dict(reply.usage_override)
        usage = {
            "promptTokenCount": reply.prompt_tokens,
            "candidatesTokenCount": reply.completion_tokens,
            "totalTokenCount": reply.prompt_tokens
            + reply.completion_tokens
            + reply.reasoning_tokens,
        }
        if reply.reasoning:
            usage["thoughtsTokenCount"] = reply.reasoning_tokens
        return usage

    def _finish(self, reply: Reply) -> str:
        return _FINISH.get(reply.finish_reason, reply.finish_reason.upper())

    def _head(self, call: ChatCall) -> dict[str, Any]:
        return {"modelVersion": call.model, "responseId": f"fake{next(_ids):08d}"}

    def completion(self, call: ChatCall, reply: Reply) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if reply.reasoning:
            parts.append({"text": reply.reasoning, "thought": True})
        parts.append({"text": reply.content})
        candidate = {
            "content": {"parts": parts, "role": "model"},
            "finishReason": self._finish(reply),
            "index": 0,
        }
        return {"candidates": [candidate], "usageMetadata": self._usage(reply), **self._head(call)}

    def stream_events(self, call: ChatCall, reply: Reply, chunk_size: int = 4) -> list[bytes]:
        head = self._head(call)
        size = max(1, chunk_size)
        # Early events carry only the prompt count; the last one has everything.
        early = {"promptTokenCount": reply.prompt_tokens, "totalTokenCount": reply.prompt_tokens}

        def event(parts: list[dict[str, Any]], last: bool) -> bytes:
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if last:
                candidate["finishReason"] = self._finish(reply)
            usage = self._usage(reply) if last else early
            return sse({"candidates": [candidate], "usageMetadata": usage, **head})

        events = [
            event([{"text": reply.reasoning[i : i + size], "thought": True}], False)
            for i in range(0, len(reply.reasoning), size)
        ]
        pieces = [reply.content[i : i + size] for i in range(0, len(reply.content), size)] or [""]
        for n, piece in enumerate(pieces):
            # The last piece of text travels with finishReason, as the real API sends it.
            events.append(event([{"text": piece}], n == len(pieces) - 1))
        return events

    def error_body(self, status: int, error: ErrorInfo) -> dict[str, Any]:
        return gemini_error(status, error)

    def stream_error_event(self, error: ErrorInfo) -> bytes:
        kind = error.type.lower()
        status = 503 if "overload" in kind else 429 if "rate" in kind else 500
        return sse(gemini_error(status, error))

    def malformed_event(self) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [{"text": "Hi\n\n'
