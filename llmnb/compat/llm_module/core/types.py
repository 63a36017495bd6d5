"""The LLM Module's value types: providers, call settings, requests and responses."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from llmnb.types import Completion, Message, Role, Usage

__all__ = ["LLMConfig", "LLMProvider", "LLMRequest", "LLMResponse", "Message", "MessageRole"]

MessageRole = Role  # Message(MessageRole.USER, "…") is llmnb's Message(Role.USER, "…")


class LLMProvider(str, enum.Enum):
    """The providers the module knows; each is an llmnb profile of the same name."""

    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    GOOGLE = "google"
    GROQ = "groq"
    LOCAL = "local"

    def __str__(self) -> str:
        return self.value


@dataclass
class LLMConfig:
    """Call settings; ``client.complete(messages, **config.to_dict())``.

    ``max_retries`` / ``retry_delay`` set llmnb's retry policy for that call,
    ``system_prompt`` becomes a system message when the messages have none.
    """

    temperature: float | None = None
    max_tokens: int | None = None
    max_retries: int | None = None
    retry_delay: float | None = None
    timeout: float | None = None
    system_prompt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The settings that are set (``None`` ones are left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class LLMRequest:
    """What middlewares' ``process_request`` see and may change before the call."""

    messages: list[Message]
    params: dict[str, Any] = field(default_factory=dict)
    provider: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class LLMResponse:
    """An answer: ``content``, ``usage``, ``model``, a free ``metadata`` dict for
    middlewares, and llmnb's :class:`~llmnb.Completion` (cost, call id …)."""

    content: str
    model: str
    usage: Usage
    completion: Completion
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_completion(cls, completion: Completion) -> LLMResponse:
        return cls(completion.content, completion.model, completion.usage, completion)

    @property
    def cost_usd(self) -> float:
        return self.completion.cost_usd

    @property
    def finish_reason(self) -> str | None:
        return self.completion.finish_reason

    def __str__(self) -> str:
        return self.content
