"""``df.llm.embed("text", out="vec")``: a column of texts → a column of vectors.

The rows are sent in requests of the provider's batch size (``batch_size=`` to choose),
``concurrency`` requests at once, through ``client.aembed`` (so every request is one
usage row, cached, budgeted and retried as any call). Errors are per row, as with
``df.llm.complete``: a value that is not text fails only its row (nothing is sent for
it); a request that fails fails the rows it carried, and the others go on.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

from llmnb import errors as _errors
from llmnb.batch.runner import _check, _client_for, _Progress, run_sync
from llmnb.types import Completion

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["embed_frame"]

_OPTIONS = ("client", "profile", "model", "concurrency", "batch_size", "dimensions")


def embed_frame(df: pd.DataFrame, column: Any, out: str, options: dict[str, Any]) -> Any:
    """A copy of ``df`` with ``<out>`` (float32 vectors, None where failed) and
    ``<out>_error``; ``attrs["llm"]`` sums up rows, errors, cached requests and cost."""
    import pandas as pd

    if column not in df.columns:
        listed = ", ".join(repr(str(c)) for c in df.columns) or "(none)"
        raise _errors.InvalidOptionError(
            f"df.llm.embed({column!r}): no such column; available: {listed}."
        )
    progress = bool(options.pop("progress", True))
    raising = options.pop("errors", "keep")
    _check({"errors": raising, "concurrency": options.get("concurrency", 4)})
    unknown = sorted(options.keys() - set(_OPTIONS) - {"cache", "tags"})
    if unknown:
        raise _errors.InvalidOptionError(
            f"df.llm.embed(): unknown option(s) {', '.join(unknown)}; the options are "
            f"{', '.join((*_OPTIONS, 'cache', 'tags', 'progress', 'errors'))}."
        )
    values = list(df[column])
    client = options.pop("client", None)
    profile, model = options.pop("profile", None), options.get("model")
    own = client is None
    the_client = client if client is not None else _client_for(profile, model)
    concurrency = int(options.pop("concurrency", 4))
    size = options.pop("batch_size", None) or the_client.provider.embed_batch_limit
    vectors: list[Any] = [None] * len(values)
    failures: list[str | None] = [None] * len(values)
    for i, v in enumerate(values):
        if not isinstance(v, str):
            failures[i] = (
                f"InvalidRequestError: the value is {type(v).__name__} ({v!r:.40}), not text"
            )
    todo = [i for i, v in enumerate(values) if isinstance(v, str)]
    chunks = [todo[s : s + int(size)] for s in range(0, len(todo), int(size))]
    summary = {"rows": len(values), "requests": 0, "cached": 0, "cost_usd": 0.0}

    async def go() -> None:
        bar = _Progress(len(todo), progress, the_client.model)
        gate = asyncio.Semaphore(concurrency)

        async def one(rows: list[int]) -> None:
            async with gate:
                try:
                    got = await the_client.aembed(
                        [values[i] for i in rows], batch_size=len(rows), **options
                    )
                except Exception as exc:
                    if raising == "raise":
                        raise
                    for i in rows:
                        failures[i] = f"{type(exc).__name__}: {exc}"
                        bar.update(None)
                    return
            summary["requests"] += got.requests
            summary["cached"] += got.cached
            summary["cost_usd"] += got.cost_usd
            share = got.cost_usd / len(rows)
            for i, vec in zip(rows, got.vectors, strict=True):
                vectors[i] = vec
                bar.update(
                    Completion("", got.model, cost_usd=share, cached=got.cached == got.requests)
                )

        try:
            await asyncio.gather(*(one(rows) for rows in chunks))
        finally:
            bar.close()
            await the_client.aclose()

    try:
        run_sync(go)
    finally:
        if own:
            the_client.close()
    result = df.copy()
    result[out] = pd.Series(vectors, index=df.index, dtype=object)
    result[f"{out}_error"] = pd.Series(failures, index=df.index, dtype=object)
    errors = sum(1 for f in failures if f is not None)
    cost = summary["cost_usd"]
    result.attrs["llm"] = {
        **summary,
        "embedded": len(values) - errors,
        "errors": errors,
        "cost_usd": cost if not math.isnan(cost) else math.nan,
    }
    return result
