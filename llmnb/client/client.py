"""LLMClient: one profile's model, with middlewares, retries and a usage row per attempt.

The decisions live in :mod:`llmnb.client.core` (``_Core``); the methods here are its I/O
shells — they call the provider and sleep, sync or async, and nothing else.
"""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
    Sequence,
)
from functools import partial
from typing import TYPE_CHECKING, Any

from llmnb.client.core import FailoverSource, _Core, _StreamState, perf
from llmnb.middleware.base import Call, Middleware
from llmnb.types import Completion, Embeddings, MessagesLike

if TYPE_CHECKING:
    from llmnb.client.structured import StructuredTask

__all__ = [
    "AsyncTextStream",
    "FailoverSource",
    "LLMClient",
    "TextStream",
]

_perf = perf


class LLMClient(_Core):
    """A client for one profile's model. Built by ``llmnb.create_llm_client_from_profile``
    or ``llmnb.get_llm_manager().get_client(name)``.

    Example::

        client = llmnb.create_llm_client_from_profile()
        client.generate("hi", temperature=0.2, max_tokens=50)      # -> str
        c = client.complete("Explain SSE in one line")              # -> Completion
        client.complete("hi", cache=False, tags={"run": "a"})       # skip the cache
        city = client.complete("Largest city?", response_model=City).parsed
        for piece in client.stream("Count to five"):
            print(piece, end="")

    Messages may be a ``str``, a list of ``{"role", "content"}`` dicts or of
    :class:`llmnb.Message`. Keyword parameters other than ``temperature``,
    ``max_tokens``, ``timeout``, ``model`` and llmnb's own ``tags``, ``cache``,
    ``response_model``, ``max_validation_retries`` travel on the wire as-is.
    Every attempt (retries included) leaves one usage row; a failed call too, and one a
    middleware refused before sending (budget, key pool, rate limit: cost 0,
    ``cost_source="not_sent"``). A failure that is the provider's moves the call to the
    next client of ``failover`` (a :class:`~llmnb.client.core.FailoverSource`): built from
    a profile, that is the settings' ``llm.fallbacks``; from an ``LLMManager``, its failover
    sequence; ``client.failover = None`` turns it off.
    """

    # --- sync ---------------------------------------------------------------------
    def complete(self, messages: MessagesLike, **params: Any) -> Completion:
        """Send the messages and return the :class:`Completion`.

        With ``tools=[...]`` the model may call them: llmnb runs the calls and sends the
        results back (see :mod:`llmnb.client.tool_loop`)."""
        if params.get("tools") is not None:
            from llmnb.client.tool_loop import complete

            return complete(self, messages, params, self._complete_round)
        call, task = self._start(messages, params, stream=False)
        return self._complete_round(call, task)

    def _complete_round(self, call: Call, task: StructuredTask | None) -> Completion:
        if task is None:
            return self._complete_call(call)
        from llmnb.client.structured import InvalidAnswer

        while True:
            try:
                completion = self._complete_call(call)
            except InvalidAnswer as invalid:
                failure = task.reask(call, invalid)
                if failure is not None:
                    raise failure from None
                continue
            return task.finish(completion)

    def _complete_call(self, call: Call) -> Completion:
        core: LLMClient = call.client  # type: ignore[assignment]
        while True:
            try:
                return core._run(call)
            except Exception as exc:
                nxt = self._fallback(call, exc)
                if nxt is None:
                    raise
                core = nxt  # type: ignore[assignment]  # sources give LLMClients

    def _run(self, call: Call) -> Completion:
        try:
            completion = self._before_call(call)
            if completion is None:
                completion = self._attempts(call)
            return self._after_call(call, completion)
        except BaseException as exc:
            self._call_failed(call, exc)
            raise

    def _attempts(self, call: Call) -> Completion:
        failures = 0
        while True:
            if self._chain.before_attempt:
                self._admit(call)
            call.attempt += 1
            t0 = _perf()
            try:
                completion = self._wire().complete(call.request)
            except BaseException as exc:
                failures += 1
                delay = self._on_error(exc, call, _perf() - t0, failures)
                if delay is None:
                    raise
                self.retry.sleep(delay)
                continue
            return self._on_success(completion, call, _perf() - t0)

    def _admit(self, call: Call) -> None:
        waiters = self._chain.before_attempt
        call.key_id = None
        ran: list[Middleware] = []
        try:
            for m in waiters:
                ran.append(m)
                wait = m.before_attempt(call)
                while wait > 0:
                    m.clock.sleep(wait)
                    wait = m.before_attempt(call)
        except BaseException as exc:
            self._admit_failed(call, ran, exc)
            raise

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
        """Stream the answer as text pieces; ``.completion`` is set when it ends.

        Streams go through the budget, key pool and rate limiter but not the cache.
        Stopping early (``break``, an exception in the loop, ``close()``, the end of a
        ``with`` block) records the attempt as ``cancelled`` and frees its key at once.
        """
        if params.get("tools") is not None:  # text pieces and ToolCall events
            from llmnb.client.tool_loop import ToolLoop, ToolStream

            return ToolStream(ToolLoop(self, messages, params), partial(TextStream, self))  # type: ignore[return-value]
        call, _ = self._start(messages, params, stream=True)
        return TextStream(self, call)

    def _stream_call(self, call: Call, out: _StreamResult) -> Generator[str, None, None]:
        core: LLMClient = call.client  # type: ignore[assignment]
        while True:
            try:
                out.completion = yield from core._stream_run(call)
                return
            except Exception as exc:
                nxt = None if out.started else self._fallback(call, exc)
                if nxt is None:
                    raise
                core = nxt  # type: ignore[assignment]  # sources give LLMClients

    def _stream_run(self, call: Call) -> Generator[str, None, Completion]:
        try:
            completion = self._before_call(call)
            if completion is not None:
                yield completion.content
            else:
                completion = yield from self._stream_attempts(call)
            return self._after_call(call, completion)
        except BaseException as exc:
            self._call_failed(call, exc)
            raise

    def _stream_attempts(self, call: Call) -> Generator[str, None, Completion]:
        failures = 0
        while True:
            if self._chain.before_attempt:
                self._admit(call)
            call.attempt += 1
            t0 = _perf()
            state = _StreamState()
            try:
                chunks = iter(self._wire().stream(call.request))
                try:
                    for chunk in chunks:
                        state.add(chunk, t0)
                        if chunk.content:
                            yield chunk.content
                finally:
                    _close(chunks)  # the connection goes back now, not when collected
            except BaseException as exc:
                failures += 1
                delay = self._on_error(exc, call, _perf() - t0, failures, state)
                if delay is None:
                    raise
                self.retry.sleep(delay)
                continue
            latency = _perf() - t0
            return self._on_success(state.completion(call.request), call, latency, state.parts)

    def embed(self, texts: str | Sequence[str], **options: Any) -> Embeddings:
        """Embed ``texts``: an :class:`~llmnb.Embeddings` with one row per text.

        Options: ``model``, ``dimensions``, ``batch_size``, ``concurrency``, ``cache``,
        ``tags``; see :mod:`llmnb.client.embeddings`."""
        from llmnb.client.embeddings import embed

        return embed(self, texts, **options)

    async def aembed(self, texts: str | Sequence[str], **options: Any) -> Embeddings:
        """Async :meth:`embed`."""
        from llmnb.client.embeddings import aembed

        return await aembed(self, texts, **options)

    # --- async --------------------------------------------------------------------
    async def acomplete(self, messages: MessagesLike, **params: Any) -> Completion:
        """Async :meth:`complete`; a tool loop's parallel calls run concurrently."""
        if params.get("tools") is not None:
            from llmnb.client.tool_loop import acomplete

            return await acomplete(self, messages, params, self._acomplete_round)
        call, task = self._start(messages, params, stream=False)
        return await self._acomplete_round(call, task)

    async def _acomplete_round(self, call: Call, task: StructuredTask | None) -> Completion:
        if task is None:
            return await self._acomplete_call(call)
        from llmnb.client.structured import InvalidAnswer

        while True:
            try:
                completion = await self._acomplete_call(call)
            except InvalidAnswer as invalid:
                failure = task.reask(call, invalid)
                if failure is not None:
                    raise failure from None
                continue
            return task.finish(completion)

    async def _acomplete_call(self, call: Call) -> Completion:
        core: LLMClient = call.client  # type: ignore[assignment]
        while True:
            try:
                return await core._arun(call)
            except Exception as exc:
                nxt = self._fallback(call, exc)
                if nxt is None:
                    raise
                core = nxt  # type: ignore[assignment]  # sources give LLMClients

    async def _arun(self, call: Call) -> Completion:
        try:
            completion = self._before_call(call)
            if completion is None:
                completion = await self._aattempts(call)
            return self._after_call(call, completion)
        except BaseException as exc:
            self._call_failed(call, exc)
            raise

    async def _aattempts(self, call: Call) -> Completion:
        failures = 0
        while True:
            if self._chain.before_attempt:
                await self._aadmit(call)
            call.attempt += 1
            t0 = _perf()
            try:
                completion = await self._wire().acomplete(call.request)
            except BaseException as exc:
                failures += 1
                delay = self._on_error(exc, call, _perf() - t0, failures)
                if delay is None:
                    raise
                await self.retry.asleep(delay)
                continue
            return self._on_success(completion, call, _perf() - t0)

    async def _aadmit(self, call: Call) -> None:
        waiters = self._chain.before_attempt
        call.key_id = None
        ran: list[Middleware] = []
        try:
            for m in waiters:
                ran.append(m)
                wait = m.before_attempt(call)
                while wait > 0:
                    await m.clock.asleep(wait)
                    wait = m.before_attempt(call)
        except BaseException as exc:
            self._admit_failed(call, ran, exc)
            raise

    async def agenerate(self, messages: MessagesLike, **params: Any) -> str:
        """Async :meth:`generate`."""
        return (await self.acomplete(messages, **params)).content

    def astream(self, messages: MessagesLike, **params: Any) -> AsyncTextStream:
        """Async :meth:`stream`: ``async for piece in client.astream(...)``."""
        if params.get("tools") is not None:
            from llmnb.client.tool_loop import AsyncToolStream, ToolLoop

            return AsyncToolStream(ToolLoop(self, messages, params), partial(AsyncTextStream, self))  # type: ignore[return-value]
        call, _ = self._start(messages, params, stream=True)
        return AsyncTextStream(self, call)

    # Each layer closes the generator it reads in a ``finally``, so one aclose() runs
    # down the whole chain in order; left to the event loop's finalizer, the layers
    # would be closed by separate tasks, one while another still runs it.
    async def _astream_call(self, call: Call, out: _StreamResult) -> AsyncGenerator[str, None]:
        core: LLMClient = call.client  # type: ignore[assignment]
        while True:
            pieces = core._astream_run(call, out)
            try:
                async for piece in pieces:
                    yield piece
                return
            except Exception as exc:
                nxt = None if out.started else self._fallback(call, exc)
                if nxt is None:
                    raise
                core = nxt  # type: ignore[assignment]  # sources give LLMClients
            finally:
                await pieces.aclose()

    async def _astream_run(self, call: Call, out: _StreamResult) -> AsyncGenerator[str, None]:
        failed = partial(self._call_failed, call)
        out.owe(failed)
        try:
            completion = self._before_call(call)
            if completion is not None:
                yield completion.content
            else:
                attempts = self._astream_attempts(call, out)
                try:
                    async for piece in attempts:
                        yield piece
                finally:
                    await attempts.aclose()
                completion = out.completion
                assert completion is not None
            out.completion = self._after_call(call, completion)
            out.pay(failed)
        except BaseException as exc:
            if out.pay(failed):  # not yet done by a dropped stream's settle()
                self._call_failed(call, exc)
            raise

    async def _astream_attempts(self, call: Call, out: _StreamResult) -> AsyncGenerator[str, None]:
        failures = 0
        while True:
            if self._chain.before_attempt:
                await self._aadmit(call)
            call.attempt += 1
            t0 = _perf()
            state = _StreamState()
            abandoned = partial(self._abandoned, call, t0, state, failures + 1)
            out.owe(abandoned)
            try:
                chunks = self._wire().astream(call.request)
                try:
                    async for chunk in chunks:
                        state.add(chunk, t0)
                        if chunk.content:
                            yield chunk.content
                finally:
                    await _aclose(chunks)
            except BaseException as exc:
                if not out.pay(abandoned):
                    raise  # the stream was dropped: its settle() recorded this attempt
                failures += 1
                delay = self._on_error(exc, call, _perf() - t0, failures, state)
                if delay is None:
                    raise
                await self.retry.asleep(delay)
                continue
            out.pay(abandoned)
            latency = _perf() - t0
            out.completion = self._on_success(
                state.completion(call.request), call, latency, state.parts
            )
            return

    def _abandoned(
        self, call: Call, t0: float, state: _StreamState, failures: int, exc: BaseException
    ) -> None:
        """The ``cancelled`` row of an attempt whose stream was dropped mid-way."""
        self._on_error(exc, call, _perf() - t0, failures, state)

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


def _close(it: Iterator[Any]) -> None:
    close = getattr(it, "close", None)
    if close is not None:
        close()


async def _aclose(it: AsyncIterator[Any]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()


class _StreamResult:
    """What a stream's generator shares with the stream object the caller holds.

    Not that object itself: stream → generator → stream would be a reference cycle,
    freed only by the garbage collector, and a stream the caller let go of would hold
    its key until the next collection. Without the cycle, ``break`` drops the last
    reference and the generator is closed there and then.

    ``owed`` is the bookkeeping an async stream's generator owes where it is suspended:
    the attempt's ``cancelled`` row and the release of its key, then the
    ``call_failed`` hooks. An async generator can only be closed by awaiting, which
    ``__del__`` cannot do; so a dropped async stream pays these at once
    (:meth:`settle`) and the event loop closes the connection a moment later.
    """

    __slots__ = ("completion", "owed", "started")

    def __init__(self) -> None:
        self.completion: Completion | None = None
        self.started = False
        self.owed: list[Callable[[BaseException], None]] = []

    def owe(self, debt: Callable[[BaseException], None]) -> None:
        self.owed.append(debt)

    def pay(self, debt: Callable[[BaseException], None]) -> bool:
        """Take ``debt`` off the list: False if :meth:`settle` already paid it."""
        for i, owed in enumerate(self.owed):
            if owed is debt:
                del self.owed[i]
                return True
        return False

    def settle(self) -> None:
        """Pay what is owed, innermost first, as if the generator were closed now."""
        stop = GeneratorExit()
        while self.owed:
            self.owed.pop()(stop)


class TextStream:
    """Iterator of text pieces; ``completion`` (usage, cost, ...) is set at the end.

    Reading it to the end, ``break``, ``close()`` or leaving a ``with`` block ends the
    attempt and frees its key. A stream kept in a variable and not read on holds its
    key until one of those happens (or the variable goes).
    """

    def __init__(self, client: LLMClient, call: Call) -> None:
        self._result = _StreamResult()
        self._it = client._stream_call(call, self._result)

    @property
    def completion(self) -> Completion | None:
        return self._result.completion

    @property
    def started(self) -> bool:
        return self._result.started

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        piece = next(self._it)
        self._result.started = True
        return piece

    def text(self) -> str:
        """Read the rest of the stream and return the whole answer."""
        for _ in self:
            pass
        assert self.completion is not None
        return self.completion.content

    def close(self) -> None:
        """Stop early; the attempt is recorded as ``cancelled`` with the tokens so far."""
        self._it.close()

    def __enter__(self) -> TextStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncTextStream:
    """Async iterator of text pieces; ``completion`` is set at the end.

    ``break``, cancelling the task, ``aclose()`` or leaving an ``async with`` block
    records the attempt as ``cancelled`` and frees its key at once.
    """

    def __init__(self, client: LLMClient, call: Call) -> None:
        self._result = _StreamResult()
        self._it = client._astream_call(call, self._result)

    @property
    def completion(self) -> Completion | None:
        return self._result.completion

    @property
    def started(self) -> bool:
        return self._result.started

    def __aiter__(self) -> AsyncTextStream:
        return self

    async def __anext__(self) -> str:
        piece = await self._it.__anext__()
        self._result.started = True
        return piece

    async def text(self) -> str:
        async for _ in self:
            pass
        assert self.completion is not None
        return self.completion.content

    async def aclose(self) -> None:
        """Stop early; the attempt is recorded as ``cancelled`` with the tokens so far."""
        await self._it.aclose()

    async def __aenter__(self) -> AsyncTextStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # Dropped while suspended (``break``, the caller's task cancelled): the row and
        # the key cannot wait for the event loop to close the generator.
        result = getattr(self, "_result", None)
        if result is not None and result.owed:
            result.settle()
