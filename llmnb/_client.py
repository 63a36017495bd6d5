"""LLMClient: one profile's model, with retries and a usage row for every attempt.

The non-I/O work (building the request, deciding on retries, turning results into
usage rows and completions) lives in ``_Core`` and is shared: the sync and async
methods differ only in how they call the provider and how they sleep.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from llmnb.middleware.retry import RetryPolicy
from llmnb.providers.base import Provider
from llmnb.providers.mock import estimate_tokens
from llmnb.types import Chunk, Completion, MessagesLike, Request, Usage, normalize_messages
from llmnb.usage import UsageTracker, get_tracker

__all__ = ["AsyncTextStream", "LLMClient", "TextStream"]

# Keyword arguments that configure llmnb rather than travel on the wire.
_REQUEST_FIELDS = ("model", "temperature", "max_tokens", "timeout")


class _StreamState:
    """What one streamed attempt has received so far."""

    __slots__ = ("finish_reason", "model", "parts", "reasoning", "ttft", "usage")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.reasoning: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.ttft: float | None = None

    def add(self, chunk: Chunk, t0: float) -> None:
        if chunk.content:
            if self.ttft is None:
                self.ttft = time.perf_counter() - t0
            self.parts.append(chunk.content)
        if chunk.reasoning:
            self.reasoning.append(chunk.reasoning)
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.finish_reason:
            self.finish_reason = chunk.finish_reason
        if chunk.model:
            self.model = chunk.model

    @property
    def started(self) -> bool:
        return bool(self.parts)

    def completion(self, request: Request) -> Completion:
        text = "".join(self.parts)
        usage = self.usage
        if usage is None:  # the server sent no usage: estimate, and say so
            prompt = sum(estimate_tokens(m.content) for m in request.messages)
            usage = Usage(prompt, estimate_tokens(text), estimated=True)
        return Completion(
            content=text,
            model=self.model or request.model,
            usage=usage,
            finish_reason=self.finish_reason,
            reasoning="".join(self.reasoning),
            ttft_s=self.ttft,
        )


class _Core:
    """Everything an LLMClient does that involves no I/O."""

    def __init__(
        self,
        provider: Provider,
        *,
        profile: str | None = None,
        model: str | None = None,
        params: Mapping[str, Any] | None = None,
        retry: RetryPolicy | None = None,
        tracker: UsageTracker | None = None,
        agent: str | None = None,
        step: str | None = None,
    ) -> None:
        self.provider = provider
        self.profile = profile or provider.profile_name
        self.model = model or provider.model
        self.params: dict[str, Any] = {k: v for k, v in (params or {}).items() if v is not None}
        if retry is None:
            retries = provider.profile.get("max_retries")
            retry = RetryPolicy() if retries is None else RetryPolicy(max_retries=int(retries))
        self.retry = retry
        self._tracker = tracker
        self.agent = agent
        self.step = step

    @property
    def provider_type(self) -> str:
        return self.provider.type_name

    @property
    def tracker(self) -> UsageTracker:
        """The tracker given at construction, else the one active in this context."""
        return self._tracker if self._tracker is not None else get_tracker()

    def _request(self, messages: MessagesLike, params: dict[str, Any], stream: bool) -> Request:
        merged = dict(self.params)
        merged.update({k: v for k, v in params.items() if v is not None})
        fields = {k: merged.pop(k, None) for k in _REQUEST_FIELDS}
        return Request(
            messages=normalize_messages(messages),
            model=fields["model"] or self.model,
            temperature=fields["temperature"],
            max_tokens=fields["max_tokens"],
            timeout=fields["timeout"],
            stream=stream,
            extra=merged,
        )

    def _row_fields(
        self, request: Request, call_id: str, attempt: int, tags: Any
    ) -> dict[str, Any]:
        return {
            "model": request.model,
            "provider": self.provider.type_name,
            "profile": self.profile,
            "agent": self.agent,
            "step": self.step,
            "call_id": call_id,
            "attempt": attempt,
            "key_id": self.provider.last_key_id,
            "tags": tags,
        }

    def _on_error(
        self,
        exc: BaseException,
        request: Request,
        call_id: str,
        attempt: int,
        latency: float,
        tags: Any,
        state: _StreamState | None = None,
    ) -> float | None:
        """Record the failed attempt; return the wait before a retry, or None to raise."""
        fields = self._row_fields(request, call_id, attempt, tags)
        cancelled = isinstance(exc, GeneratorExit) or type(exc).__name__ == "CancelledError"
        status = "cancelled" if cancelled else type(exc).__name__
        ttft = state.ttft if state and state.ttft is not None else math.nan
        if state is not None and state.started:
            # Tokens already streamed are billed by the provider: count what arrived.
            partial = state.completion(request)
            u = partial.usage
            self.tracker.record(
                u.prompt_tokens,
                u.completion_tokens,
                estimated=u.estimated,
                pricing=self.provider.profile.get("pricing"),
                base_url=self.provider.base_url,
                latency_s=latency,
                ttft_s=ttft,
                status=status,
                error=None if cancelled else str(exc),
                **fields,
            )
            return None  # never retry once text has reached the caller
        self.tracker.record_unknown(
            latency_s=latency, ttft_s=ttft, status=status, error=str(exc) or status, **fields
        )
        if cancelled or not isinstance(exc, Exception):
            return None
        return self.retry.delay_for(exc, attempt)

    def _on_success(
        self,
        completion: Completion,
        request: Request,
        call_id: str,
        attempt: int,
        latency: float,
        started: float,
        tags: Any,
    ) -> Completion:
        u = completion.usage
        rec = self.tracker.record(
            u.prompt_tokens,
            u.completion_tokens,
            cached_tokens=u.cached_tokens,
            reasoning_tokens=u.reasoning_tokens,
            cost_usd=u.cost_usd,
            estimated=u.estimated,
            pricing=self.provider.profile.get("pricing"),
            base_url=self.provider.base_url,
            latency_s=latency,
            ttft_s=completion.ttft_s if completion.ttft_s is not None else math.nan,
            **self._row_fields(request, call_id, attempt, tags),
        )
        completion.profile = self.profile
        completion.provider = self.provider.type_name
        completion.call_id = call_id
        completion.attempts = attempt
        completion.latency_s = time.perf_counter() - started
        completion.cost_usd = rec.cost_usd
        completion.cost_source = rec.cost_source
        return completion


class LLMClient(_Core):
    """A client for one profile's model. Built by ``llmnb.create_llm_client_from_profile``.

    Example::

        client = llmnb.create_llm_client_from_profile()
        client.generate("hi", temperature=0.2, max_tokens=50)      # -> str
        c = client.complete("Explain SSE in one line")              # -> Completion
        for piece in client.stream("Count to five"):
            print(piece, end="")

    Messages may be a ``str``, a list of ``{"role", "content"}`` dicts or of
    :class:`llmnb.Message`. Keyword parameters other than ``temperature``,
    ``max_tokens``, ``timeout``, ``model`` and ``tags`` travel on the wire as-is.
    Every attempt (retries included) leaves one usage row; a failed call too.
    """

    # --- sync ---------------------------------------------------------------------
    def complete(self, messages: MessagesLike, **params: Any) -> Completion:
        """Send the messages and return the :class:`Completion`."""
        tags = params.pop("tags", None)
        request = self._request(messages, params, stream=False)
        call_id = uuid.uuid4().hex[:12]
        started = time.perf_counter()
        for attempt in itertools.count(1):
            t0 = time.perf_counter()
            try:
                completion = self.provider.complete(request)
            except BaseException as exc:
                delay = self._on_error(
                    exc, request, call_id, attempt, time.perf_counter() - t0, tags
                )
                if delay is None:
                    raise
                self.retry.sleep(delay)
                continue
            latency = time.perf_counter() - t0
            return self._on_success(completion, request, call_id, attempt, latency, started, tags)
        raise AssertionError("unreachable")  # pragma: no cover

    def generate(
        self,
        messages: MessagesLike,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> str:
        """Send the messages and return the answer's text."""
        return self.complete(
            messages, temperature=temperature, max_tokens=max_tokens, timeout=timeout, **params
        ).content

    def stream(self, messages: MessagesLike, **params: Any) -> TextStream:
        """Stream the answer as text pieces; ``.completion`` is set when it ends."""
        tags = params.pop("tags", None)
        return TextStream(self, self._request(messages, params, stream=True), tags)

    def _stream_attempts(self, request: Request, tags: Any, out: TextStream) -> Iterator[str]:
        call_id = uuid.uuid4().hex[:12]
        started = time.perf_counter()
        for attempt in itertools.count(1):
            t0 = time.perf_counter()
            state = _StreamState()
            try:
                for chunk in self.provider.stream(request):
                    state.add(chunk, t0)
                    if chunk.content:
                        yield chunk.content
            except BaseException as exc:
                latency = time.perf_counter() - t0
                delay = self._on_error(exc, request, call_id, attempt, latency, tags, state)
                if delay is None:
                    raise
                self.retry.sleep(delay)
                continue
            latency = time.perf_counter() - t0
            out.completion = self._on_success(
                state.completion(request), request, call_id, attempt, latency, started, tags
            )
            return

    # --- async --------------------------------------------------------------------
    async def acomplete(self, messages: MessagesLike, **params: Any) -> Completion:
        """Async :meth:`complete`."""
        tags = params.pop("tags", None)
        request = self._request(messages, params, stream=False)
        call_id = uuid.uuid4().hex[:12]
        started = time.perf_counter()
        for attempt in itertools.count(1):
            t0 = time.perf_counter()
            try:
                completion = await self.provider.acomplete(request)
            except BaseException as exc:
                delay = self._on_error(
                    exc, request, call_id, attempt, time.perf_counter() - t0, tags
                )
                if delay is None:
                    raise
                await self.retry.asleep(delay)
                continue
            latency = time.perf_counter() - t0
            return self._on_success(completion, request, call_id, attempt, latency, started, tags)
        raise AssertionError("unreachable")  # pragma: no cover

    async def agenerate(self, messages: MessagesLike, **params: Any) -> str:
        """Async :meth:`generate`."""
        return (await self.acomplete(messages, **params)).content

    def astream(self, messages: MessagesLike, **params: Any) -> AsyncTextStream:
        """Async :meth:`stream`: ``async for piece in client.astream(...)``."""
        tags = params.pop("tags", None)
        return AsyncTextStream(self, self._request(messages, params, stream=True), tags)

    async def _astream_attempts(
        self, request: Request, tags: Any, out: AsyncTextStream
    ) -> AsyncIterator[str]:
        call_id = uuid.uuid4().hex[:12]
        started = time.perf_counter()
        for attempt in itertools.count(1):
            t0 = time.perf_counter()
            state = _StreamState()
            try:
                async for chunk in self.provider.astream(request):
                    state.add(chunk, t0)
                    if chunk.content:
                        yield chunk.content
            except BaseException as exc:
                latency = time.perf_counter() - t0
                delay = self._on_error(exc, request, call_id, attempt, latency, tags, state)
                if delay is None:
                    raise
                await self.retry.asleep(delay)
                continue
            latency = time.perf_counter() - t0
            out.completion = self._on_success(
                state.completion(request), request, call_id, attempt, latency, started, tags
            )
            return

    # --- lifecycle ----------------------------------------------------------------
    def close(self) -> None:
        """Close the connections (the client reconnects if used again)."""
        self.provider.close()

    async def aclose(self) -> None:
        await self.provider.aclose()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"<LLMClient profile={self.profile!r} provider={self.provider_type!r} "
            f"model={self.model!r}>"
        )


class TextStream:
    """Iterator of text pieces; ``completion`` (usage, cost, ...) is set at the end."""

    def __init__(self, client: LLMClient, request: Request, tags: Any) -> None:
        self.completion: Completion | None = None
        self._it = client._stream_attempts(request, tags, self)

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        return next(self._it)

    def text(self) -> str:
        """Read the rest of the stream and return the whole answer."""
        for _ in self:
            pass
        assert self.completion is not None
        return self.completion.content

    def close(self) -> None:
        """Stop early; the attempt is recorded as ``cancelled`` with the tokens so far."""
        self._it.close()  # type: ignore[attr-defined]


class AsyncTextStream:
    """Async iterator of text pieces; ``completion`` is set at the end."""

    def __init__(self, client: LLMClient, request: Request, tags: Any) -> None:
        self.completion: Completion | None = None
        self._it = client._astream_attempts(request, tags, self)

    def __aiter__(self) -> AsyncTextStream:
        return self

    async def __anext__(self) -> str:
        return await self._it.__anext__()

    async def text(self) -> str:
        async for _ in self:
            pass
        assert self.completion is not None
        return self.completion.content

    async def aclose(self) -> None:
        await self._it.aclose()  # type: ignore[attr-defined]
