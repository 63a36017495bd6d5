"""Value types shared by every layer: messages, requests, completions, usage, chunks,
and :class:`Secret` (a key, shown masked, registered for scrubbing)."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from llmnb._secrets import Secret, known_secrets, scrub_secrets
    from llmnb.parts import Part, ToolCall

__all__ = [
    "Chunk",
    "Completion",
    "Embeddings",
    "Message",
    "MessagesLike",
    "Request",
    "Role",
    "Secret",
    "Usage",
    "known_secrets",
    "normalize_messages",
    "scrub_secrets",
]


class Role(str, enum.Enum):
    """Who speaks in a message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    # OpenAI's name for system instructions to its newer models; sent as it is to OpenAI
    # and as a system message to every other provider.
    DEVELOPER = "developer"

    def __str__(self) -> str:
        return self.value

    @property
    def instructs(self) -> bool:
        """A system or developer message: instructions rather than a turn."""
        return self is Role.SYSTEM or self is Role.DEVELOPER


@dataclass(frozen=True, slots=True, init=False)
class Message:
    """One chat message. ``Message("user", "hi")`` or ``Message(Role.USER, "hi")``.

    ``content`` may also be a list of parts (``llmnb.Text``, ``llmnb.Image``,
    ``llmnb.Document``, ``llmnb.Audio``, strings, or OpenAI/Anthropic-style dicts): they
    are kept in order on ``parts`` and ``content`` is their text. An assistant message may
    carry the ``tool_calls`` it made; a ``tool`` message answers one by ``tool_call_id``.
    """

    role: Role
    content: str
    name: str | None
    parts: tuple[Part, ...]
    tool_calls: tuple[ToolCall, ...]
    tool_call_id: str | None

    def __init__(
        self,
        role: Role | str,
        content: str | Sequence[Any],
        name: str | None = None,
        *,
        tool_calls: Sequence[ToolCall] = (),
        tool_call_id: str | None = None,
    ) -> None:
        setattr_ = object.__setattr__
        if not isinstance(role, Role):
            try:
                role = Role(str(role).lower())
            except ValueError:
                roles = ", ".join(r.value for r in Role)
                raise ValueError(f"unknown message role {role!r}; use one of: {roles}") from None
        parts: tuple[Part, ...] = ()
        if not isinstance(content, str):
            if isinstance(content, (bytes, bytearray, Mapping)) or not isinstance(
                content, Sequence
            ):
                raise TypeError(
                    "message content must be a str or a list of parts, got "
                    f"{type(content).__name__}"
                )
            from llmnb.parts import text_of, to_parts

            parts = to_parts(content)
            content = text_of(parts)
        setattr_(self, "role", role)
        setattr_(self, "content", content)
        setattr_(self, "name", name)
        setattr_(self, "parts", parts)
        setattr_(self, "tool_calls", tuple(tool_calls))
        setattr_(self, "tool_call_id", tool_call_id)

    @property
    def has_attachments(self) -> bool:
        """True when a part other than text is in the message."""
        if not self.parts:
            return False
        from llmnb.parts import Text

        return any(not isinstance(p, Text) for p in self.parts)

    def to_dict(self) -> dict[str, str]:
        d = {"role": self.role.value, "content": self.content}
        if self.name:
            d["name"] = self.name
        return d


MessagesLike = Union[str, Message, Sequence[Union[Message, Mapping[str, Any]]]]


def normalize_messages(messages: MessagesLike) -> tuple[Message, ...]:
    """Turn a ``str``, a list of dicts or a list of :class:`Message` into messages.

    Anything else — ``None``, an unknown role, content that is not text, a lone
    surrogate (text from a broken decode, which no server can receive as UTF-8) —
    raises :class:`~llmnb.errors.InvalidRequestError` naming the message and field.
    """
    if isinstance(messages, str):
        _check_text("the prompt", messages)
        return (Message(Role.USER, messages),)
    if isinstance(messages, Message):
        _check_message("the message", messages)
        return (messages,)
    if isinstance(messages, (Mapping, bytes, bytearray)) or not isinstance(messages, Iterable):
        raise _invalid(
            f"messages={_short(messages)}: pass a prompt str, a list of "
            "{'role': ..., 'content': ...} dicts, or a list of llmnb.Message."
        )
    out: list[Message] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if isinstance(m, Message):
            message = m
        elif isinstance(m, Mapping):
            if "role" not in m or "content" not in m:
                raise _invalid(
                    f"message {i} needs 'role' and 'content' keys, got keys {sorted(map(str, m))}"
                )
            content = m["content"]
            if content is None:
                content = ""
            name = m.get("name")
            if name is not None and not isinstance(name, str):
                raise _invalid(f"{where}['name'] must be a str, got {_short(name)}")
            try:
                message = Message(m["role"], content, name)
            except (TypeError, ValueError) as exc:
                raise _invalid(f"{where}: {exc}") from None
        else:
            raise _invalid(f"{where} must be a dict or llmnb.Message, got {type(m).__name__}")
        _check_message(where, message)
        out.append(message)
    if not out:
        raise _invalid("messages are empty: pass a prompt string or at least one message")
    return tuple(out)


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _check_message(where: str, message: Message) -> None:
    _check_text(f"{where} content", message.content)
    if message.name:
        _check_text(f"{where} name", message.name)


def _check_text(where: str, text: str) -> None:
    if text.isascii():  # O(1) in CPython: the common case costs nothing
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _invalid(
            f"{where} has a lone surrogate ({text[exc.start]!r} at position {exc.start}): "
            "text from a broken decode, which cannot be sent as UTF-8. Clean it first, "
            "e.g. text.encode('utf-8', 'replace').decode()."
        ) from None


@dataclass(slots=True)
class Usage:
    """Token counts of one call.

    ``cached_tokens`` and ``reasoning_tokens`` are parts of the prompt and completion
    counts (as the OpenAI wire format reports them), not additions. ``estimated`` is
    true when the counts were guessed from text length instead of reported.
    ``cost_usd`` is set only when the provider itself reported a cost.
    ``cache_write_tokens`` (prompt tokens written to the provider's cache, billed at the
    cache-write rate) are part of ``prompt_tokens`` too; ``cache_write_1h_tokens`` is the
    part of them written with a one-hour lifetime (Anthropic bills those higher).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    cost_usd: float | None = None
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        cost: float | None
        if self.cost_usd is None and other.cost_usd is None:
            cost = None
        else:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.estimated or other.estimated,
            cost,
            self.cache_write_tokens + other.cache_write_tokens,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
        )


@dataclass(frozen=True, slots=True)
class Request:
    """A provider-neutral request: what a provider encodes into wire bytes."""

    messages: tuple[Message, ...]
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    stream: bool = False
    # Extra wire parameters passed through as-is (top_p, stop, seed, ...).
    extra: Mapping[str, Any] = field(default_factory=dict)
    # JSON schema the answer must follow (structured outputs); each provider maps it to
    # its own mechanism (OpenAI response_format, Anthropic forced tool, Gemini schema).
    response_schema: Mapping[str, Any] | None = None
    schema_name: str | None = None
    # The key chosen for this attempt (by a key pool); never shown in a repr.
    api_key: str | None = field(default=None, repr=False)
    # Tools the model may call: {"name", "description", "parameters" (JSON schema)}, and
    # tool_choice "auto" / "required" / "none" / a tool's name (None: the server's default).
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: str | None = None


@dataclass(slots=True)
class Chunk:
    """One piece of a streamed answer."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    # Tool calls completed in this chunk (arguments assembled from the deltas).
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(slots=True)
class Completion:
    """The answer of one call. ``str(completion)`` is its text.

    ``cost_usd`` is NaN (and ``cost_source == "unknown"``) when no price is known;
    it is never a silent 0.
    """

    content: str
    model: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None
    profile: str | None = None
    provider: str | None = None
    call_id: str = ""
    attempts: int = 1
    cost_usd: float = math.nan
    cost_source: str = "unknown"
    reasoning: str = ""
    cached: bool = False
    raw: Any = field(default=None, repr=False, compare=False)
    # The validated object when the call asked for ``response_model=``.
    parsed: Any = None
    # The HTTP response headers (rate-limit state), when the provider speaks HTTP.
    headers: Mapping[str, str] | None = field(default=None, repr=False, compare=False)
    # The tool calls the model asked for (with results once llmnb ran them).
    tool_calls: list[ToolCall] = field(default_factory=list)

    def __str__(self) -> str:
        return self.content


@dataclass(slots=True)
class Embeddings:
    """What ``client.embed(texts)`` returns: one row of ``vectors`` per text, in order.

    ``vectors`` is a 2-D ``numpy.float32`` array (``len(texts)`` × dimensions);
    ``usage.prompt_tokens`` sums the requests' tokens (``usage.estimated`` when a
    provider reported none); ``cost_usd`` is their cost, ``cost_source`` where it came
    from (``price_table``, ``estimate``, ``cache``, ``unknown``, ``mixed`` over batches
    that differ, ``not_sent`` for no texts); ``requests`` counts the batches sent or
    answered, ``cached`` those the response cache answered.
    """

    vectors: Any  # numpy.ndarray; typed loosely so that importing llmnb loads no numpy
    model: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = math.nan
    cost_source: str = "unknown"
    profile: str | None = None
    provider: str | None = None
    requests: int = 0
    cached: int = 0

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def __iter__(self) -> Any:
        return iter(self.vectors)

    def __getitem__(self, index: Any) -> Any:
        return self.vectors[index]

    def __repr__(self) -> str:
        shape = "×".join(str(n) for n in self.vectors.shape)
        return (
            f"Embeddings({shape} float32, model={self.model!r}, "
            f"tokens={self.usage.prompt_tokens}, cost_usd={self.cost_usd:.6g})"
        )


def _invalid(message: str) -> Exception:
    # Imported when a message is refused, so that `import llmnb` loads only this module.
    from llmnb.errors import InvalidRequestError

    return InvalidRequestError(message)


_SECRETS = ("Secret", "known_secrets", "scrub_secrets")


def __getattr__(name: str) -> Any:
    # Secret lives in llmnb._secrets (below the error tree); re-exported here on first use.
    if name in _SECRETS:
        from llmnb import _secrets

        return getattr(_secrets, name)
    raise AttributeError(f"module 'llmnb.types' has no attribute {name!r}")
