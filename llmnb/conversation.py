"""Conversation memory: the messages of one chat, trimmed to a history limit, saved as JSON.

Example::

    from llmnb.conversation import SessionManager

    chat = SessionManager(system="Answer in one sentence.", max_turns=10)
    chat.add_user("What is SSE?")
    answer = client.generate(chat.get_messages())
    chat.add_assistant(answer)
    chat.save("chat.json")                    # messages and limits only: no keys, no settings
    again = SessionManager.load("chat.json")

A *turn* is one user message and the assistant messages that answer it. The limits
apply to what :meth:`SessionManager.get_messages` returns (the window sent to a model);
the full history is kept until :meth:`~SessionManager.clear`. System messages are always
sent, and the newest turn is always sent even when it alone exceeds ``max_tokens``.
Tokens are estimated (about four characters a token, plus a few per message), which is
close enough to keep a conversation under a context window without a tokenizer.

``%%llm --chat NAME`` keeps one ``SessionManager`` per ``NAME``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["SessionManager", "estimate_message_tokens"]

_ROLES = ("system", "user", "assistant", "tool")
_FORMAT = 1  # version of the JSON written by save()
# Chat formats wrap every message in a few tokens of markup (role, separators).
_PER_MESSAGE_TOKENS = 4


def estimate_message_tokens(message: Mapping[str, Any]) -> int:
    """Estimated tokens of one ``{"role", "content"}`` message (~4 characters a token)."""
    content = str(message.get("content") or "")
    return math.ceil(len(content) / 4) + _PER_MESSAGE_TOKENS


class SessionManager:
    """The messages of one conversation, with a history limit for what is sent.

    ``max_turns`` keeps the newest N turns, ``max_tokens`` drops the oldest turns until
    the estimated total fits; ``None`` (or 0) means no limit. Both may be set.
    """

    def __init__(
        self,
        name: str = "default",
        *,
        system: str | None = None,
        max_turns: int | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self.name = name
        self.max_turns = _limit(max_turns, "max_turns")
        self.max_tokens = _limit(max_tokens, "max_tokens")
        self._messages: list[dict[str, str]] = []
        if system:
            self.set_system(system)

    # -- adding ------------------------------------------------------------------------

    def add_message(self, role: str, content: str) -> None:
        """Append a message; ``role`` is system, user, assistant or tool."""
        role = str(getattr(role, "value", role)).lower()
        if role not in _ROLES:
            raise ValueError(f"unknown message role {role!r}; use one of: {', '.join(_ROLES)}")
        if not isinstance(content, str):
            raise TypeError(f"message content must be a str, got {type(content).__name__}")
        self._messages.append({"role": role, "content": content})

    def add_user(self, content: str) -> None:
        """Append a user message (it starts a new turn)."""
        self.add_message("user", content)

    def add_assistant(self, content: str) -> None:
        """Append the assistant's answer."""
        self.add_message("assistant", content)

    def set_system(self, content: str | None) -> None:
        """Replace the system messages by ``content`` (``None`` removes them)."""
        rest = [m for m in self._messages if m["role"] != "system"]
        self._messages = ([{"role": "system", "content": content}] if content else []) + rest

    def pop(self) -> dict[str, str]:
        """Remove and return the newest message (e.g. a question whose call failed)."""
        if not self._messages:
            raise IndexError(f"conversation {self.name!r} has no messages")
        return self._messages.pop()

    def clear(self) -> None:
        """Forget every message, system messages included."""
        self._messages = []

    # -- reading -----------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, str]]:
        """The full history (copies), oldest first, limits not applied."""
        return [dict(m) for m in self._messages]

    @property
    def turns(self) -> int:
        """How many user messages the history holds."""
        return sum(1 for m in self._messages if m["role"] == "user")

    def get_messages(
        self, max_turns: int | None = None, max_tokens: int | None = None
    ) -> list[dict[str, str]]:
        """The messages to send: system messages plus the newest turns within the limits.

        ``max_turns`` / ``max_tokens`` override this conversation's limits for one call.
        """
        turn_limit = self.max_turns if max_turns is None else _limit(max_turns, "max_turns")
        token_limit = self.max_tokens if max_tokens is None else _limit(max_tokens, "max_tokens")
        system = [m for m in self._messages if m["role"] == "system"]
        turns = _split_turns([m for m in self._messages if m["role"] != "system"])
        if turn_limit:
            turns = turns[-turn_limit:]
        if token_limit:
            budget = token_limit - sum(estimate_message_tokens(m) for m in system)
            kept: list[list[dict[str, str]]] = []
            for turn in reversed(turns):
                cost = sum(estimate_message_tokens(m) for m in turn)
                if kept and cost > budget:
                    break  # the newest turn is always kept, the older ones only if they fit
                kept.append(turn)
                budget -= cost
            turns = kept[::-1]
        return [dict(m) for m in system] + [dict(m) for turn in turns for m in turn]

    def estimated_tokens(self) -> int:
        """Estimated tokens of :meth:`get_messages`."""
        return sum(estimate_message_tokens(m) for m in self.get_messages())

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[dict[str, str]]:
        return iter(self.messages)

    def __repr__(self) -> str:
        return (
            f"<SessionManager {self.name!r}: {len(self)} messages, {self.turns} turns, "
            f"max_turns={self.max_turns}, max_tokens={self.max_tokens}>"
        )

    # -- JSON --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: name, limits and messages — nothing from the settings."""
        return {
            "llmnb_conversation": _FORMAT,
            "name": self.name,
            "max_turns": self.max_turns,
            "max_tokens": self.max_tokens,
            "messages": self.messages,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionManager:
        """Rebuild a conversation from :meth:`to_dict` output."""
        if not isinstance(data, Mapping) or not isinstance(data.get("messages"), list):
            raise ValueError(
                "not a saved conversation: expected a JSON object with a 'messages' list "
                "(as written by SessionManager.save)"
            )
        chat = cls(
            str(data.get("name") or "default"),
            max_turns=data.get("max_turns"),
            max_tokens=data.get("max_tokens"),
        )
        for i, m in enumerate(data["messages"]):
            if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
                raise ValueError(f"saved conversation: message {i} needs 'role' and 'content'")
            chat.add_message(str(m["role"]), str(m["content"]))
        return chat

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the conversation as JSON (UTF-8) and return the path."""
        target = Path(path)
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=2)
        target.write_text(text + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SessionManager:
        """Read a conversation written by :meth:`save`."""
        source = Path(path)
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: not valid JSON ({exc})") from None
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None


def _limit(value: Any, name: str) -> int | None:
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a positive int or None (no limit), got {value!r}")
    return value


def _split_turns(messages: list[dict[str, str]]) -> list[list[dict[str, str]]]:
    """Group messages into turns; a turn starts at each user message."""
    turns: list[list[dict[str, str]]] = []
    for m in messages:
        if m["role"] == "user" or not turns:
            turns.append([m])
        else:
            turns[-1].append(m)
    return turns
