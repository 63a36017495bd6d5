"""Direct batches: one prompt per item (or DataFrame row), answered concurrently.

Example::

    import llmnb.batch                         # also registers the `df.llm` accessor

    res = llmnb.batch.map(["Summarize: " + t for t in texts], profile="openai",
                          concurrency=16, cache=True)
    res.outputs, res.errors, res.cost_usd      # one output / error per prompt, in order

    df = df.llm.complete("Summarize: {text}", profile="openai", out="summary")
    df[["summary", "summary_error"]]

    llmnb.batch.map(prompts, dry_run=True)     # rendered prompts + a cost estimate, no calls

How a batch runs:

- **Bounded.** ``concurrency`` calls are in flight at most; each goes through the
  client's middleware, so the profile's rate limiter (in-process or Redis) and key
  pool pace it, and its retry policy retries 429s and 5xx.
- **No row lost.** A call that still fails leaves its error text in the row (``errors=
  "keep"``, the default); ``errors="raise"`` stops at the first failure and raises it.
- **Resumable.** With ``cache=True`` every answer goes to the response cache, so a rerun
  (after a crash, a kernel restart with a SQLite/Redis cache, or to retry the errors)
  answers finished rows from the cache without calling the model again.
- **Progress.** A tqdm bar (a widget in Jupyter, text in a terminal) shows rows done,
  errors, cache hits and the running cost. ``progress=False`` hides it.
- **Half price.** ``mode="batch_api"`` submits the whole batch to the provider's batch
  API instead (OpenAI Batch, Anthropic Message Batches): see :mod:`llmnb.batch.api`.

``map`` works in a notebook cell even though Jupyter runs an event loop (the batch then
runs on a loop in a worker thread); inside ``async`` code use ``await amap(...)``.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from llmnb import errors as _errors
from llmnb.batch.results import DEFAULT_OUTPUT_ESTIMATE, BatchItem, BatchResult, DryRun
from llmnb.types import Completion, MessagesLike, normalize_messages

if TYPE_CHECKING:
    from llmnb.client.client import LLMClient

__all__ = ["BatchItem", "BatchResult", "DryRun", "amap", "estimate", "map"]

T = TypeVar("T")
_MODES = ("direct", "batch_api")


def map(
    prompts: Iterable[MessagesLike],
    *,
    client: LLMClient | None = None,
    profile: str | None = None,
    model: str | None = None,
    concurrency: int = 16,
    response_model: Any = None,
    errors: str = "keep",
    progress: bool = True,
    cache: bool | None = None,
    dry_run: bool = False,
    mode: str = "direct",
    **params: Any,
) -> Any:
    """Answer every prompt; returns a :class:`BatchResult` (a :class:`DryRun` with
    ``dry_run=True``). The client is ``client``, else the profile's (active by default).

    Example::

        res = llmnb.batch.map(["2+2?", "3+3?"], profile="demo", concurrency=8)
        res.outputs          # ['…', '…']
    """
    options = dict(
        client=client,
        profile=profile,
        model=model,
        concurrency=concurrency,
        response_model=response_model,
        errors=errors,
        progress=progress,
        cache=cache,
        dry_run=dry_run,
        mode=mode,
        **params,
    )
    items = list(prompts)
    if dry_run:
        return _dry_run(items, options)
    own = client is None
    the_client = client if client is not None else _client_for(profile, model)

    async def go() -> Any:
        try:
            return await _run(items, the_client, options)
        finally:
            # The provider's async connections belong to this event loop, which ends here.
            await the_client.aclose()

    try:
        return run_sync(go)
    finally:
        if own:
            the_client.close()


async def amap(
    prompts: Iterable[MessagesLike],
    *,
    client: LLMClient | None = None,
    profile: str | None = None,
    model: str | None = None,
    **options: Any,
) -> Any:
    """Async :func:`map`, for ``async`` code and ``await`` in a notebook cell."""
    items = list(prompts)
    options.update(client=client, profile=profile, model=model)
    if options.get("dry_run"):
        return _dry_run(items, options)
    the_client = client if client is not None else _client_for(profile, model)
    try:
        return await _run(items, the_client, options)
    finally:
        if client is None:
            await the_client.aclose()


def estimate(
    prompts: Iterable[MessagesLike],
    *,
    client: LLMClient | None = None,
    profile: str | None = None,
    model: str | None = None,
    mode: str = "direct",
    **params: Any,
) -> DryRun:
    """The :class:`DryRun` of a batch: rendered prompts, token and cost estimates."""
    return _dry_run(
        list(prompts), dict(client=client, profile=profile, model=model, mode=mode, **params)
    )


# -- running -------------------------------------------------------------------------------


_BATCH_OPTIONS = (
    "client",
    "profile",
    "model",
    "concurrency",
    "response_model",
    "errors",
    "progress",
    "cache",
    "dry_run",
    "mode",
    "poll_interval",
    "max_wait",
    "batch_id",
    "sleep",
    "clock",
)


def _call_params(options: dict[str, Any]) -> dict[str, Any]:
    params = {k: v for k, v in options.items() if k not in _BATCH_OPTIONS}
    if options.get("response_model") is not None:
        params["response_model"] = options["response_model"]
    if options.get("cache") is not None:
        params["cache"] = options["cache"]
    return params


def _check(options: dict[str, Any]) -> None:
    if options.get("errors", "keep") not in ("keep", "raise"):
        raise _errors.InvalidOptionError(
            f"errors={options['errors']!r}: use 'keep' (each failed row keeps its error) "
            "or 'raise' (stop at the first failure)."
        )
    if options.get("mode", "direct") not in _MODES:
        raise _errors.InvalidOptionError(
            f"mode={options['mode']!r}: use 'direct' (concurrent calls) or 'batch_api' "
            "(the provider's half-price batch API)."
        )
    concurrency = options.get("concurrency", 16)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise _errors.InvalidOptionError(
            f"concurrency={concurrency!r}: use a whole number of calls in flight, e.g. 16."
        )


async def _run(items: list[MessagesLike], client: LLMClient, options: dict[str, Any]) -> Any:
    _check(options)
    if options.get("mode", "direct") == "batch_api":
        import llmnb.batch.api as batch_api

        return await batch_api.run(items, client, options, _call_params(options))
    params = _call_params(options)
    results = [BatchItem(i, p) for i, p in enumerate(items)]
    bar = _Progress(len(items), bool(options.get("progress", True)), client.model)
    raising = options.get("errors", "keep") == "raise"
    queue = iter(range(len(items)))

    async def worker() -> None:
        for i in queue:  # a shared iterator: each index is taken by one worker
            item = results[i]
            try:
                completion = await client.acomplete(item.prompt, **params)
            except Exception as exc:
                if raising:
                    raise
                item.error = f"{type(exc).__name__}: {exc}"
                bar.update(None)
                continue
            item.completion = completion
            item.output = completion.parsed if params.get("response_model") else completion.content
            bar.update(completion)

    n = min(int(options.get("concurrency", 16)), max(len(items), 1))
    try:
        tasks = [asyncio.ensure_future(worker()) for _ in range(n)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    finally:
        bar.close()
    return BatchResult(results)


class _Progress:
    """A tqdm bar with errors, cache hits and the running cost, or nothing."""

    def __init__(self, total: int, show: bool, model: str) -> None:
        self.cost = 0.0
        self.unknown = 0
        self.errors = 0
        self.cached = 0
        self.bar: Any = None
        if show and total:
            try:
                from tqdm.auto import tqdm  # type: ignore[import-untyped]
            except ImportError:  # tqdm is an extra: the batch runs without a bar
                return
            self.bar = tqdm(total=total, desc=f"llmnb {model}", unit="row", leave=True)

    def update(self, completion: Completion | None) -> None:
        if completion is None:
            self.errors += 1
        else:
            if completion.cached:
                self.cached += 1
            if math.isnan(completion.cost_usd):
                self.unknown += 1
            else:
                self.cost += completion.cost_usd
        if self.bar is not None:
            self.bar.set_postfix_str(self.postfix(), refresh=False)
            self.bar.update(1)

    def postfix(self) -> str:
        # Rows of unknown price are said so, never counted as $0.
        if self.unknown and not self.cost:
            cost = "cost n/a"
        else:
            cost = f"${self.cost:.4f}" + (f" + {self.unknown} n/a" if self.unknown else "")
        return f"{cost}, {self.errors} errors, {self.cached} cached"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(self.postfix())
            self.bar.close()


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, also inside Jupyter's running loop.

    There it runs on a new loop in a worker thread (with this context's variables, so
    the active usage tracker and session choices apply); Ctrl-C / interrupt cancels it.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    ctx = contextvars.copy_context()
    box: dict[str, Any] = {}
    started = threading.Event()

    def target() -> None:
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(make())
            box["loop"], box["task"] = loop, task
            started.set()
            box["result"] = loop.run_until_complete(task)
        except BaseException as exc:
            box["error"] = exc
        finally:
            started.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=ctx.run, args=(target,), name="llmnb-batch", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        started.wait()
        if "task" in box:
            box["loop"].call_soon_threadsafe(box["task"].cancel)
        thread.join()
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


# -- clients and estimates -----------------------------------------------------------------


def _client_for(profile: str | None, model: str | None) -> LLMClient:
    from llmnb.client.profiles import create_llm_client_from_profile

    return create_llm_client_from_profile(model_name=model, profile=profile)


def _dry_run(items: list[MessagesLike], options: dict[str, Any]) -> DryRun:
    from llmnb.middleware.ratelimit import estimate_input_tokens
    from llmnb.types import Request
    from llmnb.usage.pricing import cost_of, price_for

    _check(options)
    client = options.get("client") or _client_for(options.get("profile"), options.get("model"))
    params = _call_params(options)
    max_tokens = params.get("max_tokens") or client.params.get("max_tokens")
    out = int(max_tokens) if max_tokens else DEFAULT_OUTPUT_ESTIMATE
    inputs = [
        estimate_input_tokens(Request(messages=normalize_messages(p), model=client.model))
        for p in items
    ]
    provider = client.provider
    price = price_for(
        client.model, provider.type_name, provider.base_url, provider.profile.get("pricing")
    )
    mode = options.get("mode", "direct")
    if price is None:
        cost, source = math.nan, "unknown"
    else:
        cost = math.fsum(cost_of(price, n, out) for n in inputs)
        source = "estimate"
        if mode == "batch_api":
            from llmnb.batch.api import DISCOUNT

            cost *= DISCOUNT
    return DryRun(items, inputs, [out] * len(items), cost, source, client.model, mode)
