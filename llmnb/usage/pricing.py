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

Simplifications, on purpose: cache *writes* (Anthropic) are billed at the input rate,
per-request fees (``requests_kcount``) and modality-specific prices (audio, image) are
ignored — a text chat call is what llmnb records. Tiered prices (long-context rates such
as Claude's or Gemini's above 200k prompt tokens) are kept.
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
}

_INF = math.inf
_OVERRIDE_KEYS = frozenset({"input_per_mtok", "output_per_mtok", "cached_input_per_mtok"})

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

    @property
    def input_per_mtok(self) -> float:
        return self.input * 1e6

    @property
    def output_per_mtok(self) -> float:
        return self.output * 1e6


def cost_of(
    price: Price, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
) -> float:
    """USD for one call. ``cached_tokens`` are part of ``prompt_tokens`` (billed at the cached
    rate); reasoning tokens are part of ``completion_tokens`` and billed as output."""
    input_rate, output_rate, cached_rate = price.input, price.output, price.cached_input
    if price.tiers:
        # Threshold pricing: crossing a tier re-prices *all* tokens, as the providers bill.
        for tier in reversed(price.tiers):
            if prompt_tokens > tier.above:
                input_rate, output_rate, cached_rate = tier.input, tier.output, tier.cached_input
                break
    cached = min(cached_tokens, prompt_tokens) if cached_tokens > 0 else 0
    return (
        (prompt_tokens - cached) * input_rate
        + cached * cached_rate
        + completion_tokens * output_rate
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
            "tokens) and may have cached_input_per_mtok; got keys "
            f"{sorted(map(str, pricing))}"
        )
    try:
        inp = float(pricing["input_per_mtok"]) / 1e6
        out = float(pricing["output_per_mtok"]) / 1e6
        cached_raw = pricing.get("cached_input_per_mtok")
        cached = inp if cached_raw is None else float(cached_raw) / 1e6
    except (TypeError, ValueError):
        raise ValueError(
            f"'pricing' values must be numbers (USD per million tokens), got {dict(pricing)!r}"
        ) from None
    if not (0.0 <= inp < _INF and 0.0 <= out < _INF and 0.0 <= cached < _INF):  # NaN fails
        raise ValueError(f"'pricing' values must be finite and not negative, got {dict(pricing)!r}")
    return Price(inp, out, cached, "override")


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
    if inp is None and out is None:
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
    return Price(*base, source=source, tiers=tiers)


def _time_of_day(model_info: Any) -> bool:
    prices = getattr(model_info, "prices", None)
    if not isinstance(prices, list):
        return False
    return any(type(p.constraint).__name__ == "TimeOfDateConstraint" for p in prices)
