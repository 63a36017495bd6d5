"""``create_llm_client_from_profile`` and ``connect``: the client of a profile.

The top of the client layer: it resolves the profile (explicit, active, auto-detected, or
a provider type used by name: :mod:`llmnb.client.adhoc`), builds its provider through the
registry, layers its parameters, and hands the client the settings' failover sequence
(``llm.fallbacks``, through the manager).
"""

from __future__ import annotations

import re
from typing import Any

import llmnb.client.adhoc as adhoc
import llmnb.client.autodetect as autodetect
from llmnb import config, errors
from llmnb.client.client import LLMClient
from llmnb.client.manager import SETTINGS_FAILOVER
from llmnb.client.registry import build_provider, import_factory, lookup_type

__all__ = ["connect", "create_llm_client_from_profile"]

adhoc.install()  # from here on, `openai` / `openai:gpt-4o` resolve without a profile


def _agent_model_var(agent: str) -> str:
    return f"LLM_{re.sub(r'[^A-Za-z0-9]', '_', agent).upper()}_MODEL"


def create_llm_client_from_profile(
    model_name: str | None = None,
    agent: str | None = None,
    *,
    profile: str | None = None,
    step: str | None = None,
) -> LLMClient:
    """Build the client of the active profile (or ``profile``) from the settings.

    With ``agent`` (and ``step``), that agent's parameters (and those of its
    ``steps.<step>``) are the client's defaults, and its usage rows carry them in the
    ``agent`` and ``step`` columns.

    Example::

        client = llmnb.create_llm_client_from_profile()                 # active profile
        planner = llmnb.create_llm_client_from_profile(agent="planner")  # agent's profile
        draft = llmnb.create_llm_client_from_profile(agent="planner", step="draft")
        fast = llmnb.create_llm_client_from_profile(profile="demo", model_name="mock-2")
    """
    if profile is not None:
        name, prof = profile, config.get_profile(profile)
        model = model_name or prof.get("model")
        if not model:
            if name not in config.load_settings().llm.providers:
                raise errors.ConfigError(
                    f"provider type {name!r} has no default model: name one, as in "
                    f"{name}:MODEL (e.g. `%%llm {name}:MODEL`, llmnb.connect('{name}:MODEL'))."
                )
            raise errors.ConfigError(
                f"profile {name!r} has no `model`; set one in the settings file "
                "or pass model_name=."
            )
    else:
        if autodetect.detection_wanted(agent):
            # `auto`, nothing chosen, or keys brought to a settings-less start.
            found = autodetect.detect(agent)
            name, prof = found.name, config.Profile({"name": found.name, **found.profile})
            model = (
                model_name
                or (config.get_env(_agent_model_var(agent)) if agent else None)
                or config.get_env("LLM_MODEL")
                or prof.get("model")
            )
            if not model:
                raise errors.ConfigError(
                    f"auto-detect chose profile {name!r} ({found.reason}), which has no "
                    "`model`; set one in the settings file, set LLM_MODEL, or pass "
                    "model_name=."
                )
        elif (resolved := config.get_active_profile(agent)) is None:
            settings = config.load_settings()
            where = settings.path or "the built-in default settings"
            raise errors.ConfigError(
                f"no active profile in {where}: set `llm.active_provider` to one of "
                f"{', '.join(settings.profile_names()) or '(no profiles defined)'} (or to "
                "`auto` to pick one from the keys and tools at hand), or set "
                "LLM_ACTIVE_PROVIDER, or run `%llm use PROFILE`."
            )
        else:
            name, prof = resolved
            model = config.get_model_name(model_name, agent)
    factory_spec = prof.get("provider_factory")
    if factory_spec:
        factory = import_factory(str(factory_spec), name)
        type_name = str(prof.get("type") or factory_spec)
    else:
        type_name = str(prof.get("type") or "").strip().lower()
        factory = lookup_type(type_name, name)
    built = build_provider(factory, type_name, name, prof, str(model), agent)
    if isinstance(built, LLMClient):
        if built.failover is None:  # a factory's own client fails over like the others
            built.failover = SETTINGS_FAILOVER
        return built
    # Same layering as config.get_llm_params, but for the profile chosen here (which
    # may be an explicit `profile=` rather than the active one): llm.params < profile <
    # the session's (picker) < agent < the agent's step.
    settings = config.load_settings()
    defaults: dict[str, Any] = dict(settings.llm.params)
    defaults.update(
        {
            k: prof.get(k)
            for k in ("temperature", "max_tokens", "timeout")
            if prof.get(k) is not None
        }
    )
    defaults.update(prof.get("params") or {})
    defaults.update(config.get_session_params())
    agent_cfg = settings.llm.agents.get(agent) if agent else None
    if agent_cfg is not None:
        defaults.update(agent_cfg.params)
        if step is not None:
            defaults.update(agent_cfg.steps.get(step) or {})
    return LLMClient(
        built,
        profile=name,
        model=str(model),
        params=defaults,
        agent=agent,
        step=step,
        failover=SETTINGS_FAILOVER,
    )


def connect(
    target: str | None = None, *, agent: str | None = None, step: str | None = None
) -> LLMClient:
    """The client of ``"PROFILE[:MODEL]"`` or ``"PROVIDER_TYPE[:MODEL]"`` (no I/O yet).

    A name that is no profile of the settings but a built-in provider type (``openai``,
    ``anthropic``, ``gemini``, ``openrouter``, ``ollama``, …) uses that provider with its
    own key variable and base URL; a profile of that name wins. ``None``: the active
    profile. The model may itself contain ``:`` (``"ollama:llama3.2:3b"``).

    (Not ``llmnb.client(...)``: ``llmnb.client`` is the package of this module.)

    Example::

        llm = llmnb.connect("openai:gpt-4o-mini")     # with only OPENAI_API_KEY set
        llm.complete("hi").content
    """
    if target is None:
        return create_llm_client_from_profile(agent=agent, step=step)
    if not isinstance(target, str) or not target.partition(":")[0].strip():
        raise errors.InvalidOptionError(
            f"connect({target!r}): give 'PROFILE', 'PROFILE:MODEL' or 'PROVIDER:MODEL', "
            "e.g. connect('openai:gpt-4o-mini')."
        )
    name, sep, model = target.strip().partition(":")
    if sep and not model.strip():
        raise errors.InvalidOptionError(
            f"connect({target!r}): the model after ':' is empty; e.g. connect('{name}:gpt-4o')."
        )
    return create_llm_client_from_profile(
        model.strip() or None, agent, profile=name.strip(), step=step
    )
