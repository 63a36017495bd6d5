"""Azure OpenAI's form of the chat-completions wire: the deployment in the path, a
required ``api-version`` query and an ``api-key`` or ``Authorization: Bearer`` header."""

from __future__ import annotations

import re
import urllib.parse

from llmnb.testing._openai_wire import OpenAIChatWire
from llmnb.testing._wire import ChatCall, RecordedRequest

__all__ = ["AZURE_PATH", "AzureChatWire"]

AZURE_PATH = re.compile(r"/openai/deployments/(?P<deployment>[^/]+)/chat/completions/?")


class AzureChatWire(OpenAIChatWire):
    """``POST /openai/deployments/{deployment}/chat/completions?api-version=...``."""

    name = "azure_openai"

    def parse(self, request: RecordedRequest, match: re.Match[str], model: str) -> ChatCall:
        deployment = urllib.parse.unquote(match["deployment"])
        call = OpenAIChatWire.parse(self, request, match, deployment)
        problem = call.problem
        query = urllib.parse.parse_qs(request.query)
        auth = request.headers.get("authorization", "")
        if not query.get("api-version"):
            problem = "Missing required query parameter 'api-version'."
        elif not request.headers.get("api-key") and not auth.startswith("Bearer "):
            problem = "Missing 'api-key' header or 'Authorization: Bearer' token."
        # Azure answers with the model behind the deployment, not the deployment name.
        return ChatCall(
            deployment,
            call.stream,
            call.include_usage,
            call.prompt_text,
            call.last_user,
            call.max_tokens,
            call.tool,
            problem,
        )
