"""Attachments in ``%%llm``: ``-a/--attach NAME_OR_PATH[,…]``, ``{fig}`` images in the
prompt, their lines in ``--dry-run`` and the footer's ``+2 images``.

``{fig}`` (a matplotlib Figure/Axes or a PIL image) is replaced while interpolating by a
private marker (:func:`marker`); :func:`split` turns the prompt back into text and image
parts in that order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from IPython.core.error import UsageError

__all__ = ["collect", "footer_extra", "is_image", "marker", "split", "summary_rows"]

_MARK = re.compile("\ue000(\\d+)\ue001")


def is_image(value: Any) -> bool:
    """A matplotlib Figure/Axes or a PIL image (recognised by module, never imported)."""
    module = type(value).__module__ or ""
    if module.startswith("matplotlib"):
        return hasattr(value, "savefig") or hasattr(getattr(value, "figure", None), "savefig")
    return module.startswith("PIL.") and hasattr(value, "save")


def marker(i: int) -> str:
    return f"\ue000{i}\ue001"


def split(text: str, images: Sequence[Any]) -> str | list[Any]:
    """``text`` with its image markers as ``llmnb.Image`` parts (or ``text`` unchanged)."""
    if not images:
        return text
    from llmnb.parts import Image, Text

    out: list[Any] = []
    pos = 0
    for m in _MARK.finditer(text):
        if m.start() > pos:
            out.append(Text(text[pos : m.start()]))
        out.append(Image(images[int(m.group(1))]))
        pos = m.end()
    if pos < len(text):
        out.append(Text(text[pos:]))
    return out


def plain(text: str) -> str:
    """``text`` with its markers as ``[image N]`` (what a transcript or a chat keeps)."""
    return _MARK.sub(lambda m: f"[image {int(m.group(1)) + 1}]", text)


def collect(spec: str, namespace: Mapping[str, Any]) -> list[Any]:
    """The attachments ``-a`` names: variables of the notebook, else files."""
    out: list[Any] = []
    for raw in spec.split(","):
        name = raw.strip()
        if not name:
            continue
        if name.isidentifier() and name in namespace:
            out.append(namespace[name])
        elif name.startswith(("http://", "https://")) or os.path.exists(os.path.expanduser(name)):
            out.append(name)
        else:
            raise UsageError(
                f"-a/--attach {name!r}: no such variable or file; name a Figure, an image or "
                "bytes variable, a path (relative to the notebook's folder) or a URL."
            )
    return out


def summary_rows(provider_type: str, messages: Sequence[Any]) -> tuple[list[list[str]], int]:
    """One row per attachment (type, size, estimated tokens) and their total tokens."""
    from llmnb.parts import Text, load
    from llmnb.providers._parts_cost import blob_tokens

    rows: list[list[str]] = []
    total = 0
    for m in messages:
        for p in m.parts:
            if isinstance(p, Text):
                continue
            b = load(p)
            tokens = blob_tokens(provider_type, b)
            total += tokens
            size = f"{b.width}×{b.height}, " if b.width and b.height else ""
            size += f"{b.size:,} bytes" if b.data is not None else "by URL"
            rows.append([b.kind, b.media_type, size, f"~{tokens}"])
    return rows, total


def text(content: Any) -> str:
    """A message content's text (a str, or the text of a list of parts)."""
    if isinstance(content, str):
        return content
    from llmnb.parts import Image, Text

    n = 0
    out = []
    for p in content:
        if isinstance(p, Text):
            out.append(p.text)
        elif isinstance(p, Image):
            n += 1
            out.append(f"[image {n}]")
    return "".join(out)


def loaded(messages: Sequence[Mapping[str, Any]], attachments: Any) -> tuple[Any, ...]:
    """The messages with their attachments loaded, as the client will send them; ``()``
    when there are none."""
    if attachments is None and all(isinstance(m["content"], str) for m in messages):
        return ()
    from llmnb.client.attachments import prepare
    from llmnb.errors import InvalidRequestError
    from llmnb.types import normalize_messages

    try:
        out, _ = prepare(normalize_messages(list(messages)), attachments)
    except InvalidRequestError as exc:
        raise UsageError(str(exc)) from None
    return out


def footer_extra(messages: Sequence[Mapping[str, Any]], attachments: Any) -> str | None:
    """``+2 images`` / ``+1 image, 1 document`` for the footer, or None."""
    from llmnb.client.attachments import as_part
    from llmnb.parts import Text

    parts = [p for m in messages if not isinstance(m["content"], str) for p in m["content"]]
    parts += [as_part(a) for a in attachments or ()]
    counts: dict[str, int] = {}
    for p in parts:
        if not isinstance(p, Text):
            kind = type(p).__name__.lower()
            counts[kind] = counts.get(kind, 0) + 1
    if not counts:
        return None
    return "+" + ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in counts.items())
