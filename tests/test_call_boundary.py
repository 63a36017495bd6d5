"""Typed errors at the call boundary: arguments, custom providers, factories, hooks.

Every bad argument is an ``InvalidRequestError`` naming it, raised before anything is
sent — by all four shells — and the refused call leaves its ``not_sent`` row. A custom
provider's own exception is a ``ProviderError`` (original as cause) that fails over; a
factory that raises is a ``ConfigError`` naming it; a ``Provider`` with only
``complete()`` serves async calls and ``df.llm``; a hook that forgets ``return`` is no
``TypeError`` deep inside. Wire calls go to ``FakeLLMServer``.
"""

from __future__ import annotations

import asyncio
import math
import textwrap
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

import llmnb
from llmnb import errors
from llmnb.client.manager import reset_llm_manager
from llmnb.middleware import Middleware
from llmnb.providers import Provider
from llmnb.testing import FakeLLMServer
from llmnb.types import Completion, Request, Usage
from llmnb.usage import UsageTracker


@pytest.fixture(autouse=True)
def _fresh_manager() -> Iterator[None]:
    reset_llm_manager()  # the process-wide one serves llm.fallbacks
    yield
    reset_llm_manager()


@pytest.fixture
def client(server: FakeLLMServer, write_settings: Callable[[dict[str, Any]], Any]) -> Any:
    write_settings(
        {
            "llm": {
                "active_provider": "p",
                "providers": {
                    "p": {"type": "openai_compatible", "model": "m", "base_url": server.base_url}
                },
            }
        }
    )
    return llmnb.create_llm_client_from_profile()


def _drain(stream: Any) -> str:
    return "".join(stream)


async def _adrain(stream: Any) -> str:
    return "".join([piece async for piece in stream])


SHELLS: dict[str, Callable[..., Any]] = {
    "complete": lambda c, m, kw: c.complete(m, **kw),
    "acomplete": lambda c, m, kw: asyncio.run(c.acomplete(m, **kw)),
    "stream": lambda c, m, kw: _drain(c.stream(m, **kw)),
    "astream": lambda c, m, kw: asyncio.run(_adrain(c.astream(m, **kw))),
}

OK = "hello"
BAD_ARGUMENTS = [
    # id, messages, params, words the message must hold
    ("temperature-nan", OK, {"temperature": math.nan}, ("temperature=nan", "finite")),
    ("temperature-inf", OK, {"temperature": math.inf}, ("temperature=inf",)),
    ("temperature-negative", OK, {"temperature": -0.5}, ("temperature=-0.5",)),
    ("temperature-5", OK, {"temperature": 5}, ("temperature=5", "<= 2")),
    ("temperature-a-word", OK, {"temperature": "hot"}, ("temperature='hot'", "number")),
    ("temperature-bool", OK, {"temperature": True}, ("temperature=True",)),
    ("top_p-nan", OK, {"top_p": math.nan}, ("top_p=nan", "finite")),
    ("nested-inf", OK, {"logit_bias": {"50256": -math.inf}}, ("logit_bias['50256']",)),
    ("list-nan", OK, {"stop_weights": [1.0, math.nan]}, ("stop_weights[1]",)),
    ("timeout-negative", OK, {"timeout": -1}, ("timeout=-1", "> 0")),
    ("timeout-nan", OK, {"timeout": math.nan}, ("timeout=nan",)),
    ("timeout-zero", OK, {"timeout": 0}, ("timeout=0",)),
    ("timeout-a-word", OK, {"timeout": "soon"}, ("timeout='soon'",)),
    ("max-tokens-word", OK, {"max_tokens": "ten"}, ("max_tokens='ten'", "whole number")),
    ("max-tokens-zero", OK, {"max_tokens": 0}, ("max_tokens=0",)),
    ("max-tokens-float", OK, {"max_tokens": 10.5}, ("max_tokens=10.5",)),
    ("model-int", OK, {"model": 5}, ("model=5", "model name")),
    ("model-blank", OK, {"model": "  "}, ("model='  '",)),
    ("param-object", OK, {"user": object()}, ("user=", "cannot be sent as JSON")),
    ("param-set", OK, {"stop": {"a", "b"}}, ("stop=", "set", "JSON")),
    ("param-bytes", OK, {"stop": b"END"}, ("stop=b'END'", "bytes")),
    ("param-key-tuple", OK, {"logit_bias": {(1, 2): 3}}, ("logit_bias", "(1, 2)", "str keys")),
    ("param-surrogate", OK, {"stop": ["ok", "bad\ud800"]}, ("stop[1]", "surrogate")),
    ("param-cycle", OK, {"meta": (cyc := [], cyc.append(cyc))[0]}, ("meta", "nested")),
    ("messages-none", None, {}, ("messages=None", "prompt str")),
    ("messages-int", 5, {}, ("messages=5",)),
    ("messages-bytes", b"hi", {}, ("messages=b'hi'",)),
    ("messages-one-dict", {"role": "user", "content": "hi"}, {}, ("messages=", "list of")),
    ("messages-empty", [], {}, ("messages are empty",)),
    ("role-unknown", [{"role": "ghost", "content": "x"}], {}, ("messages[0]", "'ghost'")),
    ("role-missing", [{"content": "x"}], {}, ("message 0", "'role'")),
    ("content-int", [{"role": "user", "content": 5}], {}, ("messages[0]", "str")),
    ("message-a-string-list", ["hi"], {}, ("messages[0]", "dict or llmnb.Message")),
    ("prompt-surrogate", "caf\udce9 au lait", {}, ("the prompt", "surrogate", "position 3")),
    (
        "content-surrogate",
        [{"role": "system", "content": "ok"}, {"role": "user", "content": "\ud83d alone"}],
        {},
        ("messages[1] content", "surrogate"),
    ),
    ("name-not-str", [{"role": "user", "content": "x", "name": 3}], {}, ("messages[0]['name']",)),
]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("case", "messages", "params", "words"), BAD_ARGUMENTS)
def test_a_bad_argument_is_refused_before_sending_naming_it(
    client, server, tracker: UsageTracker, shell, case, messages, params, words
):
    with pytest.raises(errors.InvalidRequestError) as info:
        SHELLS[shell](client, messages, dict(params))
    text = str(info.value)
    assert all(w in text for w in words), f"{words} not all in: {text}"
    assert server.requests == []  # nothing was sent
    [row] = tracker.records
    assert row.status == "InvalidRequestError" and row.error == text
    assert row.cost_usd == 0.0 and row.cost_source == "not_sent"
    assert row.prompt_tokens is None and row.profile == "p" and row.model == "m"
    assert row.attempt == 1 and row.call_id


def test_a_refused_call_never_fails_over(server, write_settings, tracker: UsageTracker):
    with FakeLLMServer(default_response="from the backup") as backup:
        providers = {
            "p": {"type": "openai_compatible", "model": "m", "base_url": server.base_url},
            "b": {"type": "openai_compatible", "model": "m2", "base_url": backup.base_url},
        }
        write_settings(
            {"llm": {"active_provider": "p", "providers": providers, "fallbacks": ["b"]}}
        )
        with pytest.raises(errors.InvalidRequestError, match="temperature"):
            llmnb.create_llm_client_from_profile().complete("hi", temperature=math.nan)
        assert server.requests == [] and backup.requests == []
    assert [r.status for r in tracker.records] == ["InvalidRequestError"]


def test_good_arguments_of_numpy_types_are_sent_as_plain_numbers(client, server):
    np = pytest.importorskip("numpy")
    c = client.complete(
        "hello", temperature=np.float64(0.5), max_tokens=np.int64(7), timeout=np.float32(30)
    )
    assert c.content == "Hi there!"
    body = server.last_request.json
    assert body["temperature"] == 0.5 and body["max_tokens"] == 7
    assert type(body["max_tokens"]) is int


def test_a_good_call_with_non_ascii_text_and_rich_params_is_unchanged(client, server):
    c = client.complete(
        [{"role": "user", "content": "hello — café 😀"}],
        temperature=0,
        stop=["\n\n", "FIN"],
        logit_bias={50256: -100},
        response_format={"type": "json_object"},
        seed=None,
    )
    assert c.content == "Hi there!"
    body = server.last_request.json
    assert body["messages"][0]["content"] == "hello — café 😀"
    assert body["logit_bias"] == {"50256": -100} and body["stop"] == ["\n\n", "FIN"]


# --- custom providers' exceptions --------------------------------------------------------


class FailingBot:
    def __init__(self) -> None:
        self.calls = 0

    def generate(self, messages, temperature=None, max_tokens=None, timeout=None):
        self.calls += 1
        raise RuntimeError("the GPU is on fire")


class FailingProvider(Provider):
    type_name = "failing_provider_test"

    def complete(self, request: Request) -> Completion:
        raise KeyError("choices")


BOTS: list[FailingBot] = []


def _failing_bot(profile, model, agent):
    bot = FailingBot()
    BOTS.append(bot)
    return bot


@pytest.fixture
def custom(server, write_settings) -> Callable[[str], Any]:
    """A client of profile ``c`` of the given type, failing over to ``backup``."""
    llmnb.register_provider("failing_bot_test", _failing_bot)
    llmnb.register_provider("failing_provider_test", FailingProvider)

    def make(type_name: str, fallbacks: bool = False) -> Any:
        providers = {
            "c": {"type": type_name, "model": "custom-model"},
            "backup": {"type": "openai_compatible", "model": "m", "base_url": server.base_url},
        }
        llm: dict[str, Any] = {"active_provider": "c", "providers": providers}
        if fallbacks:
            llm["fallbacks"] = ["backup"]
        write_settings({"llm": llm})
        return llmnb.create_llm_client_from_profile()

    return make


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    ("type_name", "cause", "words"),
    [
        ("failing_bot_test", RuntimeError, ("FailingBot.generate()", "the GPU is on fire")),
        ("failing_provider_test", KeyError, ("FailingProvider.", "KeyError", "choices")),
    ],
)
def test_a_custom_providers_exception_is_a_provider_error_with_its_cause(
    custom, tracker: UsageTracker, shell, type_name, cause, words
):
    client = custom(type_name)
    with pytest.raises(errors.ProviderError) as info:
        SHELLS[shell](client, "hi", {})
    assert type(info.value.__cause__) is cause
    text = str(info.value)
    assert text.startswith("[c] ") and all(w in text for w in words), text
    # One attempt: llmnb cannot tell a passing fault from a bug in the provider's code.
    assert [(r.status, r.profile) for r in tracker.records] == [("ProviderError", "c")]
    assert words[-1] in (tracker.records[0].error or "")


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("type_name", ["failing_bot_test", "failing_provider_test"])
def test_a_custom_providers_exception_fails_over(
    custom, server, tracker: UsageTracker, shell, type_name
):
    client = custom(type_name, fallbacks=True)
    assert SHELLS[shell](client, "hello", {}).__str__() == "Hi there!"
    rows = tracker.records
    assert [(r.profile, r.status) for r in rows] == [("c", "ProviderError"), ("backup", "ok")]
    assert len({r.call_id for r in rows}) == 1 and len(server.requests) == 1


def test_a_custom_provider_raising_an_llmnb_error_keeps_it(write_settings, tracker):
    class Limited:
        calls = 0

        def generate(self, messages, temperature=None, max_tokens=None, timeout=None):
            Limited.calls += 1
            if Limited.calls == 1:
                raise errors.RateLimitError("slow down", retry_after=0)
            return "second time lucky"

    llmnb.register_provider("limited_test", lambda profile, model, agent: Limited())
    write_settings(
        {
            "llm": {
                "active_provider": "l",
                "providers": {"l": {"type": "limited_test", "model": "x"}},
            }
        }
    )
    c = llmnb.create_llm_client_from_profile().complete("hi")
    assert c.content == "second time lucky" and c.attempts == 2  # typed errors are retried
    assert [r.status for r in tracker.records] == ["RateLimitError", "ok"]


# --- factories that raise --------------------------------------------------------------


def test_a_provider_factory_that_raises_is_a_config_error_naming_it(
    write_settings, tmp_path, monkeypatch
):
    (tmp_path / "raising_factory_llmnb_test.py").write_text(
        textwrap.dedent("""
        def create(profile, model_name, agent):
            raise ValueError("no GPU found")
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = "raising_factory_llmnb_test:create"
    write_settings(
        {
            "llm": {
                "active_provider": "mine",
                "providers": {"mine": {"provider_factory": spec, "model": "m"}},
            }
        }
    )
    with pytest.raises(errors.ConfigError) as info:
        llmnb.create_llm_client_from_profile()
    text = str(info.value)
    assert "profile 'mine'" in text and f"provider_factory '{spec}'" in text
    assert "ValueError: no GPU found" in text
    assert isinstance(info.value.__cause__, ValueError)


def test_a_registered_factory_or_provider_class_that_raises_is_a_config_error(write_settings):
    class Fragile(Provider):
        def __init__(self, *args: Any) -> None:
            raise OSError("model file missing")

    def factory(profile, model, agent):
        raise ZeroDivisionError("division by zero")

    llmnb.register_provider("fragile_test", Fragile)
    llmnb.register_provider("zero_test", factory)
    providers = {
        "a": {"type": "fragile_test", "model": "m"},
        "b": {"type": "zero_test", "model": "m"},
    }
    write_settings({"llm": {"active_provider": "a", "providers": providers}})
    for profile, words in (
        ("a", ("profile 'a'", "Fragile(...)", "'fragile_test'", "OSError: model file missing")),
        ("b", ("profile 'b'", "'zero_test'", "ZeroDivisionError")),
    ):
        with pytest.raises(errors.ConfigError) as info:
            llmnb.create_llm_client_from_profile(profile=profile)
        assert all(w in str(info.value) for w in words), str(info.value)
    with pytest.raises(errors.ConfigError, match="Fragile"):
        llmnb.LLMManager.from_settings().get_client("a")


def test_a_factory_raising_an_llmnb_error_keeps_it(write_settings):
    def factory(profile, model, agent):
        raise errors.MissingAPIKeyError("set MY_KEY")

    llmnb.register_provider("needs_key_test", factory)
    write_settings(
        {
            "llm": {
                "active_provider": "k",
                "providers": {"k": {"type": "needs_key_test", "model": "m"}},
            }
        }
    )
    with pytest.raises(errors.MissingAPIKeyError, match="set MY_KEY"):
        llmnb.create_llm_client_from_profile()


# --- a Provider with only complete() --------------------------------------------------------


class SyncOnly(Provider):
    """Implements complete() and nothing else."""

    type_name = "sync_only_test"
    threads: ClassVar[list[int]] = []

    def complete(self, request: Request) -> Completion:
        SyncOnly.threads.append(threading.get_ident())
        text = "echo: " + request.messages[-1].content
        return Completion(content=text, model=request.model, usage=Usage(2, 3))


@pytest.fixture
def sync_only(write_settings) -> Any:
    SyncOnly.threads.clear()
    llmnb.register_provider("sync_only_test", SyncOnly)
    write_settings(
        {
            "llm": {
                "active_provider": "s",
                "providers": {"s": {"type": "sync_only_test", "model": "m"}},
            }
        }
    )
    return llmnb.create_llm_client_from_profile()


def test_a_complete_only_provider_serves_all_four_shells(sync_only, tracker: UsageTracker):
    main = threading.get_ident()
    for shell in SHELLS.values():
        assert str(shell(sync_only, "hi", {})) == "echo: hi"
    assert [r.status for r in tracker.records] == ["ok"] * 4
    # The blocking complete() ran off the event loop's thread for acomplete and astream.
    assert SyncOnly.threads[0] == main and SyncOnly.threads[2] == main
    assert SyncOnly.threads[1] != main and SyncOnly.threads[3] != main


def test_a_complete_only_provider_serves_df_llm(sync_only, tracker: UsageTracker):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"text": ["a", "b", "c"]})
    out = df.llm.complete("say {text}", client=sync_only, progress=False)
    assert list(out["output"]) == ["echo: say a", "echo: say b", "echo: say c"]
    assert out["output_error"].isna().all()
    assert len(tracker.records) == 3


# --- middleware hooks that return the wrong thing ---------------------------------------------


class ForgotReturn(Middleware):
    """Every hook looks at the call and forgets to return."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def before_attempt(self, call):  # type: ignore[override]
        self.seen.append("before_attempt")

    def after_call(self, call, completion):  # type: ignore[override]
        self.seen.append("after_call")


class Answers(Middleware):
    def __init__(self, hook: str, value: Any) -> None:
        self.hook, self.value = hook, value

    def before_call(self, call):  # type: ignore[override]
        return self.value if self.hook == "before_call" else None

    def before_attempt(self, call):  # type: ignore[override]
        return self.value if self.hook == "before_attempt" else 0

    def after_call(self, call, completion):  # type: ignore[override]
        return self.value if self.hook == "after_call" else completion


@pytest.mark.parametrize("shell", SHELLS)
def test_a_hook_that_returns_none_changes_nothing(client, server, tracker, shell):
    hooks = ForgotReturn()
    client.add_middleware(hooks)
    assert str(SHELLS[shell](client, "hello", {})) == "Hi there!"
    assert hooks.seen == ["before_attempt", "after_call"]
    assert [r.status for r in tracker.records] == ["ok"]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    ("hook", "value", "words"),
    [
        ("before_call", "yes", ("before_call() returned 'yes'", "None to go on", "Completion")),
        ("before_attempt", "soon", ("before_attempt() returned 'soon'", "seconds")),
        ("before_attempt", math.inf, ("before_attempt() returned inf", "finite")),
        ("before_attempt", math.nan, ("before_attempt() returned nan",)),
        ("after_call", 42, ("after_call() returned 42", "the completion")),
    ],
)
def test_a_hook_answer_of_the_wrong_kind_is_refused_saying_what_to_return(
    client, server, tracker: UsageTracker, shell, hook, value, words
):
    client.add_middleware(Answers(hook, value))
    with pytest.raises(errors.InvalidOptionError) as info:
        SHELLS[shell](client, "hello", {})
    text = str(info.value)
    assert all(w in text for w in words), text
    assert "Answers()" in text
    statuses = [r.status for r in tracker.records]
    if hook == "after_call":  # the answer came and was billed; then the hook failed
        assert statuses == ["ok"] and len(server.requests) == 1
    else:  # refused before sending: one not_sent row, as any refusal
        assert statuses == ["InvalidOptionError"] and server.requests == []
        assert tracker.records[0].cost_source == "not_sent"


# --- an answer with a lone surrogate, in a real kernel -------------------------------------


@pytest.mark.slow
def test_an_answer_with_a_lone_surrogate_displays_in_a_real_kernel(tmp_path, write_settings):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    # The server sends the JSON escape "\ud800": a str Python holds but cannot encode.
    with FakeLLMServer(responses={"hello": "bad \ud800 byte, good \U0001f600"}) as srv:
        providers = {"s": {"type": "openai_compatible", "model": "m", "base_url": srv.base_url}}
        write_settings({"llm": {"active_provider": "s", "providers": providers}})
        cells = [
            "%load_ext llmnb",
            "%%llm -f text\nhello",
            "%%llm --stream -f text\nhello",
            "%%llm -f markdown\nhello",
            "%%llm --compare s,s:m2\nhello",
        ]
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        client = nbclient.NotebookClient(
            nb,
            timeout=120,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute()
    for cell in nb.cells[1:]:
        outputs = cell["outputs"]
        errors_shown = [
            o for o in outputs if o["output_type"] == "error" or o.get("name") == "stderr"
        ]
        assert errors_shown == [], (cell["source"], errors_shown)
        texts = [o["data"].get("text/plain", "") for o in outputs if "data" in o]
        assert any("bad \ufffd byte, good \U0001f600" in t for t in texts), (cell["source"], texts)
