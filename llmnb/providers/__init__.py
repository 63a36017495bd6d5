"""Built-in providers, one module per wire protocol.

``BUILTINS`` maps each built-in ``type`` to ``"module:Class"``; the registry imports a
module only when a profile uses it, so unused protocols cost nothing at start-up.
"""

from llmnb.providers.base import HTTPCall, HTTPProvider, Provider

__all__ = ["BUILTINS", "HTTPCall", "HTTPProvider", "Provider"]

_OPENAI = "llmnb.providers.openai_compat"

BUILTINS: dict[str, str] = {
    "mock": "llmnb.providers.mock:MockProvider",
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
