"""The tool loop: ``complete(..., tools=[...])`` runs the calls the model asks for,
sends their results back and asks again, until the model answers in text.

Each round is an ordinary call through the client's core (middlewares, budget, rate
limits, key pool, retries, failover all apply per round) that shares the first round's
``call_id`` and records ``round=n`` on its usage rows. Tool arguments and results travel
in the messages only, never in a row.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from random import getrandbits
from typing import TYPE_CHECKING, Any, Protocol

from llmnb import errors
from llmnb.parts import ToolCall
from llmnb.tools import Tool, arun_calls, as_tools, result_text, run_calls, tool_choice
from llmnb.types import Completion, Message, MessagesLike, Role, normalize_messages

if TYPE_CHECKING:
    from llmnb.client.core import _Core as LLMClient
    from llmnb.client.structured import StructuredTask
    from llmnb.middleware.base import Call

__all__ = ["LOOP_PARAMS", "AsyncToolStream", "ToolLoop", "ToolStream"]

LOOP_PARAMS = ("tools", "run_tools", "max_tool_rounds", "tool_choice")
DEFAULT_MAX_ROUNDS = 8


class ToolLoop:
    """One call's loop state: the tools, the conversation so far, the calls made."""

    def __init__(self, client: LLMClient, messages: MessagesLike, params: dict[str, Any]) -> None:
        self.client = client
        tags = params.get("tags")
        try:
            self.tools: dict[str, Tool] = {t.name: t for t in as_tools(params.pop("tools"))}
            run = params.pop("run_tools", True)
            rounds = params.pop("max_tool_rounds", DEFAULT_MAX_ROUNDS)
            if not isinstance(run, bool):
                raise errors.InvalidOptionError(f"run_tools={run!r}: pass True or False.")
            if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
                raise errors.InvalidOptionError(
                    f"max_tool_rounds={rounds!r}: pass a whole number of rounds >= 1 (default 8)."
                )
            self.choice = tool_choice(params.pop("tool_choice", None), tuple(self.tools.values()))
            self.messages: tuple[Message, ...] = normalize_messages(messages)
        except (errors.InvalidRequestError, errors.InvalidOptionError) as exc:
            client._rejected(exc, params, tags)
            raise
        self.run_tools = run
        self.max_rounds = rounds
        self.params = params
        self.call_id = f"{getrandbits(48):012x}"
        self.round = 0
        self.calls: list[ToolCall] = []
        self.completions: list[Completion] = []
        self.specs = tuple(t.spec() for t in self.tools.values())

    # --- one round ----------------------------------------------------------------
    def start_round(self, stream: bool) -> tuple[Call, StructuredTask | None]:
        """The next round's call, built by the client's own ``_start``."""
        self.round += 1
        call, task = self.client._start(self.messages, dict(self.params), stream=stream)
        call.call_id = self.call_id
        call.round = self.round
        call.tools = self.specs
        # A forced choice (required / a name) holds for the first round only: forced on
        # every round, the model could never answer in text.
        call.tool_choice = self.choice if self.round == 1 or self.choice == "none" else None
        call.request = self.client._build_request(call)
        return call, task

    def wants_tools(self, completion: Completion) -> bool:
        """Record the round's answer; True when its tool calls must run next."""
        self.completions.append(completion)
        if not completion.tool_calls or not self.run_tools:
            return False
        if self.round >= self.max_rounds:
            self.calls.extend(completion.tool_calls)
            raise errors.ToolLoopError(
                f"the model still asked for tools ({_names(completion.tool_calls)}) after "
                f"max_tool_rounds={self.max_rounds} rounds; raise max_tool_rounds or give "
                "the model what it needs to answer. The conversation is on .transcript.",
                transcript=(*self.messages, self._assistant(completion)),
                rounds=self.round,
                tool_calls=list(self.calls),
            )
        return True

    def _assistant(self, completion: Completion) -> Message:
        return Message(Role.ASSISTANT, completion.content, tool_calls=completion.tool_calls)

    def add_results(self, completion: Completion) -> None:
        """The assistant's turn and one tool message per call, for the next round."""
        for i, c in enumerate(completion.tool_calls):
            if not c.id:  # the next round must answer each call by an id
                c.id = f"call_{self.call_id}_{self.round}_{i}"
        results = [
            Message(Role.TOOL, result_text(c), c.name, tool_call_id=c.id)
            for c in completion.tool_calls
        ]
        self.messages = (*self.messages, self._assistant(completion), *results)
        self.calls.extend(completion.tool_calls)

    def finish(self, completion: Completion) -> Completion:
        """The last answer, with every round's calls and the whole loop's tokens and cost."""
        if len(self.completions) > 1:
            usage = self.completions[0].usage
            for c in self.completions[1:]:
                usage = usage + c.usage
            completion.usage = usage
            costs = [c.cost_usd for c in self.completions]
            completion.cost_usd = math.nan if any(math.isnan(x) for x in costs) else sum(costs)
            completion.attempts = sum(c.attempts for c in self.completions)
        completion.tool_calls = [*self.calls, *completion.tool_calls]
        return completion

    @property
    def transcript(self) -> tuple[Message, ...]:
        return self.messages


def _names(calls: list[ToolCall]) -> str:
    return ", ".join(sorted({c.name for c in calls}))


# --- the shells -------------------------------------------------------------------------
def complete(
    client: LLMClient,
    messages: MessagesLike,
    params: dict[str, Any],
    run_round: Callable[[Call, StructuredTask | None], Completion],
) -> Completion:
    loop = ToolLoop(client, messages, params)
    while True:
        completion = run_round(*loop.start_round(stream=False))
        if not loop.wants_tools(completion):
            return loop.finish(completion)
        run_calls(completion.tool_calls, loop.tools)
        loop.add_results(completion)


async def acomplete(
    client: LLMClient,
    messages: MessagesLike,
    params: dict[str, Any],
    run_round: Callable[[Call, StructuredTask | None], Awaitable[Completion]],
) -> Completion:
    loop = ToolLoop(client, messages, params)
    while True:
        completion = await run_round(*loop.start_round(stream=False))
        if not loop.wants_tools(completion):
            return loop.finish(completion)
        await arun_calls(completion.tool_calls, loop.tools)  # concurrently
        loop.add_results(completion)


def has_tools(params: Mapping[str, Any]) -> bool:
    return params.get("tools") is not None


class _RoundStream(Protocol):
    @property
    def completion(self) -> Completion | None: ...

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...


class _ARoundStream(Protocol):
    @property
    def completion(self) -> Completion | None: ...

    def __aiter__(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class ToolStream:
    """``stream(..., tools=...)``: the answer's text pieces (``str``) and, between rounds,
    each :class:`~llmnb.ToolCall` once it ran (result or error set), in order.
    ``completion`` is set at the end, as on a plain stream."""

    def __init__(self, loop: ToolLoop, open_round: Callable[[Call], _RoundStream]) -> None:
        self.completion: Completion | None = None
        self._it = self._run(loop, open_round)

    def _run(
        self, loop: ToolLoop, open_round: Callable[[Call], _RoundStream]
    ) -> Iterator[str | ToolCall]:
        while True:
            call, _ = loop.start_round(stream=True)
            pieces = open_round(call)
            try:
                yield from pieces
            finally:
                pieces.close()
            completion = pieces.completion
            assert completion is not None
            if not loop.wants_tools(completion):
                self.completion = loop.finish(completion)
                return
            run_calls(completion.tool_calls, loop.tools)
            yield from completion.tool_calls
            loop.add_results(completion)

    def __iter__(self) -> ToolStream:
        return self

    def __next__(self) -> str | ToolCall:
        return next(self._it)

    def close(self) -> None:
        self._it.close()  # type: ignore[attr-defined]

    def __enter__(self) -> ToolStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncToolStream:
    """Async :class:`ToolStream` (the calls of a round run concurrently)."""

    def __init__(self, loop: ToolLoop, open_round: Callable[[Call], _ARoundStream]) -> None:
        self.completion: Completion | None = None
        self._it = self._run(loop, open_round)

    async def _run(
        self, loop: ToolLoop, open_round: Callable[[Call], _ARoundStream]
    ) -> AsyncGenerator[str | ToolCall, None]:
        while True:
            call, _ = loop.start_round(stream=True)
            pieces = open_round(call)
            try:
                async for piece in pieces:
                    yield piece
            finally:
                await pieces.aclose()
            completion = pieces.completion
            assert completion is not None
            if not loop.wants_tools(completion):
                self.completion = loop.finish(completion)
                return
            await arun_calls(completion.tool_calls, loop.tools)
            for c in completion.tool_calls:
                yield c
            loop.add_results(completion)

    def __aiter__(self) -> AsyncToolStream:
        return self

    async def __anext__(self) -> str | ToolCall:
        return await self._it.__anext__()

    async def aclose(self) -> None:
        await self._it.aclose()

    async def __aenter__(self) -> AsyncToolStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
