"""Value types shared by every layer: messages, requests, completions, usage, chunks,
and :class:`Secret` (a key, shown masked, registered for scrubbing)."""

from __future__ import annotations

import enum
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

__all__ = [
    "Chunk",
    "Completion",
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

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. ``Message("user", "hi")`` or ``Message(Role.USER, "hi")``."""

    role: Role
    content: str
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.role, Role):
            try:
                object.__setattr__(self, "role", Role(str(self.role).lower()))
            except ValueError:
                roles = ", ".join(r.value for r in Role)
                raise ValueError(
                    f"unknown message role {self.role!r}; use one of: {roles}"
                ) from None
        if not isinstance(self.content, str):
            raise TypeError(f"message content must be a str, got {type(self.content).__name__}")

    def to_dict(self) -> dict[str, str]:
        d = {"role": self.role.value, "content": self.content}
        if self.name:
            d["name"] = self.name
        return d


MessagesLike = Union[str, Message, Sequence[Union[Message, Mapping[str, Any]]]]


def normalize_messages(messages: MessagesLike) -> tuple[Message, ...]:
    """Turn a ``str``, a list of dicts or a list of :class:`Message` into messages."""
    if isinstance(messages, str):
        return (Message(Role.USER, messages),)
    if isinstance(messages, Message):
        return (messages,)
    out: list[Message] = []
    for i, m in enumerate(messages):
        if isinstance(m, Message):
            out.append(m)
        elif isinstance(m, Mapping):
            if "role" not in m or "content" not in m:
                raise ValueError(
                    f"message {i} needs 'role' and 'content' keys, got keys {sorted(m)}"
                )
            content = m["content"]
            if content is None:
                content = ""
            out.append(Message(m["role"], content, m.get("name")))
        else:
            raise TypeError(f"message {i} must be a dict or llmnb.Message, got {type(m).__name__}")
    if not out:
        raise ValueError("messages are empty: pass a prompt string or at least one message")
    return tuple(out)


@dataclass(slots=True)
class Usage:
    """Token counts of one call.

    ``cached_tokens`` and ``reasoning_tokens`` are parts of the prompt and completion
    counts (as the OpenAI wire format reports them), not additions. ``estimated`` is
    true when the counts were guessed from text length instead of reported.
    ``cost_usd`` is set only when the provider itself reported a cost.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    cost_usd: float | None = None

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


@dataclass(slots=True)
class Chunk:
    """One piece of a streamed answer."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None


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

    def __str__(self) -> str:
        return self.content


# --------------------------------------------------------------------------- secrets

# Shorter values would garble ordinary text when scrubbed ("[redacted]" for every "abc").
_SCRUB_MIN = 6
_registry_lock = threading.Lock()
_registered: set[str] = set()
# Every registered value and its escaped spellings, longest first: read without the lock.
_needles: tuple[str, ...] = ()


def _spellings(value: str) -> set[str]:
    """``value`` as it may appear in text: as is, and escaped the ways Python reprs,
    bytes reprs, JSON and URLs write it (an exception quoting ``b'Bearer sk-\\n…'``)."""
    import json
    import urllib.parse

    out = {
        value,
        repr(value)[1:-1],
        repr(value.encode("utf-8", "surrogatepass"))[2:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        urllib.parse.quote(value, safe=""),
    }
    return {s for s in out if len(s) >= _SCRUB_MIN}


def _register(value: str) -> None:
    global _needles
    if len(value) < _SCRUB_MIN or value in _registered:
        return
    with _registry_lock:
        if value in _registered:
            return
        _registered.add(value)
        found = set(_needles) | _spellings(value)
        _needles = tuple(sorted(found, key=len, reverse=True))


def known_secrets() -> tuple[str, ...]:
    """Every secret value llmnb has seen (and its escaped spellings), longest first."""
    return _needles


def scrub_secrets(text: str, extra: Iterable[str | Secret] = ()) -> str:
    """``text`` with every known secret (and each of ``extra``) replaced by ``[redacted]``."""
    needles = _needles
    more = [s.reveal() if isinstance(s, Secret) else s for s in extra]
    more = [s for s in more if s and len(s) >= _SCRUB_MIN and s not in _registered]
    if more:
        needles = tuple(sorted({*needles, *more}, key=len, reverse=True))
    for needle in needles:
        if needle in text:
            text = text.replace(needle, "[redacted]")
    return text


class Secret:
    """A key or other secret value. Its ``repr`` and ``str`` show ``Secret('sk-…a1b2')``;
    only :meth:`reveal` gives the value, at the moment it goes on the wire.

    Making one registers the value, so :func:`scrub_secrets` (used for every error
    message, usage row and log line) removes it wherever a server or library quotes it.
    Locals and objects that hold keys hold them as ``Secret``, so a verbose traceback,
    ``vars()`` or a debugger shows only the masked form. Equal and hashed by value.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        self._value: str = value._value if isinstance(value, Secret) else str(value)
        _register(self._value)

    def reveal(self) -> str:
        """The secret itself: for the request that sends it, nothing else."""
        return self._value

    def masked(self) -> str:
        """``sk-…a1b2`` for a 16+ character value (more than half stays hidden), else ``…``."""
        v = self._value
        return f"{v[:3]}…{v[-4:]}" if len(v) >= 16 and v.isascii() and v.isprintable() else "…"

    def problem(self) -> str | None:
        """Why this cannot be sent in an HTTP header (a control or non-ASCII character
        — a stray newline from ``.env``, a zero-width space from a web page), or None.
        Says which character and where, never the value."""
        if self._value.isascii() and self._value.isprintable():
            return None  # the common case, checked in C on every call
        for i, ch in enumerate(self._value):
            if not (" " <= ch <= "~"):
                kind = "a non-ASCII" if ord(ch) > 0x7F else "a control"
                return f"{kind} character (U+{ord(ch):04X}) at position {i + 1}"
        return None

    def __repr__(self) -> str:
        return f"Secret({self.masked()!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        # A pickle (a cache file, a worker process) would carry the value in clear.
        raise TypeError("a Secret is not pickled; pass the profile name and read the key there")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: Any) -> Secret:
        return self
