"""Reading settings.yaml: YAML, then schema and cross-field checks, as readable ConfigErrors.

Private: ``llmnb.config`` re-exports what users need (``Settings``, ``ProfileConfig``,
``AgentConfig``, ``redact``). Every problem found while reading a file becomes one
``ConfigError`` whose lines each say ``<file>: <dotted.location>: <what> — <what to do>``.
The schema itself is in :mod:`llmnb.config.models` and redaction in
:mod:`llmnb.config.redact`; their names are re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import yaml
from pydantic import BaseModel, Tag, ValidationError

from llmnb.config.models import AUTO as AUTO
from llmnb.config.models import DEFAULT_STORE as DEFAULT_STORE
from llmnb.config.models import (
    AgentConfig,
    FactoryProfileConfig,
    LLMSection,
    Pricing,
    ProfileConfig,
    RateLimits,
    Settings,
    UsageSection,
    _Section,
    display_path,
    parse_store_spec,
    suggest,
)
from llmnb.config.models import CacheSection as CacheSection
from llmnb.config.models import ProfileEntry as ProfileEntry
from llmnb.config.redact import is_sensitive_key, redact, redact_mapping
from llmnb.config.yamlsafe import load_yaml
from llmnb.errors import ConfigError

__all__ = [
    "AgentConfig",
    "FactoryProfileConfig",
    "LLMSection",
    "Pricing",
    "ProfileConfig",
    "RateLimits",
    "Settings",
    "UsageSection",
    "decode_utf8",
    "display_path",
    "is_sensitive_key",
    "parse_settings",
    "parse_store_spec",
    "redact",
    "redact_mapping",
    "suggest",
]


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# Call parameters are free-form, but these few are common enough to check where written.
_PARAM_EXPECTED = {
    "temperature": "a number 0..2",
    "max_tokens": "a whole number > 0",
    "timeout": "a number of seconds > 0",
}


def _param_ok(key: str, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if key == "temperature":
        return 0 <= value <= 2
    if key == "max_tokens":
        return isinstance(value, int) and value > 0
    return value > 0


def _reference_problems(settings: Settings) -> list[tuple[str, str]]:
    """Cross-field checks pydantic cannot express per field: names must point at profiles."""
    llm, problems = settings.llm, []
    names = list(llm.providers)

    def unknown(name: str) -> str:
        near = suggest(name, names)
        hint = f"did you mean {near!r}?" if near else f"known profiles: {', '.join(names) or '-'}"
        return f"names profile {name!r}, which is not under llm.providers — {hint}"

    if llm.active_provider and llm.active_provider != AUTO and llm.active_provider not in names:
        problems.append(("llm.active_provider", unknown(llm.active_provider)))
    seen: set[str] = set()
    for i, name in enumerate(llm.fallbacks):
        if name not in names:
            problems.append((f"llm.fallbacks[{i}]", unknown(name)))
        elif name in seen:
            problems.append(
                (f"llm.fallbacks[{i}]", f"{name!r} is listed twice — a failover sequence visits "
                 "each profile once (a repeat would loop); remove the duplicate")
            )  # fmt: skip
        seen.add(name)
    for agent, cfg in llm.agents.items():
        ap = cfg.active_provider
        if ap and ap != AUTO and ap not in names:
            problems.append((f"llm.agents.{agent}.active_provider", unknown(ap)))
    param_sets: list[tuple[str, dict[str, Any]]] = [("llm.params", llm.params)]
    param_sets += [(f"llm.providers.{n}.params", p.params) for n, p in llm.providers.items()]
    for agent, cfg in llm.agents.items():
        param_sets.append((f"llm.agents.{agent}.params", cfg.params))
        param_sets += [(f"llm.agents.{agent}.steps.{s}", p) for s, p in cfg.steps.items()]
    for where, params in param_sets:
        for key, expected in _PARAM_EXPECTED.items():
            if params.get(key) is not None and not _param_ok(key, params[key]):
                problems.append((f"{where}.{key}", f"should be {expected}"))
    return problems


def _problems_error(path: Path, problems: list[tuple[str, str]]) -> ConfigError:
    shown = display_path(path)
    lines = [f"{shown}: {loc}: {msg}" for loc, msg in problems]
    return ConfigError(
        f"Invalid settings in {shown} — fix the entries below (the file is re-read "
        "automatically once saved):\n  " + "\n  ".join(lines)
    )


def _walk(loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], type[_Section] | None]:
    """``loc`` without discriminator tags, and the schema section it ends in (if any)."""
    tp: Any = Settings
    clean: list[int | str] = []
    for part in loc:
        while get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        members = [m for m in get_args(tp) if m is not type(None)]
        if get_origin(tp) not in (dict, list) and members:  # a Union
            tagged = {
                meta.tag: get_args(m)[0]
                for m in members
                for meta in getattr(m, "__metadata__", ())
                if isinstance(meta, Tag)
            }
            if part in tagged:
                tp = tagged[part]
                continue  # tags are pydantic's bookkeeping, not something the user wrote
            tp = members[0]
        clean.append(part)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            tp = field.annotation if field else None
        elif get_origin(tp) in (dict, list):
            tp = get_args(tp)[-1]
        else:
            tp = None
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    section = tp if isinstance(tp, type) and issubclass(tp, _Section) else None
    return tuple(clean), section


def _pydantic_problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc, _ = _walk(tuple(err["loc"]))
        msg = err["msg"].replace("Input should be", "should be")
        if err["type"] == "extra_forbidden":
            parent = _walk(tuple(err["loc"][:-1]))[1]
            hint = parent.unknown_key_hint(str(loc[-1])) if parent else "remove it"
            msg = f"unknown key — {hint}"
        elif err["type"] == "missing":
            msg = "is required — add it"
        elif err["type"] in ("dict_type", "model_type", "model_attributes_type"):
            msg = "should be a mapping (`key: value` lines, indented below it)"
        problems.append((_dotted(loc), msg))
    return problems


def decode_utf8(raw: bytes, shown: str, what: str) -> str:
    """``raw`` as text; ConfigError naming the file, line and byte when it is not UTF-8."""
    try:
        return raw.decode("utf-8-sig")  # a BOM (Windows editors) is fine
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{shown}: the {what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line "
            f"{line}). Save it as UTF-8 in your editor, or retype the character there."
        ) from None


def parse_settings(path: Path) -> Settings:
    """Read, parse and validate one settings file; every failure is a ConfigError."""
    shown = display_path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read settings file {shown}: {exc.strerror}") from exc
    text = decode_utf8(raw, shown, "settings file")
    try:
        data = load_yaml(text, shown)
    except RecursionError:
        raise ConfigError(
            f"{shown}: the YAML is nested too deeply to read (brackets or indentation "
            "thousands of levels deep). Check the file for a runaway paste."
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}, line {mark.line + 1}, column {mark.column + 1}" if mark else shown
        start = getattr(exc, "context_mark", None)
        if mark and start and start.line != mark.line:
            where += f" (in the entry that starts on line {start.line + 1})"
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        # `from None`: yaml's own message quotes the offending line, which may hold a key.
        raise ConfigError(
            f"{where}: invalid YAML ({problem}). Check the indentation, colons and quotes "
            "on that line and the one before it."
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        top = [("(top level)", "should be a mapping with `llm:` (and `usage:`)")]
        raise _problems_error(path, top)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise _problems_error(path, _pydantic_problems(exc)) from exc
    problems = _reference_problems(settings)
    if problems:
        raise _problems_error(path, problems)
    settings._path = path
    return settings
