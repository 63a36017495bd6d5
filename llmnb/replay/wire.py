"""Answering from a cassette in place of the provider, and writing attempts into one.

:class:`ReplayWire` stands where the provider's I/O is: the client core asks it instead
of the provider while replay is on, so the budget, key pool, rate limiter, retries and
failover run exactly as they do live, and every replayed attempt leaves its usage row
(``cost_source="replay"``, with the recorded tokens and cost). Recording happens in the
core after each attempt's row is written (:func:`record_attempt`), so a cassette holds
the cost as the row had it.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from llmnb import errors
from llmnb._http import scrub
from llmnb.providers.base import Provider
from llmnb.replay.cassette import fingerprint, request_key
from llmnb.replay.session import ReplaySession
from llmnb.types import Chunk, Completion, Request, Usage
from llmnb.usage.record import UsageRecord

__all__ = ["ReplayWire", "ReplayedUsage", "record_attempt"]


@dataclass(slots=True)
class ReplayedUsage(Usage):
    """The usage of a replayed answer: the core labels its row ``cost_source="replay"``."""


_version: list[str] = []


def _llmnb_version() -> str:
    if not _version:
        from importlib.metadata import PackageNotFoundError, version

        try:
            _version.append(version("llmnb"))
        except PackageNotFoundError:  # run from a source tree that is not installed
            _version.append("unknown")
    return _version[0]


def _cell() -> int | None:
    from llmnb.usage.tracker import _notebook_cell

    return _notebook_cell()


class ReplayWire:
    """The provider's stand-in while a cassette is replayed (modes ``replay``, ``auto``)."""

    def __init__(self, provider: Provider, session: ReplaySession, profile: str | None) -> None:
        self.provider = provider
        self.session = session
        self.profile = profile

    def _entry(self, request: Request) -> dict[str, Any] | None:
        fp = fingerprint(request, self.provider.type_name)
        tape = self.session.cassette
        assert tape is not None
        found = tape.next_for(request_key(fp))
        if found is None and self.session.mode == "replay":
            closest = tape.closest(fp)
            cell = _cell()
            where = f"cell {cell}" if cell is not None else "this call"
            near = f" The closest recording: {closest}." if closest else " It is empty."
            raise errors.ReplayMissError(
                f"{where} (profile {self.profile!r}, model {request.model!r}) has no "
                f"recording in {tape.path} ({len(tape)} recorded attempts).{near} Record "
                f"it with real keys: `%llm replay record {tape.path}` (or "
                "LLMNB_REPLAY_MODE=record), or use mode `auto` to record what is missing."
            )
        return found

    # -- the Provider methods the core calls ------------------------------------------
    def complete(self, request: Request) -> Completion:
        entry = self._entry(request)
        if entry is None:  # auto mode, not recorded yet: ask the provider
            return self.provider.complete(request)
        return _completion(entry)

    async def acomplete(self, request: Request) -> Completion:
        entry = self._entry(request)
        if entry is None:
            return await self.provider.acomplete(request)
        return _completion(entry)

    def stream(self, request: Request) -> Iterator[Chunk]:
        entry = self._entry(request)
        if entry is None:
            yield from self.provider.stream(request)
            return
        yield from _chunks(entry)

    async def astream(self, request: Request) -> AsyncIterator[Chunk]:
        entry = self._entry(request)
        if entry is None:
            async for chunk in self.provider.astream(request):
                yield chunk
            return
        for chunk in _chunks(entry):
            yield chunk


def _usage(answer: dict[str, Any]) -> ReplayedUsage:
    u = answer.get("usage") or {}
    cost = answer.get("cost_usd")
    return ReplayedUsage(
        int(u.get("prompt_tokens") or 0),
        int(u.get("completion_tokens") or 0),
        int(u.get("cached_tokens") or 0),
        int(u.get("reasoning_tokens") or 0),
        bool(u.get("estimated")),
        float(cost) if isinstance(cost, (int, float)) else math.nan,
        int(u.get("cache_write_tokens") or 0),
        int(u.get("cache_write_1h_tokens") or 0),
    )


def _raise(entry: dict[str, Any]) -> None:
    error = entry.get("error")
    if not error:
        return
    cls = getattr(errors, str(error.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.LLMError)):
        cls = errors.ProviderError
    message = str(error.get("message") or "")
    exc: BaseException
    if issubclass(cls, errors.RateLimitError):
        # The recorded wait is not repeated: replay is about answers, not the clock.
        exc = cls(message, status=error.get("status"), retry_after=None)
    elif issubclass(cls, errors.APIError):
        exc = cls(message, status=error.get("status"))
    else:
        exc = cls(message)
    exc._llmnb_replayed = True  # type: ignore[attr-defined]  # not recorded again
    raise exc


def _completion(entry: dict[str, Any]) -> Completion:
    _raise(entry)
    answer = entry["answer"]
    return Completion(
        content=str(answer.get("content") or ""),
        model=str(answer.get("model") or entry["request"].get("model") or ""),
        usage=_usage(answer),
        finish_reason=answer.get("finish_reason"),
        reasoning=str(answer.get("reasoning") or ""),
    )


def _chunks(entry: dict[str, Any]) -> Iterator[Chunk]:
    answer = entry.get("answer") or {}
    pieces: Sequence[str] = answer.get("chunks") or [answer.get("content") or ""]
    for piece in entry.get("error_after") or []:  # a stream cut after some text
        yield Chunk(content=str(piece))
    if entry.get("error"):
        _raise(entry)
    for piece in pieces:
        if piece:
            yield Chunk(content=str(piece))
    if answer.get("reasoning"):
        yield Chunk(reasoning=str(answer["reasoning"]))
    yield Chunk(
        finish_reason=answer.get("finish_reason"),
        usage=_usage(answer),
        model=answer.get("model"),
    )


def record_attempt(
    session: ReplaySession,
    *,
    provider: Provider,
    profile: str | None,
    request: Request,
    row: UsageRecord,
    completion: Completion | None = None,
    error: BaseException | None = None,
    chunks: Sequence[str] | None = None,
) -> None:
    """Append one attempt (an answer or an error) to the session's cassette."""
    tape = session.cassette
    if tape is None or getattr(error, "_llmnb_replayed", False):
        return
    if isinstance(completion, Completion) and isinstance(completion.usage, ReplayedUsage):
        return  # answered from this cassette: already in it
    fp = fingerprint(request, provider.type_name)
    secrets = [request.api_key] if request.api_key else []  # errors are scrubbed already
    entry: dict[str, Any] = {
        "key": request_key(fp),
        "llmnb": _llmnb_version(),
        "profile": profile,
        "request": fp,
        "answer": None,
        "error": None,
    }
    cost = row.cost_usd
    if completion is not None:
        u = completion.usage
        entry["answer"] = {
            "content": completion.content,
            "reasoning": completion.reasoning,
            "finish_reason": completion.finish_reason,
            "model": completion.model,
            "usage": {
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "cached_tokens": u.cached_tokens,
                "reasoning_tokens": u.reasoning_tokens,
                "cache_write_tokens": u.cache_write_tokens,
                "cache_write_1h_tokens": u.cache_write_1h_tokens,
                "estimated": u.estimated,
            },
            "cost_usd": None if cost != cost else cost,  # NaN is not JSON
            "cost_source": row.cost_source,
            "latency_s": round(row.latency_s, 4) if row.latency_s == row.latency_s else None,
            **({"chunks": list(chunks)} if chunks is not None else {}),
        }
    elif error is not None:
        entry["error"] = {
            "type": type(error).__name__,
            "message": scrub(str(getattr(error, "message", None) or error), secrets),
            "status": getattr(error, "status", None),
        }
        if chunks:
            entry["error_after"] = list(chunks)
    tape.append(entry)
