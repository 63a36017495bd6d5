"""Gemini on Vertex AI: the Gemini wire under a project's and location's path, with a
required ``Authorization: Bearer`` token instead of an API key."""

from __future__ import annotations

import dataclasses
import re

from llmnb.testing._anthropic_wire import AnthropicMessagesWire
from llmnb.testing._gemini_wire import GeminiWire
from llmnb.testing._wire import ChatCall, RecordedRequest

__all__ = ["VERTEX_ANTHROPIC_PATH", "VERTEX_PATH", "VertexAnthropicWire", "VertexGeminiWire"]

VERTEX_PATH = re.compile(
    r"/v1(?:beta1)?/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/google/models/(?P<model>[^/:]+)"
    r":(?P<method>generateContent|streamGenerateContent)"
)

VERTEX_ANTHROPIC_PATH = re.compile(
    r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/anthropic/models/(?P<model>[^/:]+):(?P<method>rawPredict|streamRawPredict)"
)
_BEARER = "Request is missing required authentication credential (Bearer token)."


class VertexGeminiWire(GeminiWire):
    """``POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent``."""

    name = "vertex"

    def parse(self, request: RecordedRequest, match: re.Match[str], model: str) -> ChatCall:
        call = GeminiWire.parse(self, request, match, model)
        if call.problem is None and not request.headers.get("authorization", "").startswith(
            "Bearer "
        ):
            return ChatCall(
                call.model,
                call.stream,
                call.include_usage,
                problem=_BEARER,
            )
        return call


class VertexAnthropicWire(AnthropicMessagesWire):
    """``POST .../publishers/anthropic/models/{m}:rawPredict`` (``:streamRawPredict``):
    Anthropic's Messages body without ``model``, with ``anthropic_version``."""

    name = "vertex_anthropic"

    def parse(self, request: RecordedRequest, match: re.Match[str], model: str) -> ChatCall:
        import urllib.parse

        path_model = urllib.parse.unquote(match["model"])
        body = request.json if isinstance(request.json, dict) else {}
        # Read as a Messages request with the path's model (Vertex takes none in the body).
        as_messages = dataclasses.replace(request, json={**body, "model": path_model})
        call = AnthropicMessagesWire.parse(self, as_messages, match, path_model)
        problem = call.problem
        if not request.headers.get("authorization", "").startswith("Bearer "):
            problem = _BEARER
        elif body.get("anthropic_version") != "vertex-2023-10-16":
            problem = "anthropic_version: Input should be 'vertex-2023-10-16'"
        elif "model" in body:
            problem = "model: Extra inputs are not permitted (the model is in the URL)"
        elif (match["method"] == "streamRawPredict") != call.stream:
            problem = "streamRawPredict needs stream: true (and rawPredict stream: false)"
        return ChatCall(
            path_model,
            call.stream,
            call.include_usage,
            call.prompt_text,
            call.last_user,
            call.max_tokens,
            call.tool,
            problem,
        )
