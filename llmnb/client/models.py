"""``llmnb.models()``: the models each configured endpoint serves, with their prices.

Each profile's endpoint is asked for its listing once a session (``refresh=True`` asks
again): OpenAI-compatible ``GET {base_url}/models``, Anthropic ``GET {base_url}/v1/models``,
Gemini ``GET {base_url}/models``; the mock lists its ``models`` (or its model). Prices per
million tokens come from genai-prices (``llmnb.usage.pricing.price_for``), NaN where
unknown. An endpoint that cannot be listed (unreachable, refused key, a CLI agent) gives
one row whose ``note`` says why, and a warning; the other profiles are listed regardless.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from llmnb import config, errors
from llmnb._http import scrub
from llmnb.providers.base import HTTPCall, HTTPProvider, Provider

__all__ = ["COLUMNS", "clear_models_cache", "models"]

COLUMNS = [
    "profile",
    "provider",
    "model",
    "input_per_mtok",
    "output_per_mtok",
    "price_source",
    "context_window",
    "note",
]
_LISTING_TIMEOUT = 10.0
# (profile, type, base_url) -> [(model id, context window)]: one listing per session.
_listed: dict[tuple[str, str, str | None], list[tuple[str, float]]] = {}


def clear_models_cache() -> None:
    """Forget the listings: the next ``models()`` asks every endpoint again."""
    _listed.clear()


def _get(provider: HTTPProvider, url: str, headers: dict[str, Any]) -> Any:
    call = HTTPCall(url=url, json=None, headers=headers, method="GET")
    http, lib = provider._sync()
    try:
        r = http.request("GET", url, headers=provider._headers(call), timeout=_LISTING_TIMEOUT)
    except lib.HTTPError as exc:
        raise errors.NetworkError(
            f"cannot reach {provider.base_url}: {type(exc).__name__}",
            provider=provider.type_name,
            profile=provider.profile_name,
        ) from None
    if r.status_code >= 400:
        raise provider._error(r.status_code, r.headers, r.content, call)
    return provider._decode_json(r.status_code, r.content, call)


def _listing(provider: Provider) -> list[tuple[str, float]]:
    kind = provider.type_name
    if kind == "mock":
        listed = provider.profile.get("models") or [provider.model]
        return [(str(m), math.nan) for m in listed]
    if not isinstance(provider, HTTPProvider) or not provider.base_url:
        raise errors.InvalidRequestError(f"type {kind} has no model listing")
    key = provider.key_for(provider_request(provider))
    base = provider.base_url
    if kind == "anthropic":
        headers: dict[str, Any] = {"anthropic-version": "2023-06-01"}
        if key:
            headers["x-api-key"] = key
        data = _get(provider, base + "/v1/models?limit=1000", headers)
        return [(str(m["id"]), math.nan) for m in data["data"]]
    if kind == "gemini":
        data = _get(
            provider, base + "/models?pageSize=1000", {"x-goog-api-key": key} if key else {}
        )
        return [
            (str(m["name"]).removeprefix("models/"), float(m.get("inputTokenLimit") or math.nan))
            for m in data.get("models") or []
        ]
    headers = {"authorization": f"Bearer {key.reveal()}"} if key else {}
    data = _get(provider, base + "/models", headers)
    out = []
    for m in data["data"]:
        window = m.get("context_length") or m.get("context_window") or math.nan
        out.append((str(m["id"]), float(window)))
    return out


def provider_request(provider: Provider) -> Any:
    from llmnb.types import Request

    return Request(messages=(), model=provider.model)


def _profiles(which: str | None) -> list[str]:
    names = list(config.load_settings().llm.providers)
    if which is None:
        return names
    if which in names:
        return [which]
    typed = [n for n in names if config.get_profile(n).get("type") == which]
    if typed:
        return typed
    raise errors.InvalidOptionError(
        f"models({which!r}): no profile and no profile of that provider type; profiles: "
        f"{', '.join(names) or '(none)'}."
    )


def models(profile_or_provider: str | None = None, *, refresh: bool = False) -> Any:
    """A DataFrame of ``COLUMNS``: one row per model each profile's endpoint serves."""
    import pandas as pd

    from llmnb.client.profiles import create_llm_client_from_profile
    from llmnb.usage.pricing import price_for

    rows: list[dict[str, Any]] = []
    for name in _profiles(profile_or_provider):
        note = None
        kind = str(config.get_profile(name).get("type") or "")
        client = None
        try:
            client = create_llm_client_from_profile(profile=name)
            provider = client.provider
            kind = provider.type_name
            slot = (name, kind, provider.base_url)
            if refresh or slot not in _listed:
                _listed[slot] = _listing(provider)
            listed = _listed[slot]
        except (errors.LLMError, KeyError, TypeError, ValueError) as exc:
            note = scrub(f"{type(exc).__name__}: {exc}")
            warnings.warn(f"llmnb.models(): profile {name!r}: {note}", stacklevel=2)
            rows.append({"profile": name, "provider": kind, "model": None, "note": note})
            continue
        finally:
            if client is not None:
                client.close()  # its connection pool, now: this client is not kept
        for model, window in listed:
            price = price_for(model, kind, provider.base_url, provider.profile.get("pricing"))
            rows.append(
                {
                    "profile": name,
                    "provider": kind,
                    "model": model,
                    "input_per_mtok": price.input * 1e6 if price else math.nan,
                    "output_per_mtok": price.output * 1e6 if price else math.nan,
                    "price_source": price.source if price else None,
                    "context_window": window,
                    "note": None,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)
