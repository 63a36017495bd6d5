"""Batches: one prompt per item or DataFrame row, direct or through a provider's batch API.

Example::

    import llmnb.batch

    res = llmnb.batch.map(["2+2?", "3+3?"], profile="demo", concurrency=8)
    res.outputs, res.errors, res.cost_usd
    out = df.llm.complete("Summarize: {text}", out="summary")   # the pandas accessor

What it holds: ``runner`` (``map``/``amap``/``estimate``: bounded concurrency over the
client's ``acomplete``), ``accessor`` (``df.llm`` / ``s.llm``), ``api`` and ``providers``
(``mode="batch_api"``: OpenAI Batch and Anthropic Message Batches), ``results``
(``BatchResult``, ``DryRun``). It may import ``llmnb.client`` and everything below it;
nothing but the notebook layer and the package root imports it.

The names below resolve on first use, so ``import llmnb.batch`` costs nothing until a
batch runs; ``df.llm`` is registered by ``import llmnb`` as soon as pandas is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["BatchItem", "BatchResult", "DryRun", "amap", "estimate", "map"]

_LAZY = {
    "map": "llmnb.batch.runner",
    "amap": "llmnb.batch.runner",
    "estimate": "llmnb.batch.runner",
    "BatchItem": "llmnb.batch.results",
    "BatchResult": "llmnb.batch.results",
    "DryRun": "llmnb.batch.results",
}

if TYPE_CHECKING:
    from llmnb.batch.results import BatchItem, BatchResult, DryRun
    from llmnb.batch.runner import amap, estimate, map


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'llmnb.batch' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
