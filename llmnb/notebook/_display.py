"""Rendering answers: MIME bundles by format, the usage footer, output metadata, live views.

Everything is a raw MIME bundle (``{"text/markdown": …, "text/plain": …}``) so every
front end gets a plain-text fallback and tests can read exactly what was shown.
"""

from __future__ import annotations

import html
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from IPython import display as _ipd

from llmnb.errors import ResponseFormatError
from llmnb.usage import format as _fmt

if TYPE_CHECKING:
    from llmnb.types import Completion

__all__ = [
    "LiveView",
    "Rendered",
    "answer_bundle",
    "displayable",
    "footer_bundle",
    "footer_text",
    "format_cost",
    "format_tokens",
    "output_metadata",
    "partial_bundle",
    "show",
    "strip_fences",
    "table_bundle",
]

Bundle = dict[str, Any]

display: Callable[..., Any] = _ipd.display  # untyped in IPython

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n(.*?)\n?\1[ \t]*\s*$", re.S)
_FIRST_FENCE = re.compile(r"(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n(.*?)\n?\1", re.S)


def strip_fences(text: str) -> tuple[str, str]:
    """``(body, language)``: the inside of a ```lang … ``` block, else the text as is.

    A whole-answer fence wins; otherwise the first fenced block of a chatty answer
    ("Here is the code: ```python …```") is taken.
    """
    match = _FENCE.match(text) or _FIRST_FENCE.search(text)
    if match is None:
        return text.strip(), ""
    return match.group(3).strip("\n"), match.group(2).lower()


def format_cost(cost: float | None, source: str | None = None) -> str:
    """``$0.0012``; ``n/a`` when unknown (never a silent $0); ``~`` when estimated."""
    return _fmt.money(cost, source)


def format_tokens(completion: Completion) -> str:
    u = completion.usage
    mark = "~" if u.estimated else ""
    return f"{mark}{_fmt.tokens(u.prompt_tokens)}→{_fmt.tokens(u.completion_tokens)} tokens"


def footer_text(completion: Completion, extra: Sequence[str] = ()) -> str:
    """``profile · model · tokens in→out · cost · latency`` (+ extras such as "cached")."""
    parts = [
        completion.profile or "?",
        completion.model,
        format_tokens(completion),
        format_cost(completion.cost_usd, completion.cost_source),
        _fmt.duration(completion.latency_s),
    ]
    if completion.cached:
        parts.append("cached")
    return " · ".join([*parts, *extra])


def footer_bundle(text: str) -> Bundle:
    style = "font-size:0.8em;opacity:0.65;margin-top:0.3em"
    return {"text/html": f'<div style="{style}">{html.escape(text)}</div>', "text/plain": text}


def output_metadata(completion: Completion) -> dict[str, Any]:
    """``{"llmnb": {profile, model, usage, latency_s}}`` for the notebook output."""
    cost = completion.cost_usd
    return {
        "llmnb": {
            "profile": completion.profile,
            "model": completion.model,
            "usage": {
                "prompt_tokens": completion.usage.prompt_tokens,
                "completion_tokens": completion.usage.completion_tokens,
                "cost_usd": None if cost is None or math.isnan(cost) else cost,
                "cost_source": completion.cost_source,
            },
            "latency_s": round(completion.latency_s, 4),
        }
    }


class Rendered:
    """An answer turned into a bundle, plus the value ``-o VAR`` stores."""

    __slots__ = ("bundle", "code", "value")

    def __init__(self, bundle: Bundle, value: Any, code: str | None = None) -> None:
        self.bundle = bundle
        self.value = value
        self.code = code


def _fenced(body: str, lang: str) -> str:
    fence = "````" if "```" in body else "```"
    return f"{fence}{lang}\n{body}\n{fence}"


def answer_bundle(text: str, fmt: str) -> Rendered:
    """Render ``text`` as ``fmt``; ``-f json`` raises ResponseFormatError on invalid JSON."""
    if fmt == "text":
        return Rendered({"text/plain": text}, text)
    if fmt == "code":
        body, lang = strip_fences(text)
        lang = lang or "python"
        return Rendered({"text/markdown": _fenced(body, lang), "text/plain": body}, body, body)
    if fmt == "json":
        body, _ = strip_fences(text)
        try:
            value = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ResponseFormatError(
                f"-f json: the answer is not valid JSON ({exc.msg} at line {exc.lineno} "
                f"column {exc.colno}); it is shown above. Ask again (e.g. 'answer with JSON "
                "only'), or use -f text."
            ) from None
        pretty = json.dumps(value, indent=2, ensure_ascii=False)
        bundle: Bundle = {"text/markdown": _fenced(pretty, "json"), "text/plain": pretty}
        if isinstance(value, (dict, list)):
            bundle["application/json"] = value
        return Rendered(bundle, value)
    if fmt == "html":
        body, lang = strip_fences(text)
        body = body if lang in ("html", "") else text
        return Rendered({"text/html": body, "text/plain": text}, body)
    if fmt == "math":
        body, _ = strip_fences(text)
        latex = body.strip()
        if not latex.startswith(("$", "\\[", "\\begin")):
            latex = f"$$\n{latex}\n$$"
        return Rendered({"text/latex": latex, "text/markdown": latex, "text/plain": body}, body)
    return Rendered({"text/markdown": text, "text/plain": text}, text)


def partial_bundle(text: str, fmt: str) -> Bundle:
    """What a stream shows before it ends (never fails, even on half a JSON document)."""
    if fmt in ("code", "json"):
        body, lang = strip_fences(text)
        return {
            "text/markdown": _fenced(body, lang or ("json" if fmt == "json" else "")),
            "text/plain": body,
        }
    if fmt == "markdown":
        return {"text/markdown": text, "text/plain": text}
    return {"text/plain": text}


def displayable(value: Any) -> Any:
    """``value`` with every lone surrogate in its text replaced by U+FFFD.

    A server may send one (a JSON ``\\ud800`` escape); Python holds it, but a kernel
    must encode what it displays as UTF-8, and that fails for the whole output.
    """
    if isinstance(value, str):
        if value.isascii():  # O(1) in CPython: the common case costs nothing
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # utf-16 + surrogatepass joins split pairs; lone halves become U+FFFD
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, dict):
        return {displayable(k): displayable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(displayable(v) for v in value)
    return value


def show(bundle: Bundle, metadata: Mapping[str, Any] | None = None) -> None:
    """Display a raw bundle (with output metadata)."""
    display(displayable(bundle), raw=True, metadata=displayable(dict(metadata or {})))


class LiveView:
    """A display updated in place while a stream arrives, at most every ``throttle`` s."""

    def __init__(
        self, fmt: str, throttle: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.fmt = fmt
        self.throttle = max(0.0, throttle)
        self.clock = clock
        self.parts: list[str] = []
        self.updates = 0
        self._last = clock()
        self._handle = display({"text/plain": "…"}, raw=True, display_id=True)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add(self, piece: str) -> None:
        self.parts.append(piece)
        now = self.clock()
        if now - self._last >= self.throttle:
            self._update(partial_bundle(self.text, self.fmt))
            self._last = now

    def finish(self, bundle: Bundle, metadata: Mapping[str, Any] | None = None) -> None:
        """Replace the live text by the final rendering."""
        self._update(bundle, metadata)

    def flush(self) -> None:
        """Show everything received so far (e.g. before an error is reported)."""
        self._update(partial_bundle(self.text, self.fmt))

    def _update(self, bundle: Bundle, metadata: Mapping[str, Any] | None = None) -> None:
        self._handle.update(
            displayable(bundle), raw=True, metadata=displayable(dict(metadata or {}))
        )
        self.updates += 1


def _cell_style(cell: str) -> str:
    # A short one-line cell (a profile, a model id, a cost) never wraps ("mock-" / "1");
    # a long answer keeps its line breaks and wraps.
    wrap = "pre-wrap" if "\n" in cell or len(cell) > 40 else "nowrap"
    return f"text-align:left;vertical-align:top;white-space:{wrap}"


def table_bundle(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Bundle:
    """An HTML table with a plain-text twin; cells keep their line breaks."""
    cells = [[str(c) for c in row] for row in rows]
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td style='{_cell_style(c)}'>{html.escape(c)}</td>" for c in row)
        + "</tr>"
        for row in cells
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    flat = [[c.replace("\n", " ⏎ ") for c in row] for row in cells]
    widths = [max([len(h), *(len(r[i]) for r in flat)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in flat]
    return {"text/html": table, "text/plain": "\n".join(lines)}
