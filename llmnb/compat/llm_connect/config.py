"""``llm_connect.config``: profile, model and parameter resolution (llmnb's own)."""

from __future__ import annotations

from llmnb.config import (
    get_active_profile,
    get_llm_params,
    get_model_name,
    validate_user_simulator_settings,
)

__all__ = [
    "get_active_profile",
    "get_llm_params",
    "get_model_name",
    "validate_user_simulator_settings",
]
