"""The bad-input corpus: settings files, server answers and magic lines that are wrong.

One parametrized case per input. Each must end in the *typed* llmnb error of the table,
whose message names what is wrong (file, profile, field, option) and says what to do —
never a bare ``KeyError`` / ``TypeError`` / ``ValueError`` / ``AttributeError`` /
``UnicodeDecodeError`` from inside llmnb. Server answers come from ``FakeLLMServer`` over
real HTTP; magic lines run in a real IPython shell.
"""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _magics_shell import ip_fixture, mock_settings, run
from IPython.core.error import UsageError

import llmnb
from llmnb import errors
from llmnb.testing import FakeLLMServer, Fault

ip = ip_fixture

BARE = (KeyError, TypeError, ValueError, AttributeError, UnicodeDecodeError, IndexError)


def _assert_typed(exc: BaseException, expected: type[BaseException], words: tuple[str, ...]):
    """``exc`` is ``expected`` (an llmnb error), and its message holds every word."""
    shown = "".join(traceback.format_exception_only(type(exc), exc))
    assert isinstance(exc, expected), f"expected {expected.__name__}, got:\n{shown}"
    assert isinstance(exc, (errors.LLMError, UsageError)), shown
    text = str(exc)
    missing = [w for w in words if w not in text]
    assert not missing, f"message lacks {missing}:\n{text}"


# ----------------------------------------------------------------------- settings files


@dataclass(frozen=True)
class SettingsCase:
    id: str
    text: str | bytes  # config/settings.yaml
    error: type[errors.LLMError]
    words: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    dotenv: bytes | None = None
    call: bool = False  # the error shows only when the client is used


def _yaml(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def _one(profile: str, extra: str = "") -> str:
    """Settings with one profile ``p`` given as a YAML flow mapping."""
    return f"llm:\n  active_provider: p\n  providers:\n    p: {profile}\n{extra}"


MOCK = "{type: mock, model: m}"
F = "llmnb_bad_factories"  # the module written by the factories fixture

SETTINGS_CASES = [
    SettingsCase(
        "yaml-unclosed-flow",
        "llm: {providers: [\n",
        errors.ConfigError,
        ("settings.yaml", "line", "invalid YAML", "Check the indentation"),
    ),
    SettingsCase(
        "yaml-tab-indent",
        "llm:\n\tactive_provider: p\n",
        errors.ConfigError,
        ("settings.yaml", "line 2", "invalid YAML"),
    ),
    SettingsCase(
        "yaml-bad-indent",
        "llm:\n  providers:\n    p:\n      type: mock\n     model: m\n",
        errors.ConfigError,
        ("settings.yaml", "invalid YAML"),
    ),
    SettingsCase(
        "yaml-unclosed-quote",
        'llm:\n  active_provider: "p\n',
        errors.ConfigError,
        ("settings.yaml", "invalid YAML"),
    ),
    SettingsCase(
        "yaml-nested-too-deep",
        "llm:\n  params: " + "[" * 3000 + "]" * 3000 + "\n",
        errors.ConfigError,
        ("settings.yaml",),
    ),
    SettingsCase(
        "profile-defined-twice",
        "llm:\n  active_provider: p\n  providers:\n    p: {type: mock, model: first}\n"
        "    q: {type: mock, model: m}\n    p: {type: mock, model: second}\n",
        errors.ConfigError,
        ("settings.yaml", "profile 'p' is defined twice", "lines 4 and 6", "Remove one"),
    ),
    SettingsCase(
        "profile-key-written-twice",
        "llm:\n  active_provider: p\n  providers:\n    p:\n      type: mock\n"
        "      model: a\n      model: b\n",
        errors.ConfigError,
        ("settings.yaml", "'model' is written twice in llm.providers.p", "lines 6 and 7"),
    ),
    SettingsCase(
        "flow-mapping-key-twice",
        _one("{type: mock, model: m, model: n}"),
        errors.ConfigError,
        ("settings.yaml", "'model'", "line 4, columns"),
    ),
    SettingsCase(
        "yaml-alias-bomb",
        "llm:\n  active_provider: p\n  providers:\n    p:\n      type: mock\n"
        "      model: m\n      params:\n        l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"        l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9)),
        errors.ConfigError,
        ("settings.yaml", "llm.providers.p.params", "aliases", "100,000"),
    ),
    SettingsCase(
        "yaml-recursive-alias",
        _one("{type: mock, model: m, params: &loop {stop: [*loop]}}"),
        errors.ConfigError,
        ("settings.yaml", "recursive"),
    ),
    SettingsCase(
        "top-level-list",
        "- llm\n- usage\n",
        errors.ConfigError,
        ("settings.yaml", "(top level)", "should be a mapping"),
    ),
    SettingsCase(
        "top-level-scalar",
        "just some words\n",
        errors.ConfigError,
        ("settings.yaml", "(top level)", "mapping"),
    ),
    SettingsCase(
        "llm-is-a-number",
        "llm: 5\n",
        errors.ConfigError,
        ("settings.yaml", "llm", "should be a mapping"),
    ),
    SettingsCase(
        "providers-is-a-list",
        "llm:\n  providers: [a, b]\n",
        errors.ConfigError,
        ("settings.yaml", "llm.providers", "mapping"),
    ),
    SettingsCase(
        "profile-is-a-string",
        _one("openai"),
        errors.ConfigError,
        ("settings.yaml", "llm.providers.p", "mapping"),
    ),
    SettingsCase(
        "max-retries-not-a-number",
        _one("{type: mock, model: m, max_retries: many}"),
        errors.ConfigError,
        ("settings.yaml", "llm.providers.p.max_retries", "integer"),
    ),
    SettingsCase(
        "negative-timeout",
        _one("{type: mock, model: m, timeout: -1}"),
        errors.ConfigError,
        ("llm.providers.p.timeout", "greater than 0"),
    ),
    SettingsCase(
        "temperature-out-of-range",
        _one("{type: mock, model: m, temperature: 7}"),
        errors.ConfigError,
        ("llm.providers.p.temperature", "less than or equal to 2"),
    ),
    SettingsCase(
        "max-tokens-zero",
        _one("{type: mock, model: m, max_tokens: 0}"),
        errors.ConfigError,
        ("llm.providers.p.max_tokens", "greater than 0"),
    ),
    SettingsCase(
        "param-temperature-a-word",
        _one("{type: mock, model: m, params: {temperature: hot}}"),
        errors.ConfigError,
        ("llm.providers.p.params.temperature", "should be a number"),
    ),
    SettingsCase(
        "unknown-profile-key",
        _one("{type: mock, modle: m}"),
        errors.ConfigError,
        ("llm.providers.p.modle", "unknown key", "did you mean 'model'?"),
    ),
    SettingsCase(
        "unknown-top-level-key",
        "lmm:\n  providers: {}\n",
        errors.ConfigError,
        ("lmm", "unknown key", "did you mean 'llm'?"),
    ),
    SettingsCase(
        "unknown-provider-type",
        _one("{type: opanai, model: m}"),
        errors.ProviderNotFoundError,
        ("profile 'p'", "unknown provider type 'opanai'", "Did you mean", "register_provider"),
    ),
    SettingsCase(
        "type-and-factory",
        _one(f"{{type: mock, provider_factory: '{F}:returns_int', model: m}}"),
        errors.ConfigError,
        ("llm.providers.p", "keep one"),
    ),
    SettingsCase(
        "neither-type-nor-factory",
        _one("{model: m}"),
        errors.ConfigError,
        ("llm.providers.p", "needs `type:`"),
    ),
    SettingsCase(
        "factory-without-colon",
        _one(f"{{provider_factory: '{F}.returns_int', model: m}}"),
        errors.ConfigError,
        ("profile 'p'", "provider_factory", "'module:function'"),
    ),
    SettingsCase(
        "factory-module-missing",
        _one("{provider_factory: 'no_such_module_xyz:make', model: m}"),
        errors.ConfigError,
        ("provider_factory", "cannot import module 'no_such_module_xyz'", "installed"),
    ),
    SettingsCase(
        "factory-module-fails-on-import",
        _one("{provider_factory: 'llmnb_bad_factory_import:make', model: m}"),
        errors.ConfigError,
        ("provider_factory", "cannot import module", "ZeroDivisionError"),
    ),
    SettingsCase(
        "factory-attribute-missing",
        _one(f"{{provider_factory: '{F}:nope', model: m}}"),
        errors.ConfigError,
        ("provider_factory", "has no attribute 'nope'"),
    ),
    SettingsCase(
        "factory-not-callable",
        _one(f"{{provider_factory: '{F}:NOT_CALLABLE', model: m}}"),
        errors.ConfigError,
        ("provider_factory", "is not callable"),
    ),
    SettingsCase(
        "factory-returns-int",
        _one(f"{{provider_factory: '{F}:returns_int', model: m}}"),
        errors.ConfigError,
        ("profile 'p'", "returned int", "generate("),
    ),
    SettingsCase(
        "factory-wrong-signature",
        _one(f"{{provider_factory: '{F}:takes_nothing', model: m}}"),
        errors.ConfigError,
        ("profile 'p'", "takes_nothing", "factory(profile, model_name, agent)"),
    ),
    SettingsCase(
        "fallback-unknown",
        _one(MOCK, "  fallbacks: [p, ghost]\n"),
        errors.ConfigError,
        ("llm.fallbacks[1]", "'ghost'", "known profiles"),
    ),
    SettingsCase(
        "fallback-circular",
        _one(MOCK, "  fallbacks: [p, p]\n"),
        errors.ConfigError,
        ("llm.fallbacks[1]", "listed twice", "remove the duplicate"),
    ),
    SettingsCase(
        "fallbacks-not-a-list",
        _one(MOCK, "  fallbacks: {p: 1}\n"),
        errors.ConfigError,
        ("llm.fallbacks", "list"),
    ),
    SettingsCase(
        "active-provider-unknown",
        "llm:\n  active_provider: ghost\n  providers:\n    p: {type: mock, model: m}\n",
        errors.ConfigError,
        ("llm.active_provider", "'ghost'", "known profiles: p"),
    ),
    SettingsCase(
        "agent-provider-unknown",
        _one(MOCK, "  agents:\n    planner: {active_provider: px}\n"),
        errors.ConfigError,
        ("llm.agents.planner.active_provider", "'px'"),
    ),
    SettingsCase(
        "agent-step-not-a-mapping",
        _one(MOCK, "  agents:\n    planner: {steps: {draft: 3}}\n"),
        errors.ConfigError,
        ("llm.agents.planner.steps.draft", "mapping"),
    ),
    SettingsCase(
        "negative-rate-limit",
        _one("{type: mock, model: m, rate_limits: {requests_per_minute: -5}}"),
        errors.ConfigError,
        ("llm.providers.p.rate_limits.requests_per_minute", "greater than 0"),
    ),
    SettingsCase(
        "rate-limits-a-string",
        _one("{type: mock, model: m, rate_limits: fast}"),
        errors.ConfigError,
        ("llm.providers.p.rate_limits", "mapping"),
    ),
    SettingsCase(
        "negative-price",
        _one("{type: mock, model: m, pricing: {input_per_mtok: -1, output_per_mtok: 1}}"),
        errors.ConfigError,
        ("llm.providers.p.pricing.input_per_mtok", "greater than or equal to 0"),
    ),
    SettingsCase(
        "price-missing-field",
        _one("{type: mock, model: m, pricing: {input_per_mtok: 1}}"),
        errors.ConfigError,
        ("llm.providers.p.pricing.output_per_mtok", "is required"),
    ),
    SettingsCase(
        "negative-budget",
        _one(MOCK, "usage: {budget_usd: -3}\n"),
        errors.ConfigError,
        ("usage.budget_usd", "greater than 0"),
    ),
    SettingsCase(
        "usage-store-mysql",
        _one(MOCK, "usage: {store: 'mysql://db/usage'}\n"),
        errors.ConfigError,
        ("usage.store", "'mysql://db/usage'", "built in: SQLite and PostgreSQL", "sqlite:///"),
    ),
    SettingsCase(
        "cache-backend-memcached",
        _one(MOCK, "cache: {backend: 'memcached://localhost'}\n"),
        errors.ConfigError,
        ("cache.backend", "'memcached://localhost'", "not a cache backend", "sqlite:///"),
    ),
    SettingsCase(
        "api-keys-a-number",
        _one("{type: openai, model: m, api_keys: 5}"),
        errors.ConfigError,
        ("llm.providers.p.api_keys",),
    ),
    SettingsCase(
        "header-value-a-list",
        _one("{type: mock, model: m, headers: {X-Team: [a, b]}}"),
        errors.ConfigError,
        ("llm.providers.p.headers.X-Team", "string"),
    ),
    SettingsCase(
        "invalid-utf8-settings",
        b"llm:\n  active_provider: p\n  providers:\n    p: {type: mock, model: \xff\xfe}\n",
        errors.ConfigError,
        ("settings.yaml", "UTF-8"),
    ),
    SettingsCase(
        "settings-variable-missing-file",
        _one(MOCK),
        errors.ConfigError,
        ("LLMNB_SETTINGS", "no-such.yaml", "unset LLMNB_SETTINGS"),
        env=(("LLMNB_SETTINGS", "no-such.yaml"),),
    ),
    SettingsCase(
        "env-file-variable-missing-file",
        _one(MOCK),
        errors.ConfigError,
        ("LLMNB_ENV_FILE", "missing.env"),
        env=(("LLMNB_ENV_FILE", "missing.env"),),
    ),
    SettingsCase(
        "no-model",
        _one("{type: mock}"),
        errors.ConfigError,
        ("'p'", "model"),
    ),
    SettingsCase(
        "no-active-profile",
        "llm:\n  providers:\n    a: {type: mock, model: m}\n    b: {type: mock, model: m}\n",
        errors.ConfigError,
        ("active", "LLM_ACTIVE_PROVIDER", "%llm use"),
    ),
    SettingsCase(
        "active-profile-from-env-unknown",
        _one(MOCK),
        errors.ProviderNotFoundError,
        ("'ghost'", "LLM_ACTIVE_PROVIDER", "Profiles: p"),
        env=(("LLM_ACTIVE_PROVIDER", "ghost"),),
    ),
    SettingsCase(
        "missing-key",
        _one("{type: openai, model: m, base_url: 'http://127.0.0.1:9/v1'}"),
        errors.MissingAPIKeyError,
        ("'p'", "OPENAI_API_KEY", ".env"),
        call=True,
    ),
    SettingsCase(
        "key-reference-unset",
        _one("{type: openai, model: m, api_key: '${MY_TEAM_KEY}', base_url: 'http://x/v1'}"),
        errors.MissingAPIKeyError,
        ("'p'", "MY_TEAM_KEY", "%env MY_TEAM_KEY="),
        call=True,
    ),
    SettingsCase(
        "compatible-without-base-url",
        _one("{type: openai_compatible, model: m}"),
        errors.ConfigError,
        ("'p'", "base_url"),
        call=True,
    ),
    SettingsCase(
        "mock-unknown-error-kind",
        _one("{type: mock, model: m, errors: [lightning]}"),
        errors.ConfigError,
        ("'p'", "'lightning'", "use one of"),
        call=True,
    ),
    SettingsCase(
        "invalid-utf8-dotenv",
        _one("{type: openai, model: m, base_url: 'http://127.0.0.1:9/v1'}"),
        errors.ConfigError,
        (".env", "UTF-8"),
        dotenv=b"OPENAI_API_KEY=\xff\xfe-not-utf8\n",
        call=True,
    ),
]

_FACTORIES = """
NOT_CALLABLE = 5

def returns_int(profile, model_name, agent):
    return 42

def takes_nothing():
    return None
"""


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / f"{F}.py").write_text(_FACTORIES)
    (lib / "llmnb_bad_factory_import.py").write_text("x = 1 / 0\n")
    monkeypatch.syspath_prepend(str(lib))


@pytest.mark.parametrize("case", SETTINGS_CASES, ids=lambda c: c.id)
def test_bad_settings_give_a_typed_error_naming_the_place_and_the_fix(
    case: SettingsCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, factories: None, tracker
) -> None:
    path = tmp_path / "config" / "settings.yaml"
    path.parent.mkdir()
    if isinstance(case.text, bytes):
        path.write_bytes(case.text)
    else:
        path.write_text(case.text)
    if case.dotenv is not None:
        (tmp_path / ".env").write_bytes(case.dotenv)
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    with pytest.raises(Exception) as info:
        client = llmnb.create_llm_client_from_profile()
        assert case.call, f"{case.id}: the client was built: {client!r}"
        client.complete("hi")
    _assert_typed(info.value, case.error, case.words)


# Paths that are there but are no readable file. Skipping them would let another file,
# or the built-in demo profile, answer instead of the settings the user meant.


def _folder(path: Path) -> None:
    path.mkdir()


def _dangling_link(path: Path) -> None:
    path.symlink_to(path.parent / "gone-away.yaml")


def _link_loop(path: Path) -> None:
    other = path.parent / "other-link"
    path.symlink_to(other)
    other.symlink_to(path)


def _fifo(path: Path) -> None:
    os.mkfifo(path)  # reading it would block forever


def _unreadable(path: Path) -> None:
    if os.geteuid() == 0:  # root reads a chmod 000 file; /proc/self/mem refuses a read
        if not Path("/proc/self/mem").exists():
            pytest.skip("running as root without /proc: no way to make a file unreadable")
        path.symlink_to("/proc/self/mem")
    else:
        path.write_text("llm: {}\n")
        path.chmod(0)


SHAPES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "folder": (_folder, ("is a folder",)),
    "dangling-link": (_dangling_link, ("symbolic link", "gone-away.yaml", "does not exist")),
    "link-loop": (_link_loop, ("symbolic link", "loop")),
    "fifo": (_fifo, ("not a regular file",)),
    "unreadable": (_unreadable, ("read",)),
}

# Where a settings-like file is looked for: (the path, env vars, words, shapes it covers).
# A folder named `.env` is a virtualenv, not a dotenv file: skipped (tested below).
PLACES = {
    "settings.yaml": ("config/settings.yaml", (), ("config/settings.yaml",)),
    "LLMNB_SETTINGS": ("team.yaml", (("LLMNB_SETTINGS", "team.yaml"),), ("LLMNB_SETTINGS",)),
    ".env": (".env", (), (".env",)),
    "LLMNB_ENV_FILE": ("keys.env", (("LLMNB_ENV_FILE", "keys.env"),), ("LLMNB_ENV_FILE",)),
}


@pytest.mark.parametrize(
    ("place", "shape"),
    [(p, s) for p in PLACES for s in SHAPES if (p, s) != (".env", "folder")],
)
def test_a_settings_path_that_is_no_readable_file_is_a_config_error_naming_it(
    place: str, shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracker
) -> None:
    relative, env, words = PLACES[place]
    make, shape_words = SHAPES[shape]
    (tmp_path / "config").mkdir()
    if place != "settings.yaml":  # a good settings file next to the bad one
        (tmp_path / "config" / "settings.yaml").write_text(_one(MOCK))
    make(tmp_path / relative)
    for name, value in env:
        monkeypatch.setenv(name, value)
    with pytest.raises(Exception) as info:
        client = llmnb.create_llm_client_from_profile()
        client.complete("hi")
        pytest.fail(f"the client {client!r} answered")
    if shape == "unreadable":  # found, then its read fails: named by its path
        words = (Path(relative).name,)
    _assert_typed(info.value, errors.ConfigError, (*words, *shape_words))


def test_a_virtualenv_named_dot_env_is_not_a_settings_problem(tmp_path: Path, tracker) -> None:
    (tmp_path / ".env" / "bin").mkdir(parents=True)  # python -m venv .env
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings.yaml").write_text(_one(MOCK))
    assert llmnb.create_llm_client_from_profile().complete("hi").content


def test_the_corpus_has_at_least_fifty_cases() -> None:
    assert len(SETTINGS_CASES) + len(ANSWER_CASES) + len(MAGIC_CASES) >= 50
    ids = [c.id for c in [*SETTINGS_CASES, *ANSWER_CASES, *MAGIC_CASES]]
    assert len(ids) == len(set(ids))


# ------------------------------------------------------------------------ server answers


@dataclass(frozen=True)
class AnswerCase:
    id: str
    fault: Callable[[], Fault]
    error: type[errors.LLMError]
    words: tuple[str, ...]
    stream: bool = False
    wire: str = "openai"  # or "anthropic", "gemini"


def _sse(*events: Any, done: bool = True) -> Callable[[], Fault]:
    parts = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
    return lambda: Fault.sse(*parts, *(["data: [DONE]\n\n"] if done else []))


_CHUNK = {"choices": [{"delta": {"content": "Hi"}, "index": 0}]}
_HUGE = 20 * 2**20

ANSWER_CASES = [
    AnswerCase("empty-body", Fault.empty_body, errors.ResponseFormatError, ("empty body",)),
    AnswerCase(
        "not-json",
        lambda: Fault.status(200, "hello, world"),
        errors.ResponseFormatError,
        ("not JSON", "base_url"),
    ),
    AnswerCase("html-200", lambda: Fault.html(200), errors.ResponseFormatError, ("HTML",)),
    AnswerCase(
        "html-502", lambda: Fault.html(502), errors.ProviderError, ("HTML page", "base_url")
    ),
    AnswerCase(
        "html-404", lambda: Fault.html(404), errors.InvalidRequestError, ("HTML", "model name")
    ),
    AnswerCase(
        "missing-choices",
        lambda: Fault.json(200, {"id": "x"}),
        errors.ResponseFormatError,
        ("choices",),
    ),
    AnswerCase(
        "choices-null",
        lambda: Fault.json(200, {"choices": None}),
        errors.ResponseFormatError,
        ("choices",),
    ),
    AnswerCase(
        "choices-empty",
        lambda: Fault.json(200, {"choices": []}),
        errors.ResponseFormatError,
        ("choices",),
    ),
    AnswerCase(
        "choices-a-string",
        lambda: Fault.json(200, {"choices": "hello"}),
        errors.ResponseFormatError,
        ("choices",),
    ),
    AnswerCase(
        "choice-a-number",
        lambda: Fault.json(200, {"choices": [5]}),
        errors.ResponseFormatError,
        ("expected shape",),
    ),
    AnswerCase(
        "content-a-number",
        lambda: Fault.json(200, {"choices": [{"message": {"content": 42}}]}),
        errors.ResponseFormatError,
        ("content",),
    ),
    AnswerCase(
        "message-a-list",
        lambda: Fault.json(200, {"choices": [{"message": ["hi"]}]}),
        errors.ResponseFormatError,
        ("expected shape",),
    ),
    AnswerCase(
        "top-level-array",
        lambda: Fault.json(200, [1, 2]),
        errors.ResponseFormatError,
        ("expected shape",),
    ),
    AnswerCase(
        "top-level-null",
        lambda: Fault.json(200, None),
        errors.ResponseFormatError,
        ("expected shape",),
    ),
    AnswerCase(
        "usage-tokens-words",
        lambda: Fault.json(
            200,
            {
                "choices": [{"message": {"content": "hi"}}],
                "usage": {"prompt_tokens": "many", "completion_tokens": "few"},
            },
        ),
        errors.ResponseFormatError,
        ("many",),
    ),
    AnswerCase(
        "usage-a-list",
        lambda: Fault.json(200, {"choices": [{"message": {"content": "hi"}}], "usage": [1]}),
        errors.ResponseFormatError,
        ("expected shape",),
    ),
    AnswerCase(
        "error-envelope-200",
        lambda: Fault.json(200, {"error": {"message": "upstream exploded", "code": 502}}),
        errors.ProviderError,
        ("upstream exploded", "try again later"),
    ),
    AnswerCase(
        "huge-non-json-body",
        lambda: Fault.status(200, "x" * _HUGE),
        errors.ResponseFormatError,
        ("not JSON",),
    ),
    AnswerCase(
        "huge-error-body",
        lambda: Fault.status(500, "<" * _HUGE),
        errors.ProviderError,
        ("HTTP 500", "try again later"),
    ),
    AnswerCase(
        "invalid-utf8-body",
        lambda: Fault.sse(b'{"choices": [{"message": {"content": "\xff\xfe"}}]}'),
        errors.ResponseFormatError,
        ("HTTP 200",),
    ),
    AnswerCase(
        "json-nested-too-deep",
        lambda: Fault.status(200, "[" * 100_000 + "]" * 100_000),
        errors.ResponseFormatError,
        ("not JSON",),
    ),
    AnswerCase(
        "401-not-json",
        lambda: Fault.status(401, "denied"),
        errors.AuthenticationError,
        ("HTTP 401", "Check"),
    ),
    AnswerCase(
        "429-retry-after-nan",
        lambda: Fault.status(429, headers={"Retry-After": "nan"}),
        errors.RateLimitError,
        ("HTTP 429", "rate_limits"),
    ),
    AnswerCase(
        "429-retry-after-garbage",
        lambda: Fault.status(429, headers={"Retry-After": "tomorrow-ish"}),
        errors.RateLimitError,
        ("HTTP 429", "Wait"),
    ),
    AnswerCase(
        "sse-without-done",
        _sse(_CHUNK, done=False),
        errors.NetworkError,
        ("stream ended before",),
        stream=True,
    ),
    AnswerCase(
        "sse-garbage-lines",
        lambda: Fault.sse("garbage line\n", "\x00\x01 more: garbage\n\n", "data: {not json\n\n"),
        errors.ResponseFormatError,
        ("stream event",),
        stream=True,
    ),
    AnswerCase(
        "sse-data-an-array",
        _sse([1, 2]),
        errors.ResponseFormatError,
        ("stream event",),
        stream=True,
    ),
    AnswerCase(
        "sse-delta-content-a-number",
        _sse({"choices": [{"delta": {"content": 7}}]}),
        errors.ResponseFormatError,
        ("stream event",),
        stream=True,
    ),
    AnswerCase(
        "sse-choices-a-number",
        _sse({"choices": 3}),
        errors.ResponseFormatError,
        ("stream event",),
        stream=True,
    ),
    AnswerCase(
        "sse-error-event",
        _sse(_CHUNK, {"error": {"message": "model crashed"}}),
        errors.ProviderError,
        ("model crashed",),
        stream=True,
    ),
    AnswerCase(
        "sse-usage-words",
        _sse(_CHUNK, {"choices": [], "usage": {"prompt_tokens": "lots"}}),
        errors.ResponseFormatError,
        ("stream event",),
        stream=True,
    ),
    AnswerCase(
        "sse-html-page",
        lambda: Fault.sse("<html><body>Bad gateway</body></html>\n"),
        errors.NetworkError,
        ("stream ended before",),
        stream=True,
    ),
    AnswerCase(
        "sse-invalid-utf8",
        lambda: Fault.sse(b"data: {\xff\xfe}\n\n"),
        errors.ResponseFormatError,
        ("stream event",),
        stream=True,
    ),
    AnswerCase(
        "anthropic-content-null",
        lambda: Fault.json(200, {"type": "message", "content": None}),
        errors.ResponseFormatError,
        ("[p]", "expected shape", "protocol"),
        wire="anthropic",
    ),
    AnswerCase(
        "anthropic-error-envelope",
        lambda: Fault.json(
            529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        ),
        errors.OverloadedError,
        ("Overloaded", "switch to another profile"),
        wire="anthropic",
    ),
    AnswerCase(
        "anthropic-sse-garbage",
        lambda: Fault.sse("event: content_block_delta\ndata: {oops\n\n"),
        errors.ResponseFormatError,
        ("stream event",),
        stream=True,
        wire="anthropic",
    ),
    AnswerCase(
        "gemini-candidates-a-string",
        lambda: Fault.json(200, {"candidates": "none"}),
        errors.ResponseFormatError,
        ("[p]", "expected shape", "protocol"),
        wire="gemini",
    ),
    AnswerCase(
        "gemini-sse-array",
        _sse([1, 2, 3], done=False),
        errors.ResponseFormatError,
        (),
        stream=True,
        wire="gemini",
    ),
]


def _answer_profile(srv: FakeLLMServer, wire: str) -> dict[str, Any]:
    common = {"model": "m", "max_retries": 0, "api_key": "sk-corpus-0123456789abcdef"}
    if wire == "anthropic":
        return {"type": "anthropic", "base_url": srv.anthropic_base_url, **common}
    if wire == "gemini":
        return {"type": "gemini", "base_url": srv.gemini_base_url, **common}
    return {"type": "openai_compatible", "base_url": srv.base_url, **common}


@pytest.mark.parametrize("case", ANSWER_CASES, ids=lambda c: c.id)
def test_bad_answers_give_a_typed_error(case: AnswerCase, write_settings, tracker) -> None:
    with FakeLLMServer() as srv:
        write_settings(
            {"llm": {"active_provider": "p", "providers": {"p": _answer_profile(srv, case.wire)}}}
        )
        client = llmnb.create_llm_client_from_profile()
        srv.script(case.fault())
        with pytest.raises(Exception) as info:
            if case.stream:
                "".join(client.stream("hello"))
            else:
                client.complete("hello")
        client.close()
    exc = info.value
    _assert_typed(exc, case.error, case.words)
    # Short enough to read: a 20 MB body is quoted as an excerpt, not in full.
    assert len(str(exc)) < 2000
    # The failed attempt is a usage row, as every attempt is.
    assert [r.status for r in tracker.records] == [type(exc).__name__]


def test_the_same_bad_answers_are_typed_on_the_async_path(write_settings, tracker) -> None:
    with FakeLLMServer() as srv:
        write_settings(
            {"llm": {"active_provider": "p", "providers": {"p": _answer_profile(srv, "openai")}}}
        )
        client = llmnb.create_llm_client_from_profile()
        cases = [c for c in ANSWER_CASES if c.wire == "openai" and not c.id.startswith("huge")]

        async def one(case: AnswerCase) -> BaseException | None:
            srv.script(case.fault())
            try:
                if case.stream:
                    async for _ in client.astream("hello"):
                        pass
                else:
                    await client.acomplete("hello")
            except Exception as exc:
                return exc
            return None

        async def all_cases() -> list[BaseException | None]:
            out = [await one(c) for c in cases]  # in order: each takes the next fault
            await client.aclose()
            return out

        results = asyncio.run(all_cases())
    for case, exc in zip(cases, results, strict=True):
        assert exc is not None, case.id
        _assert_typed(exc, case.error, case.words)


def test_an_async_client_serves_calls_from_successive_event_loops(write_settings, tracker):
    """``asyncio.run(client.acomplete(...))`` twice, as a script does: both answer.

    The provider's pooled connection belongs to the first loop; reusing it from the
    second must not surface as a bare ``RuntimeError: Event loop is closed``.
    """
    with FakeLLMServer(default_response="ok") as srv:
        write_settings(
            {"llm": {"active_provider": "p", "providers": {"p": _answer_profile(srv, "openai")}}}
        )
        client = llmnb.create_llm_client_from_profile()
        answers = [asyncio.run(client.acomplete("hello")).content for _ in range(3)]
        client.close()
    assert answers == ["ok", "ok", "ok"]


# --------------------------------------------------------------------------- magic lines


@dataclass(frozen=True)
class MagicCase:
    id: str
    source: str  # a whole cell
    error: type[BaseException]
    words: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()


MAGIC_CASES = [
    MagicCase("unknown-long-option", "%%llm --temprature 0.2\nhi", UsageError, ("--temprature",)),
    MagicCase("format-pdf", "%%llm --format pdf\nhi", UsageError, ("pdf", "markdown")),
    MagicCase("max-tokens-a-word", "%%llm --max-tokens lots\nhi", UsageError, ("lots",)),
    MagicCase("missing-option-value", "%%llm -m\nhi", UsageError, ("-m",)),
    MagicCase(
        "missing-profile-option",
        "%%llm -p nosuch\nhi",
        errors.ProviderNotFoundError,
        ("'nosuch'", "Profiles: broken, demo", "To fix"),
    ),
    MagicCase(
        "missing-profile-target",
        "%%llm nosuch:some-model\nhi",
        errors.ProviderNotFoundError,
        ("'nosuch'",),
    ),
    MagicCase("use-unknown-profile", "%llm use ghost", errors.ProviderNotFoundError, ("'ghost'",)),
    MagicCase("budget-a-word", "%llm budget lots", UsageError, ("budget", "lots")),
    MagicCase("budget-negative", "%llm budget -5", UsageError, ("budget", "positive")),
    MagicCase("usage-by-nothing", "%llm usage --by", UsageError, ("--by",)),
    MagicCase(
        "interpolation-index-error",
        "%%llm\n{rows[10]}",
        UsageError,
        ("{rows[10]}", "IndexError", "{{rows[10]}}"),
    ),
    MagicCase(
        "interpolation-attribute-error",
        "%%llm\nsummary: {rows.shape}",
        UsageError,
        ("{rows.shape}", "AttributeError"),
    ),
    MagicCase(
        "interpolation-in-system",
        "%%llm -s 'Context: {rows[99]}'\nhi",
        UsageError,
        ("-s/--system", "{rows[99]}"),
    ),
    MagicCase(
        "agent-unknown-profile",
        "%%llm --agent helper\nhi",
        errors.ProviderNotFoundError,
        ("'ghost'", "LLM_HELPER_ACTIVE_PROVIDER"),
        env=(("LLM_HELPER_ACTIVE_PROVIDER", "ghost"),),
    ),
    MagicCase("temperature-nan", "%%llm -t nan\nhi", UsageError, ("-t/--temperature", "nan")),
    MagicCase("temperature-inf", "%%llm -t inf\nhi", UsageError, ("-t/--temperature", "0 to 2")),
    MagicCase("temperature-5", "%%llm -t 5\nhi", UsageError, ("-t/--temperature", "0 to 2")),
    MagicCase("temperature-negative", "%%llm -t -1\nhi", UsageError, ("-t/--temperature",)),
    MagicCase("temperature-nan-one-liner", "%llm -t nan hi", UsageError, ("-t/--temperature",)),
    MagicCase(
        "agent-unknown",
        "%%llm --agent ghost\nhi",
        UsageError,
        ("--agent 'ghost'", "Agents: helper", "llm.agents", "LLM_GHOST_ACTIVE_PROVIDER"),
    ),
    MagicCase(
        "agent-typo", "%%llm --agent helpr\nhi", UsageError, ("'helpr'", "Did you mean 'helper'")
    ),
    MagicCase(
        "step-unknown",
        "%%llm --agent helper --step ghost\nhi",
        UsageError,
        ("--step 'ghost'", "'helper'", "llm.agents.helper.steps"),
    ),
    MagicCase(
        "compare-unknown-profile",
        "%%llm --compare demo,ghost\nhi",
        errors.ProviderNotFoundError,
        ("'ghost'",),
    ),
    MagicCase(
        "provider-error-one-line",
        "%%llm -p broken\nhi",
        errors.AuthenticationError,
        ("key rejected",),
    ),
]


@pytest.mark.parametrize("case", MAGIC_CASES, ids=lambda c: c.id)
def test_bad_magic_lines_are_one_typed_line(
    case: MagicCase, ip, write_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = mock_settings(
        broken={"type": "mock", "model": "b", "errors": ["auth"], "max_retries": 0}
    )
    settings["llm"]["active_provider"] = "demo"
    settings["llm"]["agents"] = {"helper": {"params": {"temperature": 0.1}}}
    write_settings(settings)
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    ip.user_ns["rows"] = [1, 2, 3]
    ran = run(ip, case.source)
    exc = ran.result.error_in_exec or ran.result.error_before_exec
    assert exc is not None, f"{case.id}: no error; output:\n{ran.text}"
    _assert_typed(exc, case.error, case.words)
    assert "Traceback" not in ran.text, ran.text
    assert len(ran.error_lines) == 1, ran.error_lines
