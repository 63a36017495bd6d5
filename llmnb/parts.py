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

import base64
import hashlib
import io
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from llmnb.errors import InvalidRequestError

__all__ = [
    "Audio",
    "Blob",
    "Document",
    "Image",
    "Part",
    "Text",
    "ToolCall",
    "describe",
    "load",
    "part_hashes",
    "sniff",
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
        spec: Any = item.get("image_url")
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
            src_media = source.get("media_type")
            src_media = src_media if isinstance(src_media, str) else None
            if source.get("type") == "base64" and isinstance(source.get("data"), str):
                return cls(f"data:{src_media or ''};base64,{source['data']}", media_type=src_media)
            if source.get("type") == "url" and isinstance(source.get("url"), str):
                return cls(source["url"])
            if source.get("type") == "text" and isinstance(source.get("data"), str):
                return Document(source["data"].encode(), media_type=src_media or "text/plain")
    else:
        raise ValueError(
            f"part {i} has an unsupported type {kind!r}; use text, image_url, input_audio, "
            "file (OpenAI) or image, document (Anthropic)"
        )
    raise ValueError(f"part {i} ({kind!r}) is missing its data or has the wrong shape")


def text_of(parts: Iterable[Part]) -> str:
    """The text parts joined by blank lines (what text-only layers see as ``content``)."""
    return "\n\n".join(p.text for p in parts if isinstance(p, Text))


# --- loading: a part's bytes, media type and size -----------------------------------

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_TEXT_SUFFIXES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".html": "text/html",
    ".json": "application/json",
    ".py": "text/x-python",
}


@dataclass(frozen=True, slots=True)
class Blob:
    """A loaded part: ``data`` (bytes) or ``url``; ``kind`` is image, document or audio."""

    kind: str
    media_type: str
    data: bytes | None = None
    url: str | None = None
    name: str | None = None
    width: int | None = None
    height: int | None = None
    detail: str | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else 0

    @property
    def sha256(self) -> str:
        raw = self.data if self.data is not None else (self.url or "").encode()
        return hashlib.sha256(raw).hexdigest()

    def b64(self) -> str:
        return base64.b64encode(self.data or b"").decode("ascii")

    def data_url(self) -> str:
        return self.url or f"data:{self.media_type};base64,{self.b64()}"

    @property
    def format(self) -> str:
        """The short format name: png, jpeg, pdf, wav, mp3…"""
        return self.media_type.rsplit("/", 1)[-1].replace("mpeg", "mp3").replace("x-wav", "wav")


def sniff(data: bytes) -> str | None:
    """The media type from the first bytes, or None when not recognised."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"ID3") or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    return None


def image_size(data: bytes, media_type: str) -> tuple[int | None, int | None]:
    """Pixel width and height read from the header (no PIL needed)."""
    try:
        if media_type == "image/png":
            w, h = struct.unpack(">II", data[16:24])
            return int(w), int(h)
        if media_type == "image/gif":
            w, h = struct.unpack("<HH", data[6:10])
            return int(w), int(h)
        if media_type == "image/jpeg":
            return _jpeg_size(data)
        if media_type == "image/webp":
            return _webp_size(data)
    except struct.error:
        pass
    return None, None


def _jpeg_size(data: bytes) -> tuple[int | None, int | None]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        i += 2 + length
    return None, None


def _webp_size(data: bytes) -> tuple[int | None, int | None]:
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return int(w) & 0x3FFF, int(h) & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None, None


def _label(part: Part) -> str:
    src = part.source if not isinstance(part, Text) else part.text
    if isinstance(src, (str, os.PathLike)):
        shown = os.fspath(src)
        if shown.startswith("data:"):  # its type only: the data is the attachment
            shown = shown.split(",", 1)[0] + ",…"
        return f"{type(part).__name__.lower()} {shown!r}"
    if isinstance(src, (bytes, bytearray, memoryview)):
        return f"{type(part).__name__.lower()} ({len(src)} bytes)"
    return f"{type(part).__name__.lower()} ({type(src).__name__})"


def _is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


def _from_data_url(label: str, url: str) -> tuple[bytes, str | None]:
    head, sep, payload = url.partition(",")
    if not sep or ";base64" not in head:
        raise InvalidRequestError(
            f"{label}: a data URL must be data:<type>;base64,<data>; got {head[:40]!r}."
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except ValueError:
        raise InvalidRequestError(f"{label}: the data URL's base64 does not decode.") from None
    media = head[5:].split(";", 1)[0] or None
    return data, media


def _read(label: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidRequestError(
            f"{label}: no such file ({path.resolve()}); check the path, or pass the bytes."
        ) from None
    except IsADirectoryError:
        raise InvalidRequestError(f"{label}: {path} is a directory; name a file.") from None
    except OSError as exc:
        raise InvalidRequestError(
            f"{label}: cannot read {path} ({exc.strerror or exc}); check its permissions."
        ) from None


def _render(label: str, obj: Any) -> bytes | None:
    """PNG bytes of a matplotlib Figure/Axes or a PIL image; None for anything else."""
    module = type(obj).__module__ or ""
    if module.startswith("matplotlib"):
        fig = obj if hasattr(obj, "savefig") else getattr(obj, "figure", None)
        if fig is None or not hasattr(fig, "savefig"):
            raise InvalidRequestError(
                f"{label}: a matplotlib {type(obj).__name__} is not a Figure or Axes; pass "
                "the Figure (plt.gcf()) or an Axes."
            )
        buf = io.BytesIO()
        try:
            fig.savefig(buf, format="png", bbox_inches="tight")
        except Exception as exc:
            raise InvalidRequestError(
                f"{label}: the Figure could not be rendered to PNG ({type(exc).__name__}: "
                f"{exc}); fix the plot or save it to a file and attach that."
            ) from None
        return buf.getvalue()
    if module.startswith("PIL.") and hasattr(obj, "save"):
        buf = io.BytesIO()
        try:
            obj.save(buf, format="PNG")
        except Exception as exc:
            raise InvalidRequestError(
                f"{label}: the PIL image could not be saved as PNG ({exc}); convert it first, "
                "e.g. img.convert('RGB')."
            ) from None
        return buf.getvalue()
    return None


def _downscale(label: str, data: bytes, media: str, max_side: int) -> bytes:
    try:
        from PIL import Image as PILImage
    except ImportError:
        raise InvalidRequestError(
            f"{label}: max_side= needs Pillow to resize; pip install pillow, or drop max_side."
        ) from None
    img = PILImage.open(io.BytesIO(data))
    if max(img.size) <= max_side:
        return data
    img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format=media.rsplit("/", 1)[-1].upper())
    return buf.getvalue()


def load(part: Part) -> Blob:
    """The part's bytes (or URL) and media type, checked."""
    label = _label(part)
    if isinstance(part, Text):
        raise InvalidRequestError(f"{label}: text is not an attachment")
    kind = type(part).__name__.lower()
    src = part.source
    name = getattr(part, "name", None)
    url: str | None = None
    data: bytes | None = None
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        s = os.fspath(src)
        if isinstance(s, bytes):
            s = s.decode()
        if s.startswith("data:"):
            data, media = _from_data_url(label, s)
            if part.media_type is None and media:
                part = type(part)(**{**_fields(part), "media_type": media})
        elif _is_url(s):
            url = s
        else:
            path = Path(s).expanduser()
            data = _read(label, path)
            name = name or path.name
    else:
        data = _render(label, src) if kind == "image" else None
        if data is None:
            raise InvalidRequestError(
                f"{label}: cannot attach a {type(src).__name__}; pass bytes, a path, a URL"
                + (", a PIL image or a matplotlib Figure/Axes." if kind == "image" else ".")
            )
    if url is not None:
        media = part.media_type or _guess_from_name(kind, url)
        return Blob(
            kind,
            media,
            url=url,
            name=name or url.rsplit("/", 1)[-1] or None,
            detail=getattr(part, "detail", None),
        )
    assert data is not None
    return _checked(label, kind, part, data, name)


def _fields(part: Part) -> dict[str, Any]:
    return {f: getattr(part, f) for f in part.__dataclass_fields__}  # type: ignore[union-attr]


def _guess_from_name(kind: str, url: str) -> str:
    suffix = Path(url.split("?", 1)[0]).suffix.lower()
    known = {
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".gif": "image/gif",
        ".webp": "image/webp",
        ".pdf": "application/pdf",
        ".wav": "audio/wav",
        ".mp3": "audio/mpeg",
        **_TEXT_SUFFIXES,
    }
    default = {"image": "image/png", "document": "application/pdf", "audio": "audio/wav"}
    return known.get(suffix, default[kind])


def _checked(label: str, kind: str, part: Part, data: bytes, name: str | None) -> Blob:
    sniffed = sniff(data)
    if kind == "image":
        if sniffed not in IMAGE_TYPES:
            raise InvalidRequestError(
                f"{label}: not a PNG, JPEG, GIF or WebP image (the data starts "
                f"{data[:8]!r}); convert it to PNG first."
            )
        max_side = getattr(part, "max_side", None)
        if max_side is not None:
            data = _downscale(label, data, sniffed, int(max_side))
        w, h = image_size(data, sniffed)
        return Blob(
            kind,
            sniffed,
            data=data,
            name=name,
            width=w,
            height=h,
            detail=getattr(part, "detail", None),
        )
    if kind == "audio":
        if sniffed not in ("audio/wav", "audio/mpeg"):
            raise InvalidRequestError(
                f"{label}: not WAV or MP3 audio; convert it (e.g. with ffmpeg) first."
            )
        return Blob(kind, sniffed, data=data, name=name)
    if sniffed == "application/pdf":
        return Blob(kind, sniffed, data=data, name=name or "document.pdf")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError(
            f"{label}: a document must be a PDF or UTF-8 text; this is neither."
        ) from None
    given = getattr(part, "media_type", None)
    media = given or _TEXT_SUFFIXES.get(Path(name or "").suffix.lower(), "text/plain")
    return Blob(kind, media, data=data, name=name or "document.txt")


def describe(blob: Blob) -> str:
    """What logs, rows and traces may say about an attachment: type, size, hash."""
    dims = f" {blob.width}x{blob.height}" if blob.width and blob.height else ""
    where = f"{blob.size} bytes" if blob.data is not None else "url"
    return f"{blob.kind} {blob.media_type}{dims} {where} sha256:{blob.sha256[:12]}"


def part_hashes(parts: Iterable[Part]) -> list[list[str]]:
    """``[kind, media type, sha256]`` of each attachment: what a cache key or a cassette
    fingerprint keeps of it (never the bytes)."""
    out = []
    for p in parts:
        if not isinstance(p, Text):
            b = load(p)
            out.append([b.kind, b.media_type, b.sha256])
    return out
