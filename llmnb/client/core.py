"""The client core: everything an LLMClient does that involves no I/O.

Building the request, running the middleware hooks, deciding on retries, key switches
and failover, turning results into usage rows and completions: ``_Core`` does it once
for the four shells of :class:`~llmnb.LLMClient` (``complete``, ``acomplete``,
``stream``, ``astream``), which only call the provider and sleep. ``tests/
test_client_parity.py`` keeps sync and async in step.

One call (see :mod:`llmnb.middleware.base` for the hooks)::

    before_call hooks ─ hit? → usage row (cached) ─────────────────────────┐
                      └ refused (budget)? → usage row (not_sent), raise     │
    attempt loop:  before_attempt hooks (wait / pick key) → provider        │
                   (refused: pool exhausted, over a limit? → usage row      │
                    (not_sent) → after_attempt of those admitted, raise)    │
                   → usage row → after_attempt hooks → retry? switch key?   │
    failover: the next profile of the sequence, same call_id               │
    validate (response_model) → after_call hooks ←────────────────────────┘
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from random import getrandbits
from typing import TYPE_CHECKING, Any, Protocol

from llmnb import errors
from llmnb._http import scrub
from llmnb.client.arguments import check_fields, check_params
from llmnb.middleware.base import Call, Chain, Clock, Middleware
from llmnb.middleware.cache import CacheMiddleware
from llmnb.middleware.defaults import builtin_middleware
from llmnb.middleware.retry import RetryPolicy
from llmnb.providers.base import EMBEDDING, HTTPProvider, Provider
from llmnb.providers.mock import estimate_tokens
from llmnb.replay import session as _replay
from llmnb.replay.wire import ReplayedUsage, ReplayWire, record_attempt
from llmnb.types import Chunk, Completion, MessagesLike, Request, Secret, Usage, normalize_messages
from llmnb.usage import UsageTracker, get_tracker

if TYPE_CHECKING:
    from llmnb.client.structured import StructuredTask

__all__ = ["FailoverSource", "failover_eligible"]

# Keyword arguments that configure llmnb rather than travel on the wire.
_REQUEST_FIELDS = ("model", "temperature", "max_tokens", "timeout")
perf = time.perf_counter


class FailoverSource(Protocol):
    """Gives the clients to try, in order, when a profile's call fails.

    Handed to the client by whoever builds it: :class:`~llmnb.LLMManager` passes itself,
    ``create_llm_client_from_profile`` the settings' ``llm.fallbacks``
    (``llmnb.client.manager.SETTINGS_FAILOVER``). The core never looks one up."""

    def fallbacks_for(self, profile: str | None) -> Iterable[_Core]: ...


def failover_eligible(exc: BaseException) -> bool:
    """A provider's failure (worth another profile), not the caller's own mistake."""
    if isinstance(exc, errors.InvalidRequestError):
        return False
    return isinstance(exc, (errors.APIError, errors.PoolExhaustedError))


class _StreamState:
    """What one streamed attempt has received so far."""

    __slots__ = ("finish_reason", "model", "parts", "reasoning", "tool_calls", "ttft", "usage")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.reasoning: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.ttft: float | None = None
        self.tool_calls: list[Any] = []

    def add(self, chunk: Chunk, t0: float) -> None:
        if chunk.tool_calls:
            self.tool_calls.extend(chunk.tool_calls)
        if chunk.content:
            if self.ttft is None:
                self.ttft = perf() - t0
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
            tool_calls=list(self.tool_calls),
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
        middleware: Sequence[Middleware] = (),
        clock: Clock | None = None,
        cache: Any = None,
        failover: FailoverSource | None = None,
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
        self.failover = failover
        options = provider.profile.get("options")
        mode = options.get("structured_mode") if isinstance(options, Mapping) else None
        self.structured_mode: str = str(mode or provider.structured_mode)
        self._user_mw: list[Middleware] = list(middleware)
        self._builtin = builtin_middleware(provider, self.profile, clock, cache)
        self._chain = Chain([*self._user_mw, *self._builtin])
        # Replay from the environment or settings, resolved once; `%llm replay` and
        # llmnb.replay.use() switch every client at once (read per attempt).
        self._replay = _replay.configured()

    # --- configuration ------------------------------------------------------------
    @property
    def provider_type(self) -> str:
        return self.provider.type_name

    @property
    def tracker(self) -> UsageTracker:
        """The tracker given at construction, else the one active in this context."""
        return self._tracker if self._tracker is not None else get_tracker()

    @property
    def middleware(self) -> tuple[Middleware, ...]:
        """The chain, outer → inner: yours first, then cache, budget, key pool, limiter."""
        return self._chain.middlewares

    def add_middleware(self, middleware: Middleware) -> None:
        """Add a middleware outside the built-ins (inside those added before it)."""
        self._user_mw.append(middleware)
        self._chain = Chain([*self._user_mw, *self._builtin])  # once, not per call

    def remove_middleware(self, middleware: Middleware) -> None:
        """Remove a middleware added with :meth:`add_middleware`."""
        try:
            self._user_mw.remove(middleware)
        except ValueError:
            raise errors.InvalidOptionError(
                f"{middleware!r} was not added to this client with add_middleware()"
            ) from None
        self._chain = Chain([*self._user_mw, *self._builtin])

    # --- building a call ----------------------------------------------------------
    def _build_request(self, call: Call) -> Request:
        merged = dict(self.params)
        for k, v in call.params.items():
            if v is not None:
                merged[k] = v
        fields = {k: merged.pop(k, None) for k in _REQUEST_FIELDS}
        model, temperature, max_tokens, timeout = check_fields(**fields)
        if merged:
            check_params(merged, json=isinstance(self.provider, HTTPProvider))
        messages = call.messages
        if call.attachments:
            from llmnb.providers._parts_wire import check

            check(self.provider.type_name, str(self.profile), messages)
        schema = call.schema
        if schema is not None and self.structured_mode == "prompt":
            from llmnb.client.structured import with_instructions

            # The schema travels in the prompt; the provider must not apply its own.
            messages = with_instructions(messages, schema)
            schema = None
        return Request(
            messages=messages,
            model=model or self.model,
            temperature=temperature,
            max_tokens=max_tokens,
            timeout=timeout,
            stream=call.stream,
            extra=merged,
            response_schema=schema,
            schema_name=call.schema_name if schema is not None else None,
            tools=call.tools,
            tool_choice=call.tool_choice if call.tools else None,
        )

    def _start(
        self, messages: MessagesLike, params: dict[str, Any], stream: bool
    ) -> tuple[Call, StructuredTask | None]:
        tags = params.get("tags")
        try:
            return self._prepare(messages, params, stream)
        except (errors.InvalidRequestError, errors.InvalidOptionError) as exc:
            self._rejected(exc, params, tags)
            raise

    def _rejected(self, exc: Exception, params: Mapping[str, Any], tags: Any) -> None:
        """The usage row of a call refused for its arguments: like a middleware's
        refusal (``_refused``), nothing was sent, so its cost is 0 (``not_sent``)."""
        model = params.get("model")
        self.tracker.record_unknown(
            model=model if isinstance(model, str) and model.strip() else self.model,
            provider=self.provider.type_name,
            profile=self.profile,
            agent=self.agent,
            step=self.step,
            call_id=f"{getrandbits(48):012x}",
            attempt=1,
            key_id=None,
            tags=tags if isinstance(tags, Mapping) else None,
            latency_s=math.nan,
            cost_usd=0.0,
            cost_source="not_sent",
            status=type(exc).__name__,
            error=str(exc),
        )

    def _prepare(
        self, messages: MessagesLike, params: dict[str, Any], stream: bool
    ) -> tuple[Call, StructuredTask | None]:
        tags = params.pop("tags", None)
        cache = params.pop("cache", None)
        response_model = params.pop("response_model", None)
        validation_retries = params.pop("max_validation_retries", None)
        if cache is not None and not isinstance(cache, bool):
            raise errors.InvalidOptionError(
                f"cache={cache!r}: pass cache=False to skip the response cache, cache=True to "
                "use it even where none is configured, or leave it out."
            )
        if cache and not any(isinstance(m, CacheMiddleware) for m in self._builtin):
            # No cache configured: the first cache=True call brings the process-wide one.
            self._builtin.insert(0, CacheMiddleware(None))
            self._chain = Chain([*self._user_mw, *self._builtin])
        attachments = params.pop("attachments", None)
        normalized = normalize_messages(messages)
        n_attached = 0
        # A str prompt without attachments= skips this (the hot path stays as it was).
        if attachments is not None or (
            not isinstance(messages, str) and any(m.parts for m in normalized)
        ):
            from llmnb.client.attachments import prepare

            normalized, n_attached = prepare(normalized, attachments)
        call = Call(
            self,
            normalized,
            params,
            call_id=f"{getrandbits(48):012x}",  # uuid4() costs ~2 µs a call
            stream=stream,
            tags=tags,
            cache=cache,
            started=perf(),
            attachments=n_attached,
        )
        if response_model is None:
            if validation_retries is not None:
                raise errors.InvalidOptionError(
                    "max_validation_retries= only applies with response_model=; add a "
                    "response_model or drop max_validation_retries."
                )
            return call, None
        if stream:
            raise errors.InvalidOptionError(
                "response_model= cannot be used with stream()/astream(): the answer must be "
                "complete to be validated. Use complete()/acomplete() instead."
            )
        from llmnb.client.structured import StructuredTask

        task = StructuredTask(response_model, validation_retries)
        task.attach(call)
        call.request = self._build_request(call)
        return call, task

    # --- decisions shared by the four shells ------------------------------------------
    def _row_fields(self, call: Call) -> dict[str, Any]:
        return {
            "model": call.request.model,
            "provider": self.provider.type_name,
            "profile": self.profile,
            "agent": self.agent,
            "step": self.step,
            "call_id": call.call_id,
            "attempt": call.attempt,
            "key_id": call.key_id or self.provider.last_key_id,
            "tags": call.tags,
            # An embedding request (llmnb.client.embeddings) marks its rows so.
            "kind": "embedding" if EMBEDDING in call.request.extra else "chat",
            "attachments": call.attachments,
            "round": call.round,
        }

    def _before_call(self, call: Call) -> Completion | None:
        """Run ``before_call`` hooks; a hook's answer is recorded as a cache hit, a
        hook's refusal (budget) as an attempt that was not sent."""
        for hook in self._chain.before_call:
            try:
                hit = hook(call)
            except Exception as exc:
                call.key_id = None  # no key was picked (it may be the last round's)
                self._refused(call, exc)
                raise
            if hit is not None:
                return self._on_hit(call, hit)
        return None

    def _admit_failed(self, call: Call, admitted: Sequence[Middleware], exc: BaseException) -> None:
        """A ``before_attempt`` hook refused (key pool exhausted, request over a rate
        limit) or the wait was interrupted: record a refusal, then release what was
        admitted. An interruption (``KeyboardInterrupt``, cancellation) is no refusal."""
        try:
            if isinstance(exc, Exception):
                self._refused(call, exc)
        finally:
            self._chain.unwind(call, admitted, exc)

    def _refused(self, call: Call, exc: Exception) -> None:
        """The usage row of an attempt a middleware refused before anything was sent:
        tokens unknown, cost 0 (nothing was billed) with ``cost_source="not_sent"``."""
        call.attempt += 1
        call.latency = math.nan
        call.cost = 0.0
        fields = self._row_fields(call)
        fields["key_id"] = call.key_id  # a key picked for it, never the provider's last
        status = type(exc).__name__
        key = call.request.api_key
        self.tracker.record_unknown(
            cost_usd=0.0,
            cost_source="not_sent",
            status=status,
            error=scrub(str(exc), (key,) if key else ()) or status,
            **fields,
        )

    def _after_call(self, call: Call, completion: Completion) -> Completion:
        if call.validate is not None:
            call.validate(completion)
        for hook in self._chain.after_call:
            completion = hook(call, completion)
        return completion

    def _call_failed(self, call: Call, exc: BaseException) -> None:
        for hook in self._chain.call_failed:
            hook(call, exc)

    def _on_hit(self, call: Call, hit: Completion) -> Completion:
        call.attempt += 1
        call.key_id = None
        u = hit.usage
        latency = perf() - call.started
        fields = self._row_fields(call)
        fields["key_id"] = None  # no key was used
        self.tracker.record(
            u.prompt_tokens,
            u.completion_tokens,
            cached_tokens=u.cached_tokens,
            reasoning_tokens=u.reasoning_tokens,
            estimated=u.estimated,
            cached=True,
            latency_s=latency,
            **fields,
        )
        call.cost = 0.0
        hit.cached = True
        hit.profile = self.profile
        hit.provider = self.provider.type_name
        hit.call_id = call.call_id
        hit.attempts = call.attempt
        hit.latency_s = latency
        hit.cost_usd = 0.0
        hit.cost_source = "cache"
        return hit

    def _on_error(
        self,
        exc: BaseException,
        call: Call,
        latency: float,
        failures: int,
        state: _StreamState | None = None,
    ) -> float | None:
        """Record the failed attempt, run the hooks; return the wait before a retry, or
        None to raise."""
        call.latency = latency
        failure = self._as_provider_error(exc, call)
        exc, original = failure, exc
        fields = self._row_fields(call)
        cancelled = isinstance(exc, GeneratorExit) or type(exc).__name__ == "CancelledError"
        status = "cancelled" if cancelled else type(exc).__name__
        ttft = state.ttft if state and state.ttft is not None else math.nan
        started = state is not None and state.started
        if started:
            # Tokens already streamed are billed by the provider: count what arrived.
            assert state is not None
            partial = state.completion(call.request)
            error = None if cancelled else scrub(str(exc))
            rec = self._usage_row(partial.usage, latency, ttft, fields, status=status, error=error)
        elif isinstance(exc, errors.ReplayMissError):
            # Nothing was sent: like a refusal, the row costs 0.
            rec = self.tracker.record_unknown(
                latency_s=latency,
                status=status,
                error=str(exc),
                cost_usd=0.0,
                cost_source="not_sent",
                **fields,
            )
        elif isinstance(getattr(exc, "usage", None), Usage):
            # An error event that says what was billed (OpenRouter's mid-stream errors).
            u = exc.usage  # type: ignore[attr-defined]
            rec = self._usage_row(u, latency, ttft, fields, status=status, error=str(exc))
        else:
            rec = self.tracker.record_unknown(
                latency_s=latency,
                ttft_s=ttft,
                status=status,
                error=scrub(str(exc)) or status,
                **fields,
            )
        if _replay.in_force(self._replay) is not None:
            shown = state.parts if state is not None and state.started else None
            if not cancelled and not isinstance(exc, errors.ReplayError):
                self._record_attempt(call, rec, error=exc, chunks=shown)
        call.cost = rec.cost_usd
        for hook in self._chain.after_attempt:
            hook(call, None, exc)
        switch, call.switch_key = call.switch_key, False
        delay: float | None
        if started or cancelled or not isinstance(exc, Exception):
            delay = None  # never retry once text has reached the caller
        elif switch:
            delay = 0.0  # the key pool has another key for this failure: use it now
        else:
            delay = self.retry.delay_for(exc, failures)
        if delay is None and exc is not original:
            raise exc from original  # the shell would re-raise the untranslated one
        return delay

    def _as_provider_error(self, exc: BaseException, call: Call) -> BaseException:
        """A provider's own exception (a custom provider's bug or its library's error)
        as a :class:`~llmnb.errors.ProviderError`, so the caller meets one error tree
        and failover treats it like any provider failure. Not retried: llmnb cannot tell
        a passing fault from a bug in code it does not know (a provider that wants
        retries raises ``NetworkError``, ``RateLimitError``, ``ProviderError``)."""
        if not isinstance(exc, Exception) or isinstance(exc, errors.LLMError):
            return exc
        request = call.request
        secrets: tuple[str | Secret, ...]
        if isinstance(self.provider, HTTPProvider):
            secrets = self.provider.secrets_for(request)
        else:
            secrets = (request.api_key,) if request.api_key else ()
        method = "stream" if call.stream else "complete"
        failure = errors.ProviderError(
            f"{type(self.provider).__name__}.{method}() raised "
            + scrub(f"{type(exc).__name__}: {exc}", secrets),
            provider=self.provider.type_name,
            profile=self.profile,
            model=request.model,
        )
        failure.retryable = False
        return failure

    def _wire(self) -> Provider | ReplayWire:
        """Who answers this attempt: the provider, or a cassette while replay is on."""
        session = _replay.in_force(self._replay)
        if session is None or not session.replaying or not self.provider.replayable:
            return self.provider
        return ReplayWire(self.provider, session, self.profile)

    def _record_attempt(
        self,
        call: Call,
        row: Any,
        completion: Completion | None = None,
        error: BaseException | None = None,
        chunks: Sequence[str] | None = None,
    ) -> None:
        session = _replay.in_force(self._replay)
        if EMBEDDING in call.request.extra:
            return  # cassettes hold chat attempts; embeddings are not recorded (yet)
        if session is not None and session.recording and self.provider.replayable:
            record_attempt(
                session,
                provider=self.provider,
                profile=self.profile,
                request=call.request,
                row=row,
                completion=completion,
                error=error,
                chunks=chunks,
            )

    def _usage_row(
        self, u: Usage, latency: float, ttft: float, fields: dict[str, Any], **extra: Any
    ) -> Any:
        """The row of an attempt whose tokens are known: an answer, a stream cut after
        some text, an error event that reports what was billed."""
        return self.tracker.record(
            u.prompt_tokens,
            u.completion_tokens,
            cached_tokens=u.cached_tokens,
            reasoning_tokens=u.reasoning_tokens,
            cache_write_tokens=u.cache_write_tokens,
            cache_write_1h_tokens=u.cache_write_1h_tokens,
            cost_usd=u.cost_usd,
            estimated=u.estimated,
            pricing=self.provider.profile.get("pricing"),
            base_url=self.provider.base_url,
            latency_s=latency,
            ttft_s=ttft,
            **fields,
            **extra,
        )

    def _on_success(
        self,
        completion: Completion,
        call: Call,
        latency: float,
        chunks: Sequence[str] | None = None,
    ) -> Completion:
        call.latency = latency
        u = completion.usage
        replayed = isinstance(u, ReplayedUsage)
        ttft = completion.ttft_s if completion.ttft_s is not None else math.nan
        rec = self._usage_row(
            u,
            latency,
            ttft,
            self._row_fields(call),
            cost_source="replay" if replayed else None,
        )
        if not replayed and _replay.in_force(self._replay) is not None:
            self._record_attempt(call, rec, completion=completion, chunks=chunks)
        completion.profile = self.profile
        completion.provider = self.provider.type_name
        completion.call_id = call.call_id
        completion.attempts = call.attempt
        completion.latency_s = perf() - call.started
        completion.cost_usd = call.cost = rec.cost_usd
        completion.cost_source = rec.cost_source
        for hook in self._chain.after_attempt:
            hook(call, completion, None)
        return completion

    def _fallback(self, call: Call, exc: BaseException) -> _Core | None:
        """The next profile of the failover sequence for this failure, or None."""
        if self.failover is None or not failover_eligible(exc):
            return None
        if call.client.profile not in call.tried:
            call.tried.append(str(call.client.profile))
        for client in self.failover.fallbacks_for(self.profile):
            if client.profile in call.tried:
                continue
            call.tried.append(str(client.profile))
            try:
                request = client._build_request(call)
            except errors.InvalidRequestError:
                if not call.attachments:
                    raise
                continue  # this fallback cannot take the attachments: the next one may
            call.client = client
            call.key_id = None
            call.request = request
            return client
        return None
