"""Provider batch APIs: a whole batch submitted at once, answered within 24 h, at half price.

Used by ``llmnb.batch.map(..., mode="batch_api")`` and ``df.llm.complete(...,
mode="batch_api")``; the profile decides which API:

- OpenAI-style profiles (``openai``, ``openai_compatible`` servers that implement it):
  the requests go up as a JSONL file (``POST /files``, purpose ``batch``), then
  ``POST /batches`` starts the batch; ``GET /batches/{id}`` is polled until it is
  ``completed`` (or ``failed`` / ``expired`` / ``cancelled``), and the output and error
  files are read back.
- ``anthropic`` profiles: ``POST /v1/messages/batches`` with every request, polled until
  ``processing_status`` is ``ended``; the results come from its ``results_url``.

Each request is built by the profile's own provider (the same JSON as a direct call)
and each answer parsed by it, so outputs look exactly like direct calls'. Rows are
matched by ``custom_id`` (``row-<index>``), not by order. Every answered row leaves a
usage row priced at :data:`DISCOUNT` × the list price (``tags``: ``batch_api``,
``batch_id``, ``discount``), every failed one a row with its error.

Polling: every ``poll_interval`` seconds (default 30) with a progress bar; ``sleep`` and
``clock`` are injectable (tests pass ``sleep=lambda s: None``). ``max_wait`` (default
25 h) bounds the wait; on timeout the error names the batch id, and
``batch_id="batch_…"`` resumes polling that batch instead of submitting a new one.
``response_model`` is not supported here (use the direct mode).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmnb import errors
from llmnb.batch.providers import api_for
from llmnb.types import Completion, MessagesLike, Request, normalize_messages

if TYPE_CHECKING:
    from llmnb.batch.results import BatchResult
    from llmnb.client.client import LLMClient

__all__ = ["DISCOUNT", "run"]

#: What the providers charge for batch requests, as a fraction of the list price.
DISCOUNT = 0.5
_MAX_POLL_FAILURES = 5


async def run(
    items: list[MessagesLike],
    client: LLMClient,
    options: dict[str, Any],
    params: dict[str, Any],
) -> BatchResult:
    """Submit (or resume), poll, and map the results back to ``items``' order."""
    from llmnb.batch.results import BatchItem, BatchResult

    if params.pop("response_model", None) is not None:
        raise errors.InvalidOptionError(
            "response_model= is not supported with mode='batch_api' yet; use the default "
            "mode='direct', or parse the outputs yourself."
        )
    params.pop("cache", None)  # a batch job is never answered from llmnb's cache
    api = api_for(client)
    requests = [_request(client, p, params) for p in items]
    sleep = options.get("sleep") or asyncio.sleep
    clock: Callable[[], float] = options.get("clock") or time.monotonic
    interval = float(options.get("poll_interval", 30.0))
    max_wait = float(options.get("max_wait", 25 * 3600.0))

    async with api.http() as http:
        batch_id = options.get("batch_id") or await api.submit(http, requests)
        bar = _bar(len(items), bool(options.get("progress", True)), batch_id)
        start = clock()
        failures = 0
        try:
            while True:
                try:
                    state = await api.poll(http, batch_id)
                    failures = 0
                except errors.APIError as exc:
                    # The batch runs on regardless: a failed poll is retried, a few times.
                    failures += 1
                    if failures >= _MAX_POLL_FAILURES or not exc.retryable:
                        raise _with_id(exc, batch_id) from exc
                    state = None
                if state is not None:
                    _show(bar, state)
                    if state["done"]:
                        break
                if clock() - start >= max_wait:
                    raise errors.LLMTimeoutError(
                        f"batch {batch_id} has not finished after {max_wait:g} s; it keeps "
                        f"running at the provider. Resume with batch_id={batch_id!r} later.",
                        provider=client.provider_type,
                        profile=client.profile,
                    )
                await _sleep(sleep, interval)
            results = await api.results(http, state)
        finally:
            if bar is not None:
                bar.close()

    out = [BatchItem(i, p) for i, p in enumerate(items)]
    for i, item in enumerate(out):
        body, error = results.get(f"row-{i}", (None, _missing(state)))
        if body is not None:
            try:
                completion = api.provider.parse(body, requests[i])
            except Exception as exc:  # a malformed line fails its row, not the batch
                error = f"ResponseFormatError: {type(exc).__name__}: {exc}"
            else:
                item.completion = _record(client, completion, api.name, batch_id)
                item.output = completion.content
                continue
        item.error = error
        _record_failure(client, requests[i], error or "unknown error", api.name, batch_id)
    if options.get("errors", "keep") == "raise":
        failed = next((it for it in out if it.error), None)
        if failed is not None:
            raise errors.ProviderError(
                f"batch {batch_id}: row {failed.index} failed: {failed.error}",
                provider=client.provider_type,
                profile=client.profile,
            )
    return BatchResult(out, mode="batch_api")


def _request(client: LLMClient, prompt: MessagesLike, params: dict[str, Any]) -> Request:
    merged = {k: v for k, v in client.params.items() if v is not None}
    merged.update({k: v for k, v in params.items() if v is not None})
    merged.pop("tags", None)
    fields = {k: merged.pop(k, None) for k in ("model", "temperature", "max_tokens", "timeout")}
    return Request(
        messages=normalize_messages(prompt),
        model=fields["model"] or client.model,
        temperature=fields["temperature"],
        max_tokens=fields["max_tokens"],
        timeout=fields["timeout"],
        extra=merged,
    )


# -- usage rows ----------------------------------------------------------------------------


def _record(client: LLMClient, completion: Completion, api: str, batch_id: str) -> Completion:
    from llmnb.usage.pricing import cost_of, price_for

    provider = client.provider
    u = completion.usage
    tags = {"batch_api": api, "batch_id": batch_id, "discount": DISCOUNT}
    if u.cost_usd is not None:  # the provider priced it (batch discount included)
        cost, source = u.cost_usd, "provider"
    else:
        price = price_for(
            completion.model, provider.type_name, provider.base_url, provider.profile.get("pricing")
        )
        if price is None:
            cost, source = math.nan, "unknown"
        else:
            cost = cost_of(price, u.prompt_tokens, u.completion_tokens, u.cached_tokens) * DISCOUNT
            source = "estimate" if u.estimated else "price_table"
    call_id = uuid.uuid4().hex[:12]
    rec = client.tracker.record(
        u.prompt_tokens,
        u.completion_tokens,
        cached_tokens=u.cached_tokens,
        reasoning_tokens=u.reasoning_tokens,
        cost_usd=cost,
        cost_source=source,
        estimated=u.estimated,
        model=completion.model,
        provider=provider.type_name,
        profile=client.profile,
        agent=client.agent,
        step=client.step,
        call_id=call_id,
        key_id=provider.last_key_id,
        tags=tags,
    )
    completion.profile = client.profile
    completion.provider = provider.type_name
    completion.call_id = call_id
    completion.attempts = 1
    completion.cost_usd = rec.cost_usd
    completion.cost_source = rec.cost_source
    return completion


def _record_failure(
    client: LLMClient, request: Request, error: str, api: str, batch_id: str
) -> None:
    client.tracker.record_unknown(
        model=request.model,
        provider=client.provider.type_name,
        profile=client.profile,
        agent=client.agent,
        step=client.step,
        status=error.split(":", 1)[0] or "BatchError",
        error=error,
        call_id=uuid.uuid4().hex[:12],
        key_id=client.provider.last_key_id,
        tags={"batch_api": api, "batch_id": batch_id, "discount": DISCOUNT},
    )


# -- helpers ----------------------------------------------------------------------------------


def _missing(state: dict[str, Any] | None) -> str:
    status = (state or {}).get("status")
    return f"BatchError: no result for this row (batch ended as {status!r})"


def _with_id(exc: errors.APIError, batch_id: str) -> errors.APIError:
    exc.message = f"{exc.message} (batch {batch_id} keeps running; resume with batch_id=)"
    return exc


async def _sleep(sleep: Callable[[float], Any], seconds: float) -> None:
    done = sleep(seconds)
    if inspect.isawaitable(done):
        await done


def _bar(total: int, show: bool, batch_id: str) -> Any:
    if not show or not total:
        return None
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped]
    except ImportError:
        return None
    return tqdm(total=total, desc=f"llmnb batch {batch_id}", unit="row")


def _show(bar: Any, state: dict[str, Any]) -> None:
    if bar is None:
        return
    bar.set_postfix_str(f"{state['status']}, {state['failed']} failed", refresh=False)
    bar.update(max(0, min(state["finished"], bar.total) - bar.n))
