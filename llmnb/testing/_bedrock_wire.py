"""AWS Bedrock's Converse wire: ``POST /model/{modelId}/converse`` (JSON) and
``/converse-stream`` (AWS event-stream binary frames, each with its prelude and CRCs).

Requests must carry a well-formed SigV4 ``Authorization`` header and ``X-Amz-Date``; the
signature itself is not checked (the fake server knows no secret key).
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from typing import Any

from llmnb.testing._faults import ErrorInfo
from llmnb.testing._wire import ChatCall, RecordedRequest, Reply

__all__ = ["BEDROCK_PATH", "BedrockConverseWire", "event_frame"]

BEDROCK_PATH = re.compile(r"/model/(?P<model>[^/]+)/(?P<method>converse|converse-stream)")
_SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=[A-Za-z0-9]+/\d{8}/[a-z0-9-]+/bedrock/aws4_request, "
    r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}"
)
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_EXCEPTIONS = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    429: "ThrottlingException",
    503: "ServiceUnavailableException",
}
_STOPS = {"stop": "end_turn", "length": "max_tokens"}


def event_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total and headers length, CRC32), string
    headers, payload, CRC32 of everything before it."""
    head = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        head += struct.pack("!B", len(raw_name)) + raw_name
        head += struct.pack("!BH", 7, len(raw_value)) + raw_value
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + head + payload
    return message + struct.pack("!I", zlib.crc32(message))


def _event(name: str, data: Any) -> bytes:
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return event_frame(headers, json.dumps(data, separators=(",", ":")).encode())


def _text(content: Any) -> str:
    if not isinstance(content, list):
        return ""
    return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))


class BedrockConverseWire:
    """Converse and ConverseStream."""

    name = "bedrock"
    stream_type = "application/vnd.amazon.eventstream"

    def parse(self, request: RecordedRequest, match: re.Match[str], model: str) -> ChatCall:
        import urllib.parse

        call_model = urllib.parse.unquote(match["model"])
        stream = match["method"] == "converse-stream"
        auth = request.headers.get("authorization", "")
        problem = None
        if not _SIGV4.fullmatch(auth):
            problem = f"Authorization is not a well-formed SigV4 header: {auth[:40]!r}"
        elif not _AMZ_DATE.fullmatch(request.headers.get("x-amz-date", "")):
            problem = "X-Amz-Date is missing or not of the form YYYYMMDDTHHMMSSZ"
        body = request.json
        if problem is None and not isinstance(body, dict):
            problem = "the request body must be a JSON object"
        body = body if isinstance(body, dict) else {}
        messages = body.get("messages")
        if problem is None and (not isinstance(messages, list) or not messages):
            problem = "messages must be a non-empty list"
        messages = messages if isinstance(messages, list) else []
        system = _text(body.get("system"))
        texts = [_text(m.get("content")) for m in messages if isinstance(m, dict)]
        last_user = next(
            (
                _text(m.get("content"))
                for m in reversed(messages)
                if isinstance(m, dict) and m.get("role") == "user"
            ),
            "",
        )
        limit = (body.get("inferenceConfig") or {}).get("maxTokens")
        max_tokens = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        return ChatCall(
            call_model,
            stream,
            stream,
            system + "".join(texts),
            last_user,
            max_tokens,
            None,
            problem,
        )

    def _usage(self, reply: Reply) -> dict[str, Any]:
        if reply.usage_override is not None:
            return dict(reply.usage_override)
        return {
            "inputTokens": reply.prompt_tokens,
            "outputTokens": reply.completion_tokens,
            "totalTokens": reply.prompt_tokens + reply.completion_tokens,
        }

    def completion(self, call: ChatCall, reply: Reply) -> dict[str, Any]:
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": reply.content}]}},
            "stopReason": _STOPS.get(reply.finish_reason, reply.finish_reason),
            "usage": self._usage(reply),
            "metrics": {"latencyMs": 1},
        }

    def stream_events(self, call: ChatCall, reply: Reply, chunk_size: int = 4) -> list[bytes]:
        size = max(1, chunk_size)
        text = reply.content
        events = [_event("messageStart", {"role": "assistant"})]
        events += [
            _event(
                "contentBlockDelta", {"delta": {"text": text[i : i + size]}, "contentBlockIndex": 0}
            )
            for i in range(0, len(text), size)
        ]
        events.append(_event("contentBlockStop", {"contentBlockIndex": 0}))
        stop = _STOPS.get(reply.finish_reason, reply.finish_reason)
        events.append(_event("messageStop", {"stopReason": stop}))
        events.append(
            _event("metadata", {"usage": self._usage(reply), "metrics": {"latencyMs": 1}})
        )
        return events

    def error_body(self, status: int, error: ErrorInfo) -> dict[str, Any]:
        kind = _EXCEPTIONS.get(status, "InternalServerException")
        return {"message": error.message, "__type": kind}

    def stream_error_event(self, error: ErrorInfo) -> bytes:
        kind = "ThrottlingException" if "rate" in error.type else "ModelStreamErrorException"
        headers = {
            ":exception-type": kind,
            ":content-type": "application/json",
            ":message-type": "exception",
        }
        return event_frame(headers, json.dumps({"message": error.message}).encode())

    def malformed_event(self) -> bytes:
        return _event("contentBlockDelta", {"delta": {"text": "Hi"}})[:-3] + b"\x00\x00\x00"
