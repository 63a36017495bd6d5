"""OpenAI-compatible and OpenRouter clients, over real HTTP to FakeLLMServer."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import llmnb
from llmnb import errors
from llmnb.middleware import RetryPolicy
from llmnb.testing import FakeLLMServer, Fault
from llmnb.usage import UsageTracker

KEY = "sk-test-canary-0123456789abcdef"


class Sleeps:
    """Injected sleep: records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def make_client(
    server: FakeLLMServer,
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
    tracker: UsageTracker,
) -> Callable[..., llmnb.LLMClient]:
    def make(ptype: str = "openai", model: str = "gpt-4o", **profile: Any) -> llmnb.LLMClient:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
        prof = {"type": ptype, "model": model, "base_url": server.base_url, **profile}
        write_settings({"llm": {"active_provider": "p", "providers": {"p": prof}}})
        client = llmnb.create_llm_client_from_profile()
        sleeps = Sleeps()
        client.retry = RetryPolicy(
            max_retries=client.retry.max_retries, sleep=sleeps, asleep=sleeps.asleep
        )
        client.sleeps = sleeps  # type: ignore[attr-defined]
        return client

    return make


def test_generate_sends_openai_json_and_bearer_key(make_client, server):
    client = make_client()
    text = client.generate(
        [{"role": "user", "content": "hello"}], temperature=0.2, max_tokens=50, timeout=30
    )
    assert text == "Hi there!"
    req = server.last_request
    assert req.path == "/v1/chat/completions"
    assert req.json["model"] == "gpt-4o"
    assert req.json["messages"] == [{"role": "user", "content": "hello"}]
    assert req.json["temperature"] == 0.2
    assert req.json["max_tokens"] == 50
    assert "stream" not in req.json
    assert req.headers["authorization"] == f"Bearer {KEY}"


def test_complete_returns_completion_with_usage_cost_and_latency(make_client, tracker):
    c = make_client().complete("Explain SSE in one line")
    assert isinstance(c, llmnb.Completion)
    assert c.finish_reason == "stop"
    assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0
    assert c.usage.estimated is False
    assert c.latency_s > 0
    assert c.profile == "p" and c.provider == "openai" and c.attempts == 1
    # gpt-4o is in the maintained price table: a real cost, labelled so.
    assert c.cost_source == "price_table" and c.cost_usd > 0
    df = tracker.to_dataframe()
    assert len(df) == 1
    row = df.iloc[0]
    assert row["status"] == "ok" and row["call_id"] == c.call_id
    assert row["prompt_tokens"] == c.usage.prompt_tokens
    assert row["cost_usd"] == pytest.approx(c.cost_usd)


def test_reasoning_models_get_max_completion_tokens_and_no_temperature(make_client, server):
    make_client(model="o3-mini").generate("hi", temperature=0.5, max_tokens=20)
    sent = server.last_request.json
    assert sent["max_completion_tokens"] == 20
    assert "max_tokens" not in sent and "temperature" not in sent


def test_openrouter_sends_attribution_headers_and_uses_reported_cost(make_client, server, tracker):
    server.script(Fault.reply("routed", cost=0.00042))
    client = make_client(
        "openrouter", "openai/gpt-5.2", http_referer="https://example.com", x_title="llmnb"
    )
    c = client.complete("hi", max_tokens=10)
    req = server.last_request
    assert req.headers["http-referer"] == "https://example.com"
    assert req.headers["x-title"] == "llmnb"
    # OpenRouter normalises max_tokens for every model, reasoning ones included.
    assert req.json["max_tokens"] == 10 and "temperature" not in req.json
    assert c.content == "routed"
    assert c.cost_usd == pytest.approx(0.00042) and c.cost_source == "provider"
    assert tracker.to_dataframe().iloc[0]["cost_source"] == "provider"


def test_extra_parameters_travel_on_the_wire(make_client, server):
    make_client().generate("hi", top_p=0.9, stop=["\n"], seed=7)
    sent = server.last_request.json
    assert sent["top_p"] == 0.9 and sent["stop"] == ["\n"] and sent["seed"] == 7


def test_stream_yields_pieces_and_records_usage_from_final_chunk(make_client, server, tracker):
    client = make_client()
    stream = client.stream("hello")
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces) == "Hi there!"
    sent = server.last_request.json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    c = stream.completion
    assert c is not None and c.content == "Hi there!"
    assert c.usage.completion_tokens > 0 and not c.usage.estimated
    assert c.ttft_s is not None and c.ttft_s <= c.latency_s
    row = tracker.to_dataframe().iloc[0]
    assert row["status"] == "ok" and not math.isnan(row["ttft_s"])


def test_stream_skips_sse_comment_lines(write_settings, monkeypatch, tracker):
    with FakeLLMServer(default_response="abcdefgh", sse_comments=True) as srv:
        write_settings(
            {
                "llm": {
                    "active_provider": "p",
                    "providers": {
                        "p": {"type": "openai_compatible", "model": "m", "base_url": srv.base_url}
                    },
                }
            }
        )
        client = llmnb.create_llm_client_from_profile()
        assert "".join(client.stream("x")) == "abcdefgh"
        # openai_compatible has no key of its own: nothing is sent.
        assert "authorization" not in srv.last_request.headers


def test_stream_without_usage_estimates_tokens_and_says_so(write_settings, tracker):
    # A server that ignores stream_options.include_usage: parse-only, via MockTransport.
    events = [
        {"choices": [{"delta": {"content": c}, "finish_reason": None}]} for c in ("no ", "usage")
    ]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    write_settings(
        {
            "llm": {
                "active_provider": "p",
                "providers": {
                    "p": {
                        "type": "vllm",
                        "model": "m",
                        "pricing": {"input_per_mtok": 1, "output_per_mtok": 2},
                    }
                },
            }
        }
    )
    client = llmnb.create_llm_client_from_profile()
    client.provider.transport = httpx.MockTransport(
        lambda request: httpx.Response(
            200, text=body, headers={"content-type": "text/event-stream"}
        )
    )
    stream = client.stream("x")
    assert stream.text() == "no usage"
    assert stream.completion is not None and stream.completion.usage.estimated
    assert stream.completion.cost_source == "estimate" and stream.completion.cost_usd > 0


def test_mid_stream_error_event_raises_typed_error_and_records_row(make_client, server, tracker):
    server.script(Fault.stream_error(after_chunks=3, message="upstream exploded"))
    client = make_client()
    got: list[str] = []
    with pytest.raises(errors.APIError, match="upstream exploded") as info:
        for piece in client.stream("hello"):
            got.append(piece)
    assert got and "middle of the stream" in str(info.value)
    df = tracker.to_dataframe()
    assert len(df) == 1 and df.iloc[0]["status"] == type(info.value).__name__


def test_error_event_before_any_text_is_retried(make_client, server, tracker):
    server.script(Fault.stream_error(after_chunks=1, message="warming up"))
    assert "".join(make_client().stream("hello")) == "Hi there!"
    assert list(tracker.to_dataframe()["status"]) == ["ProviderError", "ok"]


def test_cut_stream_raises_network_error_and_is_not_retried_after_text(
    make_client, server, tracker
):
    server.script(Fault.cut_stream(after_chunks=2))
    client = make_client()
    got: list[str] = []
    with pytest.raises(errors.NetworkError):
        for piece in client.stream("hello"):
            got.append(piece)
    assert got, "some text arrived before the cut"
    assert len(server.requests) == 1  # a retry would duplicate text already shown
    row = tracker.to_dataframe().iloc[0]
    assert row["status"] == "NetworkError" and row["completion_tokens"] > 0


def test_stream_failure_before_first_token_is_retried(make_client, server, tracker):
    server.script(Fault.status(503))
    client = make_client()
    assert "".join(client.stream("hello")) == "Hi there!"
    assert list(tracker.to_dataframe()["status"]) == ["OverloadedError", "ok"]


def test_rate_limit_is_retried_after_retry_after_and_every_attempt_is_a_row(
    make_client, server, tracker
):
    server.script(
        Fault.rate_limit(retry_after=1.5), Fault.rate_limit(retry_after=None, retry_after_ms=250)
    )
    client = make_client()
    c = client.complete("hello")
    assert c.content == "Hi there!" and c.attempts == 3
    assert client.sleeps.waits == [1.5, 0.25]
    df = tracker.to_dataframe()
    assert list(df["status"]) == ["RateLimitError", "RateLimitError", "ok"]
    assert list(df["attempt"]) == [1, 2, 3]
    assert df["call_id"].nunique() == 1
    assert math.isnan(df.iloc[0]["cost_usd"]) and df.iloc[0]["cost_source"] == "unknown"


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 529])
def test_retryable_statuses_back_off_exponentially_then_raise(make_client, server, tracker, status):
    server.script(*[Fault.status(status)] * 3)
    client = make_client()
    with pytest.raises(errors.APIError) as info:
        client.complete("hello")
    assert info.value.status == status
    assert len(server.requests) == 3  # 1 + default 2 retries
    waits = client.sleeps.waits
    assert len(waits) == 2
    assert 0.375 <= waits[0] <= 0.5 and 0.75 <= waits[1] <= 1.0  # 0.5·2^n less ≤25 % jitter
    assert len(tracker) == 3


def test_retry_after_beyond_sixty_seconds_raises_at_once_with_retry_after(
    make_client, server, tracker
):
    server.script(Fault.rate_limit(retry_after=120))
    client = make_client()
    with pytest.raises(errors.RateLimitError) as info:
        client.complete("hello")
    assert info.value.retry_after == 120
    assert len(server.requests) == 1 and client.sleeps.waits == []
    assert len(tracker) == 1


def test_insufficient_quota_is_not_retried(make_client, server):
    server.script(Fault.insufficient_quota())
    with pytest.raises(errors.InsufficientQuotaError, match="quota"):
        make_client().complete("hello")
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, errors.InvalidRequestError),
        (404, errors.InvalidRequestError),
        (401, errors.AuthenticationError),
        (403, errors.AuthenticationError),
    ],
)
def test_client_errors_are_not_retried(make_client, server, status, exc):
    server.script(Fault.status(status))
    with pytest.raises(exc) as info:
        make_client().complete("hello")
    assert len(server.requests) == 1
    if exc is errors.AuthenticationError:
        assert "OPENAI_API_KEY" in str(info.value)
    assert KEY not in str(info.value)


def test_connection_reset_is_retried(make_client, server, tracker):
    server.script(Fault.reset())
    assert make_client().generate("hello") == "Hi there!"
    assert list(tracker.to_dataframe()["status"]) == ["NetworkError", "ok"]


def test_slow_answer_past_timeout_gives_timeout_error(make_client, server):
    server.script(*[Fault.slow(2.0)] * 3)
    client = make_client(max_retries=0)
    with pytest.raises(errors.LLMTimeoutError, match="timeout"):
        client.complete("hello", timeout=0.2)


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault.malformed_json(), "not JSON"),
        (Fault.html(status=200), "HTML"),
        (Fault.empty_body(), "empty body"),
    ],
)
def test_unusable_bodies_give_response_format_error(make_client, server, tracker, fault, words):
    server.script(fault)
    with pytest.raises(errors.ResponseFormatError, match=words):
        make_client().complete("hello")
    assert tracker.to_dataframe().iloc[0]["status"] == "ResponseFormatError"


def test_html_error_page_from_a_proxy_is_explained(make_client, server):
    server.script(*[Fault.html(status=502)] * 3)
    with pytest.raises(errors.ProviderError, match="HTML page"):
        make_client().complete("hello")


def test_missing_choices_gives_response_format_error(make_client, server):
    server.script(Fault.json(200, {"id": "x", "object": "chat.completion"}))
    with pytest.raises(errors.ResponseFormatError, match="choices"):
        make_client().complete("hello")


def test_wrong_types_in_answer_give_response_format_error(make_client, server):
    server.script(Fault.json(200, {"choices": [{"message": {"content": 42}}]}))
    with pytest.raises(errors.ResponseFormatError, match="shape"):
        make_client().complete("hello")


def test_one_connection_is_reused_across_calls(make_client, server):
    client = make_client()
    for _ in range(3):
        client.generate("hello")
    assert server.connections_opened == 1
    client.close()
    client.generate("hello")  # usable again after close: reconnects
    assert server.connections_opened == 2


def test_async_and_sync_send_the_same_request(make_client, server):
    client = make_client()
    client.generate("hello", temperature=0.3, max_tokens=9)
    sync_json = server.last_request.json

    async def run() -> str:
        async with client:
            return await client.agenerate("hello", temperature=0.3, max_tokens=9)

    assert asyncio.run(run()) == "Hi there!"
    assert server.last_request.json == sync_json


def test_async_stream_and_retry_share_the_core(make_client, server, tracker):
    server.script(Fault.status(500))
    client = make_client()

    async def run() -> tuple[str, Any]:
        stream = client.astream("hello")
        text = "".join([p async for p in stream])
        await client.aclose()
        return text, stream.completion

    text, completion = asyncio.run(run())
    assert text == "Hi there!" and completion.attempts == 2
    assert client.sleeps.waits and list(tracker.to_dataframe()["status"]) == ["ProviderError", "ok"]


def test_async_concurrent_calls_all_recorded(make_client, server, tracker):
    client = make_client()

    async def run() -> list[str]:
        return await asyncio.gather(*(client.agenerate("hello") for _ in range(20)))

    assert asyncio.run(run()) == ["Hi there!"] * 20
    assert len(tracker) == 20


def test_stopping_a_stream_early_records_a_cancelled_row(make_client, tracker):
    stream = make_client().stream("hello")
    next(stream)
    stream.close()
    row = tracker.to_dataframe().iloc[0]
    assert row["status"] == "cancelled" and row["completion_tokens"] >= 1


def test_key_never_appears_in_reprs_errors_or_rows(make_client, server, tracker):
    client = make_client()
    server.script(
        Fault.status(401, body={"error": {"message": f"Incorrect API key provided: {KEY}"}})
    )
    with pytest.raises(errors.AuthenticationError) as info:
        client.complete("hello")
    client.complete("hello")
    surfaces = [
        repr(client),
        str(client),
        str(info.value),
        repr(info.value),
        info.value.body or "",
        tracker.to_dataframe().to_csv(),
        repr(tracker),
        repr(client.provider),
    ]
    for text in surfaces:
        assert KEY not in text
    key_ids = set(tracker.to_dataframe()["key_id"])
    assert len(key_ids) == 1 and next(iter(key_ids)).startswith("k-")


def test_env_key_read_at_call_time(make_client, server, monkeypatch):
    client = make_client()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-rotated-key-000000")
    client.generate("hello")
    assert server.last_request.headers["authorization"] == "Bearer sk-rotated-key-000000"


def test_missing_key_names_the_variable_and_leaves_a_row(write_settings, server, tracker):
    write_settings(
        {
            "llm": {
                "active_provider": "o",
                "providers": {
                    "o": {"type": "openai", "model": "gpt-4o", "base_url": server.base_url}
                },
            }
        }
    )
    client = llmnb.create_llm_client_from_profile()
    with pytest.raises(errors.MissingAPIKeyError, match="OPENAI_API_KEY"):
        client.generate("hi")
    assert server.requests == []
    assert tracker.to_dataframe().iloc[0]["status"] == "MissingAPIKeyError"


def test_connection_refused_is_a_network_error(write_settings, monkeypatch, tracker):
    with FakeLLMServer() as srv:
        url = srv.base_url
    write_settings(
        {
            "llm": {
                "active_provider": "p",
                "providers": {
                    "p": {
                        "type": "openai_compatible",
                        "model": "m",
                        "base_url": url,
                        "max_retries": 0,
                    }
                },
            }
        }
    )
    with pytest.raises(errors.NetworkError, match="cannot connect"):
        llmnb.create_llm_client_from_profile().generate("hi")


def test_stream_answered_with_an_html_page_names_base_url(make_client, server, tracker):
    server.script(Fault.html(status=200))
    with pytest.raises(errors.ResponseFormatError, match=r"HTML page.*base_url"):
        list(make_client().stream("hello"))
    assert tracker.to_dataframe().iloc[0]["status"] == "ResponseFormatError"


def test_async_stream_answered_with_an_html_page_names_base_url(make_client, server):
    server.script(Fault.html(status=200))

    async def run() -> None:
        async for _ in make_client().astream("hello"):
            pass

    with pytest.raises(errors.ResponseFormatError, match="HTML page"):
        asyncio.run(run())


@pytest.mark.parametrize("lib_name", ["httpx", "httpx2"])
def test_mock_transports_of_httpx_and_httpx2_both_work(write_settings, tracker, lib_name):
    # The network seam takes a transport of either library (llmnb builds its own clients
    # on httpx2 unless handed an httpx transport); answers and errors map the same.
    lib = pytest.importorskip(lib_name)
    answer = {
        "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    write_settings(
        {"llm": {"active_provider": "p", "providers": {"p": {"type": "vllm", "model": "m"}}}}
    )
    seen: list[str] = []

    def handler(request: Any) -> Any:
        seen.append(type(request).__module__.partition(".")[0])
        if b"timeout" in request.content:
            raise lib.ReadTimeout("slow", request=request)
        if b"refused" in request.content:
            raise lib.ConnectError("refused", request=request)
        return lib.Response(200, json=answer)

    async def ahandler(request: Any) -> Any:
        return handler(request)

    client = llmnb.create_llm_client_from_profile()
    client.retry = RetryPolicy(max_retries=0)
    client.provider.transport = lib.MockTransport(handler)
    client.provider.async_transport = lib.MockTransport(ahandler)
    assert client.complete("hello").content == "hi"
    assert asyncio.run(client.acomplete("hello")).content == "hi"
    with pytest.raises(errors.LLMTimeoutError, match="no answer within"):
        client.complete("timeout")
    with pytest.raises(errors.NetworkError, match="cannot connect"):
        asyncio.run(client.acomplete("refused"))
    assert seen == [lib_name] * 4
    assert list(tracker.to_dataframe()["status"]) == [
        "ok",
        "ok",
        "LLMTimeoutError",
        "NetworkError",
    ]
