"""Ad-hoc profiles: a provider type used by name, with no settings entry.

``openai``, ``anthropic:claude-haiku-4-5`` or ``ollama:llama3.2:3b`` name a profile of
that built-in type (or preset) with its own key variable and base URL, so that a user
with only ``OPENAI_API_KEY`` set can run ``%%llm openai:gpt-4o-mini`` or
``llmnb.connect("openai:gpt-4o-mini")``. A profile of the same name in the settings
always wins. ``PROFILE:MODEL`` (e.g. in ``LLM_ACTIVE_PROVIDER``) is that profile with
the model changed.

:mod:`llmnb.config` resolves names but sits below the providers, so it cannot know which
names are provider types; this module tells it (:func:`install`, which
:mod:`llmnb.client.profiles` runs when it loads — anything that builds a client does).
"""

from __future__ import annotations

from typing import Any

from llmnb import config
from llmnb.client.autodetect import DEFAULT_MODELS

__all__ = ["ProviderTypes", "adhoc_types", "install"]

# A generic endpoint needs a base_url, so its bare name cannot make a working profile.
_NEEDS_SETTINGS = frozenset({"openai_compatible"})


def adhoc_types() -> list[str]:
    """Built-in provider types usable by name without a profile, sorted."""
    from llmnb.providers import BUILTINS

    return sorted(set(BUILTINS) - _NEEDS_SETTINGS)


class ProviderTypes:
    """The :class:`llmnb.config.AdhocProfiles` source of built-in provider types."""

    def profile(self, name: str, settings: config.Settings) -> dict[str, Any] | None:
        head, sep, model = name.strip().partition(":")
        head, model = head.strip(), model.strip()
        if sep and not model:
            return None
        if sep and head in settings.llm.providers:
            return {**config.get_profile(head), "model": model, "name": name}
        ptype = head.lower()
        if ptype not in adhoc_types():
            return None
        found: dict[str, Any] = {"type": ptype}
        if model or ptype in DEFAULT_MODELS:
            found["model"] = model or DEFAULT_MODELS[ptype]
        return found

    def names(self) -> list[str]:
        return adhoc_types()


def install() -> None:
    """Make ``config`` resolve provider types as profiles (idempotent)."""
    config.set_adhoc_profiles(ProviderTypes())
