"""complaint-generator's ``LLMRouterBackend``: a callable backend over ``generate_text``."""

from __future__ import annotations

from typing import Any

from llmnb.compat.llm_router.router import generate_text

__all__ = ["LLMRouter", "LLMRouterBackend"]


class LLMRouterBackend:
    """``LLMRouterBackend(**backend_config)``; ``backend(text) -> str``.

    ``provider`` / ``model`` pick the route (None: auto-detect); the other keys of the
    backend's config (``max_tokens``, tracing and CLI keys …) go to :func:`generate_text`.
    Errors are llmnb's typed errors (``llmnb.errors``), not ``Exception('llm_router_error…')``.
    """

    def __init__(
        self, id: str, provider: str | None = None, model: str | None = None, **config: Any
    ) -> None:
        self.id = id
        self.provider = provider
        self.model = model
        self.config = config

    def __call__(self, text: str) -> str:
        return generate_text(
            prompt=text, provider=self.provider, model_name=self.model, **self.config
        )

    def __repr__(self) -> str:
        return f"<LLMRouterBackend id={self.id!r} provider={self.provider!r} model={self.model!r}>"


LLMRouter = LLMRouterBackend  # the backend module's own alias
