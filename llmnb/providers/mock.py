"""``type: mock`` — a deterministic, offline provider: the ``demo`` profile.

Profile fields::

    demo:
      type: mock
      model: mock-1
      responses: {"sse": "SSE streams events over one HTTP response."}   # keyword → answer
      default_response: "..."        # when no keyword matches (else an echo)
      delay: 0.1                     # seconds per call (spread over chunks when streaming)
      stream_chunk_size: 8           # characters per streamed chunk
      errors: [rate_limit, server_error]   # raised by the first calls, one per attempt

Token counts are estimated from text length (about 4 characters a token) and marked
``estimated``, so their cost is labelled ``estimate``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, ClassVar

from llmnb import errors
from llmnb.providers.base import EMBEDDING, Provider
from llmnb.types import Chunk, Completion, Request, Usage

__all__ = ["MockProvider", "estimate_tokens"]


def estimate_tokens(text: str) -> int:
    """About four characters a token — the usual rule of thumb for English."""
    return math.ceil(len(text) / 4) if text else 0


_ERRORS: dict[str, tuple[type[errors.APIError], int | None, str]] = {
    "rate_limit": (errors.RateLimitError, 429, "mock rate limit"),
    "server_error": (errors.ProviderError, 500, "mock server error"),
    "overloaded": (errors.OverloadedError, 529, "mock overload"),
    "timeout": (errors.LLMTimeoutError, None, "mock timeout"),
    "network": (errors.NetworkError, None, "mock connection reset"),
    "auth": (errors.AuthenticationError, 401, "mock: key rejected"),
    "quota": (errors.InsufficientQuotaError, 429, "mock: out of quota"),
    "invalid": (errors.InvalidRequestError, 400, "mock: bad request"),
}


class MockProvider(Provider):
    """Answers from a keyword table; never touches the network."""

    type_name: ClassVar[str] = "mock"
    replayable: ClassVar[bool] = False  # offline and deterministic: nothing to record

    def __init__(self, profile_name: str, profile: Mapping[str, Any], model: str) -> None:
        super().__init__(profile_name, profile, model)
        self._script = list(profile.get("errors") or [])
        self._lock = threading.Lock()

    def _next_error(self) -> errors.APIError | None:
        with self._lock:
            if not self._script:
                return None
            spec = self._script.pop(0)
        if isinstance(spec, str):
            spec = {"type": spec}
        kind = str(spec.get("type", "server_error"))
        if kind not in _ERRORS:
            raise errors.ConfigError(
                f"profile {self.profile_name!r}: unknown mock error {kind!r} in `errors`; "
                f"use one of {', '.join(sorted(_ERRORS))}."
            )
        cls, status, text = _ERRORS[kind]
        kw: dict[str, Any] = {
            "status": status,
            "provider": self.type_name,
            "profile": self.profile_name,
            "model": self.model,
        }
        message = str(spec.get("message", text))
        if cls is errors.RateLimitError:
            return errors.RateLimitError(message, retry_after=spec.get("retry_after"), **kw)
        return cls(message, **kw)

    def answer(self, request: Request) -> str:
        """The deterministic answer to a request; with attachments in the last user
        message it first says what it received ("I see 1 image (PNG, 640×480).")."""
        last = next((m for m in reversed(request.messages) if m.role.value == "user"), None)
        if last is not None and last.has_attachments:
            from llmnb.providers._parts_cost import seen

            return f"{seen(last)} {self._answer(request, last.content)}"
        return self._answer(request, last.content if last is not None else "")

    def _answer(self, request: Request, last_user: str) -> str:
        lowered = last_user.lower()
        for keyword, reply in (self.profile.get("responses") or {}).items():
            if str(keyword).lower() in lowered:
                return str(reply)
        default = self.profile.get("default_response")
        if default:
            return str(default)
        return f"[{request.model}] You said: {last_user}"

    def _completion(self, request: Request) -> Completion:
        text = self.answer(request)
        finish = "stop"
        if request.max_tokens is not None and estimate_tokens(text) > request.max_tokens:
            text, finish = text[: request.max_tokens * 4], "length"
        prompt = sum(estimate_tokens(m.content) for m in request.messages)
        if any(m.parts for m in request.messages):
            from llmnb.providers._parts_cost import attachment_tokens

            prompt += attachment_tokens("openai", request.messages)
        usage = Usage(prompt, estimate_tokens(text), estimated=True)
        return Completion(content=text, model=request.model, usage=usage, finish_reason=finish)

    def _pieces(self, completion: Completion) -> list[str]:
        size = int(self.profile.get("stream_chunk_size") or 8)
        text = completion.content
        return [text[i : i + size] for i in range(0, len(text), size)] or [""]

    @property
    def _delay(self) -> float:
        return float(self.profile.get("delay") or 0.0)

    def complete(self, request: Request) -> Completion:
        if self._delay:
            time.sleep(self._delay)
        err = self._next_error()
        if err:
            raise err
        return self._completion(request)

    async def acomplete(self, request: Request) -> Completion:
        if self._delay:
            await asyncio.sleep(self._delay)
        err = self._next_error()
        if err:
            raise err
        return self._completion(request)

    def stream(self, request: Request) -> Iterator[Chunk]:
        err = self._next_error()
        if err:
            raise err
        completion = self._completion(request)
        pieces = self._pieces(completion)
        pause = self._delay / len(pieces)
        for piece in pieces:
            if pause:
                time.sleep(pause)
            yield Chunk(content=piece, model=request.model)
        yield Chunk(finish_reason=completion.finish_reason, usage=completion.usage)

    async def astream(self, request: Request) -> AsyncIterator[Chunk]:
        err = self._next_error()
        if err:
            raise err
        completion = self._completion(request)
        pieces = self._pieces(completion)
        pause = self._delay / len(pieces)
        for piece in pieces:
            if pause:
                await asyncio.sleep(pause)
            yield Chunk(content=piece, model=request.model)
        yield Chunk(finish_reason=completion.finish_reason, usage=completion.usage)

    # --- embeddings: vectors from a hash of the text, the same in every process ----------
    supports_embeddings: ClassVar[bool] = True

    def embed(self, request: Request) -> Completion:
        if self._delay:
            time.sleep(self._delay)
        err = self._next_error()
        if err:
            raise err
        return self._embedding(request)

    async def aembed(self, request: Request) -> Completion:
        if self._delay:
            await asyncio.sleep(self._delay)
        err = self._next_error()
        if err:
            raise err
        return self._embedding(request)

    def _embedding(self, request: Request) -> Completion:
        size = (request.extra.get(EMBEDDING) or {}).get("dimensions") or MOCK_DIMENSIONS
        vectors = [hash_vector(m.content, int(size)) for m in request.messages]
        prompt = sum(estimate_tokens(m.content) for m in request.messages)
        return Completion(
            content="", model=request.model, usage=Usage(prompt, 0, estimated=True), parsed=vectors
        )


#: The mock's vector size when the call asks for none.
MOCK_DIMENSIONS = 8


def hash_vector(text: str, size: int) -> list[float]:
    """A unit vector from SHA-256 of the text: deterministic, and equal texts are equal."""
    out: list[float] = []
    counter = 0
    while len(out) < size:
        digest = hashlib.sha256(f"{counter}:{text}".encode("utf-8", "surrogatepass")).digest()
        out.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    del out[size:]
    norm = math.sqrt(sum(v * v for v in out)) or 1.0
    return [v / norm for v in out]
