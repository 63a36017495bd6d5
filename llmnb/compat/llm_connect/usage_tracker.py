"""``llm_connect.usage_tracker``: the context-aware tracker (llmnb's own).

``UsageTracker.record(prompt_tokens, completion_tokens)`` / ``record_unknown()`` work as
in llm_connect; llmnb's tracker also prices each row and keeps one row per attempt.
``set_tracker`` returns a token (``llmnb.usage.reset_tracker(token)`` restores the
previous tracker); llm_connect's returned nothing, so code that ignores it is unchanged.
"""

from __future__ import annotations

from llmnb.usage import UsageTracker, get_tracker, reset_tracker, set_tracker

__all__ = ["UsageTracker", "get_tracker", "reset_tracker", "set_tracker"]
