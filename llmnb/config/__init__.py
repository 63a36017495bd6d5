"""Settings for llmnb: ``config/settings.yaml`` + ``.env`` → validated profiles.

Example::

    from llmnb import config

    name, profile = config.get_active_profile()            # ("demo", {"type": "mock", ...})
    model = config.get_model_name()                        # "mock-1"
    params = config.get_llm_params("planner", "draft")     # {"temperature": 0.7, ...}
    key = config.require_api_key("openai", profile, "OPENAI_API_KEY")   # or MissingAPIKeyError

Where things come from:

- settings: ``$LLMNB_SETTINGS`` > ``config/settings.yaml`` in the working directory or its
  parents > a built-in default with one offline ``demo`` profile (``type: mock``).
- ``.env``: ``$LLMNB_ENV_FILE`` > ``.env`` in the folder holding ``config/`` > ``.env`` in the
  working directory or its parents. Real environment variables win over ``.env`` values and
  nothing is ever written into ``os.environ``.
- provider, no agent: the session's choice (``%llm use``, the picker) > ``LLM_ACTIVE_PROVIDER``
  > the saved default (the picker's "Save as default", kept in ``.llmnb/state.json`` next to
  ``config/``) > ``llm.active_provider`` (> the only profile, when there is exactly one); for
  an agent: ``LLM_<AGENT>_ACTIVE_PROVIDER`` > ``llm.agents.<agent>.active_provider`` > the
  no-agent rule.
- model: argument > ``LLM_<AGENT>_MODEL`` > ``LLM_MODEL`` > the session's model (when the
  session's profile is the one in use) > ``llm.agents.<agent>.model`` > the saved default's
  model (when its profile is the one in use) > the profile's ``model``.
- parameters: ``llm.params`` < profile < the session's (:func:`set_session_params`, the
  picker's sliders) < agent ``params`` < agent step.

Environment variables are read at call time; both files are re-read when their
``(mtime_ns, size)`` changes, so ``%env`` or an edited ``.env`` takes effect in a running kernel.

This module resolves profiles, models and parameters and keeps the session's choice; loading
is in :mod:`llmnb.config.files`, keys in :mod:`llmnb.config.keys`, the schema in
:mod:`llmnb.config.models` — all re-exported here. The package also holds ``.env``
reading (``env``), validation messages (``schema``), redaction (``redact``) and the saved
default (``state``). It imports only ``llmnb.errors`` (and pyyaml, pydantic,
python-dotenv); everything above may import it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr

from llmnb.config import state as _state
from llmnb.config.files import SETTINGS_VAR as SETTINGS_VAR
from llmnb.config.files import find_settings_path, get_env, load_settings
from llmnb.config.keys import require_api_key, resolve_api_keys, resolve_headers, resolve_secrets
from llmnb.config.models import (
    AUTO,
    AgentConfig,
    LLMSection,
    Pricing,
    ProfileConfig,
    RateLimits,
    Settings,
    UsageSection,
    display_path,
    suggest,
)
from llmnb.config.redact import redact, redact_mapping
from llmnb.config.schema import _param_ok
from llmnb.errors import ConfigError, ProviderNotFoundError

__all__ = [
    "AgentConfig",
    "LLMSection",
    "Pricing",
    "Profile",
    "ProfileConfig",
    "RateLimits",
    "Settings",
    "UsageSection",
    "clear_saved_default",
    "find_settings_path",
    "get_active_profile",
    "get_env",
    "get_llm_params",
    "get_model_name",
    "get_profile",
    "get_saved_default",
    "get_session_params",
    "get_session_provider",
    "load_settings",
    "on_session_change",
    "redact",
    "require_api_key",
    "resolve_api_keys",
    "resolve_headers",
    "resolve_secrets",
    "save_default_provider",
    "set_adhoc_profiles",
    "set_session_params",
    "set_session_provider",
    "state_path",
    "validate_user_simulator_settings",
]

USER_SIMULATOR = "user_simulator"
# The notebook session's choice (%llm use, the picker): one per kernel, hence globals.
_session: tuple[str | None, str | None] = (None, None)
_session_params: dict[str, Any] = {}
_session_listeners: list[Callable[[], object]] = []
_log = logging.getLogger("llmnb.config")


class Profile(dict[str, Any]):
    """A profile's settings as a plain dict plus ``"name"``; ``repr``/``str`` hide secrets."""

    @property
    def name(self) -> str:
        """The profile's name under ``llm.providers``."""
        return str(self.get("name", ""))

    def copy(self) -> Profile:
        """A shallow copy that still hides secrets in its repr."""
        return Profile(self)

    def __repr__(self) -> str:
        return f"Profile({redact_mapping(dict(self))!r})"

    __str__ = __repr__


# ------------------------------------------------------------------------ resolution


def _configured(value: str | None) -> str | None:
    # "auto" is reserved for automatic choice (a later issue): until then it means "unset".
    value = value.strip() if value else None
    return None if not value or value.lower() == AUTO else value


def _agent_var(agent: str, suffix: str) -> str:
    return f"LLM_{re.sub(r'[^A-Za-z0-9]', '_', agent).upper()}_{suffix}"


class AdhocProfiles(Protocol):
    """Profiles that need no settings entry (``openai``, ``anthropic:claude-haiku-4-5``).

    The client layer supplies them (:mod:`llmnb.client.adhoc`): which names are provider
    types is known to the providers, which sit above this package.
    """

    def profile(self, name: str, settings: Settings) -> dict[str, Any] | None:
        """The settings of the profile ``name`` stands for, or None if it is no such name."""

    def names(self) -> list[str]:
        """The names it accepts without a model (for near matches in errors)."""


_adhoc: AdhocProfiles | None = None


def set_adhoc_profiles(source: AdhocProfiles | None) -> None:
    """Let names that are no profile of the settings resolve through ``source``; a profile
    of the same name always wins. The client layer installs its source when it loads."""
    global _adhoc
    _adhoc = source


def _lookup(settings: Settings, name: str, origin: str | None = None) -> Profile:
    cfg = settings.llm.providers.get(name)
    if cfg is not None:
        data = cfg.model_dump(exclude_unset=True, exclude_none=True, context={"secrets": "reveal"})
        return Profile({"name": name, **_unwrap_secrets(data)})
    if _adhoc is not None and (found := _adhoc.profile(name, settings)) is not None:
        return Profile({"name": name, **found})
    names = settings.profile_names()
    types = _adhoc.names() if _adhoc is not None else []
    near = suggest(name.partition(":")[0], [*names, *types])
    parts = [f"No profile named {name!r}" + (f" (from {origin})" if origin else "")]
    parts[0] += f" in {settings.source}."
    if near:
        parts.append(f"Did you mean {near!r}?")
    parts.append(f"Profiles: {', '.join(sorted(names)) or 'none'}.")
    if types:
        parts.append(
            f"Provider types usable without a profile (TYPE or TYPE:MODEL): {', '.join(types)}."
        )
    where = settings.source if settings.path else "config/settings.yaml (create it)"
    fix = f"fix {origin}, or " if origin else ""
    parts.append(f"To fix: {fix}use one of those, or add {name!r} under llm.providers in {where}.")
    raise ProviderNotFoundError(" ".join(parts))


def _unwrap_secrets(value: Any) -> Any:
    # Factories get plain strings; Profile's repr is what keeps them out of sight.
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(v) for v in value]
    return value


def _active_name(settings: Settings, agent: str | None) -> tuple[str, str] | None:
    """(profile name, where the choice came from) by the documented resolution order."""
    if agent:
        var = _agent_var(agent, "ACTIVE_PROVIDER")
        if name := _configured(get_env(var)):
            return name, var
        agent_cfg = settings.llm.agents.get(agent)
        if agent_cfg and (name := _configured(agent_cfg.active_provider)):
            return name, f"llm.agents.{agent}.active_provider"
    if name := _configured(_session[0]):
        return name, "the session's choice (%llm use / the picker)"
    if name := _configured(get_env("LLM_ACTIVE_PROVIDER")):
        return name, "LLM_ACTIVE_PROVIDER"
    path = _state.state_path(settings.path)
    if name := _configured(_state.read_state(path).get("active_provider")):
        return name, f"the default saved in {display_path(path)}"
    if name := _configured(settings.llm.active_provider):
        return name, "llm.active_provider"
    if len(settings.llm.providers) == 1:
        return next(iter(settings.llm.providers)), "the only profile"
    return None


def _active(settings: Settings, agent: str | None) -> tuple[str, Profile] | None:
    found = _active_name(settings, agent)
    return None if found is None else (found[0], _lookup(settings, *found))


def _no_provider_error(settings: Settings, agent: str | None) -> ConfigError:
    names = ", ".join(settings.profile_names()) or "none yet"
    ways = [f"set llm.active_provider in {settings.source}", "set LLM_ACTIVE_PROVIDER"]
    if agent:
        agent_var = _agent_var(agent, "ACTIVE_PROVIDER")
        ways[:0] = [f"set {agent_var}", f"set llm.agents.{agent}.active_provider"]
    who = f" for agent {agent!r}" if agent else ""
    return ConfigError(
        f"No active provider{who}: {', or '.join(ways)}, or pick one with `%llm use <name>`. "
        f"Profiles: {names}."
    )


def get_active_profile(agent: str | None = None) -> tuple[str, Profile] | None:
    """``(name, profile)`` chosen by the resolution order, or None when nothing is chosen."""
    return _active(load_settings(), agent)


def get_profile(name: str) -> Profile:
    """The profile ``name``; ProviderNotFoundError lists the profiles and near matches."""
    return _lookup(load_settings(), name)


def _model_from_config(
    settings: Settings, agent: str | None, name: str, profile: Profile
) -> str | None:
    session_name, session_model = _session
    if session_model and name == session_name:
        return session_model
    agent_cfg = settings.llm.agents.get(agent) if agent else None
    if agent_cfg and agent_cfg.model:
        return agent_cfg.model
    saved = _state.read_state(_state.state_path(settings.path))
    if saved.get("model") and saved.get("active_provider") == name:
        return str(saved["model"])
    return str(profile["model"]) if profile.get("model") else None


def get_model_name(override: str | None = None, agent: str | None = None) -> str:
    """The model to call: argument > env vars > session > agent config > profile ``model``."""
    if override:
        return override
    for var in ([_agent_var(agent, "MODEL")] if agent else []) + ["LLM_MODEL"]:
        if value := (get_env(var) or "").strip():
            return value
    settings = load_settings()
    active = _active(settings, agent)
    if active is None:
        raise _no_provider_error(settings, agent)
    model = _model_from_config(settings, agent, *active)
    if model is None:
        name = active[0]
        raise ConfigError(
            f"Profile {name!r} in {settings.source} has no model: add `model: <model name>` "
            f"under llm.providers.{name}, set LLM_MODEL, or pass model_name=..."
        )
    return model


def get_llm_params(agent_name: str | None, step_name: str | None = None) -> dict[str, Any]:
    """Call parameters: ``llm.params`` < profile < agent ``params`` < agent ``steps.<step>``."""
    settings = load_settings()
    params = dict(settings.llm.params)
    active = _active(settings, agent_name)
    cfg = settings.llm.providers.get(active[0]) if active is not None else None
    if cfg is not None:  # an ad-hoc profile (a provider type) has no parameters of its own
        fields = ("temperature", "max_tokens")
        params.update({k: getattr(cfg, k) for k in fields if getattr(cfg, k) is not None})
        params.update(cfg.params)
    params.update(_session_params)
    agent = settings.llm.agents.get(agent_name) if agent_name else None
    if agent is not None:
        params.update(agent.params)
        if step_name and step_name in agent.steps:
            params.update(agent.steps[step_name])
    return params


def validate_user_simulator_settings() -> None:
    """Check that the ``user_simulator`` agent resolves to a profile and a model."""
    settings = load_settings()
    active = _active(settings, USER_SIMULATOR)
    if active is None:
        raise ConfigError(
            "The user simulator has no provider. Add `llm.agents.user_simulator: "
            f"{{active_provider: <profile>, model: <model>}}` to {settings.source}, or set "
            f"LLM_USER_SIMULATOR_ACTIVE_PROVIDER (or llm.active_provider). "
            f"Profiles: {', '.join(settings.profile_names()) or 'none yet'}."
        )
    model_env = [v for v in ("LLM_USER_SIMULATOR_MODEL", "LLM_MODEL") if get_env(v)]
    if not model_env and _model_from_config(settings, USER_SIMULATOR, *active) is None:
        raise ConfigError(
            f"The user simulator's profile {active[0]!r} has no model. Set "
            f"llm.agents.user_simulator.model or `model:` under llm.providers.{active[0]} in "
            f"{settings.source}, or set LLM_USER_SIMULATOR_MODEL."
        )


def set_session_provider(name: str | None, model: str | None = None) -> None:
    """Make ``name`` (and ``model``) the session's choice; ``None`` clears it (and the
    session's parameters)."""
    global _session
    if name is None:
        _session = (None, None)
        _session_params.clear()
    else:
        _lookup(load_settings(), name)  # raises ProviderNotFoundError for an unknown name
        _session = (name, model or None)
    for listener in list(_session_listeners):
        try:
            listener()
        except Exception:  # a listener's failure must not undo or block the choice
            _log.debug("session listener %r failed", listener, exc_info=True)


def on_session_change(listener: Callable[[], object]) -> Callable[[], None]:
    """Call ``listener()`` after every :func:`set_session_provider` (the picker uses it to
    stay true to ``%llm use``); returns a function that removes it again."""
    _session_listeners.append(listener)

    def remove() -> None:
        if listener in _session_listeners:
            _session_listeners.remove(listener)

    return remove


def get_session_provider() -> tuple[str | None, str | None]:
    """The session's ``(profile, model)`` choice; ``(None, None)`` when nothing is chosen."""
    return _session


_SESSION_PARAMS = {"temperature": "a number 0..2", "max_tokens": "a whole number > 0"}


def set_session_params(**params: Any) -> None:
    """Call parameters for this session (the picker's sliders), above the profile's and
    below an agent's: ``set_session_params(temperature=0.2, max_tokens=500)``; a ``None``
    value removes one. ConfigError names a parameter that is unknown or out of range."""
    for key, value in params.items():
        if key not in _SESSION_PARAMS:
            raise ConfigError(
                f"set_session_params(): unknown parameter {key!r}; use "
                f"{', '.join(sorted(_SESSION_PARAMS))} (others go in a profile's `params:`)."
            )
        if value is not None and not _param_ok(key, value):
            raise ConfigError(
                f"set_session_params(): {key} should be {_SESSION_PARAMS[key]}, got {value!r}."
            )
    for key, value in params.items():
        if value is None:
            _session_params.pop(key, None)
        else:
            _session_params[key] = value


def get_session_params() -> dict[str, Any]:
    """The parameters set by :func:`set_session_params` (a copy)."""
    return dict(_session_params)


# ------------------------------------------------------------------- saved default


def state_path() -> Path:
    """The file that keeps the saved default: ``.llmnb/state.json`` in the project root."""
    return _state.state_path(find_settings_path())


def save_default_provider(name: str, model: str | None = None) -> Path:
    """Remember ``name`` (and ``model``) as this project's default profile, across kernels.

    It ranks below ``LLM_ACTIVE_PROVIDER`` and above ``llm.active_provider``. Written to
    :func:`state_path`, never into settings.yaml, so the file's comments stay as they are.
    Returns the path written. ``config.save_default_provider("openrouter", "openai/gpt-5.2")``
    """
    _lookup(load_settings(), name)  # raises ProviderNotFoundError for an unknown name
    path = state_path()
    _state.write_state(path, active_provider=name, model=model or None)
    return path


def get_saved_default() -> tuple[str | None, str | None]:
    """The saved ``(profile, model)``; ``(None, None)`` when nothing was saved."""
    data = _state.read_state(state_path())
    return (data.get("active_provider") or None, data.get("model") or None)


def clear_saved_default() -> None:
    """Forget the saved default: ``llm.active_provider`` applies again."""
    path = state_path()
    if _state.read_state(path):
        _state.write_state(path, active_provider=None, model=None)
