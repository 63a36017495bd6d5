"""The OpenAI chat-completions wire protocol, and the providers that speak it.

``POST {base_url}/chat/completions``, plain JSON or SSE (``data:`` lines ending with
``[DONE]``). OpenRouter adds attribution headers and reports ``usage.cost``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import llmnb.providers._tools_wire as tools_wire
import llmnb.providers.openai_responses as responses
from llmnb import errors
from llmnb._http import SSEEvent, body_excerpt
from llmnb.providers._env import resolve_base_url
from llmnb.providers.base import EMBEDDING, HTTPCall, HTTPProvider, key_fingerprint
from llmnb.providers.mock import estimate_tokens
from llmnb.types import Chunk, Completion, Message, Request, Role, Secret, Usage

__all__ = [
    "PRESETS",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "OpenRouterProvider",
    "is_reasoning_model",
]

# o1 / o3 / o4-mini / gpt-5 families reject `temperature` and `max_tokens`.
_REASONING = re.compile(r"^(o\d+(?:$|[-.])|gpt-5)", re.IGNORECASE)


def is_reasoning_model(model: str) -> bool:
    """True for OpenAI reasoning models (``o3-mini``, ``openai/gpt-5.2``, ...)."""
    return bool(_REASONING.match(model.rsplit("/", 1)[-1]))


def _usage(raw: Mapping[str, Any] | None) -> Usage | None:
    if not raw:
        return None
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    cost = raw.get("cost")
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        cost_usd=float(cost) if isinstance(cost, (int, float)) else None,
        # OpenRouter (and gateways in front of Anthropic) report cache writes here.
        cache_write_tokens=int(prompt_details.get("cache_write_tokens") or 0),
    )


def _parts(content: Any) -> tuple[str, str]:
    """``(text, thinking)`` of a message content: a string, or a list of parts.

    Mistral's thinking models (and some OpenAI-compatible servers) send
    ``[{"type": "thinking", "thinking": [{"type": "text", "text": ...}]},
    {"type": "text", "text": ...}]``; other part types (images, references) carry no text.
    """
    if content is None:
        return "", ""
    if isinstance(content, str):
        return content, ""
    if not isinstance(content, list):
        raise TypeError(f"message content is {type(content).__name__}, expected text or parts")
    text: list[str] = []
    thinking: list[str] = []
    for part in content:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "text":
            text.append(str(part.get("text") or ""))
        elif kind == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, str):
                thinking.append(inner)
            elif isinstance(inner, list):
                thinking.extend(_parts(inner)[0])
    return "".join(text), "".join(thinking)


def _reasoning(message: Mapping[str, Any]) -> str:
    r = message.get("reasoning") or message.get("reasoning_content") or ""
    return r if isinstance(r, str) else ""


def _vector(value: Any) -> Any:
    """An embedding as sent: a list of floats, or (``encoding_format: base64``, the
    official SDKs' default and what some servers always send) little-endian float32s."""
    if not isinstance(value, str):
        return value
    import array
    import base64
    import sys

    floats = array.array("f", base64.b64decode(value, validate=True))
    if sys.byteorder == "big":
        floats.byteswap()
    return floats.tolist()


class OpenAICompatibleProvider(HTTPProvider):
    """Any server with an OpenAI-style ``/chat/completions`` (vLLM, Volcano, LM Studio ...)."""

    type_name: ClassVar[str] = "openai_compatible"
    # A generic endpoint has no key variable of its own: borrowing OPENAI_API_KEY would
    # send the OpenAI key to a third-party host. Its profile names `api_key_env`.
    needs_key: ClassVar[bool] = False
    key_env_var: ClassVar[str | None] = None
    # The wire name of the output cap for non-reasoning models.
    uses_max_completion_tokens: ClassVar[bool] = True
    # response_schema travels as response_format {"type": "json_schema", ...}.
    structured_mode: ClassVar[str] = "json_schema"
    # Whether the server accepts `stream_options: {"include_usage": true}`. Mistral rejects
    # it (422 extra_forbidden) and sends the usage in its last chunk anyway.
    stream_usage_option: ClassVar[bool] = True
    # Whether `developer` messages go as they are (OpenAI) or as `system` (everyone else).
    developer_role: ClassVar[bool] = False
    # The official SDK's base-URL variable (and the path it adds to it), if it has one.
    base_url_env: ClassVar[str | None] = None
    base_url_env_suffix: ClassVar[str] = ""

    @property
    def base_url(self) -> str | None:
        return resolve_base_url(
            self.profile, self.base_url_env, self.base_url_env_suffix, self.default_base_url
        )

    def _require_base_url(self) -> str:
        url = self.base_url
        if not url:
            raise errors.ConfigError(
                f"profile {self.profile_name!r} (type {self.type_name}) needs a `base_url`, "
                "e.g. base_url: https://host/v1 in config/settings.yaml."
            )
        return url

    def _message(self, m: Message) -> dict[str, Any]:
        d: dict[str, Any] = m.to_dict()
        if m.role is Role.DEVELOPER and not self.developer_role:
            d["role"] = "system"
        if m.has_attachments:
            from llmnb.providers._parts_wire import openai_content

            d["content"] = openai_content(m, self.type_name)
        if m.tool_calls or m.tool_call_id:
            d = tools_wire.openai_message(m, d)
        return d

    def body(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [self._message(m) for m in request.messages],
        }
        reasoning = is_reasoning_model(request.model)
        if request.temperature is not None and not reasoning:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            cap = (
                "max_completion_tokens"
                if reasoning and self.uses_max_completion_tokens
                else "max_tokens"
            )
            body[cap] = request.max_tokens
        if request.stream:
            body["stream"] = True
            if self.stream_usage_option:
                body["stream_options"] = {"include_usage": True}
        if request.response_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name or "answer",
                    "schema": dict(request.response_schema),
                    "strict": True,
                },
            }
        body.update(tools_wire.openai_tools(request))
        body.update(request.extra)
        return body

    def build(self, request: Request) -> HTTPCall:
        url = self._require_base_url() + "/chat/completions"
        key = self.key_for(request)
        headers: dict[str, str | Secret] = {}
        secrets: tuple[Secret, ...] = ()
        if key:
            headers["authorization"] = Secret(f"Bearer {key.reveal()}")
            secrets = (key,)
        org = self.profile.get("organization")
        if org:
            headers["openai-organization"] = str(org)
        self.last_key_id = key_fingerprint(key)
        if request.stream and request.tools:  # a new attempt: no pieces of the last one
            self._tool_streams()[id(request)] = tools_wire.ToolCallAssembler()
        return HTTPCall(url=url, json=self.body(request), headers=headers, secrets=secrets)

    def _tool_streams(self) -> dict[int, tools_wire.ToolCallAssembler]:
        # Streamed tool calls arrive in pieces over many events: each stream's pieces,
        # keyed by its request (the provider is shared by concurrent calls).
        streams: dict[int, tools_wire.ToolCallAssembler] | None = self.__dict__.get("_tools")
        if streams is None:
            streams = self.__dict__["_tools"] = {}
        return streams

    def parse(self, data: Any, request: Request) -> Completion:
        if isinstance(data, dict) and "error" in data and "choices" not in data:
            # Some gateways answer 200 with an error envelope (and may quote the key).
            call = HTTPCall(url="", json=None, secrets=self.secrets_for(request))
            raise self._error(500, {}, json.dumps(data).encode(), call)
        choices = data["choices"]
        if not isinstance(choices, list) or not choices:
            raise errors.ResponseFormatError(
                "the answer has no `choices`; the model returned nothing usable.",
                body=body_excerpt(json.dumps(data)),
                provider=self.type_name,
                profile=self.profile_name,
                model=self.model,
            )
        choice = choices[0]
        message = choice.get("message") or {}
        content, thinking = _parts(message.get("content"))
        return Completion(
            content=content,
            model=str(data.get("model") or request.model),
            usage=_usage(data.get("usage")) or Usage(),
            finish_reason=choice.get("finish_reason"),
            reasoning=thinking + _reasoning(message),
            raw=data,
            tool_calls=tools_wire.openai_tool_calls(message),
        )

    # --- embeddings: POST {base_url}/embeddings ---------------------------------------
    supports_embeddings: ClassVar[bool] = True
    embed_batch_limit: ClassVar[int] = 2048  # OpenAI's documented maximum of inputs
    #: The wire name of the requested vector size (Mistral: ``output_dimension``).
    dimensions_field: ClassVar[str] = "dimensions"

    def build_embedding(self, request: Request) -> HTTPCall:
        call = self.build(request)  # the chat call's URL base, key and headers
        body: dict[str, Any] = {
            "model": request.model,
            "input": [m.content for m in request.messages],
            "encoding_format": "float",
        }
        dimensions = (request.extra.get(EMBEDDING) or {}).get("dimensions")
        if dimensions is not None:
            body[self.dimensions_field] = dimensions
        call.url = self._require_base_url() + "/embeddings"
        call.json = body
        return call

    def parse_embedding(self, data: Any, request: Request) -> Completion:
        if isinstance(data, dict) and "error" in data and "data" not in data:
            call = HTTPCall(url="", json=None, secrets=self.secrets_for(request))
            raise self._error(500, {}, json.dumps(data).encode(), call)
        items = sorted(data["data"], key=lambda d: int(d.get("index", 0)))
        usage = _usage(data.get("usage")) if isinstance(data.get("usage"), dict) else None
        return Completion(
            content="",
            model=str(data.get("model") or request.model),
            # No usage (some local servers): estimated, and marked so.
            usage=usage
            or Usage(sum(estimate_tokens(m.content) for m in request.messages), 0, estimated=True),
            parsed=[_vector(item["embedding"]) for item in items],
        )

    def parse_event(self, event: SSEEvent, request: Request) -> Chunk | None:
        if event.data == "[DONE]":
            raise StopIteration
        data = json.loads(event.data)
        if not isinstance(data, dict):
            raise TypeError(f"stream event is {type(data).__name__}, expected an object")
        if data.get("error"):
            raise self._stream_error(data, request)
        usage = data.get("usage")
        if not usage:  # Groq may report a stream's usage only under its own key
            usage = (data.get("x_groq") or {}).get("usage")
        chunk = Chunk(model=data.get("model"), usage=_usage(usage))
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            content, thinking = _parts(delta.get("content"))
            chunk.content += content
            chunk.reasoning += thinking + _reasoning(delta)
            if delta.get("tool_calls"):
                assembler = self._tool_streams().get(id(request))
                if assembler is None:
                    assembler = self._tool_streams()[id(request)] = tools_wire.ToolCallAssembler()
                assembler.add_openai(delta["tool_calls"])
            if choice.get("finish_reason"):
                chunk.finish_reason = choice["finish_reason"]
                assembler = self._tool_streams().pop(id(request), None)
                if assembler is not None:
                    chunk.tool_calls = assembler.done()
        return chunk

    def _stream_error(self, data: Mapping[str, Any], request: Request) -> errors.APIError:
        """An ``{"error": {...}}`` event mid-stream, typed by the event's own code.

        OpenRouter sends ``{"code": 400, "message": ...}`` and the usage billed so far;
        the error keeps that usage so the attempt's row has it.
        """
        raw_error = data["error"]
        error = raw_error if isinstance(raw_error, Mapping) else {"message": str(raw_error)}
        code = error.get("code")
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
        body = json.dumps({"error": error}).encode()
        err = self._error(status, {}, body, self._answer_call(request))
        err.message = "error in the middle of the stream: " + err.message
        err.usage = _usage(data.get("usage"))  # type: ignore[attr-defined]
        return err

    def _error(
        self, status: int, headers: Mapping[str, str], body: bytes, call: HTTPCall
    ) -> errors.APIError:
        return super()._error(status, headers, _with_upstream(body), call)


def _with_upstream(body: bytes) -> bytes:
    """OpenRouter's ``error.metadata`` (``provider_name``, ``raw``: the upstream provider's
    own words, e.g. "temporarily rate-limited upstream") folded into ``error.message``,
    which alone often says only "Provider returned error"."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    error = data.get("error") if isinstance(data, dict) else None
    metadata = error.get("metadata") if isinstance(error, dict) else None
    if not isinstance(error, dict) or not isinstance(metadata, Mapping):
        return body
    why = metadata.get("raw")
    if why is not None and not isinstance(why, str):
        why = json.dumps(why)
    said = ": ".join(str(x)[:300] for x in (metadata.get("provider_name"), why) if x)
    if not said:
        return body
    message = str(error.get("message") or "error")
    return json.dumps({**data, "error": {**error, "message": f"{message} ({said})"}}).encode()


class OpenAIProvider(OpenAICompatibleProvider):
    """api.openai.com."""

    type_name: ClassVar[str] = "openai"
    needs_key: ClassVar[bool] = True
    key_env_var: ClassVar[str | None] = "OPENAI_API_KEY"
    default_base_url: ClassVar[str | None] = "https://api.openai.com/v1"
    developer_role: ClassVar[bool] = True
    base_url_env: ClassVar[str | None] = "OPENAI_BASE_URL"

    def build(self, request: Request) -> HTTPCall:
        # As the openai SDK: OPENAI_ORG_ID / OPENAI_PROJECT_ID when the profile names none.
        # Only this type reads them: another vendor must not learn the OpenAI org.
        from llmnb import config

        call = super().build(request)
        if responses.uses_responses(self.profile, request.model):  # `api: responses`
            call.url = self._require_base_url() + "/responses"
            call.json = responses.body(request, is_reasoning_model(request.model))
        org = self.profile.get("organization") or config.get_env("OPENAI_ORG_ID")
        project = config.get_env("OPENAI_PROJECT_ID")
        if org and org.strip():
            call.headers["openai-organization"] = org.strip()
        if project and project.strip():
            call.headers["openai-project"] = project.strip()
        return call

    def parse(self, data: Any, request: Request) -> Completion:
        if not responses.uses_responses(self.profile, request.model):
            return super().parse(data, request)
        if isinstance(data, dict) and responses.error_of(data) is not None:
            # A 200 answer with status "failed" (or an error envelope): typed by its code.
            raise self._error(500, {}, json.dumps(data).encode(), self._answer_call(request))
        return responses.completion_of(data, request)

    def parse_event(self, event: SSEEvent, request: Request) -> Chunk | None:
        if not responses.uses_responses(self.profile, request.model):
            return super().parse_event(event, request)
        data = self._load_event(event, request)
        if not isinstance(data, dict):
            raise TypeError(f"stream event is {type(data).__name__}, expected an object")
        kind = data.get("type") or event.event
        if kind in ("error", "response.failed"):
            error = data if kind == "error" else responses.error_of(data.get("response") or {})
            error = dict(error or {"message": kind})
            if kind == "error":
                error.pop("type", None)
            status = responses.status_of(error.get("code"))
            body = json.dumps({"error": error}).encode()
            err = self._error(status, {}, body, self._answer_call(request))
            err.message = "error in the middle of the stream: " + err.message
            raise err
        chunk, done = responses.chunk_of(data)
        if done:
            self.__dict__.setdefault("_responses_done", set()).add(id(request))
        return chunk

    def stream_ended_early(self, request: Request) -> None:
        # A Responses stream has no [DONE]: it is complete once response.completed came.
        finished: set[int] = self.__dict__.get("_responses_done", set())
        if id(request) in finished:
            finished.discard(id(request))
            return
        super().stream_ended_early(request)


class OpenRouterProvider(OpenAICompatibleProvider):
    """openrouter.ai: one key, many vendors' models; every answer carries ``usage.cost``."""

    type_name: ClassVar[str] = "openrouter"
    needs_key: ClassVar[bool] = True
    key_env_var: ClassVar[str | None] = "OPENROUTER_API_KEY"
    default_base_url: ClassVar[str | None] = "https://openrouter.ai/api/v1"
    # OpenRouter normalises `max_tokens` for every model, reasoning ones included.
    uses_max_completion_tokens: ClassVar[bool] = False

    def build(self, request: Request) -> HTTPCall:
        call = super().build(request)
        referer = self.profile.get("http_referer")
        title = self.profile.get("x_title")
        if referer:
            call.headers["HTTP-Referer"] = str(referer)
        if title:
            call.headers["X-Title"] = str(title)
        return call


def _preset(
    name: str,
    base_url: str | None,
    key_env: str | None,
    needs_key: bool = True,
    url_env: tuple[str, str] | None = None,
    **capabilities: Any,
) -> type:
    env, suffix = url_env or (None, "")
    return type(
        f"{name.title().replace('_', '')}Provider",
        (OpenAICompatibleProvider,),
        {
            "type_name": name,
            "default_base_url": base_url,
            "key_env_var": key_env,
            "needs_key": needs_key,
            **capabilities,
            "base_url_env": env,
            "base_url_env_suffix": suffix,
            "__doc__": f"OpenAI-compatible preset for {name} ({base_url}).",
        },
    )


# type name -> provider class; a profile may still override base_url and api_key_env.
PRESETS: dict[str, type[OpenAICompatibleProvider]] = {
    "openai_compatible": OpenAICompatibleProvider,
    "openai": OpenAIProvider,
    "openrouter": OpenRouterProvider,
    # groq's SDK: GROQ_BASE_URL is the host (https://api.groq.com), paths add /openai/v1.
    "groq": _preset(
        "groq",
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
        url_env=("GROQ_BASE_URL", "/openai/v1"),
    ),
    "together": _preset("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "deepseek": _preset("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    # Mistral's /embeddings names the vector size `output_dimension`; its inputs per
    # request are bounded by tokens (16k), so batches stay small.
    "mistral": _preset(
        "mistral",
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        stream_usage_option=False,
        dimensions_field="output_dimension",
        embed_batch_limit=128,
    ),
    "xai": _preset("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
    "ollama": _preset("ollama", "http://localhost:11434/v1", "OLLAMA_API_KEY", False),
    "vllm": _preset("vllm", "http://localhost:8000/v1", "VLLM_API_KEY", False),
    "lmstudio": _preset("lmstudio", "http://localhost:1234/v1", "LMSTUDIO_API_KEY", False),
}
