"""Property-based fuzzing (hypothesis) of everything that reads outside input.

- SSE: realistic OpenAI / Anthropic / Gemini event streams cut at arbitrary byte
  boundaries (inside multi-byte characters too) read through the real provider give the
  exact text, usage and finish reason; garbage gives a typed error or a clean result.
- HTTP answers: any status, headers and body give a Completion or an ``LLMError``.
- The config loader: random YAML-ish documents and random mutations of a valid settings
  file give ``Settings`` or ``ConfigError`` — and building their clients gives a client
  or an ``LLMError``.
- The magic: random option lines give a result, ``UsageError`` or ``LLMError``;
  interpolation only ever evaluates a ``{...}`` that is a valid expression of existing
  names.

Providers are driven through ``HTTPProvider.transport`` (the documented network seam)
set to ``httpx.MockTransport``. Examples are few (``max_examples``) so the suite stays
fast; ``deadline=None`` because a loaded CI machine is slow, not wrong.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import itertools
import json
import string
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from _magics_shell import ip_fixture
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

import llmnb
from llmnb import config, errors
from llmnb._http import SSEDecoder, SSEEvent, map_http_error, parse_retry_after
from llmnb.middleware import RetryPolicy
from llmnb.notebook._interpolate import InterpolationError, interpolate

ip = ip_fixture

FEW = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ----------------------------------------------------------------- building streams

pieces = st.lists(st.text(max_size=12), min_size=1, max_size=8)
cut_points = st.lists(st.integers(min_value=0, max_value=10_000), max_size=20)
newline = st.sampled_from(["\n", "\r\n"])


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _sse(events: list[tuple[str | None, Any]], nl: str, ascii_only: bool) -> bytes:
    out = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=ascii_only)
        head = f"event: {name}{nl}" if name else ""
        out.append(f": keep-alive{nl}{head}data: {text}{nl}{nl}")
    return "".join(out).encode()


def openai_stream(parts: list[str], nl: str, ascii_only: bool) -> bytes:
    events: list[tuple[str | None, Any]] = [
        (None, {"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    ]
    events += [(None, {"choices": [{"index": 0, "delta": {"content": p}}]}) for p in parts]
    events += [
        (None, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        (None, {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7}}),
        (None, "[DONE]"),
    ]
    return _sse(events, nl, ascii_only)


def anthropic_stream(parts: list[str], nl: str, ascii_only: bool) -> bytes:
    start = {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 11}}}
    events: list[tuple[str | None, Any]] = [
        ("message_start", start),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]  # fmt: skip
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
        )
        for p in parts
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 7}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return _sse(events, nl, ascii_only)


def gemini_stream(parts: list[str], nl: str, ascii_only: bool) -> bytes:
    events: list[tuple[str | None, Any]] = [
        (None, {"candidates": [{"content": {"role": "model", "parts": [{"text": p}]}}]})
        for p in parts
    ]
    events.append(
        (
            None,
            {
                "candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 7},
            },
        )
    )
    return _sse(events, nl, ascii_only)


STREAMS = {"openai": openai_stream, "anthropic": anthropic_stream, "gemini": gemini_stream}

# ------------------------------------------------------------------ clients on mocks


class Wire:
    """A client per wire format whose transport answers with the body of the moment."""

    def __init__(self, client: llmnb.LLMClient) -> None:
        self.client = client
        client.retry = RetryPolicy(max_retries=0)
        self.status = 200
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        provider: Any = client.provider
        provider.transport = httpx.MockTransport(self._handle)
        provider.async_transport = httpx.MockTransport(self._ahandle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(self.status, headers=self.headers, content=iter(self.chunks))

    async def _ahandle(self, request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            for chunk in self.chunks:
                yield chunk

        return httpx.Response(self.status, headers=self.headers, content=body())

    def stream_text(self, use_async: bool) -> tuple[str, Any]:
        """The streamed text and the Completion, over the sync or the async path."""
        if not use_async:
            stream = self.client.stream("question")
            return "".join(stream), stream.completion

        async def run() -> tuple[str, Any]:
            astream = self.client.astream("question")
            text = "".join([p async for p in astream])
            await self.client.aclose()  # each example has its own event loop
            return text, astream.completion

        return asyncio.run(run())

    def answer(self, status: int, headers: dict[str, str], chunks: list[bytes]) -> None:
        self.status, self.headers, self.chunks = status, headers, chunks


@pytest.fixture
def wires(write_settings, tracker) -> Iterator[dict[str, Wire]]:
    key = {"api_key": "sk-fuzz-0123456789abcdef", "max_retries": 0}
    write_settings(
        {
            "llm": {
                "active_provider": "openai",
                "providers": {
                    "openai": {"type": "openai_compatible", "model": "m",
                               "base_url": "http://fuzz.invalid/v1", **key},
                    "anthropic": {"type": "anthropic", "model": "m",
                                  "base_url": "http://fuzz.invalid", **key},
                    "gemini": {"type": "gemini", "model": "m",
                               "base_url": "http://fuzz.invalid/v1beta", **key},
                },
            }
        }
    )  # fmt: skip
    made = {n: Wire(llmnb.create_llm_client_from_profile(profile=n)) for n in STREAMS}
    yield made
    for w in made.values():
        w.client.close()


SSE_HEADERS = {"content-type": "text/event-stream"}


@FEW
@given(
    wire=st.sampled_from(sorted(STREAMS)),
    parts=pieces,
    cuts=cut_points,
    nl=newline,
    ascii_only=st.booleans(),
    use_async=st.booleans(),
)
def test_realistic_streams_cut_anywhere_give_the_exact_answer(
    wires: dict[str, Wire],
    wire: str,
    parts: list[str],
    cuts: list[int],
    nl: str,
    ascii_only: bool,
    use_async: bool,
) -> None:
    body = STREAMS[wire](parts, nl, ascii_only)
    w = wires[wire]
    w.answer(200, SSE_HEADERS, _cut(body, cuts))
    text, c = w.stream_text(use_async)
    assert text == "".join(parts)
    assert c is not None
    assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (11, 7)
    assert c.finish_reason is not None


@FEW
@given(
    wire=st.sampled_from(sorted(STREAMS)),
    parts=pieces,
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
    nl=newline,
)
def test_the_sse_decoder_gives_the_same_events_for_any_text_chunking(
    wire: str, parts: list[str], cuts: list[int], nl: str
) -> None:
    text = STREAMS[wire](parts, nl, False).decode()
    whole = SSEDecoder()
    expected = whole.feed(text) + whole.flush()
    points = sorted({c % (len(text) + 1) for c in cuts})
    d = SSEDecoder()
    got: list[SSEEvent] = []
    for a, b in itertools.pairwise([0, *points, len(text)]):
        got += d.feed(text[a:b])
    assert got + d.flush() == expected
    framing = {"openai": 4, "anthropic": 6, "gemini": 1}[wire]  # events around the parts
    assert len(expected) == len(parts) + framing


def _outcome(w: Wire, stream: bool, use_async: bool = False) -> Any:
    """Run one call; a Completion/text, or the llmnb error. Anything else fails the test."""
    try:
        if stream:
            return w.stream_text(use_async)[0]
        return w.client.complete("question")
    except errors.LLMError as exc:
        assert str(exc)  # a message, always
        return exc


garbage_lines = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            [b"data: [DONE]\n\n", b"data: {}\n\n", b"data: null\n\n", b"data: []\n\n",
             b'data: {"choices": null}\n\n', b'data: {"choices": [null]}\n\n',
             b'data: {"choices": [{"delta": null}]}\n\n', b'data: {"error": "x"}\n\n',
             b'data: {"error": {"code": "zz"}}\n\n', b'data: {"type": "message_stop"}\n\n',
             b'event: error\ndata: {"type": "error"}\n\n', b"data: \xff\xfe\n\n", b"\r\r\r",
             b'data: {"candidates": [{"content": {"parts": [null]}}]}\n\n',
             b'data: {"usage": {"prompt_tokens": -1}}\n\n', b": comment\n", b"\n\n"]
        ),
    ),
    max_size=8,
)  # fmt: skip


@FEW
@given(
    wire=st.sampled_from(sorted(STREAMS)),
    lines=garbage_lines,
    cuts=cut_points,
    use_async=st.booleans(),
)
def test_garbage_streams_give_a_typed_error_or_a_clean_result(
    wires: dict[str, Wire], wire: str, lines: list[bytes], cuts: list[int], use_async: bool
) -> None:
    body = b"".join(lines)
    wires[wire].answer(200, SSE_HEADERS, _cut(body, cuts))
    result = _outcome(wires[wire], stream=True, use_async=use_async)
    assert isinstance(result, (str, errors.LLMError))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.sampled_from(["choices", "message", "content", "usage", "prompt_tokens", "error",
                         "candidates", "parts", "text", "type", "delta", "finish_reason",
                         "model", "stop_reason", "usageMetadata", "code", "message_start"])
        | st.text(max_size=5),
        inner,
        max_size=5,
    ),
    max_leaves=20,
)  # fmt: skip


@FEW
@given(wire=st.sampled_from(sorted(STREAMS)), body=json_values)
def test_any_json_answer_gives_a_completion_or_a_typed_error(
    wires: dict[str, Wire], wire: str, body: Any
) -> None:
    wires[wire].answer(200, {"content-type": "application/json"}, [json.dumps(body).encode()])
    result = _outcome(wires[wire], stream=False)
    assert isinstance(result, (llmnb.Completion, errors.LLMError))
    if isinstance(result, llmnb.Completion):
        assert isinstance(result.content, str)


@FEW
@given(
    wire=st.sampled_from(sorted(STREAMS)),
    status=st.integers(min_value=200, max_value=599),
    retry_after=st.one_of(st.none(), st.text(max_size=12), st.sampled_from(
        ["nan", "inf", "-1", "1e400", "0", "Wed, 21 Oct 2015 07:28:00 GMT", "0.001"])),
    body=st.binary(max_size=200),
    stream=st.booleans(),
)  # fmt: skip
def test_any_status_headers_and_body_give_a_result_or_a_typed_error(
    wires: dict[str, Wire], wire: str, status: int, retry_after: str | None, body: bytes,
    stream: bool,
) -> None:  # fmt: skip
    headers = {"content-type": "application/json"}
    if retry_after is not None:
        assume(all(32 <= ord(ch) < 127 for ch in retry_after))  # a header must be ASCII
        headers["retry-after"] = retry_after
    wires[wire].answer(status, headers, [body])
    result = _outcome(wires[wire], stream=stream)
    if status >= 400:
        assert isinstance(result, errors.APIError) and result.status == status


@FEW
@given(
    status=st.integers(min_value=100, max_value=999),
    headers=st.dictionaries(st.sampled_from(["retry-after", "retry-after-ms", "x"]),
                            st.text(max_size=30), max_size=3),
    body=st.one_of(st.binary(max_size=300), st.text(max_size=300), json_values.map(json.dumps)),
)  # fmt: skip
def test_error_mapping_and_retry_after_never_raise(
    status: int, headers: dict[str, str], body: bytes | str
) -> None:
    wait = parse_retry_after(headers)
    assert wait is None or wait >= 0  # never NaN, never negative
    err = map_http_error(status, headers, body, secrets=["sk-fuzz-0123456789abcdef"])
    assert isinstance(err, errors.APIError) and str(err)
    assert "sk-fuzz-0123456789abcdef" not in str(err)


# ----------------------------------------------------------------------- config loader

PROFILE_KEYS = ["type", "model", "models", "base_url", "api_key", "api_key_env", "api_keys",
                "timeout", "max_retries", "temperature", "max_tokens", "params", "headers",
                "pricing", "rate_limits", "responses", "errors", "options", "budget_usd",
                "cooldown", "max_connections_per_key", "acquire_timeout"]  # fmt: skip
TYPES = ["mock", "openai", "openai_compatible", "openrouter", "anthropic", "gemini", "groq",
         "ollama", "MOCK", "nope"]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
    st.sampled_from(TYPES), st.text(max_size=10), st.sampled_from(["${X}", "${NOPE}", "", "0"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(PROFILE_KEYS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
profiles = st.dictionaries(st.sampled_from(PROFILE_KEYS), values, max_size=6).map(
    lambda d: {"type": "mock", "model": "m", **d}
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "llm": st.fixed_dictionaries(
            {},
            optional={
                "active_provider": st.sampled_from(["a", "b", "auto", "zz"]) | scalars,
                "providers": st.dictionaries(st.sampled_from(["a", "b", "c"]) | st.text(max_size=4),
                                             profiles | values, max_size=3),
                "fallbacks": st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=4) | values,
                "agents": st.dictionaries(st.sampled_from(["planner", "user_simulator"]),
                                          values, max_size=2),
                "params": values,
            },
        ) | values,
        "usage": st.dictionaries(st.sampled_from(["store", "budget_usd", "x"]), values,
                                 max_size=2),
        "cache": st.dictionaries(st.sampled_from(["backend", "ttl", "max_entries"]),
                                 values | st.sampled_from(["memory", "sqlite:///c.db"]),
                                 max_size=3),
    },
)  # fmt: skip

_counter = itertools.count()


def _load_and_build(root: Path, text: str | bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Load the document; build each of its profiles' clients. Only llmnb errors may fly."""
    path = root / f"settings-{next(_counter)}.yaml"  # a new file: no stale cache entry
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    monkeypatch.setenv("LLMNB_SETTINGS", str(path))
    try:
        loaded = config.load_settings()
    except errors.ConfigError as exc:
        assert str(exc)
        return
    assert isinstance(loaded, config.Settings)
    for name in loaded.profile_names():
        try:
            client = llmnb.create_llm_client_from_profile(profile=name)
        except errors.LLMError:
            continue
        assert isinstance(client, llmnb.LLMClient)
        repr(client)


@FEW
@given(doc=documents)
def test_random_settings_documents_give_settings_or_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any]
) -> None:
    _load_and_build(tmp_path, yaml.safe_dump(doc, allow_unicode=True), monkeypatch)


VALID = """\
llm:
  active_provider: demo
  providers:
    demo: {type: mock, model: mock-1, responses: {hi: hello}}
    oa:
      type: openai
      model: gpt-4o
      api_key: ${OPENAI_API_KEY}
      timeout: 30
      max_retries: 2
      pricing: {input_per_mtok: 2.5, output_per_mtok: 10}
      rate_limits: {requests_per_minute: 50, input_tokens_per_minute: 40000}
    local: {type: openai_compatible, model: m, base_url: "http://localhost:8000/v1"}
  fallbacks: [oa, local]
  agents:
    planner: {active_provider: oa, params: {temperature: 0.2}, steps: {draft: {max_tokens: 80}}}
usage: {store: "sqlite:///.llmnb/usage.db", budget_usd: 10}
cache: {backend: memory, ttl: 60}
"""
YAML_BITS = [":", " ", "\n", "- ", "{", "}", "[", "]", '"', "'", "#", "&a", "*a", "!!",
             "\t", "? ", "|", ">", "%", "@", "`", "0", "-1", "null", "~", "true", "1e9",
             "\\"]  # fmt: skip

edits = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "replace", "swap_lines", "dup_line"]),
        st.integers(min_value=0, max_value=len(VALID)),
        st.sampled_from(YAML_BITS) | st.text(alphabet=string.printable, max_size=3),
    ),
    min_size=1,
    max_size=6,
)


def _mutate(text: str, ops: list[tuple[str, int, str]]) -> str:
    for op, at, bit in ops:
        at %= len(text) + 1
        lines = text.split("\n")
        i = at % len(lines)
        if op == "insert":
            text = text[:at] + bit + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + len(bit) :]
        elif op == "replace":
            text = text[:at] + bit + text[at + 1 :]
        elif op == "swap_lines":
            j = (i + 1) % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        else:
            lines.insert(i, lines[i])
            text = "\n".join(lines)
    return text


@FEW
@given(ops=edits)
def test_mutations_of_a_valid_settings_file_give_settings_or_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ops: list[tuple[str, int, str]]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fuzz-0123456789abcdef")
    _load_and_build(tmp_path, _mutate(VALID, ops), monkeypatch)


@FEW
@given(text=st.lists(st.sampled_from([*YAML_BITS, "llm", "providers", "a", "type"]),
                     max_size=30).map("".join))  # fmt: skip
def test_yaml_ish_noise_gives_settings_or_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    _load_and_build(tmp_path, text, monkeypatch)


@FEW
@given(at=st.integers(min_value=0, max_value=len(VALID)), junk=st.binary(min_size=1, max_size=4))
def test_random_bytes_in_a_settings_file_give_settings_or_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at: int, junk: bytes
) -> None:
    """Bytes, not text: a file saved in another encoding, or damaged."""
    data = VALID.encode()
    _load_and_build(tmp_path, data[:at] + junk + data[at:], monkeypatch)


def test_the_unmutated_document_is_valid(tmp_path: Path, monkeypatch) -> None:
    """The mutation fuzz starts from a file that loads (else it would test nothing)."""
    (tmp_path / "s.yaml").write_text(VALID)
    monkeypatch.setenv("LLMNB_SETTINGS", str(tmp_path / "s.yaml"))
    assert config.load_settings().profile_names() == ["demo", "oa", "local"]


# --------------------------------------------------------------------------- the magic

WORDS = ["-p", "demo", "-m", "mock-2", "-t", "0.5", "-t", "x", "--max-tokens", "9", "-s",
         "'be brief'", '"unclosed', "-f", "json", "-f", "code", "-f", "nope", "--stream",
         "-o", "out", "-o", "1bad", "--chat", "--chat=c1", "--agent", "planner", "--step",
         "draft", "--no-cache", "--dry-run", "--compare", "demo,demo", "--compare", ",",
         "--insert", "--", "-", "--bogus", "=", "{x}", "{{x}}", "{nope}", "{x[5]}", "{",
         "}", "demo:mock-3", "use", "list", "config", "usage", "--by", "model", "reset",
         "budget", "0.5", "off", "debug", "help", "ask", "providers", "error", "hi",
         "?"]  # fmt: skip
magic_lines = st.lists(st.sampled_from(WORDS) | st.text(max_size=6), max_size=8).map(" ".join)


def _run_magic(ip: Any, line: str, cell: str | None) -> None:
    try:
        if cell is None:
            ip.run_line_magic("llm", line)
        else:
            ip.run_cell_magic("llm", line, cell)
    except (UsageError, errors.LLMError) as exc:
        assert str(exc)


@FEW
@given(line=magic_lines, cell=st.one_of(st.none(), st.text(max_size=20), st.sampled_from(
    ["hi {x}", "{x[0]} and {{x}}", "def f():\n    return {'a': 1}", "", "   "])))  # fmt: skip
def test_random_magic_lines_give_a_result_or_a_usage_or_llm_error(
    ip: Any, write_settings, line: str, cell: str | None
) -> None:
    write_settings(
        {
            "llm": {
                "active_provider": "demo",
                "providers": {"demo": {"type": "mock", "model": "mock-1"}},
                "agents": {"planner": {"params": {"temperature": 0.1}, "steps": {"draft": {}}}},
            }
        }
    )
    ip.user_ns["x"] = [1, 2, 3]
    ip.run_line_magic("llm", "debug off")
    _run_magic(ip, line, cell)


class Spy:
    """Records every use; a value interpolation may only touch when asked to."""

    def __init__(self, log: list[str]) -> None:
        object.__setattr__(self, "_log", log)

    def _touch(self, what: str) -> Spy:
        self._log.append(what)
        return self

    def __getattr__(self, name: str) -> Spy:
        return self._touch(f"getattr {name}")

    def __getitem__(self, key: Any) -> Spy:
        return self._touch("getitem")

    def __call__(self, *a: Any, **k: Any) -> Spy:
        return self._touch("call")

    def __str__(self) -> str:
        self._touch("str")
        return "<spy>"

    def __add__(self, other: Any) -> Spy:
        return self._touch("add")

    def __hash__(self) -> int:
        self._touch("hash")
        return 1


def _groups(text: str) -> list[str]:
    """The inside of every balanced ``{...}`` (nested ones too)."""
    out, stack = [], []
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            out.append(text[stack.pop() + 1 : i])
    return out


def _is_expression_of(source: str, names: set[str]) -> bool:
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError:
        return False
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return "spy" in used and used <= names | set(dir(builtins)) | {
        a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)
    }


TOKENS = ["{", "}", "{{", "}}", "spy", "nope", ".", "x", "[", "]", "(", ")", "0", ":", ",",
          "'", '"', "=", ":=", " ", "lambda", "for", "in", "await", "+", "*", "\n", "if",
          "else", "len", "print"]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.sampled_from(TOKENS), max_size=14).map("".join))
def test_interpolation_only_evaluates_valid_expressions_of_existing_names(text: str) -> None:
    log: list[str] = []
    namespace = {"spy": Spy(log), "x": 5}
    try:
        result = interpolate(text, namespace)
    except InterpolationError as exc:
        assert str(exc)
    else:
        assert isinstance(result.text, str)
    if log:
        assert any(_is_expression_of(g, {"spy", "x"}) for g in _groups(text)), (text, log)
    if "spy" not in text:
        assert not log
