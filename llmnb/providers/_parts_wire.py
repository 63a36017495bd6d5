"""Message parts in each provider family's wire form, and what each provider takes.

:func:`check` runs before anything is sent (the client core calls it): a part the
provider cannot take, or one over its size limit, is an
:class:`~llmnb.errors.InvalidRequestError` naming the provider, the part and what it
accepts. The encoders (:func:`openai_content`, :func:`anthropic_content`,
:func:`gemini_parts`) are called by the providers' ``body`` only for messages that
carry parts, so the plain-text path is untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from llmnb.errors import InvalidRequestError
from llmnb.parts import Blob, Part, Text, load
from llmnb.types import Message

__all__ = ["accepts", "anthropic_content", "check", "gemini_parts", "openai_content"]

_MB = 1024 * 1024
_ALL = frozenset({"image", "document", "audio"})
# What each provider type takes (kind -> also by URL?). Unknown types take nothing.
_ACCEPTS: dict[str, frozenset[str]] = {
    "openai": _ALL,
    "openai_compatible": _ALL,
    "openrouter": _ALL,
    "mistral": frozenset({"image", "document"}),
    "ollama": frozenset({"image"}),
    "groq": frozenset({"image"}),
    "together": frozenset({"image"}),
    "xai": frozenset({"image"}),
    "vllm": frozenset({"image"}),
    "lmstudio": frozenset({"image"}),
    "anthropic": frozenset({"image", "document"}),
    "gemini": _ALL,
    "mock": _ALL,
}
# Per-attachment and per-request byte limits checked locally (the providers' documented ones).
_PER_IMAGE = {"anthropic": 5 * _MB, "openai": 20 * _MB, "openrouter": 20 * _MB}
_PER_REQUEST = {"anthropic": 32 * _MB, "gemini": 20 * _MB}
# Who cannot fetch a URL itself (the part must be inlined: bytes or a path).
_NO_URL = {
    "ollama": "image",
    "openai": "document audio",
    "openai_compatible": "document audio",
    "openrouter": "audio",
    "gemini": "",
}


def accepts(provider_type: str) -> frozenset[str]:
    """The attachment kinds ``provider_type`` takes."""
    return _ACCEPTS.get(provider_type, frozenset())


def _parts(messages: Iterable[Message]) -> Iterable[Part]:
    for m in messages:
        for p in m.parts:
            if not isinstance(p, Text):
                yield p


def check(provider_type: str, profile: str, messages: Sequence[Message]) -> int:
    """The number of attachments in ``messages``, after checking ``provider_type`` takes
    each (kind, URL or inline, size)."""
    took = accepts(provider_type)
    n = 0
    total = 0
    for part in _parts(messages):
        n += 1
        blob = load(part)
        where = f"profile {profile!r} (type {provider_type})"
        if blob.kind not in took:
            what = ", ".join(sorted(took)) if took else "text only"
            raise InvalidRequestError(
                f"{where} cannot take {blob.kind} attachments ({blob.media_type}); it takes "
                f"{what}. Use a profile whose provider does, or leave the {blob.kind} out."
            )
        if blob.url is not None and blob.kind in _NO_URL.get(provider_type, "").split():
            raise InvalidRequestError(
                f"{where} cannot fetch {_an(blob.kind)} by URL ({blob.url[:80]}); download it "
                "and attach the file or its bytes."
            )
        if provider_type == "mistral" and blob.kind == "document" and blob.url is None:
            raise InvalidRequestError(
                f"{where} takes documents by URL only (document_url); put the file at a "
                "URL Mistral can read, or use a provider that takes inline PDFs."
            )
        limit = _PER_IMAGE.get(provider_type) if blob.kind == "image" else None
        if limit is not None and blob.size > limit:
            raise InvalidRequestError(
                f"{where}: an image of {blob.size / _MB:.1f} MB is over its "
                f"{limit // _MB} MB limit per image; pass Image(..., max_side=1568) to "
                "downscale it, or a smaller file."
            )
        total += blob.size
    cap = _PER_REQUEST.get(provider_type)
    if cap is not None and total > cap:
        raise InvalidRequestError(
            f"profile {profile!r} (type {provider_type}): the attachments total "
            f"{total / _MB:.1f} MB, over its {cap // _MB} MB request limit; send fewer or "
            "smaller ones."
        )
    return n


def _text_doc(blob: Blob) -> str:
    body = (blob.data or b"").decode("utf-8")
    return f'<document name="{blob.name}">\n{body}\n</document>'


def openai_content(m: Message, provider_type: str) -> list[dict[str, Any]]:
    """``m``'s parts as OpenAI chat content parts (Mistral's string ``image_url`` and
    ``document_url`` where that is the form it documents)."""
    out: list[dict[str, Any]] = []
    for p in m.parts:
        if isinstance(p, Text):
            out.append({"type": "text", "text": p.text})
            continue
        b = load(p)
        if b.kind == "image":
            if provider_type == "mistral":
                out.append({"type": "image_url", "image_url": b.data_url()})
                continue
            spec: dict[str, Any] = {"url": b.data_url()}
            if b.detail:
                spec["detail"] = b.detail
            out.append({"type": "image_url", "image_url": spec})
        elif b.kind == "audio":
            out.append(
                {"type": "input_audio", "input_audio": {"data": b.b64(), "format": b.format}}
            )
        elif b.media_type != "application/pdf" and b.url is None:
            out.append({"type": "text", "text": _text_doc(b)})
        elif provider_type == "mistral":
            doc: dict[str, Any] = {"type": "document_url", "document_url": b.url}
            if b.name:
                doc["document_name"] = b.name
            out.append(doc)
        else:
            out.append({"type": "file", "file": {"filename": b.name, "file_data": b.data_url()}})
    return out


def anthropic_content(m: Message) -> list[dict[str, Any]]:
    """``m``'s parts as Anthropic content blocks (``image`` / ``document``)."""
    out: list[dict[str, Any]] = []
    for p in m.parts:
        if isinstance(p, Text):
            out.append({"type": "text", "text": p.text})
            continue
        b = load(p)
        kind = "image" if b.kind == "image" else "document"
        if b.url is not None:
            source: dict[str, Any] = {"type": "url", "url": b.url}
        elif b.kind == "document" and b.media_type != "application/pdf":
            source = {"type": "text", "media_type": "text/plain", "data": (b.data or b"").decode()}
        else:
            source = {"type": "base64", "media_type": b.media_type, "data": b.b64()}
        out.append({"type": kind, "source": source})
    return out


def gemini_parts(m: Message) -> list[dict[str, Any]]:
    """``m``'s parts as Gemini ``parts`` (``inline_data`` / ``file_data``)."""
    out: list[dict[str, Any]] = []
    for p in m.parts:
        if isinstance(p, Text):
            out.append({"text": p.text})
            continue
        b = load(p)
        if b.url is not None:
            out.append({"file_data": {"mime_type": b.media_type, "file_uri": b.url}})
        else:
            out.append({"inline_data": {"mime_type": b.media_type, "data": b.b64()}})
    return out


def _an(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind
