"""HTTP plumbing shared by every wire protocol: the HTTP library, SSE decoding, error mapping.

Nothing here knows a provider's JSON shapes beyond the common ``{"error": {...}}``
envelope; providers add their own details on top.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from llmnb import errors
from llmnb.types import Secret, scrub_secrets

__all__ = [
    "SSEDecoder",
    "SSEEvent",
    "body_excerpt",
    "detach",
    "http_library",
    "map_http_error",
    "parse_retry_after",
    "scrub",
]

USER_AGENT = "llmnb/0.1"
_EXCERPT = 300


def http_library(transport: object | None = None) -> ModuleType:
    """The HTTP library to build a client with, imported on first use.

    httpx2 — pydantic's maintained fork of httpx, same API, installed with genai-prices —
    unless ``transport`` (a provider's network seam) is an httpx transport, such as a
    test's ``httpx.MockTransport``: then httpx, since a transport only works with the
    library it was written for. httpx2 is the default because its connection pool does
    not rescan every pooled connection for each request as httpcore's does; at 64
    requests in flight that scan is half of httpx's CPU time (``bench/RESULTS.md`` §3).
    """
    httpx = sys.modules.get("httpx")
    if (
        transport is not None
        and httpx is not None
        and isinstance(transport, (httpx.BaseTransport, httpx.AsyncBaseTransport))
    ):
        return httpx
    try:
        import httpx2
    except ImportError:  # Python 3.10, where httpx2 does not install
        import httpx as fallback

        return fallback
    return httpx2


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One server-sent event: ``event`` name (default "message") and its ``data``."""

    data: str
    event: str = "message"
    id: str | None = None


_EOL = re.compile(r"\r\n|\r|\n")


class SSEDecoder:
    """Incremental text/event-stream parser (WHATWG rules).

    Feed it text in arbitrary pieces; it returns the events completed so far. Chunk
    boundaries never change the result, which the fuzz tests hold it to. Comment lines
    (``: OPENROUTER PROCESSING``) and ``retry:`` are skipped.

    Linear in the size of the stream: each piece is scanned once, and the pieces of a
    line still open are kept in a list and joined once, when the line ends — never
    re-concatenated per piece, which made one 8 MB event cost ~12× a 2 MB one.
    """

    __slots__ = ("_data", "_event", "_id", "_open", "_skip_lf")

    def __init__(self) -> None:
        self._open: list[str] = []  # the pieces of the line not yet ended
        self._skip_lf = False  # the last piece ended with "\r": a "\n" next is its pair
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, text: str) -> list[SSEEvent]:
        if self._skip_lf and text:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        if not text:
            return []
        if "\n" not in text and "\r" not in text:
            self._open.append(text)
            return []
        parts = _EOL.split(text)
        if self._open:
            self._open.append(parts[0])
            parts[0] = "".join(self._open)
            self._open = []
        rest = parts.pop()
        if rest:
            self._open.append(rest)
        self._skip_lf = text[-1] == "\r"
        out: list[SSEEvent] = []
        # The two lines of nearly every event, "data: …" and the blank line ending it,
        # are handled here inline: two method calls fewer per event on long streams.
        line_ = self._line
        for line in parts:
            if line[:6] == "data: ":
                self._data.append(line[6:])
            elif not line and self._data:
                out.append(SSEEvent("\n".join(self._data), self._event or "message", self._id))
                self._data = []
                self._event = ""
            else:
                line_(line, out)
        return out

    def flush(self) -> list[SSEEvent]:
        """End of stream: finish a last event that had no blank line after it."""
        out: list[SSEEvent] = []
        if self._open:
            rest, self._open = "".join(self._open), []
            self._line(rest, out)
        self._skip_lf = False
        self._line("", out)
        return out

    def _line(self, line: str, out: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                out.append(SSEEvent("\n".join(self._data), self._event or "message", self._id))
            self._data = []
            self._event = ""
            return
        if line[0] == ":":
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date).

    ``nan`` is no wait at all (``time.sleep(nan)`` raises ValueError): None. ``inf`` is
    kept, so the retry policy gives up at once as for any wait beyond its limit.
    """
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            wait = float(ms) / 1000.0
        except ValueError:
            pass
        else:
            if not math.isnan(wait):
                return max(wait, 0.0)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        wait = float(value)
    except ValueError:
        pass  # an HTTP date
    else:
        return None if math.isnan(wait) else max(wait, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def scrub(text: str, secrets: Iterable[str | Secret] = ()) -> str:
    """``text`` without any secret llmnb knows (every :class:`~llmnb.types.Secret` made
    registers one) nor any of ``secrets``: servers and libraries quote keys back."""
    return scrub_secrets(text, secrets)


_PLAIN = (str, int, float, bool, type(None))


def detach(exc: BaseException, secrets: Iterable[str | Secret] = ()) -> BaseException:
    """Strip a caught library exception down to its type and scrubbed text, in place.

    An llmnb error is raised ``from`` it, so it stays in the chain (``__cause__`` and
    ``__context__``): there it must not hold what the library kept — httpx's ``request``
    (headers and all: ``x-api-key``, ``x-goog-api-key``), a traceback whose frames hold
    headers as locals, inner exceptions, or a JSON error's ``doc`` quoting a key.
    """
    secrets = tuple(secrets)
    exc.args = tuple(scrub(str(a), secrets) if isinstance(a, (str, bytes)) else a for a in exc.args)
    exc.args = tuple(a if isinstance(a, _PLAIN) else type(a).__name__ for a in exc.args)
    for name, value in list(getattr(exc, "__dict__", {}).items()):
        if isinstance(value, str):
            setattr(exc, name, scrub(value, secrets))
        elif not isinstance(value, _PLAIN):
            setattr(exc, name, None)
    exc.__traceback__ = None
    exc.__cause__ = None
    exc.__context__ = None
    return exc


def body_excerpt(body: bytes | str, secrets: Iterable[str | Secret] = ()) -> str:
    """A short, printable, secret-free excerpt of a response body."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    # Scrubbed before it is cut: a key cut in half is no longer found.
    text = " ".join(scrub(text, secrets).split())
    if len(text) > _EXCERPT:
        text = text[:_EXCERPT] + "…"
    return text


def _error_fields(body: bytes | str) -> tuple[str | None, str | None, str | None, bool]:
    """(message, type, code, looks_like_html) from the common error envelopes."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    stripped = text.lstrip()[:200].lower()
    html = stripped.startswith("<!doctype html") or stripped.startswith("<html")
    try:
        data: Any = json.loads(text)
    except (ValueError, RecursionError):
        return None, None, None, html
    err = data.get("error", data) if isinstance(data, dict) else None
    if isinstance(err, str):
        return err, None, None, False
    if not isinstance(err, dict):
        return None, None, None, False
    msg = err.get("message")
    typ = err.get("type") or err.get("status")
    code = err.get("code")
    return (
        str(msg) if msg is not None else None,
        str(typ) if typ is not None else None,
        str(code) if code is not None else None,
        False,
    )


_QUOTA_MARKERS = ("insufficient_quota", "enforced_spend_limit", "billing", "credit")


def map_http_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    provider: str | None = None,
    profile: str | None = None,
    model: str | None = None,
    key_env: str | None = None,
    base_url: str | None = None,
    secrets: Iterable[str | Secret] = (),
) -> errors.APIError:
    """Turn a non-2xx answer into the matching typed error, with advice."""
    secrets = tuple(secrets)
    msg, typ, code, html = _error_fields(body)
    excerpt = body_excerpt(body, secrets)
    said = scrub(msg, secrets).strip().rstrip(".") if msg else None
    detail = f": {said}" if said else ""
    if html:
        detail = (
            " and an HTML page instead of JSON (a proxy or gateway answered; "
            f"check base_url{f' {base_url!r}' if base_url else ''})"
        )
    kw: dict[str, Any] = {
        "status": status,
        "body": excerpt,
        "provider": provider,
        "profile": profile,
        "model": model,
        "code": code or typ,
    }
    marker = f"{typ or ''} {code or ''} {msg or ''}".lower()
    if status in (401, 403):
        where = f"the key in {key_env}" if key_env else "the profile's API key"
        return errors.AuthenticationError(
            f"authentication failed (HTTP {status}){detail}. Check {where}; "
            "a fresh key goes in .env or the environment.",
            **kw,
        )
    if status == 402 or (status == 429 and any(m in marker for m in _QUOTA_MARKERS)):
        return errors.InsufficientQuotaError(
            f"out of quota or spend limit reached (HTTP {status}){detail}. "
            "Add credit or raise the limit in the provider's console; retrying will not help.",
            **kw,
        )
    if status == 429:
        retry_after = parse_retry_after(headers)
        return errors.RateLimitError(
            f"rate limited (HTTP 429){detail}. Wait a little and run it again; for fewer "
            "429s set `rate_limits:` (or `max_retries:`) in the profile.",
            retry_after=retry_after,
            **kw,
        )
    later = "try again later, or switch to another profile"
    if status == 408:
        return errors.LLMTimeoutError(
            f"the server timed out (HTTP 408){detail}. Try again, or raise `timeout`.", **kw
        )
    if status in (503, 529) or "overloaded" in marker:
        return errors.OverloadedError(
            f"the provider is overloaded (HTTP {status}){detail}. Nothing is wrong on "
            f"your side: {later}.",
            **kw,
        )
    if status >= 500 or status == 409:
        return errors.ProviderError(
            f"the provider failed (HTTP {status}){detail}. This is on the provider's side: "
            f"{later}.",
            **kw,
        )
    hint = ""
    if status == 404:
        hint = f" Check the model name {model!r} and base_url" + (
            f" {base_url!r}." if base_url else "."
        )
    return errors.InvalidRequestError(
        f"the request was rejected (HTTP {status}){detail}.{hint}", **kw
    )
