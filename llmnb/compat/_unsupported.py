"""The one error for seed APIs that llmnb.compat deliberately does not port."""

from __future__ import annotations

from llmnb import errors

__all__ = ["NotPortedError"]


class NotPortedError(errors.ConfigError, ImportError):
    """A name a seed README uses that has no llmnb counterpart; the message says what to
    use instead. An ``ImportError`` too, so ``try: from … import X`` fallbacks still work."""
