"""What an attempt may cost: the estimate a budget reserves while it is in flight.

Private to :mod:`llmnb.middleware.budget`. Input tokens are guessed from the prompt's
length, output tokens are ``max_tokens`` (else :data:`DEFAULT_OUTPUT_TOKENS`), priced at
the profile's ``pricing`` or the genai-prices table. The estimate never falls below what
the same profile and model already did in this process: the largest ratio of real to
guessed prompt tokens, the most output tokens of an answer without ``max_tokens``, and —
for a model without a price whose provider reports its cost — the largest cost.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

from llmnb.middleware.base import Call
from llmnb.types import Completion

__all__ = ["DEFAULT_OUTPUT_TOKENS", "estimate_cost", "forget_seen", "learn"]

#: Output tokens assumed for the estimate of a call that sets no ``max_tokens``.
DEFAULT_OUTPUT_TOKENS = 256

_lock = threading.Lock()
# (profile, model) -> (largest real / guessed prompt tokens, largest output, largest cost)
_seen: dict[tuple[str | None, str], tuple[float, int, float]] = {}


def forget_seen() -> None:
    """Forget what was learnt (a test, or :func:`~llmnb.middleware.budget.reset_spend`)."""
    with _lock:
        _seen.clear()


def estimate_cost(call: Call) -> float:
    """The estimated USD of the call's next attempt; NaN when no price is known."""
    from llmnb.providers.mock import estimate_tokens
    from llmnb.usage.pricing import cost_of, price_for

    provider = call.client.provider
    request = call.request
    seen = _seen.get((call.profile, request.model))
    pricing: Mapping[str, Any] | None = provider.profile.get("pricing")
    try:
        price = price_for(request.model, provider.type_name, provider.base_url, pricing)
    except ValueError:
        price = None
    if price is None:  # a provider that reports its cost: the most it charged so far
        return seen[2] if seen is not None and seen[2] > 0 else math.nan
    prompt = sum(estimate_tokens(m.content) for m in request.messages)
    if call.attachments:
        from llmnb.providers._parts_cost import attachment_tokens

        prompt += attachment_tokens(provider.type_name, request.messages)
    output = request.max_tokens or DEFAULT_OUTPUT_TOKENS
    if seen is not None:
        prompt = math.ceil(prompt * max(1.0, seen[0]))
        if not request.max_tokens:
            output = max(output, seen[1])
    return float(cost_of(price, prompt, output))


def learn(call: Call, completion: Completion) -> None:
    from llmnb.providers.mock import estimate_tokens

    u = completion.usage
    if u.estimated or u.prompt_tokens is None:
        return
    guessed = sum(estimate_tokens(m.content) for m in call.request.messages)
    ratio = min(u.prompt_tokens / guessed, 8.0) if guessed else 1.0
    cost = call.cost if call.cost > 0 else 0.0
    key = (call.profile, call.request.model)
    with _lock:
        r, out, c = _seen.get(key, (1.0, 0, 0.0))
        _seen[key] = (max(r, ratio), max(out, u.completion_tokens or 0), max(c, cost))
