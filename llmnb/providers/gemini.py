"""``type: gemini`` — the native Gemini API (``generateContent`` / ``streamGenerateContent``).

``POST {base_url}/models/{model}:generateContent`` (``:streamGenerateContent?alt=sse`` to
stream) with the key in ``x-goog-api-key``, read from ``GEMINI_API_KEY`` or, when that
is not set, ``GOOGLE_API_KEY``. Profile::

    gemini:
      type: gemini
      model: gemini-2.5-flash

Turns become ``contents`` (assistant → role ``model``), system messages
``systemInstruction``; ``temperature`` and ``max_tokens`` go in ``generationConfig``
(``maxOutputTokens``), as do ``top_p``, ``top_k``, ``stop``, ``seed`` and any other
``generationConfig`` field passed as a call parameter; unknown parameters go top-level
(``safetySettings``, ``tools``, ``cachedContent``…).

Usage: ``completion_tokens = candidatesTokenCount + thoughtsTokenCount`` (thinking is
billed as output), ``reasoning_tokens = thoughtsTokenCount``, ``cached_tokens =
cachedContentTokenCount`` (already part of ``promptTokenCount``).

Streams have no end marker: the body's end is the end. A stream that ends without any
event carrying a ``finishReason`` was cut, and raises ``NetworkError`` as other cut
streams do. Structured outputs set ``responseMimeType: application/json`` and
``responseJsonSchema`` (plain JSON Schema, unlike ``responseSchema``'s OpenAPI subset).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, ClassVar

import llmnb.providers._tools_wire as tools_wire
from llmnb import errors
from llmnb._http import SSEEvent, parse_retry_after, scrub
from llmnb.providers.base import EMBEDDING, HTTPCall, HTTPProvider, key_fingerprint
from llmnb.providers.mock import estimate_tokens
from llmnb.types import Chunk, Completion, Message, Request, Role, Secret, Usage

__all__ = ["GeminiProvider"]

ALT_KEY_ENV = "GOOGLE_API_KEY"

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
# Call parameters that belong in generationConfig (snake_case spellings accepted).
_CONFIG_FIELDS = {
    "top_p": "topP",
    "top_k": "topK",
    "stop": "stopSequences",
    "stop_sequences": "stopSequences",
    "seed": "seed",
    "candidate_count": "candidateCount",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "response_mime_type": "responseMimeType",
    "response_modalities": "responseModalities",
    "thinking_config": "thinkingConfig",
    "max_output_tokens": "maxOutputTokens",
    "response_logprobs": "responseLogprobs",
    "logprobs": "logprobs",
}
_CONFIG_NAMES = frozenset(_CONFIG_FIELDS.values())
_DURATION = re.compile(r"^\s*([0-9.]+)s\s*$")


def _usage(raw: Mapping[str, Any] | None) -> Usage | None:
    if not raw:
        return None
    thoughts = int(raw.get("thoughtsTokenCount") or 0)
    return Usage(
        prompt_tokens=int(raw.get("promptTokenCount") or 0)
        + int(raw.get("toolUsePromptTokenCount") or 0),
        completion_tokens=int(raw.get("candidatesTokenCount") or 0) + thoughts,
        cached_tokens=int(raw.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def _details(body: bytes) -> tuple[str, str, list[dict[str, Any]]]:
    """The google.rpc ``status``, ``message`` and ``details`` of an error body."""
    try:
        data = json.loads(body)
    except ValueError:
        return "", "", []
    if isinstance(data, list) and data:  # a streamed error may come as an array
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return "", "", []
    details = [d for d in err.get("details") or () if isinstance(d, dict)]
    return str(err.get("status") or ""), str(err.get("message") or ""), details


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    for d in details:
        if str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(d.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _retyped(err: errors.APIError, cls: type[errors.APIError], message: str) -> errors.APIError:
    """``err`` as another error class, keeping every attribute (status, body, headers…)."""
    new = cls(
        message,
        status=err.status,
        body=err.body,
        provider=err.provider,
        profile=err.profile,
        model=err.model,
        code=err.code,
    )
    for name, value in vars(err).items():
        vars(new).setdefault(name, value)
    new.message = message
    return new


class GeminiProvider(HTTPProvider):
    """Google's Gemini models through ``generativelanguage.googleapis.com``."""

    type_name: ClassVar[str] = "gemini"
    needs_key: ClassVar[bool] = True
    key_env_var: ClassVar[str | None] = "GEMINI_API_KEY"
    default_base_url: ClassVar[str | None] = "https://generativelanguage.googleapis.com/v1beta"
    structured_mode: ClassVar[str] = "json_schema"

    def key_for(self, request: Request) -> Secret | None:
        """``GEMINI_API_KEY``, else ``GOOGLE_API_KEY`` (the other name Google's tools use)."""
        if request.api_key or self.profile.get("api_key_env"):
            return super().key_for(request)
        from llmnb import config

        for var in (self.key_env_var, ALT_KEY_ENV):
            keys = config.resolve_secrets(self.profile_name, self.profile, var)
            if keys:
                return keys[0]
        try:
            return Secret(config.require_api_key(self.profile_name, self.profile, self.key_env_var))
        except errors.MissingAPIKeyError as exc:
            raise errors.MissingAPIKeyError(
                f"{exc} ({ALT_KEY_ENV} is read too when GEMINI_API_KEY is not set.)"
            ) from None

    # --- request --------------------------------------------------------------------
    def body(self, request: Request) -> dict[str, Any]:
        system = [m.content for m in request.messages if m.role.instructs]
        contents: list[dict[str, Any]] = []
        for m in request.messages:
            if m.role.instructs:
                continue
            role = "model" if m.role is Role.ASSISTANT else "user"
            parts = _parts_of(m) if m.has_attachments else [{"text": m.content}]
            if contents and contents[-1]["role"] == role:
                contents[-1]["parts"].extend(parts)
            else:
                contents.append({"role": role, "parts": parts})
        if tools_wire.has_tool_turns(request):
            contents = tools_wire.gemini_turns(request.messages)
        body: dict[str, Any] = {"contents": contents}
        body.update(tools_wire.gemini_tools(request))
        if system:
            body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
        config: dict[str, Any] = {}
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if request.response_schema is not None:
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = dict(request.response_schema)
        for name, value in request.extra.items():
            field = _CONFIG_FIELDS.get(name, name)
            if field in _CONFIG_NAMES:
                if field == "stopSequences" and isinstance(value, str):
                    value = [value]
                config[field] = value
            elif name == "generationConfig" and isinstance(value, Mapping):
                config.update(value)
            else:
                body[name] = value
        if config:
            body["generationConfig"] = config
        return body

    def build(self, request: Request) -> HTTPCall:
        base = self.base_url or ""
        # "models/gemini-2.5-flash" (as the API lists them) and "gemini-2.5-flash" both work.
        model = urllib.parse.quote(request.model.removeprefix("models/"), safe="-._~")
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        key = self.key_for(request)
        headers: dict[str, str | Secret] = {}
        secrets: tuple[Secret, ...] = ()
        if key:
            headers["x-goog-api-key"] = key
            secrets = (key,)
        self.last_key_id = key_fingerprint(key)
        return HTTPCall(
            url=f"{base}/models/{model}:{method}",
            json=self.body(request),
            headers=headers,
            secrets=secrets,
        )

    # --- embeddings: models/{m}:batchEmbedContents -----------------------------------
    supports_embeddings: ClassVar[bool] = True
    embed_batch_limit: ClassVar[int] = 100  # the API refuses more requests in one batch

    def build_embedding(self, request: Request) -> HTTPCall:
        call = self.build(request)  # the key header and the model's URL
        call.url = call.url.rsplit(":", 1)[0] + ":batchEmbedContents"
        name = "models/" + request.model.removeprefix("models/")
        dimensions = (request.extra.get(EMBEDDING) or {}).get("dimensions")
        requests: list[dict[str, Any]] = []
        for m in request.messages:
            one: dict[str, Any] = {"model": name, "content": {"parts": [{"text": m.content}]}}
            if dimensions is not None:
                one["outputDimensionality"] = dimensions
            requests.append(one)
        call.json = {"requests": requests}
        return call

    def parse_embedding(self, data: Any, request: Request) -> Completion:
        # batchEmbedContents reports no tokens: estimated from the texts, and marked so.
        prompt = sum(estimate_tokens(m.content) for m in request.messages)
        return Completion(
            content="",
            model=request.model.removeprefix("models/"),
            usage=Usage(prompt, 0, estimated=True),
            parsed=[item["values"] for item in data["embeddings"]],
        )

    # --- response -------------------------------------------------------------------
    def _chunk(self, data: Mapping[str, Any]) -> Chunk:
        chunk = Chunk(model=data.get("modelVersion"), usage=_usage(data.get("usageMetadata")))
        for candidate in (data.get("candidates") or ())[:1]:
            for part in (candidate.get("content") or {}).get("parts") or ():
                if "functionCall" in part:
                    n = len(chunk.tool_calls)
                    chunk.tool_calls += (tools_wire.gemini_tool_call(part, n),)
                    continue
                text = part.get("text") or ""
                if part.get("thought"):
                    chunk.reasoning += text
                else:
                    chunk.content += text
            reason = candidate.get("finishReason")
            if reason:
                chunk.finish_reason = _FINISH.get(reason, str(reason).lower())
        return chunk

    def _blocked(self, data: Mapping[str, Any]) -> errors.APIError:
        feedback = data.get("promptFeedback") or {}
        reason = feedback.get("blockReason") or "no candidates"
        return errors.InvalidRequestError(
            f"Gemini returned no answer: the prompt was blocked ({reason}). "
            "Rephrase the prompt or adjust safetySettings.",
            status=200,
            provider=self.type_name,
            profile=self.profile_name,
            model=self.model,
            code=str(reason),
        )

    def parse(self, data: Any, request: Request) -> Completion:
        if isinstance(data, dict) and "error" in data:
            raise self._error(500, {}, json.dumps(data).encode(), self._answer_call(request))
        if not data.get("candidates"):
            raise self._blocked(data)
        chunk = self._chunk(data)
        return Completion(
            content=chunk.content,
            model=str(chunk.model or request.model),
            usage=chunk.usage or Usage(),
            finish_reason=chunk.finish_reason,
            reasoning=chunk.reasoning,
            raw=data,
            tool_calls=list(chunk.tool_calls),
        )

    def parse_event(self, event: SSEEvent, request: Request) -> Chunk | None:
        data = self._load_event(event, request)
        if not isinstance(data, dict):
            raise TypeError(f"stream event is {type(data).__name__}, expected an object")
        if "error" in data:
            status = (data["error"] or {}).get("code")
            status = status if isinstance(status, int) and status >= 400 else 500
            err = self._error(status, {}, event.data.encode(), self._answer_call(request))
            err.message = "error in the middle of the stream: " + err.message
            raise err
        if "candidates" not in data and (data.get("promptFeedback") or {}).get("blockReason"):
            raise self._blocked(data)
        return self._chunk(data)

    # The body's end is the end of a Gemini stream; it is complete when some event said
    # why it finished. Each stream tracks that itself (the provider is shared).
    def stream_ended_early(self, request: Request) -> None:
        """No end marker exists in this protocol: see :meth:`_check_finished`."""

    def _check_finished(self, finished: bool) -> None:
        if not finished:
            raise errors.NetworkError(
                "the stream ended before Gemini said why it finished (no finishReason; "
                "connection cut?); the answer is incomplete.",
                provider=self.type_name,
                profile=self.profile_name,
                model=self.model,
            )

    def stream(self, request: Request) -> Iterator[Chunk]:
        finished = False
        for chunk in super().stream(request):
            finished = finished or chunk.finish_reason is not None
            yield chunk
        self._check_finished(finished)

    async def astream(self, request: Request) -> AsyncIterator[Chunk]:
        finished = False
        async for chunk in super().astream(request):
            finished = finished or chunk.finish_reason is not None
            yield chunk
        self._check_finished(finished)

    # --- errors ---------------------------------------------------------------------
    def _error(
        self, status: int, headers: Mapping[str, str], body: bytes, call: HTTPCall
    ) -> errors.APIError:
        err = super()._error(status, headers, body, call)
        rpc_status, said, details = _details(body)
        said = scrub(said, call.secrets)
        reasons = " ".join(str(d.get("reason", "")) for d in details)
        text = f"{err.message} {reasons}".lower()
        if status == 400 and ("api_key_invalid" in text or "api key not valid" in text):
            # Gemini rejects a bad key with 400, not 401.
            var = self.profile.get("api_key_env") or f"{self.key_env_var} (or {ALT_KEY_ENV})"
            return _retyped(
                err,
                errors.AuthenticationError,
                f"authentication failed (HTTP 400): the API key is not valid. Check the key "
                f"in {var}; a fresh key goes in .env or the environment.",
            )
        if status == 429 or rpc_status == "RESOURCE_EXHAUSTED":
            quota_ids = " ".join(
                str(v.get("quotaId", ""))
                for d in details
                for v in d.get("violations") or ()
                if isinstance(v, dict)
            )
            if "perday" in quota_ids.lower():
                return _retyped(
                    err,
                    errors.InsufficientQuotaError,
                    f"daily quota exhausted (HTTP {status}, {quota_ids.strip()}): retrying "
                    "today will not help. Wait for the reset or raise the quota "
                    "(billing) in Google AI Studio.",
                )
            # Gemini words every 429 as "exceeded your current quota … billing", per-minute
            # limits included; those lift after RetryInfo's delay, so they are retried.
            wait = _retry_delay(details)
            if wait is None:
                wait = parse_retry_after(headers)
            limited = errors.RateLimitError(
                f"rate limited (HTTP {status}, {rpc_status or 'RESOURCE_EXHAUSTED'})"
                + (f": {said}" if said else "."),
                retry_after=wait,
                status=err.status,
                body=err.body,
                provider=err.provider,
                profile=err.profile,
                model=err.model,
                code=err.code,
            )
            for name, value in vars(err).items():
                vars(limited).setdefault(name, value)
            return limited
        return err


def _parts_of(m: Message) -> list[dict[str, Any]]:
    from llmnb.providers._parts_wire import gemini_parts

    return gemini_parts(m)
