"""``llm_connect.openrouter_client``: a client for one OpenAI-compatible endpoint.

Retries with backoff and usage tracking are llmnb's (``LLMClient``); this class only
builds the profile from its arguments.

Example::

    client = OpenRouterLLMClient(model="openai/gpt-4o-mini", x_title="prepbench")
    text = client.generate([{"role": "user", "content": "hi"}], 0.2, 100, 30)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmnb.compat._env import with_env_base_url
from llmnb.types import MessagesLike

if TYPE_CHECKING:
    from llmnb.client.client import LLMClient
    from llmnb.types import Completion

__all__ = ["OpenAICompatibleChatClient", "OpenRouterLLMClient"]


class OpenAICompatibleChatClient:
    """``generate(messages, temperature, max_tokens, timeout) -> str`` on llmnb.

    ``api_key=None`` reads the provider type's variable (``OPENROUTER_API_KEY`` for
    OpenRouter; for a generic endpoint ``api_key_env`` names one); ``max_retries``
    defaults to llmnb's (2 retries).
    """

    provider_type = "openai_compatible"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        api_key_env: str | None = None,
        http_referer: str | None = None,
        x_title: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        name: str | None = None,
    ) -> None:
        from llmnb.client.manager import LLMManager

        fields: dict[str, Any] = {"model": model}
        optional = {
            "base_url": base_url,
            "api_key": api_key,
            "api_key_env": api_key_env,
            "http_referer": http_referer,
            "x_title": x_title,
            "timeout": timeout,
            "max_retries": max_retries,
        }
        fields.update({k: v for k, v in optional.items() if v is not None})
        self.model = model
        self.name = name or self.provider_type
        self._manager = LLMManager()
        self._manager.add_provider(
            self.name, self.provider_type, with_env_base_url(self.provider_type, fields)
        )

    @property
    def client(self) -> LLMClient:
        """The llmnb client underneath (complete / stream / acomplete …)."""
        return self._manager.get_client(self.name)

    def generate(
        self,
        messages: MessagesLike,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
    ) -> str:
        return self.client.generate(messages, temperature, max_tokens, timeout)

    def complete(self, messages: MessagesLike, **params: Any) -> Completion:
        return self.client.complete(messages, **params)

    def close(self) -> None:
        self._manager.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} model={self.model!r}>"


class OpenRouterLLMClient(OpenAICompatibleChatClient):
    """The same client with OpenRouter's defaults (endpoint, key variable, headers)."""

    provider_type = "openrouter"
