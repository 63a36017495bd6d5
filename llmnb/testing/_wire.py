"""What every wire format of the fake server shares: recorded requests, calls, replies.

A wire format (OpenAI chat completions, Anthropic Messages, Gemini generateContent)
implements :class:`ChatWire`: it reads a :class:`ChatCall` out of a request and writes
replies, stream events and error envelopes. Deciding *what* to answer (keyword
responses, echo, token counts, faults) happens once, in the server, for all formats.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmnb.testing._faults import ErrorInfo

__all__ = ["ChatCall", "ChatWire", "RecordedRequest", "Reply", "count_tokens"]


def count_tokens(text: str) -> int:
    """The fake server's token count: ``ceil(len(text) / 4)``."""
    return math.ceil(len(text) / 4)


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received. ``headers`` has lower-case names."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    time: float
    query: str = ""
    json: Any = field(default=None, compare=False)

    @classmethod
    def build(
        cls,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        time: float,
        query: str = "",
    ) -> RecordedRequest:
        """Record a request; ``json`` is the parsed body or ``None``."""
        return cls(method, path, headers, body, time, query, _parse_json(body))


@dataclass(frozen=True, slots=True)
class ChatCall:
    """The wire-neutral content of one chat request."""

    model: str
    stream: bool = False
    include_usage: bool = False
    prompt_text: str = ""
    last_user: str = ""
    max_tokens: int | None = None
    # The tool the request forces the model to call (Anthropic ``tool_choice``): the
    # answer then comes as that tool's JSON input instead of text.
    tool: str | None = None
    # Why the request cannot be answered normally (answered with HTTP 400), or None.
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A planned answer: content, finish reason and token counts."""

    content: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cost: float | None = None
    # Exact usage JSON to send instead of the computed one (Fault.reply(usage=...)).
    usage_override: Mapping[str, Any] | None = None
    # Thinking text, sent apart from the answer (Fault.reply(reasoning=...)).
    reasoning: str = ""

    @property
    def reasoning_tokens(self) -> int:
        return count_tokens(self.reasoning) if self.reasoning else 0


class ChatWire(Protocol):
    """A chat wire format: parsing requests and rendering answers, nothing else."""

    name: str

    def parse(self, request: RecordedRequest, match: re.Match[str], model: str) -> ChatCall:
        """Read the call out of a request; ``model`` is the server's default model."""
        ...

    def completion(self, call: ChatCall, reply: Reply) -> Any:
        """The JSON body of a non-stream answer."""
        ...

    def stream_events(self, call: ChatCall, reply: Reply, chunk_size: int) -> list[bytes]:
        """Every SSE event of a stream answer (``chunk_size`` characters of content per
        event), the end-of-stream marker last."""
        ...

    def error_body(self, status: int, error: ErrorInfo) -> Any:
        """The JSON error envelope sent with an HTTP error status."""
        ...

    def stream_error_event(self, error: ErrorInfo) -> bytes:
        """An SSE event reporting an error in the middle of a stream."""
        ...

    def malformed_event(self) -> bytes:
        """An SSE event whose data is not valid JSON."""
        ...


def sse(data: Any, event: str | None = None) -> bytes:
    """One SSE event; ``data`` is JSON-encoded unless it is already a ``str``."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()
