"""AWS Bedrock's Converse API, signed with SigV4 through botocore (``llmnb[bedrock]``).

``POST {endpoint}/model/{modelId}/converse`` answers JSON; ``/converse-stream`` answers
AWS event-stream binary frames (decoded by botocore's own parser). Credentials come from
botocore's standard chain (environment, shared profile, SSO, instance role), read for
every request so refreshed ones apply; the region from the profile, ``AWS_REGION``,
``AWS_DEFAULT_REGION`` or the shared config.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar

from llmnb import errors
from llmnb._http import SSEEvent, body_excerpt, detach, parse_retry_after, scrub
from llmnb.providers._cloud import require_extra
from llmnb.providers.base import HTTPCall, HTTPProvider, key_fingerprint
from llmnb.types import Chunk, Completion, Request, Role, Secret, Usage

__all__ = ["BedrockProvider"]

_ADVICE = "Run `aws sso login` (with AWS_PROFILE set) or set AWS credentials "
_ADVICE += "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws)."
# Bedrock's exception names -> (error class, HTTP status it stands for).
_AUTH = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "IncompleteSignatureException",
    "MissingAuthenticationTokenException",
}
_TYPES: dict[str, tuple[type[errors.APIError], int]] = {
    "ThrottlingException": (errors.RateLimitError, 429),
    "ServiceQuotaExceededException": (errors.RateLimitError, 429),
    "ValidationException": (errors.InvalidRequestError, 400),
    "ResourceNotFoundException": (errors.InvalidRequestError, 404),
    "ModelErrorException": (errors.ProviderError, 424),
    "ModelNotReadyException": (errors.OverloadedError, 429),
    "ServiceUnavailableException": (errors.OverloadedError, 503),
    "InternalServerException": (errors.ProviderError, 500),
    "ModelStreamErrorException": (errors.ProviderError, 424),
    "ModelTimeoutException": (errors.LLMTimeoutError, 408),
    **dict.fromkeys(_AUTH, (errors.AuthenticationError, 403)),
}
_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def _usage(raw: Mapping[str, Any] | None) -> Usage | None:
    if not raw:
        return None
    read = int(raw.get("cacheReadInputTokens") or 0)
    written = int(raw.get("cacheWriteInputTokens") or 0)
    return Usage(
        prompt_tokens=int(raw.get("inputTokens") or 0) + read + written,
        completion_tokens=int(raw.get("outputTokens") or 0),
        cached_tokens=read,
        cache_write_tokens=written,
    )


def _exception_type(value: str | None) -> str:
    # "ThrottlingException:http://internal.amazon.com/..." or "com.amazon...#Throttling..."
    return (value or "").split(":", 1)[0].rsplit("#", 1)[-1]


class _EventStreamDecoder:
    """AWS event-stream frames → SSE-like events (``event`` = the frame's event type or
    ``exception:<type>``); after ``metadata`` (the last event) the end is reported."""

    def __init__(self, eventstream: Any) -> None:
        self._buffer = eventstream.EventStreamBuffer()
        self._finished = False

    def feed(self, data: bytes) -> list[SSEEvent]:
        self._buffer.add_data(data)
        out: list[SSEEvent] = []
        for message in self._buffer:
            headers = message.headers
            kind = headers.get(":message-type", "event")
            payload = message.payload.decode("utf-8", "replace")
            if kind == "event":
                name = str(headers.get(":event-type", ""))
                self._finished = self._finished or name == "metadata"
            else:
                name = "exception:" + str(
                    headers.get(":exception-type") or headers.get(":error-code") or "Unknown"
                )
            out.append(SSEEvent(data=payload or "{}", event=name))
        return out

    def flush(self) -> list[SSEEvent]:
        return [SSEEvent(data="", event="__end__")] if self._finished else []


class BedrockProvider(HTTPProvider):
    """A model on Amazon Bedrock, by model id or inference-profile id."""

    type_name: ClassVar[str] = "bedrock"
    binary_stream: ClassVar[bool] = True

    def __init__(self, profile_name: str, profile: Mapping[str, Any], model: str) -> None:
        super().__init__(profile_name, profile, model)
        where = (profile_name, self.type_name)
        require_extra("botocore", "bedrock", *where)
        self._auth = require_extra("botocore.auth", "bedrock", *where)
        self._awsrequest = require_extra("botocore.awsrequest", "bedrock", *where)
        self._eventstream = require_extra("botocore.eventstream", "bedrock", *where)
        session = require_extra("botocore.session", "bedrock", *where)
        aws_profile = profile.get("aws_profile")
        self._session = session.Session(profile=str(aws_profile) if aws_profile else None)

    @property
    def region(self) -> str:
        from llmnb import config

        region = (
            self.profile.get("region")
            or (config.get_env("AWS_REGION") or "").strip()
            or (config.get_env("AWS_DEFAULT_REGION") or "").strip()
            or self._session.get_config_variable("region")
        )
        if not region:
            raise errors.ConfigError(
                f"profile {self.profile_name!r} (type bedrock) needs a region: `region: "
                "us-east-1` in config/settings.yaml, or AWS_REGION in .env."
            )
        return str(region)

    @property
    def base_url(self) -> str | None:
        url = self.profile.get("base_url")
        if url:
            return str(url).rstrip("/")
        try:
            return f"https://bedrock-runtime.{self.region}.amazonaws.com"
        except errors.ConfigError:
            return None

    def _credentials(self) -> Any:
        kw: dict[str, Any] = {
            "provider": self.type_name,
            "profile": self.profile_name,
            "model": self.model,
        }
        try:
            credentials = self._session.get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials is not None else None
        except Exception as exc:  # SSO token expired, bad profile, ...
            detach(exc)
            raise errors.AuthenticationError(
                f"AWS credentials could not be loaded ({type(exc).__name__}: "
                f"{scrub(str(exc))[:300]}). {_ADVICE}",
                **kw,
            ) from None
        if frozen is None or not frozen.access_key or not frozen.secret_key:
            raise errors.AuthenticationError(f"no AWS credentials found. {_ADVICE}", **kw)
        Secret(frozen.secret_key)  # registered: scrubbed from every message and row
        if frozen.token:
            Secret(frozen.token)
        return frozen

    def body(self, request: Request) -> dict[str, Any]:
        system = [
            {"text": m.content} for m in request.messages if m.role in (Role.SYSTEM, Role.DEVELOPER)
        ]
        messages: list[dict[str, Any]] = []
        for m in request.messages:
            if m.role in (Role.SYSTEM, Role.DEVELOPER):
                continue
            role = "assistant" if m.role is Role.ASSISTANT else "user"
            if messages and messages[-1]["role"] == role:  # Converse wants turns to alternate
                messages[-1]["content"].append({"text": m.content})
            else:
                messages.append({"role": role, "content": [{"text": m.content}]})
        body: dict[str, Any] = {"messages": messages}
        if system:
            body["system"] = system
        inference: dict[str, Any] = {}
        if request.max_tokens is not None:
            inference["maxTokens"] = request.max_tokens
        if request.temperature is not None:
            inference["temperature"] = request.temperature
        if inference:
            body["inferenceConfig"] = inference
        body.update(request.extra)
        return body

    def build(self, request: Request) -> HTTPCall:
        base = self.base_url or f"https://bedrock-runtime.{self.region}.amazonaws.com"
        model = urllib.parse.quote(request.model, safe="")
        url = f"{base}/model/{model}/{'converse-stream' if request.stream else 'converse'}"
        content = json.dumps(self.body(request), separators=(",", ":")).encode()
        credentials = self._credentials()
        signed = self._awsrequest.AWSRequest(
            method="POST", url=url, data=content, headers={"content-type": "application/json"}
        )
        self._auth.SigV4Auth(credentials, "bedrock", self.region).add_auth(signed)
        headers: dict[str, str | Secret] = {
            "authorization": Secret(signed.headers["Authorization"]),
            "x-amz-date": signed.headers["X-Amz-Date"],
        }
        if request.stream:
            headers["accept"] = "application/vnd.amazon.eventstream"
        if credentials.token:
            headers["x-amz-security-token"] = Secret(credentials.token)
        self.last_key_id = key_fingerprint(credentials.access_key)
        return HTTPCall(
            url=url,
            json=None,
            content=content,
            headers=headers,
            secrets=tuple(s for s in (credentials.secret_key, credentials.token) if s),
        )

    def parse(self, data: Any, request: Request) -> Completion:
        message = (data.get("output") or {}).get("message") or {}
        parts = message.get("content") or []
        text = "".join(str(p.get("text") or "") for p in parts if isinstance(p, Mapping))
        thinking = "".join(
            str(((p.get("reasoningContent") or {}).get("reasoningText") or {}).get("text") or "")
            for p in parts
            if isinstance(p, Mapping)
        )
        stop = data.get("stopReason")
        return Completion(
            content=text,
            model=request.model,
            usage=_usage(data.get("usage")) or Usage(),
            finish_reason=_STOP.get(stop, stop),
            reasoning=thinking,
            raw=data,
        )

    def stream_decoder(self) -> Any:
        return _EventStreamDecoder(self._eventstream)

    def parse_event(self, event: SSEEvent, request: Request) -> Chunk | None:
        if event.event == "__end__":
            raise StopIteration
        if event.event.startswith("exception:"):
            kind = event.event.partition(":")[2]
            status = _TYPES.get(kind, (errors.ProviderError, 500))[1]
            body = json.dumps({**json.loads(event.data), "__type": kind}).encode()
            err = self._error(status, {}, body, self._answer_call(request))
            err.message = "error in the middle of the stream: " + err.message
            err.args = (err.message,)
            raise err
        data = json.loads(event.data)
        if event.event == "contentBlockDelta":
            delta = data.get("delta") or {}
            thinking = (delta.get("reasoningContent") or {}).get("text") or ""
            return Chunk(content=str(delta.get("text") or ""), reasoning=str(thinking))
        if event.event == "messageStop":
            stop = data.get("stopReason")
            return Chunk(finish_reason=_STOP.get(stop, stop))
        if event.event == "metadata":
            return Chunk(usage=_usage(data.get("usage")))
        return None

    def _error(
        self, status: int, headers: Mapping[str, str], body: bytes, call: HTTPCall
    ) -> errors.APIError:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        said = data if isinstance(data, dict) else {}
        kind = _exception_type(headers.get("x-amzn-errortype") or said.get("__type"))
        found = _TYPES.get(kind)
        if found is None:
            return super()._error(status, headers, body, call)
        cls, _ = found
        message = str(said.get("message") or said.get("Message") or "").strip().rstrip(".")
        text = f"Bedrock {kind} (HTTP {status}): {scrub(message, call.secrets)}."
        if cls is errors.AuthenticationError:
            text += " " + _ADVICE
        elif kind == "ResourceNotFoundException" or "model identifier" in message.lower():
            text += (
                f" Check `model: {self.model}` in profile {self.profile_name!r}: a Bedrock "
                "model id or inference profile enabled in region " + self._region_or("?") + "."
            )
        elif cls is errors.RateLimitError:
            text += " Wait a little and run it again, or set `rate_limits:` in the profile."
        kw: dict[str, Any] = {
            "status": status,
            "body": body_excerpt(body, call.secrets),
            "provider": self.type_name,
            "profile": self.profile_name,
            "model": self.model,
            "code": kind,
        }
        if cls is errors.RateLimitError:
            err: errors.APIError = errors.RateLimitError(
                text, retry_after=parse_retry_after(headers), **kw
            )
        else:
            err = cls(text, **kw)
        err.headers = headers
        return err

    def _region_or(self, default: str) -> str:
        try:
            return self.region
        except errors.ConfigError:
            return default
