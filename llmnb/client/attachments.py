"""``attachments=``: parts added to the last user message, loaded once per call.

:func:`prepare` runs in the client core only when a call has attachments (the
``attachments=`` argument or non-text parts in its messages): it turns each attachment
into a part, renders Figures and reads files once (so retries and failover send the same
bytes, and a Figure changed after the call does not change it), and counts them for the
usage row.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llmnb.errors import InvalidRequestError
from llmnb.parts import Audio, Document, Image, Part, Text, load, sniff, to_parts
from llmnb.types import Message, Role

__all__ = ["as_part", "prepare"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
_AUDIO_SUFFIXES = {".wav", ".mp3"}


def as_part(item: Any) -> Part:
    """One ``attachments=`` item as a part: a part, a path, a URL, bytes, a PIL image, a
    matplotlib Figure/Axes or an OpenAI/Anthropic-style dict."""
    if isinstance(item, (Text, Image, Document, Audio)):
        return item
    if isinstance(item, Mapping):
        try:
            (part,) = to_parts([item])
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"attachments: {exc}") from None
        return part
    if isinstance(item, (bytes, bytearray, memoryview)):
        media = sniff(bytes(item[:16])) or ""
        if media.startswith("image/"):
            return Image(bytes(item))
        if media.startswith("audio/"):
            return Audio(bytes(item))
        return Document(bytes(item))
    if isinstance(item, (str, os.PathLike)):
        s = os.fspath(item)
        s = s.decode() if isinstance(s, bytes) else s
        if s.startswith("data:"):
            kind = s[5:].split("/", 1)[0]
            return Image(s) if kind == "image" else Audio(s) if kind == "audio" else Document(s)
        suffix = Path(s.split("?", 1)[0]).suffix.lower()
        if suffix in _IMAGE_SUFFIXES:
            return Image(s)
        if suffix in _AUDIO_SUFFIXES:
            return Audio(s)
        if s.startswith(("http://", "https://")) and suffix != ".pdf" and not suffix:
            return Image(s)
        return Document(s)
    module = type(item).__module__ or ""
    if module.startswith(("matplotlib", "PIL.")):
        return Image(item)
    raise InvalidRequestError(
        f"attachments: cannot attach a {type(item).__name__}; pass paths, URLs, bytes, PIL "
        "images, matplotlib Figures/Axes or llmnb.Image/Document/Audio."
    )


def _loaded(part: Part) -> Part:
    """The part with its bytes read (Figure rendered, file read, downscaled)."""
    if isinstance(part, Text):
        return part
    blob = load(part)
    source: Any = blob.url if blob.data is None else blob.data
    if isinstance(part, Image):
        return Image(source, media_type=blob.media_type, detail=part.detail)
    if isinstance(part, Document):
        return Document(source, media_type=blob.media_type, name=blob.name)
    return Audio(source, media_type=blob.media_type)


def _rebuilt(m: Message, parts: Sequence[Part]) -> Message:
    return Message(
        m.role, list(parts), m.name, tool_calls=m.tool_calls, tool_call_id=m.tool_call_id
    )


def prepare(messages: tuple[Message, ...], attachments: Any) -> tuple[tuple[Message, ...], int]:
    """``messages`` with ``attachments`` added to the last user message and every part
    loaded, and the number of attachments."""
    out = list(messages)
    if attachments is not None:
        items = list(attachments) if isinstance(attachments, (list, tuple)) else [attachments]
        added = [as_part(a) for a in items]
        last = next((i for i in range(len(out) - 1, -1, -1) if out[i].role is Role.USER), None)
        if last is None:
            raise InvalidRequestError(
                "attachments= needs a user message to attach to; add one (a str prompt is one)."
            )
        m = out[last]
        base = list(m.parts) if m.parts else ([Text(m.content)] if m.content else [])
        out[last] = _rebuilt(m, [*base, *added])
    n = 0
    for i, m in enumerate(out):
        if m.has_attachments:
            parts = [_loaded(p) for p in m.parts]
            n += sum(1 for p in parts if not isinstance(p, Text))
            out[i] = _rebuilt(m, parts)
    return tuple(out), n
