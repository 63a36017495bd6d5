"""Text in and out of a CLI agent: one prompt from messages, JSON output, error excerpts."""

from __future__ import annotations

import json
import re
from typing import Any

from llmnb.types import Message, Role

__all__ = ["ANSI", "excerpt", "json_lines", "json_object", "render_prompt"]

EXCERPT_CHARS = 500
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # terminal colour and cursor codes


def render_prompt(messages: tuple[Message, ...]) -> tuple[str | None, str]:
    """``(system, prompt)``: system messages joined, the rest as one prompt.

    One user message is sent as it is; a conversation becomes a labelled transcript,
    since these CLIs take a single prompt per run.
    """
    system = "\n\n".join(m.content for m in messages if m.role is Role.SYSTEM) or None
    turns = [m for m in messages if m.role is not Role.SYSTEM]
    if len(turns) == 1 and turns[0].role is Role.USER:
        return system, turns[0].content
    labels = {Role.USER: "User", Role.ASSISTANT: "Assistant", Role.TOOL: "Tool"}
    lines = [f"{labels[m.role]}: {m.content}" for m in turns]
    head = "Continue this conversation as the assistant; reply to the last user message.\n\n"
    return system, head + "\n\n".join(lines)


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among ``text``'s lines (other lines are skipped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out


def json_object(text: str) -> dict[str, Any]:
    """The one JSON object a ``--output-format json`` run prints (noise lines skipped)."""
    try:
        value = json.loads(text)
    except ValueError:
        start = text.find("\n{")
        value = json.loads(text[start + 1 :] if start >= 0 else text[text.find("{") :])
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def excerpt(text: str) -> str:
    """``text`` without terminal codes, cut to its last 500 characters (where errors are)."""
    text = ANSI.sub("", text).strip()
    return text if len(text) <= EXCERPT_CHARS else "…" + text[-EXCERPT_CHARS:]
