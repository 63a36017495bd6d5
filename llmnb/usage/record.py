"""The usage row: one :class:`UsageRecord` per attempt, and the DataFrame contract.

``UsageTracker.to_dataframe()`` returns exactly these columns, in this order, with these
dtypes — also when the tracker is empty. Notebooks, plots and stores rely on it.

=================== ===================== ==================================================
column              dtype                 meaning
=================== ===================== ==================================================
time                datetime64[ns, UTC]   when the attempt finished (UTC)
session             category              process (kernel) id, ``llmnb.usage.SESSION_ID``
profile             category              settings profile name (``demo``, ``openrouter``…)
provider            category              provider type (``openai``, ``anthropic``, ``mock``…)
model               category              model id as sent to the provider
agent               category              agent name, if the call was made for one
step                category              agent step name
prompt_tokens       Int64                 input tokens, cached ones included; <NA> = unknown
completion_tokens   Int64                 output tokens, reasoning ones included
cached_tokens       Int64                 prompt tokens read from the provider's cache
reasoning_tokens    Int64                 completion tokens spent on reasoning
total_tokens        Int64                 prompt + completion
cost_usd            float64               USD; NaN when unknown — never a silent 0
cost_source         category              ``provider`` / ``price_table`` / ``estimate`` /
                                          ``cache`` / ``not_sent`` / ``unknown``
latency_s           float64               seconds from request to last byte; NaN if unknown
ttft_s              float64               seconds to first token (streams); NaN otherwise
status              category              ``ok`` or the error type (``RateLimitError``…)
error               object (str or None)  error message of a failed attempt
call_id             object (str)          one id per logical call; retries share it
attempt             Int64                 1 for the first try, 2 for the first retry…
cached              bool                  answered from llmnb's response cache (cost 0)
key_id              object (str or None)  fingerprint of the API key (``sk-…a1b2``), never
                                          the key
cell                Int64                 notebook execution count; <NA> outside IPython
tags                object (dict or None) free-form labels given by the caller
cache_write_tokens  Int64                 prompt tokens written to the provider's cache
                                          (billed at the cache-write rate)
kind                category              ``chat`` (complete/stream/generate) or
                                          ``embedding``
round               Int64                 request number within one call's tool loop (1 for
                                          the first request; each round is its own row)
attachments         Int64                 number of attachments (images, documents, audio)
                                          sent with the request
=================== ===================== ==================================================

``cost_source`` tells how ``cost_usd`` was found: ``provider`` (reported by the provider,
e.g. OpenRouter's ``usage.cost``), ``price_table`` (token counts × a price from the
profile's ``pricing`` override or genai-prices), ``estimate`` (same, but the token counts
were guessed from text length), ``cache`` (a response-cache hit, free), ``not_sent``
(llmnb refused the attempt before sending anything — a budget, an exhausted key pool, a
request over a rate limit, a middleware's error — so nothing was billed: ``cost_usd`` is
0 and the token counts are <NA>) or ``unknown`` (no price known: ``cost_usd`` is NaN).
"""

from __future__ import annotations

import datetime as _dt
import math
from array import array
from typing import Any, NamedTuple

__all__ = [
    "CATEGORY_COLUMNS",
    "COLUMNS",
    "DTYPES",
    "FLOAT_COLUMNS",
    "INT_COLUMNS",
    "OBJECT_COLUMNS",
    "CodedColumn",
    "UsageRecord",
    "fill_later_defaults",
]


class UsageRecord(NamedTuple):
    """One row: one attempt of one call. Fields are the :data:`COLUMNS`, in order.

    A tuple, so that recording is cheap and rows cannot change after the fact. ``time`` is
    UTC seconds since the epoch (see :attr:`datetime`); unknown counts are ``None``.
    """

    time: float
    session: str
    profile: str | None
    provider: str | None
    model: str | None
    agent: str | None
    step: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    reasoning_tokens: int | None
    total_tokens: int | None
    cost_usd: float
    cost_source: str
    latency_s: float
    ttft_s: float
    status: str
    error: str | None
    call_id: str
    attempt: int
    cached: bool
    key_id: str | None
    cell: int | None
    tags: dict[str, Any] | None
    cache_write_tokens: int | None = None
    # Appended last, with defaults: rows built before they existed stay valid.
    kind: str = "chat"
    round: int = 1
    attachments: int = 0

    @property
    def datetime(self) -> _dt.datetime:
        """``time`` as an aware UTC datetime."""
        return _dt.datetime.fromtimestamp(self.time, _dt.timezone.utc)

    @property
    def cost_known(self) -> bool:
        return not math.isnan(self.cost_usd)


COLUMNS: tuple[str, ...] = UsageRecord._fields

CATEGORY_COLUMNS: tuple[str, ...] = (
    "session",
    "profile",
    "provider",
    "model",
    "agent",
    "step",
    "cost_source",
    "status",
    "kind",
)
INT_COLUMNS: tuple[str, ...] = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "total_tokens",
    "attempt",
    "cell",
    "cache_write_tokens",
    "round",
    "attachments",
)
FLOAT_COLUMNS: tuple[str, ...] = ("cost_usd", "latency_s", "ttft_s")
OBJECT_COLUMNS: tuple[str, ...] = ("error", "call_id", "key_id", "tags")

#: column -> pandas dtype name of ``to_dataframe()``.
DTYPES: dict[str, str] = {
    "time": "datetime64[ns, UTC]",
    **dict.fromkeys(CATEGORY_COLUMNS, "category"),
    **dict.fromkeys(INT_COLUMNS, "Int64"),
    **dict.fromkeys(FLOAT_COLUMNS, "float64"),
    "cached": "bool",
    **dict.fromkeys(OBJECT_COLUMNS, "object"),
}
DTYPES = {c: DTYPES[c] for c in COLUMNS}  # in column order

#: What a column added after version 1 reads as in a row stored before it existed (NULL).
LATER_DEFAULTS: dict[int, Any] = {
    COLUMNS.index(c): v for c, v in (("kind", "chat"), ("round", 1), ("attachments", 0))
}


def fill_later_defaults(values: list[Any]) -> None:
    """Set the later columns of an old row (stored as NULL) to their defaults, in place."""
    for i, default in LATER_DEFAULTS.items():
        if values[i] is None:
            values[i] = default


class CodedColumn(NamedTuple):
    """A category column already encoded by a store: ``categories[codes[i]]`` is row i's
    value, code -1 is None. Lets a store hand over a million strings as 4 MB of ints."""

    codes: array[int]  # array("i")
    categories: list[Any]
