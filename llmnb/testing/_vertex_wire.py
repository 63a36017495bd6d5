"""Gemini on Vertex AI: the Gemini wire under a project's and location's path, with a
required ``Authorization: Bearer`` token instead of an API key."""

from __future__ import annotations

import re

from llmnb.testing._gemini_wire import GeminiWire
from llmnb.testing._wire import ChatCall, RecordedRequest

__all__ = ["VERTEX_PATH", "VertexGeminiWire"]

VERTEX_PATH = re.compile(
    r"/v1(?:beta1)?/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/google/models/(?P<model>[^/:]+)"
    r":(?P<method>generateContent|streamGenerateContent)"
)


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
                problem="Request is missing required authentication credential (Bearer token).",
            )
        return call
