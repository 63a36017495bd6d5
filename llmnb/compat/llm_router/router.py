"""``ipfs_datasets_py.llm_router.generate_text`` on llmnb.

``generate_text(prompt, provider=None, model_name=None, **config) -> str``. The provider
is ``provider``, else ``$IPFS_DATASETS_PY_LLM_PROVIDER``, else auto-detected: OpenRouter
when ``OPENROUTER_API_KEY`` (or ``IPFS_DATASETS_PY_OPENROUTER_API_KEY``) is set, else the
first agent CLI on PATH (codex, copilot, claude, gemini), else ``local_hf``. The model is
``model_name``, else ``$IPFS_DATASETS_PY_LLM_MODEL``, else the provider's default.
OpenRouter's endpoint is ``$IPFS_DATASETS_PY_OPENROUTER_BASE_URL`` (default
https://openrouter.ai/api/v1), its default model ``$IPFS_DATASETS_PY_OPENROUTER_MODEL``.

Each distinct (provider, model, settings) is one llmnb profile named
``llm_router.<provider>.<digest>``, built once: calls get llmnb's retries, CLI process
handling, tracing and a usage row per attempt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llmnb import errors

if TYPE_CHECKING:
    from llmnb.client.client import LLMClient
    from llmnb.client.manager import LLMManager

__all__ = ["PROVIDERS", "PROVIDER_ALIASES", "generate_text", "get_llm_provider", "reset_router"]

# router name -> llmnb provider type
PROVIDERS: dict[str, str] = {
    "openrouter": "openrouter",
    "local_hf": "local_hf",
    "codex_cli": "codex_cli",
    "copilot_cli": "copilot_cli",
    "claude_code": "claude_code",
    "gemini_cli": "gemini_cli",
}
PROVIDER_ALIASES: dict[str, str] = {"huggingface": "local_hf", "hf": "local_hf"}
_UNSUPPORTED = {
    # The seed README documents only copilot_sdk_* keys; the SDK's own docs describe its
    # Python API, not the wire. The protocol (JSON-RPC 2.0, Content-Length framed, over
    # the CLI's stdio or TCP) exists only as the preview SDK's generated code, so a fake
    # peer would copy one SDK version's internals rather than test against a contract.
    "copilot_sdk": (
        "not supported: the Copilot Python SDK drives the Copilot CLI over a JSON-RPC "
        "protocol that is defined only by the (preview) SDK's code, not documented; use "
        "provider='copilot_cli' (the same CLI, non-interactive, with copilot_config_dir, "
        "copilot_log_dir, resume_session_id, continue_session and tracing)"
    ),
    "ipfs_accelerate_py": "ipfs_accelerate_py is not supported by llmnb",
}
_CLI_ORDER = (
    ("codex", "codex_cli"),
    ("copilot", "copilot_cli"),
    ("claude", "claude_code"),
    ("gemini", "gemini_cli"),
)
_DEFAULT_MODELS = {"openrouter": "openai/gpt-4o-mini", "local_hf": "gpt2"}
OPENROUTER_URL = "https://openrouter.ai/api/v1"

# Call parameters (per call, on the wire or to llmnb); keys that configure the provider
# are mapped onto the profile by _profile_fields.
_CALL = ("max_tokens", "max_new_tokens", "temperature", "timeout", "top_p", "stop", "seed")
_IGNORED = ("type", "id")  # a backend config's own keys
_TRACE = ("trace", "trace_dir", "trace_jsonl_path")
_SESSION = ("resume_session_id", "continue_session")
_COPILOT = ("copilot_config_dir", "copilot_log_dir")
_CLAUDE_FLAGS: dict[str, str] = {  # key -> flag taking a value
    "claude_input_format": "--input-format",
    "claude_permission_mode": "--permission-mode",
    "claude_system_prompt": "--system-prompt",
    "claude_append_system_prompt": "--append-system-prompt",
    "claude_session_id": "--session-id",
    "claude_tools": "--tools",
}
_CLAUDE_SWITCHES: dict[str, str] = {
    "claude_include_partial_messages": "--include-partial-messages",
    "claude_no_session_persistence": "--no-session-persistence",
    "claude_fork_session": "--fork-session",
}
_CLAUDE_OTHER = (
    "claude_output_format",
    "claude_add_dir",
    "claude_allowed_tools",
    "claude_disallowed_tools",
)

_lock = threading.Lock()
_manager: LLMManager | None = None
_profiles: dict[str, str] = {}


def get_llm_provider(provider: str | None = None) -> str:
    """The provider name ``generate_text`` would use (aliases, env var, auto-detect)."""
    name = (provider or os.environ.get("IPFS_DATASETS_PY_LLM_PROVIDER") or "").strip().lower()
    name = PROVIDER_ALIASES.get(name, name)
    if not name:
        return _detect()
    if name in _UNSUPPORTED:
        raise errors.ProviderNotFoundError(f"llm_router provider {name!r}: {_UNSUPPORTED[name]}.")
    if name not in PROVIDERS:
        known = ", ".join(sorted({*PROVIDERS, *PROVIDER_ALIASES}))
        raise errors.ProviderNotFoundError(
            f"llm_router provider {name!r} is unknown; use one of {known}, or leave it out "
            "(or unset IPFS_DATASETS_PY_LLM_PROVIDER) to auto-detect."
        )
    return name


def _detect() -> str:
    if _openrouter_key_var():
        return "openrouter"
    for binary, name in _CLI_ORDER:
        if shutil.which(binary):
            return name
    return "local_hf"


def _openrouter_key_var() -> str | None:
    for var in ("IPFS_DATASETS_PY_OPENROUTER_API_KEY", "OPENROUTER_API_KEY"):
        if os.environ.get(var):
            return var
    return None


def generate_text(
    prompt: str, provider: str | None = None, model_name: str | None = None, **config: Any
) -> str:
    """The answer to ``prompt`` from the routed provider."""
    name = get_llm_provider(provider)
    fields, params = _split(name, config)
    model = model_name or os.environ.get("IPFS_DATASETS_PY_LLM_MODEL") or _default_model(name)
    return _client(name, model, fields).generate(prompt, **params)


def _default_model(name: str) -> str:
    if name == "openrouter":
        return os.environ.get("IPFS_DATASETS_PY_OPENROUTER_MODEL") or _DEFAULT_MODELS[name]
    return _DEFAULT_MODELS.get(name, "default")  # CLIs: "default" lets the CLI choose


def _split(name: str, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``config`` → (profile fields, call parameters); unknown keys raise."""
    fields: dict[str, Any] = {}
    params: dict[str, Any] = {}
    args: list[str] = []
    options: dict[str, Any] = {}
    cli = name.endswith("_cli") or name == "claude_code"
    for key, value in config.items():
        if key in _IGNORED:
            continue
        if key in _CALL:
            if value is not None:
                params["max_tokens" if key == "max_new_tokens" else key] = value
        elif key in _TRACE and cli:
            fields[key] = value
        elif key in _SESSION and cli:
            if key == "resume_session_id" and value:
                options["resume"] = str(value)
            elif key == "continue_session" and value:
                options["continue"] = True
        elif key in _COPILOT and name == "copilot_cli":
            if value:
                flag = "--config-dir" if key == "copilot_config_dir" else "--log-dir"
                args.append(f"{flag}={value}")
        elif name == "claude_code" and key in _CLAUDE_FLAGS:
            if value is not None:
                args += [_CLAUDE_FLAGS[key], str(value)]
        elif name == "claude_code" and key in _CLAUDE_SWITCHES:
            if value:
                args.append(_CLAUDE_SWITCHES[key])
        elif name == "claude_code" and key in _CLAUDE_OTHER:
            if key == "claude_output_format":
                fields["claude_output_format"] = value
            elif key == "claude_add_dir":
                for folder in [value] if isinstance(value, str) else list(value or ()):
                    args += ["--add-dir", str(folder)]
            else:
                tools = value.split(",") if isinstance(value, str) else list(value or ())
                field = "allowed_tools" if key == "claude_allowed_tools" else "disallowed_tools"
                fields[field] = [t.strip() for t in tools if str(t).strip()]
        else:
            raise errors.InvalidOptionError(
                f"generate_text(..., {key}=...): not an option of provider {name!r}. "
                f"Call options: {', '.join(_CALL)}; CLI providers also take "
                f"{', '.join((*_TRACE, *_SESSION))}; copilot_cli {', '.join(_COPILOT)}; "
                "claude_code the claude_* keys of the llm_router README."
            )
    if (
        cli
        and "trace" not in fields
        and (fields.get("trace_dir") or fields.get("trace_jsonl_path"))
    ):
        fields["trace"] = True  # the router's rule: either path alone turns tracing on
    if name == "copilot_cli" and fields.get("trace_jsonl_path") and not fields.get("trace_dir"):
        # the router's rule: the transcript goes next to the JSONL log
        fields["trace_dir"] = os.path.dirname(os.path.abspath(str(fields["trace_jsonl_path"])))
    if args:
        fields["args"] = args
    if options:
        fields["options"] = options
    if name == "openrouter":
        fields["base_url"] = (
            os.environ.get("IPFS_DATASETS_PY_OPENROUTER_BASE_URL") or OPENROUTER_URL
        ).rstrip("/")
        var = _openrouter_key_var()
        if var:
            fields["api_key_env"] = var
    return fields, params


def _client(name: str, model: str, fields: dict[str, Any]) -> LLMClient:
    global _manager
    spec = json.dumps({"p": name, "m": model, "f": fields}, sort_keys=True, default=str)
    profile = f"llm_router.{name}.{hashlib.sha256(spec.encode()).hexdigest()[:10]}"
    with _lock:
        if _manager is None:
            from llmnb.client.manager import LLMManager

            _manager = LLMManager()
        if profile not in _profiles:
            _manager.add_provider(profile, PROVIDERS[name], {"model": model, **fields})
            _profiles[profile] = name
        manager = _manager
    return manager.get_client(profile)


def reset_router() -> None:
    """Close and forget every client the router built."""
    global _manager
    with _lock:
        manager, _manager = _manager, None
        _profiles.clear()
    if manager is not None:
        manager.close()
