"""Typed errors raised by llmnb.

Every error a user can cause or meet says what went wrong, names the file, profile,
field or option involved, and says what to do next. Lower-level exceptions (httpx,
yaml, pydantic, import errors) are translated once, at the boundary where they happen,
with ``raise Mapped(...) from exc``.

The hierarchy::

    LLMError
    ├── ConfigError                     settings.yaml / .env / profile problems
    │   ├── ProviderNotFoundError       unknown provider ``type`` or profile name
    │   ├── MissingAPIKeyError          no key for a profile; names the env var to set
    │   └── RequestExceedsLimitError    one call needs more than a per-minute rate limit
    ├── InvalidOptionError              a call option is wrong (``response_model`` on a stream…)
    ├── PoolExhaustedError              no key of the pool free within ``acquire_timeout``
    ├── BudgetExceededError             the call could pass a USD budget; nothing was sent
    ├── StructuredOutputError           the answer never validated against ``response_model``
    ├── ToolLoopError                   the model still asked for tools after ``max_tool_rounds``
    ├── ReplayError                     a cassette cannot be used (damaged, newer, unwritable)
    │   └── ReplayMissError             replay mode, and no recording matches the request
    └── APIError                        anything that happened while calling a model
        ├── AuthenticationError         401 / 403
        ├── InvalidRequestError         400, 404, 422 ... the request itself is wrong
        ├── InsufficientQuotaError      out of credit / spend limit (never retried)
        ├── RateLimitError              429; carries ``retry_after`` (seconds) when known
        ├── LLMTimeoutError             no answer within the timeout
        ├── NetworkError                connection refused / reset / cut stream
        └── ProviderError               5xx or an answer we cannot understand
            ├── OverloadedError         503 / 529 "overloaded"
            └── ResponseFormatError     body is empty, not JSON, HTML, missing fields
"""

from __future__ import annotations

from collections.abc import Mapping

from llmnb._secrets import scrub_secrets

__all__ = [
    "APIError",
    "AuthenticationError",
    "BudgetExceededError",
    "ConfigError",
    "InsufficientQuotaError",
    "InvalidOptionError",
    "InvalidRequestError",
    "LLMError",
    "LLMTimeoutError",
    "MissingAPIKeyError",
    "NetworkError",
    "OverloadedError",
    "PoolExhaustedError",
    "ProviderError",
    "ProviderNotFoundError",
    "RateLimitError",
    "ReplayError",
    "ReplayMissError",
    "RequestExceedsLimitError",
    "ResponseFormatError",
    "StructuredOutputError",
    "ToolLoopError",
]


class LLMError(Exception):
    """Base of every llmnb error."""

    def __init__(self, *args: object) -> None:
        # Whoever wrote the message (a server's text, a library's): no known secret in it.
        super().__init__(*(scrub_secrets(a) if isinstance(a, str) else a for a in args))

    def _render_traceback_(self) -> list[str]:
        """IPython's hook: the traceback it would show (any ``%xmode``), without any known
        secret — a Verbose one prints each frame's arguments and locals, and those may
        hold what a server said (quoting a key) as it was received."""
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - only IPython calls this hook
            shell = None
        else:
            shell = get_ipython()
        if shell is None:
            import traceback

            lines = traceback.format_exception(type(self), self, self.__traceback__)
        else:
            lines = shell.InteractiveTB.structured_traceback(type(self), self, self.__traceback__)
        return [scrub_secrets(line) for line in lines]


class ConfigError(LLMError):
    """The settings file, ``.env`` or a profile is wrong; the message says where and how."""


class ProviderNotFoundError(ConfigError):
    """A profile name or provider ``type`` does not resolve to anything registered."""


class MissingAPIKeyError(ConfigError):
    """A profile needs an API key and none is set; the message names the variable."""


class RequestExceedsLimitError(ConfigError):
    """One call needs more than a per-minute limit allows, so waiting can never admit it.

    The message names the profile and the ``rate_limits`` field to raise.
    """


class InvalidOptionError(LLMError, ValueError):
    """A call option or argument is wrong; the message names it and says what to pass."""


class PoolExhaustedError(LLMError):
    """No key of a profile's pool became free within ``acquire_timeout`` seconds.

    Every key was busy (``max_connections_per_key``) or cooling down after an error.
    ``profile`` names the pool; ``waited`` is how long the caller waited.
    """

    def __init__(self, message: str, *, profile: str | None = None, waited: float = 0.0) -> None:
        super().__init__(message)
        self.profile = profile
        self.waited = waited


class BudgetExceededError(LLMError):
    """A USD budget would be passed by this call; nothing was sent.

    ``limit_usd`` is the budget, ``spent_usd`` what was spent under it so far (in its
    ``window``: ``session``, ``day``, ``week`` or ``month``), ``reserved_usd`` the
    estimates of calls still in flight, ``estimate_usd`` this call's estimated cost,
    ``scope`` ``"session"`` or ``"profile <name>"``.
    """

    def __init__(
        self,
        message: str,
        *,
        scope: str,
        limit_usd: float,
        spent_usd: float,
        estimate_usd: float,
        reserved_usd: float = 0.0,
        window: str = "session",
    ) -> None:
        super().__init__(message)
        self.scope = scope
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.estimate_usd = estimate_usd
        self.reserved_usd = reserved_usd
        self.window = window


class StructuredOutputError(LLMError):
    """The answer did not validate against ``response_model``, re-asks included.

    ``raw`` is the last raw answer, ``errors`` the last validation error text,
    ``attempts`` how many answers were tried.
    """

    def __init__(self, message: str, *, raw: str, errors: str, attempts: int) -> None:
        super().__init__(message)
        self.raw = raw
        self.errors = errors
        self.attempts = attempts


class ReplayError(LLMError):
    """A replay cassette cannot be read or written; the message names it and the line."""


class ReplayMissError(ReplayError):
    """Replay mode is on and no recorded request matches this one; nothing was sent.

    The message names the cell, the profile and the closest recorded request, and says
    how to record it (``%llm replay record …`` with keys, or mode ``auto``)."""


class APIError(LLMError):
    """A call to a model failed.

    ``status`` is the HTTP status (``None`` when no response arrived), ``body`` a short,
    secret-free excerpt of what the server said, ``retryable`` whether retrying may help,
    ``headers`` the response headers (rate-limit state; never request headers).
    """

    retryable: bool = False
    headers: Mapping[str, str] | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str | None = None,
        provider: str | None = None,
        profile: str | None = None,
        model: str | None = None,
        code: str | None = None,
    ) -> None:
        message = scrub_secrets(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = scrub_secrets(body) if body else body
        self.provider = provider
        self.profile = profile
        self.model = model
        self.code = code

    def __str__(self) -> str:
        where = self.profile or self.provider
        prefix = f"[{where}] " if where else ""
        return f"{prefix}{self.message}"


class AuthenticationError(APIError):
    """The server rejected the API key (401/403). Check the key variable of the profile."""


class InvalidRequestError(APIError):
    """The request was rejected as malformed (400/404/422); retrying will not help."""


class InsufficientQuotaError(APIError):
    """The account is out of credit or hit a spend limit; never retried."""


class RateLimitError(APIError):
    """Too many requests (429). ``retry_after`` holds the server's wait in seconds if given."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class LLMTimeoutError(APIError):
    """No (complete) answer arrived within the timeout."""

    retryable = True


class NetworkError(APIError):
    """The connection failed, was reset, or a stream was cut before it finished."""

    retryable = True


class ProviderError(APIError):
    """The provider failed on its side (5xx) or sent something unusable."""

    retryable = True


class OverloadedError(ProviderError):
    """The provider is overloaded (503/529); retried with backoff."""


class ResponseFormatError(ProviderError):
    """The answer could not be understood: empty, not JSON, HTML, or missing fields.

    Not retried: a server that answers garbage usually answers the same garbage again.
    """

    retryable = False


class ToolLoopError(LLMError):
    """The model still asked for tools after ``max_tool_rounds`` rounds.

    ``transcript`` is every message of the loop (the tool calls and their results
    included), ``rounds`` how many rounds ran, ``tool_calls`` every call made.
    """

    def __init__(
        self, message: str, *, transcript: tuple[object, ...], rounds: int, tool_calls: list[object]
    ) -> None:
        super().__init__(message)
        self.transcript = transcript
        self.rounds = rounds
        self.tool_calls = tool_calls
