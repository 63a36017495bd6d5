"""Replaying recorded real provider traffic (``tests/recordings``) through llmnb.

Each recording is one exchange of a real API call: the recorded response body (JSON or
an SSE stream, verbatim) with the model and endpoint it answered. :func:`reference`
reads what the recording itself says — text, thinking, token counts, finish reason, a
provider-reported cost, an error — with a small reader written from the providers'
documentation, independently of llmnb's parsers; :func:`expected_cost` prices those
counts with genai-prices directly. The replay tests compare llmnb's answer with both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llmnb
from llmnb import errors
from llmnb.middleware import RetryPolicy
from llmnb.testing import FakeLLMServer, Fault

RECORDINGS = Path(__file__).parent / "recordings"

#: llmnb provider type -> genai-prices provider id.
GENAI_PROVIDER = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "groq": "groq",
    "openrouter": "openrouter",
    "mistral": "mistral",
    "deepseek": "deepseek",
}
_ANTHROPIC_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_GEMINI_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}


@dataclass
class Expect:
    """What a recording says happened."""

    content: str = ""
    reasoning: str = ""
    prompt: int = 0
    completion: int = 0
    cached: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    reasoning_tokens: int = 0
    finish: str | None = None
    cost: float | None = None  # reported by the provider
    error_status: int | None = None  # HTTP status, or an in-stream error's own code
    error_text: str = ""
    usage_seen: bool = False
    notes: list[str] = field(default_factory=list)


def recordings() -> list[Path]:
    return sorted(RECORDINGS.glob("*/*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def sse_data(body: str) -> Iterator[str]:
    """The ``data:`` payloads of an event stream, in order (multi-line data joined)."""
    for block in body.replace("\r\n", "\n").split("\n\n"):
        lines = [ln[5:].lstrip() for ln in block.split("\n") if ln.startswith("data:")]
        if lines:
            yield "\n".join(lines)


def _parts_text(content: Any) -> tuple[str, str]:
    """(text, thinking) of a message content that is a string or a list of parts."""
    if content is None:
        return "", ""
    if isinstance(content, str):
        return content, ""
    text, thinking = [], []
    for part in content:
        if part.get("type") == "text":
            text.append(part.get("text") or "")
        elif part.get("type") == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, str):
                thinking.append(inner)
            else:
                thinking.extend(p.get("text") or "" for p in inner or ())
    return "".join(text), "".join(thinking)


def _openai_usage(e: Expect, u: Mapping[str, Any] | None) -> None:
    if not u:
        return
    e.usage_seen = True
    e.prompt = u.get("prompt_tokens") or 0
    e.completion = u.get("completion_tokens") or 0
    details = u.get("prompt_tokens_details") or {}
    e.cached = details.get("cached_tokens") or 0
    e.cache_write = details.get("cache_write_tokens") or 0
    e.reasoning_tokens = (u.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    if isinstance(u.get("cost"), (int, float)):
        e.cost = float(u["cost"])


def _openai(rec: dict[str, Any]) -> Expect:
    e = Expect()
    if not rec["stream"]:
        data = json.loads(rec["body"])
        if "error" in data and "choices" not in data:
            e.error_status = 500
            return e
        message = data["choices"][0].get("message") or {}
        e.content, e.reasoning = _parts_text(message.get("content"))
        r = message.get("reasoning") or message.get("reasoning_content")
        if isinstance(r, str) and r:
            e.reasoning += r
        e.finish = data["choices"][0].get("finish_reason")
        _openai_usage(e, data.get("usage"))
        return e
    for payload in sse_data(rec["body"]):
        if payload == "[DONE]":
            break
        data = json.loads(payload)
        if data.get("error"):
            err = data["error"]
            code = err.get("code")
            e.error_status = code if isinstance(code, int) and code >= 400 else 500
            e.error_text = str(err.get("message") or "")
            _openai_usage(e, data.get("usage"))
            break
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            text, thinking = _parts_text(delta.get("content"))
            e.content += text
            e.reasoning += thinking
            r = delta.get("reasoning") or delta.get("reasoning_content")
            if isinstance(r, str):
                e.reasoning += r
            if choice.get("finish_reason"):
                e.finish = choice["finish_reason"]
        usage = data.get("usage") or (data.get("x_groq") or {}).get("usage")
        _openai_usage(e, usage)
    return e


def _anthropic_usage(e: Expect, u: Mapping[str, Any]) -> None:
    e.usage_seen = True
    steps = u.get("iterations") or [u]
    e.prompt = e.completion = e.cached = e.cache_write = e.cache_write_1h = 0
    for s in steps:
        written = s.get("cache_creation_input_tokens") or 0
        read = s.get("cache_read_input_tokens") or 0
        e.prompt += (s.get("input_tokens") or 0) + written + read
        e.completion += s.get("output_tokens") or 0
        e.cached += read
        e.cache_write += written
        e.cache_write_1h += (s.get("cache_creation") or {}).get("ephemeral_1h_input_tokens") or 0


def _anthropic(rec: dict[str, Any]) -> Expect:
    e = Expect()
    if not rec["stream"]:
        data = json.loads(rec["body"])
        if data.get("type") == "error":
            e.error_status = 500
            return e
        for block in data.get("content") or ():
            if block.get("type") == "text":
                e.content += block["text"]
            elif block.get("type") == "thinking":
                e.reasoning += block.get("thinking") or ""
        reason = data.get("stop_reason")
        e.finish = _ANTHROPIC_FINISH.get(reason, reason)
        _anthropic_usage(e, data.get("usage") or {})
        return e
    usage: dict[str, Any] = {}
    for payload in sse_data(rec["body"]):
        data = json.loads(payload)
        kind = data.get("type")
        if kind == "message_start":
            usage = dict(data["message"].get("usage") or {})
        elif kind == "content_block_delta":
            d = data["delta"]
            if d.get("type") == "text_delta":
                e.content += d["text"]
            elif d.get("type") == "thinking_delta":
                e.reasoning += d["thinking"]
        elif kind == "content_block_start" and data["content_block"].get("type") == "text":
            e.content += data["content_block"].get("text") or ""
        elif kind == "message_delta":
            # Cumulative counts: every field the final delta reports replaces the start's.
            usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            reason = (data.get("delta") or {}).get("stop_reason")
            e.finish = _ANTHROPIC_FINISH.get(reason, reason)
        elif kind == "error":
            e.error_status = 500
    _anthropic_usage(e, usage)
    return e


def _gemini(rec: dict[str, Any]) -> Expect:
    e = Expect()
    bodies = (
        [json.loads(p) for p in sse_data(rec["body"])]
        if rec["stream"]
        else [json.loads(rec["body"])]
    )
    for data in bodies:
        if "error" in data:
            e.error_status = 500
            return e
        for cand in (data.get("candidates") or ())[:1]:
            for part in (cand.get("content") or {}).get("parts") or ():
                if part.get("thought"):
                    e.reasoning += part.get("text") or ""
                else:
                    e.content += part.get("text") or ""
            if cand.get("finishReason"):
                r = cand["finishReason"]
                e.finish = _GEMINI_FINISH.get(r, str(r).lower())
        u = data.get("usageMetadata")
        if u:
            e.usage_seen = True
            thoughts = u.get("thoughtsTokenCount") or 0
            e.prompt = (u.get("promptTokenCount") or 0) + (u.get("toolUsePromptTokenCount") or 0)
            e.completion = (u.get("candidatesTokenCount") or 0) + thoughts
            e.cached = u.get("cachedContentTokenCount") or 0
            e.reasoning_tokens = thoughts
    return e


def reference(rec: dict[str, Any]) -> Expect:
    """What the recording says, read without llmnb."""
    if rec["status"] >= 400:
        e = Expect(error_status=rec["status"])
        try:
            err = json.loads(rec["body"])
            if isinstance(err, list):
                err = err[0]
            e.error_text = str((err.get("error") or {}).get("message") or "")
        except (ValueError, AttributeError):
            pass
        return e
    kind = rec["provider"]
    if kind == "anthropic":
        return _anthropic(rec)
    if kind == "gemini":
        return _gemini(rec)
    return _openai(rec)


def expected_cost(rec: dict[str, Any], e: Expect) -> tuple[float, str]:
    """(cost, cost_source) the row should have: the provider's own number, else the
    recording's tokens priced by genai-prices (the exact model's entry on the provider,
    else the vendor's entry for a ``vendor/model`` id), else unknown."""
    if e.cost is not None:
        return e.cost, "provider"
    import genai_prices

    usage = genai_prices.Usage(
        input_tokens=e.prompt,
        output_tokens=e.completion,
        cache_read_tokens=e.cached,
        cache_write_tokens=e.cache_write,
        **({"cache_write_1h_tokens": e.cache_write_1h} if e.cache_write_1h else {}),
    )
    model = rec["model"]
    tries = [(model, GENAI_PROVIDER[rec["provider"]])]
    if "/" in model:
        vendor, _, rest = model.partition("/")
        tries.append((rest, {"mistralai": "mistral", "x-ai": "x-ai"}.get(vendor, vendor)))
    for ref, provider_id in tries:
        try:
            calc = genai_prices.calc_price(usage, ref, provider_id=provider_id)
        except LookupError:
            continue
        mp = calc.model_price
        if (
            mp.input_mtok is None
            and mp.output_mtok is None
            and any(v is not None for v in vars(mp).values())
        ):
            continue  # priced by image/request only: no token price
        return float(calc.total_price), "price_table"
    return math.nan, "unknown"


KEY = "sk-replay-canary-0123456789abcdef"
_ENV = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "groq": "GROQ_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
}


def base_url(server: FakeLLMServer, provider: str) -> str:
    if provider == "anthropic":
        return server.anthropic_base_url
    if provider == "gemini":
        return server.gemini_base_url
    return server.base_url


def served(rec: dict[str, Any]) -> Fault:
    """The recorded response, byte for byte."""
    if rec["status"] == 200 and rec["stream"]:
        return Fault.sse(rec["body"])
    try:
        body = json.loads(rec["body"])
    except ValueError:
        body = rec["body"]
    return Fault.json(rec["status"], body)


def replayer(
    server: FakeLLMServer, write_settings: Callable[[dict[str, Any]], Any], monkeypatch: Any
) -> Callable[..., Any]:
    """``run(rec, **profile)``: serve one recording to a client of its provider type (the
    profile's fields may be overridden); the Completion, or the APIError raised."""

    def run(
        rec: dict[str, Any], _script: bool = True, _messages: Any = "hi", **overrides: Any
    ) -> Any:
        kind = rec["provider"]
        monkeypatch.setenv(_ENV[kind], KEY)
        profile = {"type": kind, "model": rec["model"], "base_url": base_url(server, kind)}
        profile.update(overrides)
        write_settings({"llm": {"active_provider": "p", "providers": {"p": profile}}})
        client = llmnb.create_llm_client_from_profile()
        client.retry = RetryPolicy(max_retries=0, sleep=lambda s: None)
        if _script:  # else the caller scripted the server itself
            server.script(served(rec))
        try:
            if rec["stream"]:
                text = client.stream(_messages)
                pieces = list(text)
                assert text.completion is not None
                assert "".join(pieces) == text.completion.content
                return text.completion
            return client.complete(_messages)
        except errors.APIError as exc:
            return exc

    return run
