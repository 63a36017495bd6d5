"""The settings.yaml schema, its reading, and readable validation errors.

Private: ``llmnb.config`` re-exports what users need (``Settings``, ``ProfileConfig``,
``AgentConfig``, ``redact``). Every problem found while reading a file becomes one
``ConfigError`` whose lines each say ``<file>: <dotted.location>: <what> — <what to do>``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SecretStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

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

AUTO = "auto"  # reserved active_provider value (automatic choice, a later issue)

# ---------------------------------------------------------------------------- redaction

_SECRET_PARTS = frozenset({"key", "keys", "secret", "secrets", "token", "password", "passwd"})
_VAR_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


def redact(secret: str | SecretStr | None) -> str:
    """Show a secret as ``sk-…a1b2`` (only when long enough to keep most of it hidden)."""
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    if not secret:
        return "…"
    text = str(secret)
    # 7 visible characters of a 16+ character key leave more than half of it hidden.
    return f"{text[:3]}…{text[-4:]}" if len(text) >= 16 else "…"


def is_sensitive_key(key: object) -> bool:
    """True for ``api_key``, ``api_keys``, ``x-api-key``, ``Authorization``, ``client_secret``…

    Matched per word so ``max_tokens`` stays visible; ``*_env`` keys name a variable, not a
    value, so they stay visible too.
    """
    text = str(key).lower()
    parts = [p for p in re.split(r"[^a-z0-9]+", text) if p]
    if parts and parts[-1] == "env":
        return False
    return "apikey" in text or "authorization" in text or any(p in _SECRET_PARTS for p in parts)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str) and _VAR_REF.match(value):
        return value  # a ${VAR} reference names a variable; showing it helps and leaks nothing
    if isinstance(value, Mapping):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    if isinstance(value, (str, SecretStr)):
        return redact(value)
    return value


def redact_mapping(value: Any) -> Any:
    """Copy ``value`` (dicts/lists nested anyhow) with values of sensitive keys redacted."""
    if isinstance(value, Mapping):
        return {
            k: _redact_value(v) if is_sensitive_key(k) else redact_mapping(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_mapping(v) for v in value]
    if isinstance(value, SecretStr):
        return redact(value)
    return value


# ------------------------------------------------------------------------------ schema


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to ``word`` (case-insensitive), or None."""
    by_lower = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


class _Section(BaseModel):
    """Base of every schema part: unknown keys are errors that suggest the nearest key."""

    # Inputs are hidden so a ValidationError chained under a ConfigError cannot echo a key.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    _unknown_hint: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _drop_empty(cls, data: Any) -> Any:
        # `key:` with nothing after it (e.g. all children commented out) means "default".
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if not (v is None and k in cls.model_fields)}
        return data

    @classmethod
    def unknown_key_hint(cls, key: str) -> str:
        """What to tell a user who wrote ``key``, which this section does not know."""
        near = suggest(key, cls.model_fields)
        if near:
            return f"did you mean {near!r}?"
        return cls._unknown_hint or "known keys: " + ", ".join(sorted(cls.model_fields))

    def __repr_args__(self) -> Any:
        # Nested dicts (headers, env, options, extras) may carry secrets under any key.
        for name, value in super().__repr_args__():
            if name not in self.model_fields_set and value in (None, [], {}):
                continue  # unset, empty fields would drown the ones that say something
            if name is not None and is_sensitive_key(name):
                yield name, _redact_value(value)
            elif isinstance(value, (Mapping, list, tuple)):
                yield name, redact_mapping(value)
            else:
                yield name, value


class Pricing(_Section):
    """Illustrative or real prices in USD per million tokens."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)


class RateLimits(_Section):
    """Client-side limits; ``backend`` picks where the counters live (e.g. memory)."""

    requests_per_minute: float | None = Field(default=None, gt=0)
    input_tokens_per_minute: float | None = Field(default=None, gt=0)
    output_tokens_per_minute: float | None = Field(default=None, gt=0)
    backend: str | None = None


class ProfileConfig(_Section):
    """One entry of ``llm.providers``: which implementation, which model, how to call it."""

    _unknown_hint: ClassVar[str] = (
        "see the commented examples in the shipped config/settings.yaml; put "
        "provider-specific settings under `options:` (or use a provider_factory profile, "
        "which may carry any keys)"
    )

    type: str | None = Field(default=None, min_length=1)
    # "module:function"; the registry imports it and explains a malformed or missing one.
    provider_factory: str | None = Field(default=None, min_length=1)
    model: str | None = None
    models: list[str] = Field(default_factory=list)
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    api_keys: list[SecretStr] | None = None
    timeout: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    pricing: Pricing | None = None
    rate_limits: RateLimits | None = None
    http_referer: str | None = None
    x_title: str | None = None
    organization: str | None = None
    anthropic_version: str | None = None
    # mock provider
    responses: dict[str, str] = Field(default_factory=dict)
    default_response: str | None = None
    delay: float | None = Field(default=None, ge=0)
    errors: list[Any] = Field(default_factory=list)
    stream_chunk_size: int | None = Field(default=None, gt=0)
    # key pool
    max_connections_per_key: int | None = Field(default=None, gt=0)
    cooldown: float | None = Field(default=None, ge=0)
    acquire_timeout: float | None = Field(default=None, gt=0)
    # spend limit of this profile (USD, this session); usage.budget_usd is the session's
    budget_usd: float | None = Field(default=None, gt=0)
    # CLI providers (claude_code, codex_cli, copilot_cli, gemini_cli)
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    claude_output_format: str | None = None
    allowed_tools: list[str] | None = None
    disallowed_tools: list[str] | None = None
    trace: bool | None = None
    trace_dir: str | None = None
    trace_jsonl_path: str | None = None
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("api_keys", "allowed_tools", "disallowed_tools", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        # "a,b" is how these look in env vars; accept the same spelling in YAML.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _one_implementation(self) -> ProfileConfig:
        if self.type and self.provider_factory:
            raise PydanticCustomError(
                "implementation",
                "has both `type` and `provider_factory` — keep one: `type` picks a built-in "
                "provider, `provider_factory` your own 'module:function'",
            )
        if not self.type and not self.provider_factory:
            raise PydanticCustomError(
                "implementation",
                "needs `type:` (a built-in provider such as mock, openai, anthropic, "
                "openrouter) or `provider_factory: 'module:function'`",
            )
        return self


class FactoryProfileConfig(ProfileConfig):
    """A profile built by ``provider_factory``: extra keys are kept for the factory."""

    model_config = ConfigDict(extra="allow")


def _profile_kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "factory" if value.get("provider_factory") else "profile"
    return "factory" if isinstance(value, FactoryProfileConfig) else "profile"


# The tag picks the model before validation, so a factory profile's extra keys are allowed
# while a typo in any other profile is reported together with every other problem.
ProfileEntry = Annotated[
    Union[
        Annotated[ProfileConfig, Tag("profile")],
        Annotated[FactoryProfileConfig, Tag("factory")],
    ],
    Discriminator(_profile_kind),
]


class AgentConfig(_Section):
    """Per-agent overrides: ``{active_provider, model, params, steps: {step: params}}``."""

    active_provider: str | None = None
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = Field(default_factory=dict)


class LLMSection(_Section):
    """The ``llm:`` section. ``params`` and ``defaults`` both hold the global defaults."""

    active_provider: str | None = None
    providers: dict[str, ProfileEntry] = Field(default_factory=dict)
    fallbacks: list[str] = Field(default_factory=list)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _merge_defaults(self) -> LLMSection:
        # Two spellings of one thing; merging means readers of either attribute agree.
        if self.defaults != self.params:
            merged = {**self.defaults, **self.params}
            self.params, self.defaults = merged, dict(merged)
        return self


DEFAULT_STORE = "sqlite:///.llmnb/usage.db"


def parse_store_spec(spec: str) -> tuple[str, str | None]:
    """``"memory"`` -> ("memory", None); ``"sqlite:///x.db"`` -> ("sqlite", "x.db");
    ``"postgresql+psycopg://h/db"`` -> ("postgresql", the URL).

    ``sqlite:////abs.db`` (four slashes) is absolute; three slashes are relative to the
    project root. Raises ValueError saying which forms are accepted.
    """
    text = spec.strip() if isinstance(spec, str) else ""
    if text.lower() == "memory":
        return "memory", None
    if text.lower().startswith("sqlite:///"):
        where = text[len("sqlite:///") :]
        if where and not where.endswith(("/", "\\")):
            return "sqlite", where
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme in ("postgres", "postgresql", "postgresql+psycopg") and text.partition("://")[2]:
        return "postgresql", text  # a team's database: llmnb.usage.postgres_store
    hint = " (built in: SQLite and PostgreSQL)" if scheme and scheme != "sqlite" else ""
    raise ValueError(
        f"{spec!r} is not a usage store{hint}: use 'memory', or "
        f"'sqlite:///path/to/usage.db' (relative to the project folder; four slashes for an "
        f"absolute path), or 'postgresql+psycopg://user@host/db'. "
        f"The default is {DEFAULT_STORE!r}."
    )


class UsageSection(_Section):
    """The ``usage:`` section: where usage rows are stored and an optional spend limit."""

    store: str = DEFAULT_STORE
    budget_usd: float | None = Field(default=None, gt=0)

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        try:
            parse_store_spec(value)
        except ValueError as exc:
            raise PydanticCustomError("store", "{reason}", {"reason": str(exc)}) from None
        return value.strip()


class CacheSection(_Section):
    """The ``cache:`` section: a response cache for every profile (``cache=False`` skips it).

    ``backend`` is ``memory``, ``sqlite:///path.db`` (relative to the project folder;
    four slashes for an absolute path) or ``redis://host:6379/0``, ``ttl`` seconds
    (none: no expiry).
    """

    backend: str = "memory"
    ttl: float | None = Field(default=None, gt=0)
    max_entries: int | None = Field(default=None, gt=0)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        text = value.strip()
        if text.lower() == "memory":
            return "memory"
        if text.lower().startswith("sqlite:///") and len(text) > len("sqlite:///"):
            return text
        if text.lower().startswith(("redis://", "rediss://")):
            return text  # a team's shared cache: llmnb.middleware.cache_redis
        raise PydanticCustomError(
            "cache_backend",
            "'{value}' is not a cache backend: use 'memory', 'sqlite:///path/to/cache.db' "
            "(relative to the project folder; four slashes for an absolute path) or "
            "'redis://host:6379/0'",
            {"value": value},
        )


class Settings(_Section):
    """Validated settings. ``path`` is the file read (None: built-in default)."""

    llm: LLMSection = Field(default_factory=LLMSection)
    usage: UsageSection = Field(default_factory=UsageSection)
    cache: CacheSection | None = None
    _path: Path | None = PrivateAttr(default=None)
    _env_path: Path | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path | None:
        """The settings file these came from, or None for the built-in default."""
        return self._path

    @property
    def env_path(self) -> Path | None:
        """The ``.env`` file whose values ``config.get_env`` sees, or None."""
        return self._env_path

    @property
    def source(self) -> str:
        """How to name these settings in a message."""
        if self._path is None:
            return "the built-in default settings (no config/settings.yaml found)"
        return display_path(self._path)

    def profile_names(self) -> list[str]:
        """Profile names in the order the file lists them."""
        return list(self.llm.providers)


# ----------------------------------------------------------------------- reading files


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when under it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


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
        data = yaml.safe_load(text)
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
