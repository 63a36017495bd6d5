"""Built-in providers, one module per wire protocol.

``BUILTINS`` maps each built-in ``type`` to ``"module:Class"``; the registry imports a
module only when a profile uses it, so unused protocols cost nothing at start-up.

What it holds: the ``Provider`` seam and the shared HTTP I/O (``base``), the OpenAI,
Anthropic and Gemini wire protocols, the coding-agent CLIs, ``local_hf`` and ``mock``. A
provider knows nothing of retries, pools or usage: it may import ``config`` (keys at call
time), ``_http``, ``types`` and ``errors``, never ``middleware`` or ``client``.
"""

from llmnb.providers.base import HTTPCall, HTTPProvider, Provider

__all__ = ["BUILTINS", "HTTPCall", "HTTPProvider", "Provider"]

_OPENAI = "llmnb.providers.openai_compat"

BUILTINS: dict[str, str] = {
    "mock": "llmnb.providers.mock:MockProvider",
    "anthropic": "llmnb.providers.anthropic:AnthropicProvider",
    "gemini": "llmnb.providers.gemini:GeminiProvider",
    "claude_code": "llmnb.providers.cli_claude:ClaudeCodeProvider",
    "codex_cli": "llmnb.providers.cli_codex:CodexCLIProvider",
    "copilot_cli": "llmnb.providers.cli_copilot:CopilotCLIProvider",
    "gemini_cli": "llmnb.providers.cli_gemini:GeminiCLIProvider",
    "local_hf": "llmnb.providers.local_hf:LocalHFProvider",
    "azure_openai": "llmnb.providers.azure_openai:AzureOpenAIProvider",
    "bedrock": "llmnb.providers.bedrock:BedrockProvider",
    "vertex": "llmnb.providers.vertex:VertexProvider",
    "vertex_anthropic": "llmnb.providers.vertex:VertexAnthropicProvider",
    **{
        name: f"{_OPENAI}:PRESETS[{name}]"
        for name in (
            "openai_compatible",
            "openai",
            "openrouter",
            "groq",
            "together",
            "deepseek",
            "mistral",
            "xai",
            "ollama",
            "vllm",
            "lmstudio",
        )
    },
}
