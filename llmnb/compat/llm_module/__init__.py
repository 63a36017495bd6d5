"""The "LLM Module" (both variants) on llmnb: ``from src.llm import X`` or
``from llm import X`` becomes ``from llmnb.compat.llm_module import X``.

Example::

    from llmnb.compat.llm_module import get_llm_manager, LLMProvider, Message, MessageRole

    manager = await get_llm_manager()
    client = manager.get_client(LLMProvider.ANTHROPIC)
    response = await client.complete([Message(MessageRole.USER, "Hello, world!")])
    print(response.content)

Submodules mirror the module's: ``.core.exceptions``, ``.core.pool``, ``.middleware.base``,
``.testing``.
"""

from __future__ import annotations

from llmnb.compat.llm_module.core.exceptions import (
    AuthenticationError,
    InvalidRequestError,
    LLMAuthenticationError,
    LLMError,
    LLMPoolExhaustedError,
    LLMProviderError,
    LLMRateLimitError,
    LLMTimeoutError,
    NetworkError,
    RateLimitError,
)
from llmnb.compat.llm_module.core.manager import (
    LLMManager,
    ModuleClient,
    get_llm_manager,
    reset_llm_manager,
)
from llmnb.compat.llm_module.core.pool import ConnectionPool
from llmnb.compat.llm_module.core.types import (
    LLMConfig,
    LLMProvider,
    LLMRequest,
    LLMResponse,
    Message,
    MessageRole,
)
from llmnb.compat.llm_module.middleware.base import (
    LoggingMiddleware,
    MetricsMiddleware,
    Middleware,
)
from llmnb.conversation import SessionManager

__all__ = [
    "AuthenticationError",
    "ConnectionPool",
    "InvalidRequestError",
    "LLMAuthenticationError",
    "LLMConfig",
    "LLMError",
    "LLMManager",
    "LLMPoolExhaustedError",
    "LLMProvider",
    "LLMProviderError",
    "LLMRateLimitError",
    "LLMRequest",
    "LLMResponse",
    "LLMTimeoutError",
    "LoggingMiddleware",
    "Message",
    "MessageRole",
    "MetricsMiddleware",
    "Middleware",
    "ModuleClient",
    "NetworkError",
    "RateLimitError",
    "SessionManager",
    "get_llm_manager",
    "reset_llm_manager",
]
