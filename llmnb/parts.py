"""Message parts beyond plain text: :class:`Text`, :class:`Image`, :class:`Document`,
:class:`Audio`, and the :class:`ToolCall` a model asks for.

A :class:`~llmnb.types.Message` built from a list of parts keeps them on ``.parts`` (in
order) and their text joined on ``.content``, so every layer that only reads text (token
estimates, logs, CLI agents) keeps working; a provider that speaks parts encodes
``.parts``. The plain-string path never touches this module.

Example::

    llmnb.Message("user", [llmnb.Text("Compare"), llmnb.Image("a.png"), llmnb.Image(url)])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

__all__ = [
    "Audio",
    "Document",
    "Image",
    "Part",
    "Text",
    "ToolCall",
    "text_of",
    "to_parts",
]


@dataclass(frozen=True, slots=True)
class Text:
    """A piece of text in a message made of parts."""

    text: str


@dataclass(frozen=True, slots=True)
class Image:
    """An image: bytes, a path, a URL, a PIL image or a matplotlib Figure/Axes.

    ``media_type`` is found from the data when not given; ``max_side`` downscales (only
    when asked); ``detail`` is OpenAI's ``low`` / ``high`` / ``auto``.
    """

    source: Any
    media_type: str | None = None
    max_side: int | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Document:
    """A document (PDF or a text file): bytes, a path or a URL."""

    source: Any
    media_type: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Audio:
    """Audio (wav, mp3) for providers that take it: bytes or a path."""

    source: Any
    media_type: str | None = None


@dataclass(slots=True)
class ToolCall:
    """A function call the model asked for. ``result`` / ``error`` are set once llmnb ran
    it (``error`` is the text sent back to the model when the tool raised)."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""
    result: Any = None
    error: str | None = None


Part = Union[Text, Image, Document, Audio]
_PART_TYPES = (Text, Image, Document, Audio)


def to_parts(content: Iterable[Any]) -> tuple[Part, ...]:
    """``content`` (a list of parts, strings or provider-style dicts) as parts.

    Raises TypeError / ValueError naming the item; the caller turns them into an
    :class:`~llmnb.errors.InvalidRequestError` naming the message.
    """
    out: list[Part] = []
    for i, item in enumerate(content):
        if isinstance(item, _PART_TYPES):
            out.append(item)
        elif isinstance(item, str):
            out.append(Text(item))
        elif isinstance(item, Mapping):
            out.append(_from_dict(i, item))
        else:
            raise TypeError(
                f"part {i} is a {type(item).__name__}; use a str, llmnb.Text, llmnb.Image, "
                "llmnb.Document, llmnb.Audio or an OpenAI/Anthropic-style content dict"
            )
    return tuple(out)


def _from_dict(i: int, item: Mapping[str, Any]) -> Part:
    kind = item.get("type")
    if kind == "text" and isinstance(item.get("text"), str):
        return Text(item["text"])
    if kind == "image_url":  # OpenAI: {"image_url": {"url": ..., "detail": ...}} or a str
        spec = item.get("image_url")
        if isinstance(spec, str):
            return Image(spec)
        if isinstance(spec, Mapping) and isinstance(spec.get("url"), str):
            return Image(spec["url"], detail=spec.get("detail"))
    elif kind == "input_audio":  # OpenAI: {"input_audio": {"data": b64, "format": "wav"}}
        spec = item.get("input_audio")
        if isinstance(spec, Mapping) and isinstance(spec.get("data"), str):
            fmt = str(spec.get("format") or "wav")
            media = "audio/mpeg" if fmt == "mp3" else f"audio/{fmt}"
            return Audio(f"data:{media};base64,{spec['data']}", media_type=media)
    elif kind == "file":  # OpenAI: {"file": {"file_data": data URL, "filename": ...}}
        spec = item.get("file")
        if isinstance(spec, Mapping) and isinstance(spec.get("file_data"), str):
            return Document(spec["file_data"], name=spec.get("filename"))
        if isinstance(spec, Mapping) and "file_id" in spec:
            raise ValueError(
                f"part {i}: uploaded file ids cannot be sent everywhere; pass the file's "
                "bytes or path as llmnb.Document instead"
            )
    elif kind in ("image", "document"):  # Anthropic: {"source": {"type": "base64"|"url"}}
        source = item.get("source")
        cls = Image if kind == "image" else Document
        if isinstance(source, Mapping):
            media = source.get("media_type")
            if source.get("type") == "base64" and isinstance(source.get("data"), str):
                return cls(f"data:{media or ''};base64,{source['data']}", media_type=media)
            if source.get("type") == "url" and isinstance(source.get("url"), str):
                return cls(source["url"])
            if source.get("type") == "text" and isinstance(source.get("data"), str):
                return Document(source["data"].encode(), media_type=media or "text/plain")
    else:
        raise ValueError(
            f"part {i} has an unsupported type {kind!r}; use text, image_url, input_audio, "
            "file (OpenAI) or image, document (Anthropic)"
        )
    raise ValueError(f"part {i} ({kind!r}) is missing its data or has the wrong shape")


def text_of(parts: Iterable[Part]) -> str:
    """The text parts joined by blank lines (what text-only layers see as ``content``)."""
    return "\n\n".join(p.text for p in parts if isinstance(p, Text))
