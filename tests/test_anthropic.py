"""``type: anthropic``: the Messages API end to end against FakeLLMServer."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import llmnb
from llmnb import errors
from llmnb.middleware import RetryPolicy
from llmnb.testing import FakeLLMServer, Fault
from llmnb.types import Message, Request, Role
from llmnb.usage import UsageTracker

KEY = "sk-ant-test-canary-0123456789abcdef"
CACHE_USAGE = {
    "input_tokens": 100,
    "cache_creation_input_tokens": 20,
    "cache_read_input_tokens": 300,
    "output_tokens": 50,
}


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(responses={"hello": "Hi there!"}) as srv:
        yield srv


@pytest.fixture
def make_client(
    server: FakeLLMServer,
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
    tracker: UsageTracker,
) -> Callable[..., llmnb.LLMClient]:
    def make(model: str = "claude-sonnet-4-5", **profile: Any) -> llmnb.LLMClient:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        prof = {"type": "anthropic", "model": model, "base_url": server.anthropic_base_url}
        prof.update(profile)
        write_settings({"llm": {"active_provider": "claude", "providers": {"claude": prof}}})
        client = llmnb.create_llm_client_from_profile()
        waits: list[float] = []
        client.retry = RetryPolicy(
            max_retries=client.retry.max_retries, sleep=waits.append, asleep=_record(waits)
        )
        client.waits = waits  # type: ignore[attr-defined]
        return client

    return make


def _record(waits: list[float]) -> Callable[[float], Any]:
    async def asleep(seconds: float) -> None:
        waits.append(seconds)

    return asleep


CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hello"},
    {"role": "assistant", "content": "Hi!"},
    {"role": "user", "content": "Say hello again"},
]


def test_complete_sends_messages_api_json_and_headers(make_client, server):
    client = make_client()
    text = client.generate(CONVERSATION, temperature=0.3)
    assert text == "Hi there!"
    req = server.last_request
    assert req.path == "/v1/messages"
    assert req.headers["x-api-key"] == KEY
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in req.headers  # the key travels in x-api-key only
    assert req.json == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "Hi!"},
            {"role": "user", "content": "Say hello again"},
        ],
        "system": "Be brief.",
        "temperature": 0.3,
    }


def test_profile_sets_version_and_max_tokens_and_the_call_overrides(make_client, server):
    client = make_client(anthropic_version="2099-01-01", max_tokens=111)
    client.generate("hello")
    assert server.last_request.headers["anthropic-version"] == "2099-01-01"
    assert server.last_request.json["max_tokens"] == 111
    client.generate("hello", max_tokens=7)
    assert server.last_request.json["max_tokens"] == 7


def test_consecutive_turns_of_one_role_are_merged_and_stop_becomes_stop_sequences(
    make_client, server
):
    messages = [
        {"role": "user", "content": "first"},
        {"role": "user", "content": "hello"},
        {"role": "tool", "content": "42"},
    ]
    make_client().generate(messages, stop="\n\n", top_k=5)
    sent = server.last_request.json
    assert sent["messages"] == [{"role": "user", "content": "first\n\nhello\n\n42"}]
    assert sent["stop_sequences"] == ["\n\n"] and sent["top_k"] == 5
    assert "stop" not in sent


def test_base_url_may_already_end_in_v1(make_client, server):
    make_client(base_url=server.anthropic_base_url + "/v1").generate("hello")
    assert server.last_request.path == "/v1/messages"


def test_usage_counts_cache_reads_and_writes_as_prompt_tokens(make_client, server, tracker):
    server.script(Fault.reply("cached answer", usage=CACHE_USAGE))
    c = make_client().complete("hello")
    assert c.content == "cached answer" and c.finish_reason == "stop"
    assert c.usage.prompt_tokens == 420  # input + cache writes + cache reads
    assert c.usage.cached_tokens == 300 and c.usage.completion_tokens == 50
    assert not c.usage.estimated
    row = tracker.to_dataframe().iloc[0]
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (420, 50, 300)
    assert row["provider"] == "anthropic" and row["status"] == "ok"
    # claude-sonnet-4-5 is in the price table: a real, non-zero cost.
    assert row["cost_source"] == "price_table" and row["cost_usd"] > 0


def test_stream_yields_text_and_merges_usage_from_start_and_delta(make_client, server, tracker):
    server.script(Fault.reply("streamed answer", usage=CACHE_USAGE))
    stream = make_client().stream("hello")
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces) == "streamed answer"
    assert server.last_request.json["stream"] is True
    c = stream.completion
    assert c is not None and c.finish_reason == "stop"
    # Input side from message_start, the output count from message_delta.
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.cached_tokens) == (
        420,
        50,
        300,
    )
    assert c.ttft_s is not None
    assert tracker.to_dataframe().iloc[0]["completion_tokens"] == 50


def test_thinking_is_kept_apart_from_the_answer(make_client, server):
    client = make_client()
    server.script(Fault.reply("The answer is 4.", reasoning="2 plus 2 makes 4"))
    c = client.complete("hello")
    assert c.content == "The answer is 4." and c.reasoning == "2 plus 2 makes 4"
    server.script(Fault.reply("The answer is 4.", reasoning="2 plus 2 makes 4"))
    stream = client.stream("hello")
    assert "".join(stream) == "The answer is 4."
    assert stream.completion is not None and stream.completion.reasoning == "2 plus 2 makes 4"


def test_overloaded_error_event_mid_stream_raises_overloaded_error(make_client, server, tracker):
    server.script(Fault.stream_error(after_chunks=5, message="Overloaded", type="overloaded_error"))
    got: list[str] = []
    with pytest.raises(errors.OverloadedError, match=r"middle of the stream: .*Overloaded"):
        for piece in make_client().stream("hello"):
            got.append(piece)
    assert got, "text arrived before the error"
    assert len(server.requests) == 1  # text was shown: no retry
    assert tracker.to_dataframe().iloc[0]["status"] == "OverloadedError"


def test_error_event_before_any_text_is_retried(make_client, server, tracker):
    server.script(Fault.stream_error(after_chunks=1, message="Overloaded", type="overloaded_error"))
    assert "".join(make_client().stream("hello")) == "Hi there!"
    assert list(tracker.to_dataframe()["status"]) == ["OverloadedError", "ok"]


def test_529_overloaded_is_retried(make_client, server, tracker):
    server.script(Fault.status(529))
    client = make_client()
    assert client.generate("hello") == "Hi there!"
    assert list(tracker.to_dataframe()["status"]) == ["OverloadedError", "ok"]
    assert len(client.waits) == 1
    # The fake speaks Anthropic's error envelope on this path.
    assert json.loads(server.requests[0].body)["model"] == "claude-sonnet-4-5"


def test_rate_limit_waits_for_retry_after(make_client, server, tracker):
    server.script(Fault.rate_limit(retry_after=2))
    client = make_client()
    assert client.generate("hello") == "Hi there!"
    assert client.waits == [2.0]
    assert list(tracker.to_dataframe()["status"]) == ["RateLimitError", "ok"]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (
            429,
            {
                "type": "rate_limit_error",
                "message": "This request would exceed your account's monthly spend limit.",
            },
        ),
        (429, {"type": "enforced_spend_limit_reached", "message": "Spend limit reached."}),
        (
            400,
            {
                "type": "invalid_request_error",
                "message": "Your credit balance is too low to access the Anthropic API.",
            },
        ),
    ],
)
def test_spend_limit_and_empty_balance_are_quota_errors_and_not_retried(
    make_client, server, status, error
):
    server.script(Fault.status(status, body={"type": "error", "error": error}))
    with pytest.raises(errors.InsufficientQuotaError, match="retrying will not help") as info:
        make_client().complete("hello")
    assert len(server.requests) == 1
    assert info.value.status == status and error["message"] in str(info.value)


def test_ratelimit_headers_reach_the_completion_and_the_error(make_client, tracker):
    headers = {
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:00:30Z",
    }
    with FakeLLMServer(responses={"hello": "Hi"}, response_headers=headers) as srv:
        client = make_client(base_url=srv.anthropic_base_url, max_retries=0)
        c = client.complete("hello")
        assert c.headers is not None
        assert c.headers["anthropic-ratelimit-requests-remaining"] == "49"
        srv.script(Fault.status(429, headers={"anthropic-ratelimit-requests-remaining": "0"}))
        with pytest.raises(errors.RateLimitError) as info:
            client.complete("hello")
        assert info.value.headers is not None
        assert info.value.headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_structured_output_uses_a_forced_tool_and_returns_its_input_as_json(make_client, server):
    client = make_client()
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    request = Request(
        messages=(Message(Role.USER, "hello"),),
        model="claude-sonnet-4-5",
        response_schema=schema,
        schema_name="Place",
    )
    server.script(Fault.reply('{"city": "Paris"}'))
    c = client.provider.complete(request)
    sent = server.last_request.json
    assert sent["tools"][0]["name"] == "Place" and sent["tools"][0]["input_schema"] == schema
    assert sent["tool_choice"] == {"type": "tool", "name": "Place"}
    assert json.loads(c.content) == {"city": "Paris"} and c.finish_reason == "stop"
    server.script(Fault.reply('{"city": "Rome"}'))
    chunks = list(client.provider.stream(dataclasses.replace(request, stream=True)))
    assert json.loads("".join(ch.content for ch in chunks)) == {"city": "Rome"}
    assert type(client.provider).structured_mode == "tool"


def test_cut_stream_without_message_stop_is_a_network_error(make_client, server):
    server.script(Fault.cut_stream(after_chunks=4))
    with pytest.raises(errors.NetworkError):
        "".join(make_client().stream("hello"))


def test_malformed_json_and_error_bodies_with_200_are_typed(make_client, server):
    client = make_client(max_retries=0)
    server.script(Fault.malformed_json())
    with pytest.raises(errors.ResponseFormatError):
        client.complete("hello")
    server.script(
        Fault.json(200, {"type": "error", "error": {"type": "api_error", "message": "x"}})
    )
    with pytest.raises(errors.ProviderError, match="x"):
        client.complete("hello")


def test_missing_key_names_the_variable_and_sends_nothing(write_settings, server, tracker):
    prof = {"type": "anthropic", "model": "claude-sonnet-4-5", "base_url": server.url}
    write_settings({"llm": {"active_provider": "c", "providers": {"c": prof}}})
    with pytest.raises(errors.MissingAPIKeyError, match="ANTHROPIC_API_KEY"):
        llmnb.create_llm_client_from_profile().generate("hi")
    assert server.requests == []


def test_key_never_appears_in_errors_reprs_or_rows(make_client, server, tracker):
    client = make_client(max_retries=0)
    body = {"type": "error", "error": {"type": "authentication_error", "message": f"bad {KEY}"}}
    server.script(Fault.status(401, body=body))
    with pytest.raises(errors.AuthenticationError, match="ANTHROPIC_API_KEY") as info:
        client.complete("hello")
    for text in (str(info.value), repr(info.value), info.value.body or "", repr(client)):
        assert KEY not in text
    assert KEY not in tracker.to_dataframe().to_csv()


def test_async_sends_the_same_request_and_streams(make_client, server):
    client = make_client()
    client.generate("hello", temperature=0.1)
    sync_json = server.last_request.json

    async def run() -> tuple[str, str]:
        async with client:
            text = await client.agenerate("hello", temperature=0.1)
            same = server.last_request.json
            streamed = "".join([p async for p in client.astream("hello")])
        assert same == sync_json
        return text, streamed

    assert asyncio.run(run()) == ("Hi there!", "Hi there!")


# -- the fake server's Anthropic wire itself -------------------------------------------


def test_fake_rejects_what_the_real_api_rejects(server):
    import httpx

    url = server.anthropic_base_url + "/v1/messages"
    ok = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client() as http:
        assert http.post(url, json=ok).status_code == 200
        no_max = {k: v for k, v in ok.items() if k != "max_tokens"}
        r = http.post(url, json=no_max)
        assert r.status_code == 400 and r.json()["error"]["message"] == "max_tokens: Field required"
        system_turn = {**ok, "messages": [{"role": "system", "content": "x"}, *ok["messages"]]}
        r = http.post(url, json=system_turn)
        assert r.status_code == 400 and "top-level `system`" in r.json()["error"]["message"]
        server.script(Fault.rate_limit(retry_after=1))
        r = http.post(url, json=ok)
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "rate_limit_error"


def test_fake_stream_has_the_named_event_sequence(server):
    import httpx

    body = {
        "model": "m",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "hello"}],
    }
    with httpx.Client() as http:
        text = http.post(server.anthropic_base_url + "/v1/messages", json=body).text
    names = [line[len("event: ") :] for line in text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}


@pytest.mark.parametrize(
    "event",
    [
        'event: error\ndata: {"type": "error", "error": {"type": "api_error", '
        f'"message": "bad key {KEY}"}}}}\n\n',
        f"event: content_block_delta\ndata: {{'key': '{KEY}'}}\n\n",  # not JSON
    ],
)
def test_a_key_quoted_in_a_stream_event_is_scrubbed(make_client, server, tracker, event):
    server.script(Fault.sse(event))
    with pytest.raises(errors.ProviderError) as info:
        "".join(make_client(max_retries=0).stream("hello"))
    for text in (str(info.value), info.value.body or "", tracker.to_dataframe().to_csv()):
        assert KEY not in text
