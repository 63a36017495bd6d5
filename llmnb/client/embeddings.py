"""``client.embed(texts)`` / ``aembed``: texts → vectors, through the same core as chat.

The texts are split into batches of at most the provider's limit
(``Provider.embed_batch_limit``: OpenAI 2048 inputs a request, Gemini 100, Mistral 128)
or ``batch_size``; at most ``concurrency`` batches are in flight at once. Each batch is
one :class:`~llmnb.middleware.base.Call` of the client core: its request carries the
texts as user messages and the options under ``Request.extra[EMBEDDING]``, so the
cache key covers model, dimensions and texts, and the budget, key pool, rate limiter,
retries and failover act on it as on a chat call. Every attempt is one usage row with
``kind="embedding"`` (completion tokens 0, cost from the price table).

Only the attempt differs: ``provider.embed`` instead of ``complete``. The vectors travel
as a ``Completion`` whose ``parsed`` is the float32 array and whose ``content`` is that
array packed (``"<rows>x<dim>:<base64>"``), which is what the response cache stores.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import math
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from llmnb import errors
from llmnb.client.core import perf
from llmnb.providers.base import EMBEDDING
from llmnb.types import Completion, Embeddings, Message, Role, Usage

if TYPE_CHECKING:
    import numpy as np

    from llmnb.middleware.base import Call

# An LLMClient: client.py imports this module, so this one cannot import it back.
LLMClient = Any

__all__ = ["DEFAULT_CONCURRENCY", "aembed", "embed"]

#: Batches in flight at once when the call does not say.
DEFAULT_CONCURRENCY = 4
_OPTIONS = ("model", "dimensions", "batch_size", "concurrency", "cache", "tags")


# --- planning: arguments checked before anything is sent --------------------------------
def _texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, Mapping)) or not isinstance(texts, Iterable):
        raise errors.InvalidRequestError(
            f"embed(texts=...): expected a str or a list of str, got {type(texts).__name__}."
        )
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise errors.InvalidRequestError(
                f"embed(texts=...): item {i} is {type(text).__name__} ({text!r:.40}), not str; "
                "convert it (str(x)) or drop it (missing values: s.dropna())."
            )
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise errors.InvalidRequestError(
                    f"embed(texts=...): item {i} has a lone surrogate at position {exc.start} "
                    "(text from a broken decode); clean it, e.g. "
                    "text.encode('utf-8', 'replace').decode()."
                ) from None
    return out


def _positive(name: str, value: Any, most: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise errors.InvalidOptionError(f"embed({name}={value!r}): pass a positive int.")
    if most is not None and value > most:
        raise errors.InvalidOptionError(
            f"embed({name}={value}): this provider takes at most {most} texts per request; "
            f"pass batch_size={most} or less."
        )
    return value


def _check_supported(client: LLMClient) -> None:
    p = client.provider
    if not p.supports_embeddings:
        raise errors.InvalidRequestError(
            f"profile {client.profile!r} (type {p.type_name}) cannot embed texts: use a "
            "profile of type openai, openai_compatible, openrouter, mistral, ollama, vllm, "
            "gemini or mock for embed(), e.g. one with `type: openai` and "
            "`model: text-embedding-3-small`.",
            provider=p.type_name,
            profile=client.profile,
            model=client.model,
        )


def _plan(client: LLMClient, texts: Any, options: dict[str, Any]) -> tuple[list[str], list[Call]]:
    unknown = sorted(options.keys() - set(_OPTIONS))
    if unknown:
        raise errors.InvalidOptionError(
            f"embed(): unknown option(s) {', '.join(unknown)}; the options are "
            f"{', '.join(_OPTIONS)}."
        )
    items = _texts(texts)
    _check_supported(client)
    limit = client.provider.embed_batch_limit
    size = _positive("batch_size", options.get("batch_size"), limit) or limit
    dimensions = _positive("dimensions", options.get("dimensions"))
    calls: list[Call] = []
    for start in range(0, len(items), size):
        batch = items[start : start + size]
        params: dict[str, Any] = {
            "model": options.get("model"),
            EMBEDDING: {"dimensions": dimensions},
            "cache": options.get("cache"),
            "tags": options.get("tags"),
        }
        call, _ = client._start([Message(Role.USER, t) for t in batch], params, stream=False)
        calls.append(call)
    return items, calls


def _concurrency(options: Mapping[str, Any]) -> int:
    return _positive("concurrency", options.get("concurrency")) or DEFAULT_CONCURRENCY


# --- one attempt's answer: checked, packed ----------------------------------------------
def _checked(client: LLMClient, call: Call, completion: Completion) -> Completion:
    """The provider's vectors as a float32 array: as many as texts sent, all one length."""
    import numpy as np

    sent = len(call.request.messages)
    vectors = completion.parsed
    problem = None
    if not isinstance(vectors, (list, tuple)) or len(vectors) != sent:
        got = len(vectors) if isinstance(vectors, (list, tuple)) else type(vectors).__name__
        problem = f"{got} vectors for {sent} texts"
    elif sent and len({len(v) if isinstance(v, (list, tuple)) else -1 for v in vectors}) != 1:
        problem = "vectors of different lengths (ragged)"
    if problem is None:
        try:
            array = np.asarray(vectors, dtype=np.float32).reshape(sent, -1)
        except (TypeError, ValueError) as exc:
            problem = f"vectors that are not numbers ({exc})"
        else:
            if sent and (array.shape[1] == 0 or not np.isfinite(array).all()):
                problem = "empty or non-finite vectors"
    if problem is not None:
        raise errors.ResponseFormatError(
            f"the embeddings answer has {problem}; the server may not speak this provider's "
            "embeddings protocol.",
            provider=client.provider.type_name,
            profile=client.profile,
            model=call.request.model,
        )
    completion.parsed = array
    completion.content = _pack(array)
    return completion


def _pack(array: np.ndarray) -> str:
    rows, dim = array.shape
    data = base64.b64encode(array.astype("<f4").tobytes()).decode("ascii")
    return f"{rows}x{dim}:{data}"


def _unpack(content: str) -> np.ndarray:
    import numpy as np

    shape, _, data = content.partition(":")
    rows, _, dim = shape.partition("x")
    raw = np.frombuffer(base64.b64decode(data), dtype="<f4")
    return raw.reshape(int(rows), int(dim)).astype(np.float32)


def _vectors(completion: Completion) -> np.ndarray:
    import numpy as np

    if isinstance(completion.parsed, np.ndarray):
        return completion.parsed
    return _unpack(completion.content)  # a cache hit: the packed array


# --- the shells: sync and async, the same steps -----------------------------------------
def _next_client(client: LLMClient, call: Call, exc: Exception) -> LLMClient | None:
    nxt = client._fallback(call, exc)
    if nxt is None or not nxt.provider.supports_embeddings:
        return None
    return nxt


def _run(client: LLMClient, call: Call) -> Completion:
    while True:
        try:
            try:
                completion = client._before_call(call)
                if completion is None:
                    completion = _attempts(client, call)
                done: Completion = client._after_call(call, completion)
                return done
            except BaseException as exc:
                client._call_failed(call, exc)
                raise
        except Exception as exc:
            nxt = _next_client(client, call, exc)
            if nxt is None:
                raise
            client = nxt


def _attempts(client: LLMClient, call: Call) -> Completion:
    failures = 0
    while True:
        if client._chain.before_attempt:
            client._admit(call)
        call.attempt += 1
        t0 = perf()
        try:
            completion = _checked(client, call, client.provider.embed(call.request))
        except BaseException as exc:
            failures += 1
            delay = client._on_error(exc, call, perf() - t0, failures)
            if delay is None:
                raise
            client.retry.sleep(delay)
            continue
        ok: Completion = client._on_success(completion, call, perf() - t0)
        return ok


async def _arun(client: LLMClient, call: Call) -> Completion:
    while True:
        try:
            try:
                completion = client._before_call(call)
                if completion is None:
                    completion = await _aattempts(client, call)
                done: Completion = client._after_call(call, completion)
                return done
            except BaseException as exc:
                client._call_failed(call, exc)
                raise
        except Exception as exc:
            nxt = _next_client(client, call, exc)
            if nxt is None:
                raise
            client = nxt


async def _aattempts(client: LLMClient, call: Call) -> Completion:
    failures = 0
    while True:
        if client._chain.before_attempt:
            await client._aadmit(call)
        call.attempt += 1
        t0 = perf()
        try:
            completion = _checked(client, call, await client.provider.aembed(call.request))
        except BaseException as exc:
            failures += 1
            delay = client._on_error(exc, call, perf() - t0, failures)
            if delay is None:
                raise
            await client.retry.asleep(delay)
            continue
        ok: Completion = client._on_success(completion, call, perf() - t0)
        return ok


def embed(client: LLMClient, texts: Any, **options: Any) -> Embeddings:
    """:meth:`LLMClient.embed`: the batches run in up to ``concurrency`` threads."""
    items, calls = _plan(client, texts, options)
    if len(calls) <= 1:
        return _combine(client, items, [_run(client, c) for c in calls], options)
    workers = min(_concurrency(options), len(calls))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llmnb-embed") as pool:
        # Each thread runs in a copy of this context: the active usage tracker goes along.
        futures = [pool.submit(contextvars.copy_context().run, _run, client, c) for c in calls]
        done = [f.exception() for f in futures]
    failed = next((e for e in done if e is not None), None)
    if failed is not None:
        raise failed
    return _combine(client, items, [f.result() for f in futures], options)


async def aembed(client: LLMClient, texts: Any, **options: Any) -> Embeddings:
    """:meth:`LLMClient.aembed`: up to ``concurrency`` batches awaited at once."""
    items, calls = _plan(client, texts, options)
    gate = asyncio.Semaphore(_concurrency(options))

    async def one(call: Call) -> Completion:
        async with gate:
            return await _arun(client, call)

    results = await asyncio.gather(*(one(c) for c in calls), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return _combine(client, items, results, options)  # type: ignore[arg-type]


def _combine(
    client: LLMClient, items: list[str], parts: list[Completion], options: Mapping[str, Any]
) -> Embeddings:
    import numpy as np

    if not parts:
        dims = options.get("dimensions") or 0
        model = options.get("model") or client.model
        # Nothing to embed, nothing sent.
        empty = np.zeros((0, dims), dtype=np.float32)
        return Embeddings(empty, str(model), Usage(), 0.0, "not_sent")
    arrays = [_vectors(p) for p in parts]
    if len({a.shape[1] for a in arrays}) != 1:
        raise errors.ResponseFormatError(
            "the embeddings of different batches have different lengths "
            f"({sorted({a.shape[1] for a in arrays})}); the server changed models mid-call?",
            provider=client.provider.type_name,
            profile=client.profile,
        )
    usage = Usage(
        sum(p.usage.prompt_tokens for p in parts),
        0,
        estimated=any(p.usage.estimated for p in parts),
    )
    costs = [p.cost_usd for p in parts]
    sources = {p.cost_source for p in parts}
    return Embeddings(
        vectors=np.vstack(arrays),
        model=parts[0].model,
        usage=usage,
        cost_usd=math.nan if any(math.isnan(c) for c in costs) else float(sum(costs)),
        cost_source=sources.pop() if len(sources) == 1 else "mixed",
        profile=parts[0].profile,
        provider=parts[0].provider,
        requests=len(parts),
        cached=sum(1 for p in parts if p.cached),
    )
