"""``llm_connect.utils``: the client of the active profile, as llm_connect resolved it.

llmnb resolves the profile (``LLM_ACTIVE_PROVIDER``, ``LLM_<AGENT>_ACTIVE_PROVIDER``,
``LLM_MODEL`` …, ``provider_factory``, case-insensitive ``type``) exactly as llm_connect
documented. Two llm_connect behaviours llmnb does not have are added here:

- a profile without ``base_url`` takes ``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL`` /
  ``OPENROUTER_BASE_URL`` (for ``openai`` / ``anthropic`` / ``openrouter``);
- an ``openai_compatible`` profile without a key of its own reads ``OPENAI_API_KEY``,
  else ``OPENROUTER_API_KEY``, as llm_connect's README promised (llmnb itself never
  sends those keys to a third-party host unless the profile says ``api_key_env``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmnb.compat._env import env_base_url

if TYPE_CHECKING:
    from llmnb.client.client import LLMClient

__all__ = ["create_llm_client_from_profile", "list_providers", "register_provider"]

_SHARED_KEY_VARS = ("OPENAI_API_KEY", "OPENROUTER_API_KEY")
_KEY_FIELDS = ("api_key", "api_keys", "api_key_env")


def create_llm_client_from_profile(
    model_name: str | None = None, agent: str | None = None
) -> LLMClient:
    """The client of the active profile (or ``agent``'s); raises a ConfigError with
    guidance when no provider resolves."""
    from llmnb.client.profiles import create_llm_client_from_profile as build

    return _with_llm_connect_defaults(build(model_name, agent))


def register_provider(provider_type: str, factory: Callable[..., Any]) -> None:
    """``factory(profile, model_name, agent)`` for ``type: <provider_type>``."""
    from llmnb.client.registry import register_provider as register

    register(provider_type, factory)


def list_providers() -> list[str]:
    """Registered provider types (llmnb's built-ins included), sorted."""
    from llmnb.client.registry import list_providers as providers

    return providers()


def _with_llm_connect_defaults(client: LLMClient) -> LLMClient:
    from llmnb import config
    from llmnb.client.client import LLMClient
    from llmnb.providers.base import HTTPProvider

    provider = client.provider
    if not isinstance(provider, HTTPProvider):
        return client  # a factory's own object, a CLI, mock: nothing to add
    profile = provider.profile
    extra: dict[str, Any] = {}
    if not profile.get("base_url"):
        url = env_base_url(provider.type_name)
        if url:
            extra["base_url"] = url
    if provider.type_name == "openai_compatible" and not any(profile.get(k) for k in _KEY_FIELDS):
        var = next((v for v in _SHARED_KEY_VARS if config.get_env(v)), None)
        if var is not None:
            extra["api_key_env"] = var
    if not extra:
        return client
    # The same provider class over the profile plus the additions; the middlewares are
    # shared per profile name, so limits and pools are the ones the first client had.
    rebuilt = type(provider)(
        provider.profile_name, config.Profile({**profile, **extra}), provider.model
    )
    return LLMClient(
        rebuilt,
        profile=client.profile,
        model=client.model,
        params=client.params,
        retry=client.retry,
        agent=client.agent,
        step=client.step,
        failover=client.failover,
    )
