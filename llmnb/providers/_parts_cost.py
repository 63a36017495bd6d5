"""Estimated input tokens of attachments, by each provider's documented formula.

Used before sending (dry run, budget and rate-limit estimates) and by the mock; the
provider-reported counts still price the call. All figures are estimates.

- OpenAI (and its compatibles): fit in 2048x2048, shortest side to 768, then
  85 + 170 per 512 px tile (``detail="low"``: 85).
- Anthropic: long edge down to 1568, then width x height / 750.
- Gemini: 258 for an image up to 384x384, else 258 per 768 px tile.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from llmnb.parts import Blob, Text, load
from llmnb.types import Message

__all__ = ["attachment_tokens", "blob_tokens", "image_tokens"]

_UNKNOWN_SIDE = 1024  # a URL image whose size is not known here
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?!s)")


def image_tokens(provider_type: str, width: int, height: int, detail: str | None = None) -> int:
    """Estimated tokens of a ``width`` x ``height`` image sent to ``provider_type``."""
    w, h = float(max(1, width)), float(max(1, height))
    if provider_type == "anthropic":
        scale = min(1.0, 1568 / max(w, h))
        return math.ceil((w * scale) * (h * scale) / 750)
    if provider_type == "gemini":
        if w <= 384 and h <= 384:
            return 258
        return math.ceil(w / 768) * math.ceil(h / 768) * 258
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(w, h))
    w, h = w * scale, h * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def _audio_seconds(b: Blob) -> float:
    data = b.data or b""
    if b.media_type == "audio/wav" and len(data) >= 32:
        byte_rate = int.from_bytes(data[28:32], "little")
        if byte_rate:
            return max(0, len(data) - 44) / byte_rate
    return len(data) / 16000  # mp3 at 128 kbit/s


def blob_tokens(provider_type: str, b: Blob) -> int:
    """Estimated tokens of one loaded attachment."""
    if b.kind == "image":
        return image_tokens(
            provider_type, b.width or _UNKNOWN_SIDE, b.height or _UNKNOWN_SIDE, b.detail
        )
    if b.kind == "audio":
        per_second = 32 if provider_type == "gemini" else 10
        return math.ceil(_audio_seconds(b) * per_second)
    if b.media_type != "application/pdf":
        return math.ceil(b.size / 4)
    pages = max(1, len(_PDF_PAGE.findall(b.data or b""))) if b.data is not None else 1
    # Gemini bills a page as one image; the others send its text and a picture of it.
    return pages * (258 if provider_type == "gemini" else 1500)


def attachment_tokens(provider_type: str, messages: Iterable[Message]) -> int:
    """Estimated tokens of every attachment in ``messages``."""
    total = 0
    for m in messages:
        if m.parts:
            for p in m.parts:
                if not isinstance(p, Text):
                    total += blob_tokens(provider_type, load(p))
    return total


_KIND_NAMES = {"image": "image", "document": "document", "audio": "audio clip"}


def _short(b: Blob) -> str:
    fmt = b.format.upper()
    if b.kind == "image" and b.width and b.height:
        return f"{fmt}, {b.width}×{b.height}"
    if b.data is None:
        return f"{fmt}, by URL"
    return f"{fmt}, {b.size:,} bytes"


def seen(m: Message) -> str:
    """What a message's attachments are, in words: "I see 1 image (PNG, 640×480)."."""
    blobs = [load(p) for p in m.parts if not isinstance(p, Text)]
    groups: dict[str, list[Blob]] = {}
    for b in blobs:
        groups.setdefault(b.kind, []).append(b)
    said = []
    for kind, items in groups.items():
        name = _KIND_NAMES[kind] + ("s" if len(items) != 1 else "")
        said.append(f"{len(items)} {name} ({'; '.join(_short(b) for b in items)})")
    return "I see " + " and ".join(said) + "."
