"""``type: anthropic`` — the native Anthropic Messages API over httpx (no SDK).

``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version``. Profile::

    claude:
      type: anthropic
      model: claude-sonnet-4-5
      anthropic_version: "2023-06-01"     # the default
      max_tokens: 4096                    # always sent (the API requires it); default 4096

Usage: ``prompt_tokens`` is everything the model read — ``input_tokens`` plus
``cache_creation_input_tokens`` plus ``cache_read_input_tokens`` (Anthropic reports them
apart, OpenAI-style counts include them); ``cached_tokens`` is ``cache_read_input_tokens``
and ``cache_write_tokens`` is ``cache_creation_input_tokens``, with its one-hour part
(``cache_creation.ephemeral_1h_input_tokens``) in ``cache_write_1h_tokens``: each kind is
priced at its own rate. A response with ``usage.iterations`` (server-side compaction ran
extra sampling steps) is billed for all of them: the usage is their sum. In a stream,
``message_delta`` counts are cumulative and replace ``message_start``'s field by field.

Structured outputs use a forced tool: ``tools=[{name, input_schema}]`` with
``tool_choice={"type": "tool", "name": ...}``; the tool's ``input`` comes back as JSON
text in ``Completion.content``. Thinking blocks go to ``Completion.reasoning``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, ClassVar

import llmnb.providers._tools_wire as tools_wire
from llmnb import errors
from llmnb._http import SSEEvent, scrub
from llmnb.providers._env import resolve_base_url
from llmnb.providers.base import HTTPCall, HTTPProvider, key_fingerprint
from llmnb.types import Chunk, Completion, Message, Request, Role, Secret, Usage

__all__ = ["AnthropicProvider", "merge_usage"]

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_SCHEMA_TOOL = "respond"

# Anthropic stop_reason -> the OpenAI vocabulary every llmnb provider reports.
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Error type of an in-stream `error` event -> the HTTP status it would have come with.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "timeout_error": 504,
    "api_error": 500,
    "overloaded_error": 529,
}
# Anthropic says "out of money" in words, under types that look retryable or invalid.
_QUOTA_WORDS = ("spend limit", "credit balance", "usage limits", "billing")


def _usage(raw: Mapping[str, Any] | None) -> Usage | None:
    if not raw:
        return None
    iterations = raw.get("iterations")
    if isinstance(iterations, list) and iterations:
        # Compaction: each step is billed; the top-level counts are only the last one's.
        steps = [_usage(step) for step in iterations if isinstance(step, Mapping)]
        return sum((u for u in steps if u is not None), Usage())
    written = int(raw.get("cache_creation_input_tokens") or 0)
    read = int(raw.get("cache_read_input_tokens") or 0)
    split = raw.get("cache_creation") or {}
    hour = int(split.get("ephemeral_1h_input_tokens") or 0) if isinstance(split, Mapping) else 0
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0) + written + read,
        completion_tokens=int(raw.get("output_tokens") or 0),
        cached_tokens=read,
        cache_write_tokens=written,
        cache_write_1h_tokens=min(hour, written),
    )


def _detail(body: bytes, call: HTTPCall) -> str:
    """``": <the server's message>"``, secret-free, or "" when there is none."""
    try:
        message = json.loads(body).get("error", {}).get("message")
    except (ValueError, AttributeError):
        return ""
    return f": {scrub(str(message), call.secrets)}" if message else ""


def _merged(raw: dict[str, Any], update: Mapping[str, Any] | None) -> Usage | None:
    """``raw`` (a stream's usage fields so far) updated with the fields an event reports.

    ``message_delta`` counts are cumulative: each field it reports replaces the one from
    ``message_start``; fields it leaves out (older API versions send only
    ``output_tokens``) keep their start value.
    """
    if update:
        raw.update({k: v for k, v in update.items() if v is not None})
    return _usage(raw)


def merge_usage(old: Usage | None, new: Usage | None) -> Usage | None:
    """Combine two reports of cumulative counts: each field's largest value wins.

    ``message_start`` reports the input side and ``message_delta`` the growing output
    (newer API versions repeat the input there too); counts only grow, so the maximum
    of each field is the latest total whichever event reported it.
    """
    if old is None or new is None:
        return new or old
    return Usage(
        max(old.prompt_tokens, new.prompt_tokens),
        max(old.completion_tokens, new.completion_tokens),
        max(old.cached_tokens, new.cached_tokens),
        max(old.reasoning_tokens, new.reasoning_tokens),
        cache_write_tokens=max(old.cache_write_tokens, new.cache_write_tokens),
        cache_write_1h_tokens=max(old.cache_write_1h_tokens, new.cache_write_1h_tokens),
    )


class AnthropicProvider(HTTPProvider):
    """Claude models through ``api.anthropic.com`` (or a compatible proxy's ``base_url``)."""

    type_name: ClassVar[str] = "anthropic"
    needs_key: ClassVar[bool] = True
    key_env_var: ClassVar[str | None] = "ANTHROPIC_API_KEY"
    default_base_url: ClassVar[str | None] = "https://api.anthropic.com"
    structured_mode: ClassVar[str] = "tool"

    def __init__(self, profile_name: str, profile: Mapping[str, Any], model: str) -> None:
        super().__init__(profile_name, profile, model)
        # id(request) -> the usage fields its stream has reported so far.
        self._stream_usage: dict[int, dict[str, Any]] = {}
        # id(request) -> the tool calls its stream has sent pieces of so far.
        self._tool_calls: dict[int, tools_wire.ToolCallAssembler] = {}

    @property
    def base_url(self) -> str | None:
        # As the anthropic SDK: ANTHROPIC_BASE_URL when the profile names no base_url.
        return resolve_base_url(self.profile, "ANTHROPIC_BASE_URL", "", self.default_base_url)

    # --- request --------------------------------------------------------------------
    def _url(self) -> str:
        base = self.base_url or ""
        # Accept both the SDK convention (host only) and a base that already ends in /v1.
        return base + ("/messages" if base.endswith("/v1") else "/v1/messages")

    def _max_tokens(self, request: Request) -> int:
        if request.max_tokens is not None:
            return int(request.max_tokens)
        configured = (self.profile.get("options") or {}).get("max_tokens")
        return int(configured or self.profile.get("max_tokens") or DEFAULT_MAX_TOKENS)

    def body(self, request: Request) -> dict[str, Any]:
        # The Messages API has one top-level `system` and no system role among the turns:
        # the leading system (or developer) messages become `system`; one later in the
        # conversation stays where it was, as <system> text on the user side (what
        # clients send to models without inline system messages).
        system: list[str] = []
        turns: list[dict[str, Any]] = []
        for m in request.messages:
            text = m.content
            if m.role.instructs:
                if not turns:
                    system.append(text)
                    continue
                role, text = "user", f"<system>{text}</system>"
            else:
                # Tool results without tool_use ids cannot be sent as such: they are text
                # the user side supplies.
                role = "assistant" if m.role is Role.ASSISTANT else "user"
            if m.has_attachments:
                _add_blocks(turns, role, m)
            elif turns and turns[-1]["role"] == role:
                if isinstance(turns[-1]["content"], list):
                    turns[-1]["content"].append({"type": "text", "text": text})
                else:
                    turns[-1]["content"] += "\n\n" + text
            else:
                turns.append({"role": role, "content": text})
        if tools_wire.has_tool_turns(request):
            turns = tools_wire.anthropic_turns(request.messages)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": self._max_tokens(request),
            "messages": turns,
        }
        if system:
            body["system"] = "\n\n".join(system)
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.stream:
            body["stream"] = True
        if request.response_schema is not None:
            name = request.schema_name or _SCHEMA_TOOL
            body["tools"] = [
                {
                    "name": name,
                    "description": "Respond with the answer, following this schema exactly.",
                    "input_schema": dict(request.response_schema),
                }
            ]
            body["tool_choice"] = {"type": "tool", "name": name}
        elif request.tools:
            body.update(tools_wire.anthropic_tools(request))
        extra = dict(request.extra)
        if "stop" in extra:  # the OpenAI spelling, which notebooks carry over
            stop = extra.pop("stop")
            extra.setdefault("stop_sequences", [stop] if isinstance(stop, str) else stop)
        body.update(extra)
        return body

    def build(self, request: Request) -> HTTPCall:
        key = self.key_for(request)
        headers: dict[str, str | Secret] = {
            "anthropic-version": str(self.profile.get("anthropic_version") or DEFAULT_VERSION)
        }
        secrets: tuple[Secret, ...] = ()
        if key:
            headers["x-api-key"] = key
            secrets = (key,)
        self.last_key_id = key_fingerprint(key)
        return HTTPCall(url=self._url(), json=self.body(request), headers=headers, secrets=secrets)

    # --- response -------------------------------------------------------------------
    def _finish(self, reason: str | None, request: Request) -> str | None:
        if reason == "tool_use" and request.response_schema is not None:
            return "stop"  # the forced schema tool is the answer, not a tool call
        return _FINISH.get(reason, reason) if reason else None

    def parse(self, data: Any, request: Request) -> Completion:
        if isinstance(data, dict) and data.get("type") == "error":
            raise self._error(500, {}, json.dumps(data).encode(), self._answer_call(request))
        text: list[str] = []
        thinking: list[str] = []
        calls = []
        for block in data["content"]:
            kind = block.get("type")
            if kind == "text":
                text.append(block["text"])
            elif kind == "thinking":
                thinking.append(block.get("thinking") or "")
            elif kind == "tool_use" and request.response_schema is not None:
                text.append(json.dumps(block["input"]))
            elif kind == "tool_use":
                calls.append(tools_wire.anthropic_tool_call(block))
        return Completion(
            content="".join(text),
            model=str(data.get("model") or request.model),
            usage=_usage(data.get("usage")) or Usage(),
            finish_reason=self._finish(data.get("stop_reason"), request),
            reasoning="".join(thinking),
            raw=data,
            tool_calls=calls,
        )

    def parse_event(self, event: SSEEvent, request: Request) -> Chunk | None:
        data = self._load_event(event, request)
        if not isinstance(data, dict):
            raise TypeError(f"stream event is {type(data).__name__}, expected an object")
        kind = data.get("type") or event.event
        if kind == "message_stop":
            raise StopIteration
        if kind == "error":
            error = data.get("error") or {}
            status = _STATUS_OF_TYPE.get(str(error.get("type")), 500)
            err = self._error(status, {}, event.data.encode(), self._answer_call(request))
            err.message = "error in the middle of the stream: " + err.message
            raise err
        raw = self._stream_usage.get(id(request))
        if kind == "message_start":
            message = data["message"]
            if raw is None:
                return Chunk(model=message.get("model"), usage=_usage(message.get("usage")))
            raw.clear()
            return Chunk(model=message.get("model"), usage=_merged(raw, message.get("usage")))
        if kind == "content_block_start":
            block = data["content_block"]
            if block.get("type") == "tool_use" and request.response_schema is None:
                self._tool_pieces(request).add(
                    int(data.get("index") or 0),
                    id=block.get("id"),
                    name=block.get("name"),
                    arguments=None,
                )
                return None
            return Chunk(content=block.get("text") or "") if block.get("type") == "text" else None
        if kind == "content_block_delta":
            delta = data["delta"]
            dtype = delta.get("type")
            if dtype == "text_delta":
                return Chunk(content=delta["text"])
            if dtype == "thinking_delta":
                return Chunk(reasoning=delta["thinking"])
            if dtype == "input_json_delta" and request.response_schema is not None:
                return Chunk(content=delta["partial_json"])
            if dtype == "input_json_delta":
                index = int(data.get("index") or 0)
                if index not in self._tool_pieces(request):
                    return None  # a server tool's input (web search ...): not ours to run
                self._tool_pieces(request).add(
                    index, id=None, name=None, arguments=delta["partial_json"]
                )
                return None
            return None  # signature_delta, citations, tool input we did not ask for
        if kind == "message_delta":
            reason = (data.get("delta") or {}).get("stop_reason")
            update = data.get("usage")
            usage = _usage(update) if raw is None else _merged(raw, update)
            pieces = self._tool_calls.pop(id(request), None)
            return Chunk(
                finish_reason=self._finish(reason, request),
                usage=usage,
                tool_calls=pieces.done() if pieces is not None else (),
            )
        return None  # ping, content_block_stop, and event types added later

    # Usage arrives in two halves (message_start, message_delta); each stream keeps the
    # fields reported so far, keyed by its request, so that the last chunk carries them all.
    def stream(self, request: Request) -> Iterator[Chunk]:
        self._stream_usage[id(request)] = {}
        try:
            yield from super().stream(request)
        finally:
            self._stream_usage.pop(id(request), None)
            self._tool_calls.pop(id(request), None)

    async def astream(self, request: Request) -> AsyncIterator[Chunk]:
        self._stream_usage[id(request)] = {}
        try:
            async for chunk in super().astream(request):
                yield chunk
        finally:
            self._stream_usage.pop(id(request), None)
            self._tool_calls.pop(id(request), None)

    def _tool_pieces(self, request: Request) -> tools_wire.ToolCallAssembler:
        pieces = self._tool_calls.get(id(request))
        if pieces is None:
            pieces = self._tool_calls[id(request)] = tools_wire.ToolCallAssembler()
        return pieces

    # --- errors ---------------------------------------------------------------------
    def _error(
        self, status: int, headers: Mapping[str, str], body: bytes, call: HTTPCall
    ) -> errors.APIError:
        err = super()._error(status, headers, body, call)
        said = f"{err.code or ''} {err.message}".lower()
        if status in (400, 429) and any(w in said for w in _QUOTA_WORDS):
            # A spend limit or empty balance does not lift by retrying in a few seconds.
            quota = errors.InsufficientQuotaError(
                f"out of credit or spend limit reached (HTTP {status}){_detail(body, call)}. "
                "Add credit or raise the limit at console.anthropic.com; retrying will not "
                "help.",
                status=err.status,
                body=err.body,
                provider=err.provider,
                profile=err.profile,
                model=err.model,
                code=err.code,
            )
            for name, value in vars(err).items():  # keeps e.g. the response headers
                vars(quota).setdefault(name, value)
            return quota
        return err


def _add_blocks(turns: list[dict[str, Any]], role: str, m: Message) -> None:
    """A message with attachments as content blocks, merged into the previous turn of
    the same role (whose text becomes a text block)."""
    from llmnb.providers._parts_wire import anthropic_content

    blocks = anthropic_content(m)
    if turns and turns[-1]["role"] == role:
        prev = turns[-1]["content"]
        if isinstance(prev, str):
            turns[-1]["content"] = [{"type": "text", "text": prev}]
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})
