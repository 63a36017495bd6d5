"""The settings.yaml schema: one pydantic model per section, strict about unknown keys."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SecretStr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    Tag,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from llmnb.config.redact import (
    _redact_value,
    is_sensitive_key,
    redact_mapping,
    redact_url,
    register_secrets_in,
)

__all__ = [
    "AUTO",
    "BUDGET_WINDOWS",
    "DEFAULT_STORE",
    "AgentConfig",
    "CacheSection",
    "FactoryProfileConfig",
    "LLMSection",
    "Pricing",
    "ProfileConfig",
    "ProfileEntry",
    "RateLimits",
    "Settings",
    "UsageSection",
    "display_path",
    "parse_store_spec",
    "suggest",
]

AUTO = "auto"  # reserved active_provider value (automatic choice, a later issue)

#: What a budget counts: this kernel's calls, or every kernel's calls since the start of
#: the calendar day / week (Monday) / month, local time, read from the usage store.
BUDGET_WINDOWS = ("session", "day", "week", "month")
BudgetWindow = Literal["session", "day", "week", "month"]


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when under it or near it (``../config/
    settings.yaml`` from a notebooks folder: saved outputs name no machine's folders),
    else as given."""
    try:
        full, here = path.resolve(), Path.cwd().resolve()
        try:
            return str(full.relative_to(here))
        except ValueError:
            rel = Path(os.path.relpath(full, here))
            if rel.parts[:3].count("..") <= 2 and ".." not in rel.parts[2:]:
                return str(rel)
    except (ValueError, OSError):
        pass
    return str(path)


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
            elif isinstance(value, str):
                yield name, redact_url(value)
            else:
                yield name, value

    @model_validator(mode="after")
    def _register_secrets(self) -> Any:
        # Keys, sensitive headers and URL passwords are known from the moment the file
        # is read, so whatever quotes them later (a server, a library) gets scrubbed.
        for name in type(self).model_fields:
            value = getattr(self, name)
            if not isinstance(value, BaseModel):
                register_secrets_in(value, is_sensitive_key(name))
        return self

    @model_serializer(mode="wrap")
    def _hide_secrets(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        # model_dump()/model_dump_json() hide headers' secrets and URL passwords as the
        # repr does (SecretStr fields hide themselves); the profile resolution passes
        # context={"secrets": "reveal"} to get the values it sends.
        data = handler(self)
        context = info.context
        if not isinstance(data, dict) or (
            isinstance(context, Mapping) and context.get("secrets") == "reveal"
        ):
            return data
        fields = type(self).model_fields
        for name, value in data.items():
            own = getattr(self, name, None)
            if name not in fields or isinstance(own, BaseModel):
                continue  # nested sections hide their own
            if isinstance(value, (Mapping, list, tuple)) and not _holds_models(own):
                data[name] = redact_mapping(value)
            elif isinstance(value, str):
                data[name] = redact_url(value)
        return data


def _holds_models(value: Any) -> bool:
    items = value.values() if isinstance(value, Mapping) else value
    return isinstance(items, Iterable) and any(isinstance(v, BaseModel) for v in items)


class Pricing(_Section):
    """Illustrative or real prices in USD per million tokens."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    cache_write_per_mtok: float | None = Field(default=None, ge=0)


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
    # type openai: "chat" (chat completions) or "responses" (the Responses API); unset,
    # models served only by the Responses API (-pro, codex) use it.
    api: Literal["chat", "responses"] | None = None
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
    # spend limit of this profile (USD); usage.budget_usd is the whole project's
    budget_usd: float | None = Field(default=None, gt=0)
    budget_window: BudgetWindow | None = None  # None: usage.budget_window
    budget_warn_at: float | None = Field(default=None, gt=0, le=1)  # None: usage's
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
    # cloud providers (azure_openai, bedrock, vertex)
    deployment: str | None = None
    api_version: str | None = None
    auth: str | None = None
    credential: str | None = None  # "module:attr": a credential object or its factory
    region: str | None = None
    aws_profile: str | None = None
    project: str | None = None
    location: str | None = None

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
    """The ``usage:`` section: where usage rows are stored, and an optional spend limit
    (``budget_usd``) over a ``budget_window`` (``session``, ``day``, ``week``, ``month``)."""

    store: str = DEFAULT_STORE
    budget_usd: float | None = Field(default=None, gt=0)
    # session: this kernel's spend; day/week/month: every kernel's, from the store
    budget_window: BudgetWindow = "session"
    # a fraction of a budget: one warning line when spend crosses it (once per window)
    budget_warn_at: float | None = Field(default=None, gt=0, le=1)

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


class ReplaySection(_Section):
    """The ``replay:`` section: answer calls from a cassette instead of the network.

    ``mode`` is ``off``, ``record`` (call the providers and write every attempt),
    ``replay`` (answer only from the cassette; a request it lacks is an error) or
    ``auto`` (replay what is recorded, record what is not). ``cassette`` is a path,
    relative to the project folder; ``{notebook}`` in it is the notebook's name.
    """

    mode: Literal["off", "record", "replay", "auto"] = "off"
    cassette: str | None = None
    force: bool = False


class Settings(_Section):
    """Validated settings. ``path`` is the file read (None: built-in default)."""

    llm: LLMSection = Field(default_factory=LLMSection)
    usage: UsageSection = Field(default_factory=UsageSection)
    cache: CacheSection | None = None
    replay: ReplaySection = Field(default_factory=ReplaySection)
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
