"""Per-call policies wrapped around a provider: retry (more arrive with the manager)."""

from llmnb.middleware.retry import RetryPolicy

__all__ = ["RetryPolicy"]
