"""``src.llm.testing``: a client that answers from a list, offline.

``MockLLMClient(responses=["Response 1", "Response 2"])`` answers in order (the last
one again once the list is used up). Its calls run through llmnb's client, so they are
usage rows like any other (tokens estimated, profile ``mock``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from llmnb.compat.llm_module.core.manager import ModuleClient
from llmnb.providers.base import Provider
from llmnb.types import Completion, Request, Usage

__all__ = ["MockLLMClient"]


class _ListProvider(Provider):
    """Answers with the next response of a list."""

    type_name: ClassVar[str] = "mock"

    def __init__(self, responses: Sequence[str], model: str) -> None:
        super().__init__("mock", {}, model)
        if not responses:
            from llmnb.errors import InvalidOptionError

            raise InvalidOptionError("MockLLMClient(responses=[...]) needs at least one response.")
        self._responses = [str(r) for r in responses]
        self._next = 0
        self._lock = threading.Lock()

    def complete(self, request: Request) -> Completion:
        from llmnb.providers.mock import estimate_tokens

        with self._lock:
            text = self._responses[min(self._next, len(self._responses) - 1)]
            self._next += 1
        prompt = sum(estimate_tokens(m.content) for m in request.messages)
        usage = Usage(prompt, estimate_tokens(text), estimated=True)
        return Completion(content=text, model=request.model, usage=usage, finish_reason="stop")

    async def acomplete(self, request: Request) -> Completion:
        return self.complete(request)


class MockLLMClient(ModuleClient):
    """A module client whose answers are ``responses``, in order."""

    def __init__(self, responses: Sequence[str], model: str = "mock-1", **params: Any) -> None:
        from llmnb.client.client import LLMClient

        client = LLMClient(_ListProvider(responses, model), profile="mock", params=params)
        super().__init__(client, "mock")
        self.calls = 0

    async def complete(self, messages: Any, response_model: Any = None, **params: Any) -> Any:
        self.calls += 1
        return await super().complete(messages, response_model=response_model, **params)
