"""Test helpers: :class:`FakeLLMServer`, a real HTTP server speaking LLM wire formats
(OpenAI chat completions, Anthropic Messages, Gemini generateContent).

Example::

    from llmnb.testing import FakeLLMServer, Fault

    with FakeLLMServer(responses={"hello": "Hi there!"}) as srv:
        srv.script(Fault.rate_limit(retry_after=1.5), Fault.reset())
        ...  # point a client at srv.base_url

Standard library only, so importing it stays cheap. ``python -m llmnb.testing --port 0``
runs one in the foreground and prints its base_url.
"""

from __future__ import annotations

from llmnb.testing._faults import ErrorInfo, Fault
from llmnb.testing._server import FakeLLMServer, Handler
from llmnb.testing._wire import RecordedRequest, count_tokens

__all__ = [
    "ErrorInfo",
    "FakeLLMServer",
    "Fault",
    "Handler",
    "RecordedRequest",
    "count_tokens",
]
