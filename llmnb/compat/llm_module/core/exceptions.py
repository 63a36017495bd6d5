"""``src.llm.core.exceptions``: the LLM Module's error names, as llmnb's own classes.

They are the same classes (not look-alikes), so ``except RateLimitError`` catches what
llmnb raises. Both variants' names are here: seed 001's (``RateLimitError`` …) and seed
003's (``LLMRateLimitError`` …). ``RateLimitError.retry_after`` is the server's wait.
"""

from __future__ import annotations

from llmnb.errors import (
    APIError,
    AuthenticationError,
    ConfigError,
    InvalidRequestError,
    LLMError,
    LLMTimeoutError,
    NetworkError,
    PoolExhaustedError,
    ProviderError,
    RateLimitError,
)

__all__ = [
    "APIError",
    "AuthenticationError",
    "ConfigError",
    "InvalidRequestError",
    "LLMAuthenticationError",
    "LLMError",
    "LLMPoolExhaustedError",
    "LLMProviderError",
    "LLMRateLimitError",
    "LLMTimeoutError",
    "NetworkError",
    "PoolExhaustedError",
    "ProviderError",
    "RateLimitError",
    "TimeoutError",
]

LLMRateLimitError = RateLimitError
LLMPoolExhaustedError = PoolExhaustedError
LLMAuthenticationError = AuthenticationError
LLMProviderError = ProviderError
TimeoutError = LLMTimeoutError
