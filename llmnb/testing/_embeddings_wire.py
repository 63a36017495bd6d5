"""Embeddings on FakeLLMServer: OpenAI ``POST /v1/embeddings`` and Gemini
``POST /v1beta/models/{model}:batchEmbedContents``.

Vectors are deterministic (SHA-256 of the text), ``dimensions`` /
``outputDimensionality`` long (default 8). OpenAI answers carry ``usage.prompt_tokens``
(``ceil(chars / 4)`` per text); Gemini's, like the real API, carry none. Scripted faults
(``srv.script``) apply: ``Fault.status``/``rate_limit`` as errors, ``Fault.json`` as
any body (wrong vector counts), ``Fault.reset``, ``Fault.slow``. ``peak_in_flight`` is
the most embedding requests the server was answering at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from typing import Any

from llmnb.testing._faults import ErrorInfo, Fault
from llmnb.testing._gemini_wire import gemini_error
from llmnb.testing._http11 import Responder
from llmnb.testing._openai_wire import openai_error
from llmnb.testing._wire import RecordedRequest, count_tokens

__all__ = ["EmbeddingsWire", "gemini_models"]

DEFAULT_DIMENSIONS = 8


def fake_vector(text: str, size: int) -> list[float]:
    """``size`` numbers in [-1, 1] from SHA-256 of the text."""
    out: list[float] = []
    counter = 0
    while len(out) < size:
        digest = hashlib.sha256(f"{counter}:{text}".encode("utf-8", "surrogatepass")).digest()
        out.extend(round((b - 127.5) / 127.5, 6) for b in digest)
        counter += 1
    return out[:size]


class EmbeddingsWire:
    """The two embeddings routes; ``next_fault`` is the server's fault queue."""

    def __init__(self, next_fault: Callable[[RecordedRequest], Fault | None]) -> None:
        self._next_fault = next_fault
        self.in_flight = 0
        self.peak_in_flight = 0
        self.latency = 0.0

    async def openai(self, out: Responder, request: RecordedRequest, match: re.Match[str]) -> None:
        await self._answer(out, request, gemini=False)

    async def gemini(self, out: Responder, request: RecordedRequest, match: re.Match[str]) -> None:
        await self._answer(out, request, gemini=True, model=match["model"])

    async def _answer(
        self, out: Responder, request: RecordedRequest, *, gemini: bool, model: str = ""
    ) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            fault = self._next_fault(request)
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if fault is not None and fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault is not None and fault.kind not in ("slow",):
                await self._fault(out, fault, gemini)
                return
            body = request.json if isinstance(request.json, dict) else {}
            try:
                answer = self._gemini(body) if gemini else self._openai(body)
            except (KeyError, TypeError, ValueError) as exc:
                message = f"Invalid embeddings request: {type(exc).__name__}: {exc}"
                info = ErrorInfo(message, "invalid_request_error")
                error = gemini_error(400, info) if gemini else openai_error(info)
                await out.send_json(400, error)
                return
            await out.send_json(200, answer)
        finally:
            self.in_flight -= 1

    async def _fault(self, out: Responder, fault: Fault, gemini: bool) -> None:
        if fault.kind == "reset":
            out.reset()
        elif fault.kind == "json":
            await out.send_json(fault.http_status, fault.body, fault.headers)
        elif fault.kind == "error" and fault.error is not None:
            status = fault.http_status
            body = gemini_error(status, fault.error) if gemini else openai_error(fault.error)
            await out.send_json(status, body, fault.headers)
        else:
            info = ErrorInfo(f"fault {fault!r} is not scripted for embeddings", "server_error")
            await out.send_json(500, openai_error(info))

    def _openai(self, body: dict[str, Any]) -> dict[str, Any]:
        texts = body["input"]
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise TypeError("`input` must be a string or a list of strings")
        size = int(body.get("dimensions") or body.get("output_dimension") or DEFAULT_DIMENSIONS)
        tokens = sum(count_tokens(t) for t in texts)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": fake_vector(t, size)}
                for i, t in enumerate(texts)
            ],
            "model": str(body["model"]),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _gemini(self, body: dict[str, Any]) -> dict[str, Any]:
        out = []
        for one in body["requests"]:
            text = "".join(str(p["text"]) for p in one["content"]["parts"])
            size = int(one.get("outputDimensionality") or DEFAULT_DIMENSIONS)
            out.append({"values": fake_vector(text, size)})
        return {"embeddings": out}


def gemini_models(models: list[str]) -> dict[str, Any]:
    """``GET /v1beta/models``: Gemini's listing shape (``models/…`` names, token limits)."""
    return {
        "models": [
            {"name": f"models/{m}", "inputTokenLimit": 1048576, "outputTokenLimit": 65536}
            for m in models
        ]
    }
