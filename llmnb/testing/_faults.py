"""Scripted faults: what the fake server answers to one chat request instead of a normal reply.

A :class:`Fault` is plain data and knows no wire format. The server plays it through
the wire format the request came in on (OpenAI, Anthropic Messages or Gemini), so
``Fault.rate_limit()`` yields each format's own 429 error envelope.
"""

from __future__ import annotations

import http
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ErrorInfo", "Fault", "FaultKind"]

FaultKind = Literal[
    "error",
    "reset",
    "slow",
    "cut_stream",
    "stream_error",
    "malformed_json",
    "html",
    "empty_body",
    "reply",
    "json",
    "sse",
    "tool_call",
]


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A wire-neutral error: each wire format wraps it in its own envelope.

    ``type`` uses the OpenAI vocabulary (``rate_limit_error``, ``server_error``, ...);
    other wire formats translate it.
    """

    message: str
    type: str
    code: str | int | None = None
    # Seconds the server asks the client to wait; wire formats that carry it in the body
    # (Gemini's RetryInfo) put it there, the others rely on the Retry-After header.
    retry_after: float | None = None


# status -> (message, type, code) of the default error body of Fault.status().
_DEFAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request: the fake server was told to reject it.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "permission_error", None),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    408: ("Request timed out.", "timeout_error", None),
    422: ("Unprocessable request.", "invalid_request_error", None),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
    529: ("Overloaded.", "overloaded_error", "overloaded"),
}


def default_error(status: int) -> ErrorInfo:
    """The error a real provider would plausibly send with ``status``."""
    if status in _DEFAULT_ERRORS:
        return ErrorInfo(*_DEFAULT_ERRORS[status])
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return ErrorInfo(
        f"{phrase} (HTTP {status}).", "server_error" if status >= 500 else "invalid_request_error"
    )


def _seconds_text(value: float) -> str:
    """``2`` for whole seconds, ``1.5`` otherwise (servers send both)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _header_pairs(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in (headers or {}).items())


@dataclass(frozen=True, slots=True, repr=False)
class Fault:
    """One scripted answer to one chat request. Build it with a constructor::

    srv.script(Fault.rate_limit(retry_after=1.5), Fault.status(500), Fault.reset())
    """

    kind: FaultKind
    http_status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    error: ErrorInfo | None = None
    body: Any = None
    delay: float = 0.0
    after_chunks: int = 0
    content: str | None = None
    usage: Mapping[str, Any] | None = None
    finish_reason: str = "stop"
    cost: float | None = None
    reasoning: str | None = None
    label: str = field(default="", compare=False)

    def __repr__(self) -> str:
        return f"Fault.{self.label or self.kind}"

    @classmethod
    def rate_limit(
        cls,
        retry_after: float | None = 1.0,
        retry_after_ms: float | None = None,
        code: str = "rate_limit_exceeded",
    ) -> Fault:
        """429 with ``Retry-After`` (seconds) and/or ``retry-after-ms`` headers."""
        headers: list[tuple[str, str]] = []
        wait = ""
        if retry_after is not None:
            headers.append(("Retry-After", _seconds_text(retry_after)))
            wait = f" Please try again in {_seconds_text(retry_after)}s."
        if retry_after_ms is not None:
            headers.append(("retry-after-ms", _seconds_text(retry_after_ms)))
            wait = wait or f" Please try again in {_seconds_text(retry_after_ms)}ms."
        message = f"Rate limit reached for requests (fake server).{wait}"
        seconds = retry_after if retry_after is not None else None
        if seconds is None and retry_after_ms is not None:
            seconds = retry_after_ms / 1000.0
        return cls(
            "error",
            429,
            tuple(headers),
            ErrorInfo(message, "requests", code, seconds),
            label=f"rate_limit(retry_after={retry_after!r}, retry_after_ms={retry_after_ms!r})",
        )

    @classmethod
    def insufficient_quota(cls) -> Fault:
        """429 saying the account is out of credit (never worth retrying)."""
        message = "You exceeded your current quota, please check your plan and billing details."
        return cls(
            "error",
            429,
            error=ErrorInfo(message, "insufficient_quota", "insufficient_quota"),
            label="insufficient_quota()",
        )

    @classmethod
    def status(
        cls,
        code: int,
        body: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Any HTTP status; the body is the wire's error JSON unless given (dict → JSON)."""
        return cls(
            "error",
            int(code),
            _header_pairs(headers),
            default_error(int(code)),
            body=body,
            label=f"status({code})",
        )

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection abruptly (TCP RST) without sending any byte."""
        return cls("reset", label="reset()")

    @classmethod
    def slow(cls, delay: float) -> Fault:
        """Wait ``delay`` seconds, then answer normally (other connections keep going)."""
        return cls("slow", delay=float(delay), label=f"slow({delay!r})")

    @classmethod
    def cut_stream(cls, after_chunks: int = 2) -> Fault:
        """Send ``after_chunks`` stream events (the first is the role chunk), then close
        the connection without ending the stream (no ``[DONE]``, no last HTTP chunk).

        A non-stream request gets a ``Content-Length`` larger than the body it receives.
        """
        return cls("cut_stream", after_chunks=after_chunks, label=f"cut_stream({after_chunks})")

    @classmethod
    def stream_error(
        cls,
        after_chunks: int = 1,
        message: str = "The provider failed in the middle of the answer.",
        type: str = "server_error",
        code: str | int | None = None,
    ) -> Fault:
        """Send ``after_chunks`` stream events, then an error event, then end the body.

        A non-stream request gets HTTP 200 with the error envelope as its body, as
        OpenRouter does when a generation fails after it started.
        """
        return cls(
            "stream_error",
            error=ErrorInfo(message, type, code),
            after_chunks=after_chunks,
            label=f"stream_error({after_chunks})",
        )

    @classmethod
    def malformed_json(cls) -> Fault:
        """200 ``application/json`` whose body is not JSON (an SSE event, when streaming)."""
        return cls("malformed_json", label="malformed_json()")

    @classmethod
    def html(cls, status: int = 502) -> Fault:
        """An HTML error page (``text/html``), as a proxy or gateway sends."""
        return cls("html", int(status), label=f"html({status})")

    @classmethod
    def empty_body(cls, status: int = 200) -> Fault:
        """``status`` with an empty body."""
        return cls("empty_body", int(status), label=f"empty_body({status})")

    @classmethod
    def reply(
        cls,
        content: str,
        usage: Mapping[str, Any] | None = None,
        finish_reason: str = "stop",
        cost: float | None = None,
        reasoning: str | None = None,
    ) -> Fault:
        """A normal answer with this content; ``usage`` (wire JSON) and ``cost`` verbatim.

        ``reasoning`` is sent as the wire format's thinking text (Anthropic ``thinking``
        blocks, Gemini ``thought`` parts, OpenAI ``reasoning``), apart from the answer.
        """
        return cls(
            "reply",
            content=content,
            usage=dict(usage) if usage is not None else None,
            finish_reason=finish_reason,
            cost=cost,
            reasoning=reasoning,
            label=f"reply({content[:20]!r})",
        )

    @classmethod
    def sse(cls, *events: str | bytes) -> Fault:
        """A complete ``text/event-stream`` body made of exactly these bytes, in order.

        Each item is written as one HTTP chunk, verbatim (``"data: {...}\\n\\n"``), and
        the body then ends cleanly: for protocol edge cases no scripted fault covers.
        """
        raw = tuple(e.encode() if isinstance(e, str) else bytes(e) for e in events)
        return cls("sse", body=raw, label=f"sse({len(raw)} events)")

    @classmethod
    def json(cls, status: int, body: Any, headers: Mapping[str, str] | None = None) -> Fault:
        """Any JSON body verbatim, whatever the request asked for."""
        return cls("json", int(status), _header_pairs(headers), body=body, label=f"json({status})")

    @classmethod
    def tool_call(
        cls, name: str, arguments: Mapping[str, Any] | None = None, id: str = ""
    ) -> Fault:
        """An answer asking for one tool call, in the request's wire format (plain or
        streamed, the arguments sent in pieces); ``id`` is made up when empty."""
        return cls.tool_calls((name, dict(arguments or {}), id))

    @classmethod
    def tool_calls(cls, *calls: tuple[str, Mapping[str, Any], str]) -> Fault:
        """An answer asking for several ``(name, arguments, id)`` calls at once."""
        body = tuple((str(n), dict(a), str(i)) for n, a, i in calls)
        names = ",".join(c[0] for c in body)
        return cls("tool_call", body=body, finish_reason="tool_calls", label=f"tool_call({names})")
