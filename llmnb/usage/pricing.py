"""Prices per token: a profile's ``pricing`` override, else the genai-prices table.

``price_for(model, provider, base_url, pricing)`` returns a :class:`Price` (USD per token)
or ``None`` when no price is known; ``cost_of(price, prompt, completion, cached)`` turns
token counts into dollars. Example::

    >>> p = price_for("m", None, pricing={"input_per_mtok": 1, "output_per_mtok": 2})
    >>> round(cost_of(p, 1_000_000, 500_000), 6)
    2.0

Lookups in genai-prices are cached per ``(provider, model, base_url)``, misses included,
so that recording a call stays cheap; genai-prices itself is imported on the first lookup
(it takes ~0.2 s), never at ``import llmnb.usage``.

Four token kinds are priced: plain input, cache reads (``cached_tokens``), cache writes
(``cache_write_tokens``, with the one-hour part at its own rate where the table has one)
and output (reasoning included). Calls with cache writes, tiered prices (long-context
rates such as Claude's or Gemini's above 200k prompt tokens) or a per-request fee are
priced by genai-prices' own usage model (``ModelPrice.calc_price``), so its rules apply;
plain calls use the same rates in a float formula that gives the same number faster.
Modality-specific prices (audio, image) are not applied: a text chat call is what llmnb
records. An entry with no price at all for the exact model (OpenRouter's ``…:free`` ids)
is a price of $0, not a miss.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from time import monotonic
from typing import Any, NamedTuple

__all__ = [
    "PROVIDER_IDS",
    "Price",
    "PriceTier",
    "clear_price_cache",
    "cost_of",
    "price_for",
]

log = logging.getLogger(__name__)

#: llmnb provider type (lower case) -> genai-prices provider id.
PROVIDER_IDS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "google": "google",
    "openrouter": "openrouter",
    "groq": "groq",
    "together": "together",
    "deepseek": "deepseek",
    "mistral": "mistral",
    "mistralai": "mistral",  # OpenRouter's vendor prefix
    "xai": "x-ai",
    "x-ai": "x-ai",
    "azure": "azure",
    "fireworks": "fireworks",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "azure_openai": "azure",
    "bedrock": "aws",
    "vertex": "google",
    "vertex_anthropic": "anthropic",
}

_INF = math.inf
_OVERRIDE_KEYS = frozenset(
    {"input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok"}
)

# A genai-prices answer is re-checked after this long: the table has prices that start on a
# date, and a few (DeepSeek off-peak) that change with the time of day.
_TTL_S = 3600.0
_TTL_TIME_OF_DAY_S = 60.0


class PriceTier(NamedTuple):
    """Rates (USD per token) that apply when the prompt has more than ``above`` tokens."""

    above: int
    input: float
    output: float
    cached_input: float


class Price(NamedTuple):
    """Rates in USD per token; ``source`` says where they came from.

    ``source`` is ``"override"`` for a profile's ``pricing`` block, or
    ``"genai-prices:<provider>/<model>"`` naming the table entry that matched.
    """

    input: float
    output: float
    cached_input: float
    source: str
    tiers: tuple[PriceTier, ...] = ()
    #: USD per cache-written token (the input rate when the table has none).
    cache_write: float | None = None
    #: genai-prices' ``ModelPrice`` for these rates: what prices calls the float formula
    #: cannot (cache writes, tiers, per-request fees). None until first needed for an
    #: override, which builds one from its rates.
    model_price: Any = None
    #: False when a plain call needs genai-prices too (tiers, a per-request fee).
    simple: bool = True

    @property
    def input_per_mtok(self) -> float:
        return self.input * 1e6

    @property
    def output_per_mtok(self) -> float:
        return self.output * 1e6


def cost_of(
    price: Price,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
) -> float:
    """USD for one call. ``cached_tokens`` (cache reads) and ``cache_write_tokens`` are
    parts of ``prompt_tokens``, billed at their own rates; ``cache_write_1h_tokens`` is the
    part of the writes with a one-hour lifetime. Reasoning tokens are part of
    ``completion_tokens`` and billed as output."""
    cached = min(max(cached_tokens, 0), prompt_tokens)
    written = min(max(cache_write_tokens, 0), prompt_tokens - cached)
    if price.simple and not price.tiers and not written:
        return (
            (prompt_tokens - cached) * price.input
            + cached * price.cached_input
            + completion_tokens * price.output
        )
    genai = _genai_prices()
    model_price = price.model_price
    if model_price is None and genai is not None:
        model_price = _override_model_price(price)
    if genai is None or model_price is None:  # no genai-prices: the rates by hand
        write_rate = price.input if price.cache_write is None else price.cache_write
        return (
            (prompt_tokens - cached - written) * price.input
            + cached * price.cached_input
            + written * write_rate
            + completion_tokens * price.output
        )
    usage: dict[str, int] = {
        "input_tokens": prompt_tokens,
        "output_tokens": completion_tokens,
        "cache_read_tokens": cached,
        "cache_write_tokens": written,
    }
    if cache_write_1h_tokens > 0:
        usage["cache_write_1h_tokens"] = min(cache_write_1h_tokens, written)
    return float(model_price.calc_price(genai.Usage(**usage))["total_price"])


def _override_model_price(price: Price) -> Any:
    """A genai-prices ``ModelPrice`` with an override's rates (USD per million tokens)."""
    from decimal import Decimal

    from genai_prices.types import ModelPrice

    def mtok(rate: float | None) -> Decimal | None:
        return None if rate is None else Decimal(repr(rate * 1e6))

    return ModelPrice(
        input_mtok=mtok(price.input),
        output_mtok=mtok(price.output),
        cache_read_mtok=mtok(price.cached_input),
        cache_write_mtok=mtok(price.cache_write),
    )


def price_for(
    model: str | None,
    provider: str | None,
    base_url: str | None = None,
    pricing: Mapping[str, Any] | None = None,
) -> Price | None:
    """The price of ``model`` on ``provider`` (an llmnb provider type), or ``None`` if unknown.

    ``pricing`` (a profile's override, USD per million tokens) wins over the table.
    Raises ``ValueError`` only for a malformed ``pricing`` mapping.
    """
    if pricing is not None:
        return _override_price(pricing)
    return table_price(model, provider, base_url)[0]


def table_price(
    model: str | None, provider: str | None, base_url: str | None = None
) -> tuple[Price | None, float]:
    """``(price or None, monotonic time until which that answer holds)`` from genai-prices.

    For callers that keep the answer themselves (the usage tracker's last-lookup memo);
    :func:`clear_price_cache` also ends it: compare :func:`price_generation` before reuse.
    """
    if not model:
        return None, _INF
    key = (provider, model, base_url)
    hit = _cache.get(key)
    if hit is not None and hit[1] > monotonic():
        return hit
    price, ttl = _lookup(model, provider, base_url)
    hit = _cache[key] = (price, monotonic() + ttl)
    return hit


def price_generation() -> object:
    """An object that changes whenever :func:`clear_price_cache` runs."""
    return _generation[0]


def clear_price_cache() -> None:
    """Forget cached lookups (e.g. after ``genai_prices.UpdatePrices`` fetched new data)."""
    _cache.clear()
    _generation[0] = object()


# (provider, model, base_url) -> (price or None, monotonic expiry). Plain dict: a race only
# means a lookup is done twice.
_cache: dict[tuple[str | None, str, str | None], tuple[Price | None, float]] = {}
_generation: list[object] = [object()]


def _override_price(pricing: Mapping[str, Any]) -> Price:
    unknown = pricing.keys() - _OVERRIDE_KEYS
    if unknown or "input_per_mtok" not in pricing or "output_per_mtok" not in pricing:
        raise ValueError(
            "a 'pricing' override needs input_per_mtok and output_per_mtok (USD per million "
            "tokens) and may have cached_input_per_mtok and cache_write_per_mtok; got keys "
            f"{sorted(map(str, pricing))}"
        )
    try:
        inp = float(pricing["input_per_mtok"]) / 1e6
        out = float(pricing["output_per_mtok"]) / 1e6
        cached_raw = pricing.get("cached_input_per_mtok")
        cached = inp if cached_raw is None else float(cached_raw) / 1e6
        write_raw = pricing.get("cache_write_per_mtok")
        write = None if write_raw is None else float(write_raw) / 1e6
    except (TypeError, ValueError):
        raise ValueError(
            f"'pricing' values must be numbers (USD per million tokens), got {dict(pricing)!r}"
        ) from None
    if not all(0.0 <= v < _INF for v in (inp, out, cached, inp if write is None else write)):
        raise ValueError(f"'pricing' values must be finite and not negative, got {dict(pricing)!r}")
    # NaN fails the check above; no cache_write rate means the input rate.
    return Price(inp, out, cached, "override", cache_write=write)


def _candidates(
    model: str, provider: str | None, base_url: str | None
) -> Iterator[tuple[str, str | None, str | None]]:
    """(model_ref, provider_id, provider_api_url) to try in genai-prices, best first."""
    provider_id = PROVIDER_IDS.get(provider.lower()) if provider else None
    if provider_id:
        yield model, provider_id, None
    elif base_url:
        # openai_compatible & co: the host often tells which provider it is.
        yield model, None, base_url
    if "/" in model:
        # OpenRouter-style "anthropic/claude-sonnet-4.5": the vendor prices its own model.
        vendor, _, rest = model.partition("/")
        vendor = vendor.lower()
        if vendor and rest:
            yield rest, PROVIDER_IDS.get(vendor, vendor), None
    if not provider_id:
        # mock, CLI and unknown providers: let genai-prices guess from the model name.
        yield model, None, None


def _genai_prices() -> Any:
    """The genai_prices module, imported on first use; None if it cannot be (said once)."""
    global _genai
    if _genai is None:
        try:
            import genai_prices

            _genai = genai_prices
        except Exception:  # a dependency, but a broken install must not break recording
            log.warning("genai-prices cannot be imported; costs will be unknown", exc_info=True)
            _genai = False
    return _genai or None


_genai: Any = None  # None: not tried yet; False: import failed


def _lookup(model: str, provider: str | None, base_url: str | None) -> tuple[Price | None, float]:
    genai = _genai_prices()
    if genai is None:
        return None, _TTL_S
    calc_price = genai.calc_price
    probe = genai.Usage(input_tokens=0, output_tokens=0)
    for ref, provider_id, api_url in _candidates(model, provider, base_url):
        try:
            if api_url is not None:
                calc = calc_price(probe, ref, provider_api_url=api_url)
            else:
                calc = calc_price(probe, ref, provider_id=provider_id)
            price = _from_model_price(
                calc.model_price, f"genai-prices:{calc.provider.id}/{calc.model.id}"
            )
        except LookupError:
            continue
        except Exception:
            # The table is third-party data: a failure there means "no price", not a crash.
            log.debug("genai-prices failed for %r on %r", ref, provider_id, exc_info=True)
            continue
        if price is not None:
            return price, _TTL_TIME_OF_DAY_S if _time_of_day(calc.model) else _TTL_S
    return None, _TTL_S


def _from_model_price(model_price: Any, source: str) -> Price | None:
    inp = getattr(model_price, "input_mtok", None)
    out = getattr(model_price, "output_mtok", None)
    cached = getattr(model_price, "cache_read_mtok", None)
    write = getattr(model_price, "cache_write_mtok", None)
    if inp is None and out is None:
        if not any(v is not None for v in vars(model_price).values()):
            # An entry with no price at all for this exact model: a free model
            # (OpenRouter's ":free" ids), not a reason to fall back to a paid sibling.
            return Price(0.0, 0.0, 0.0, source, cache_write=0.0, model_price=model_price)
        return None  # priced per request, image, audio…: not a token price
    thresholds = sorted(
        {t.start for v in (inp, out, cached) for t in getattr(v, "tiers", None) or ()}
    )

    def rate(value: Any, above: int) -> float:
        if value is None:
            return 0.0
        tiers = getattr(value, "tiers", None)
        if tiers is None:
            return float(value) / 1e6
        applicable = value.base
        for tier in tiers:  # sorted ascending by genai-prices
            if tier.start <= above:
                applicable = tier.price
        return float(applicable) / 1e6

    def rates(above: int) -> tuple[float, float, float]:
        i = rate(inp, above)
        return i, rate(out, above), i if cached is None else rate(cached, above)

    base = rates(-1)
    tiers = tuple(PriceTier(above, *rates(above)) for above in thresholds)
    return Price(
        *base,
        source=source,
        tiers=tiers,
        cache_write=base[0] if write is None else rate(write, -1),
        model_price=model_price,
        # A per-request fee is part of every call's price: genai-prices adds it.
        simple=getattr(model_price, "requests_kcount", None) is None,
    )


def _time_of_day(model_info: Any) -> bool:
    prices = getattr(model_info, "prices", None)
    if not isinstance(prices, list):
        return False
    return any(type(p.constraint).__name__ == "TimeOfDateConstraint" for p in prices)
