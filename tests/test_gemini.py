"""``type: gemini``: generateContent / streamGenerateContent end to end against FakeLLMServer."""

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

KEY = "AIza-test-canary-0123456789abcdef"
THINKING_USAGE = {
    "promptTokenCount": 120,
    "candidatesTokenCount": 30,
    "thoughtsTokenCount": 70,
    "cachedContentTokenCount": 100,
    "totalTokenCount": 220,
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
    def make(model: str = "gemini-2.5-flash", key_var: str | None = "GEMINI_API_KEY", **profile):
        if key_var:
            monkeypatch.setenv(key_var, KEY)
        prof = {"type": "gemini", "model": model, "base_url": server.gemini_base_url, **profile}
        write_settings({"llm": {"active_provider": "g", "providers": {"g": prof}}})
        client = llmnb.create_llm_client_from_profile()
        waits: list[float] = []

        async def asleep(seconds: float) -> None:
            waits.append(seconds)

        client.retry = RetryPolicy(
            max_retries=client.retry.max_retries, sleep=waits.append, asleep=asleep
        )
        client.waits = waits  # type: ignore[attr-defined]
        return client

    return make


CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hello"},
    {"role": "assistant", "content": "Hi!"},
    {"role": "user", "content": "Say hello again"},
]


def test_complete_sends_contents_system_instruction_and_generation_config(make_client, server):
    text = make_client().generate(CONVERSATION, temperature=0.4, max_tokens=64, top_p=0.9)
    assert text == "Hi there!"
    req = server.last_request
    assert req.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert req.headers["x-goog-api-key"] == KEY
    assert "authorization" not in req.headers and "key=" not in req.query
    assert req.json == {
        "contents": [
            {"role": "user", "parts": [{"text": "hello"}]},
            {"role": "model", "parts": [{"text": "Hi!"}]},
            {"role": "user", "parts": [{"text": "Say hello again"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.4, "maxOutputTokens": 64, "topP": 0.9},
    }


def test_other_parameters_go_top_level_and_stop_becomes_a_list(make_client, server):
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    make_client(model="models/gemini-2.5-pro").generate("hello", stop="END", safetySettings=safety)
    req = server.last_request
    assert req.path == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert req.json["generationConfig"] == {"stopSequences": ["END"]}
    assert req.json["safetySettings"] == safety


def test_google_api_key_is_accepted_when_gemini_api_key_is_missing(make_client, server):
    make_client(key_var="GOOGLE_API_KEY").generate("hello")
    assert server.last_request.headers["x-goog-api-key"] == KEY


def test_missing_key_names_both_variables_and_sends_nothing(make_client, server, tracker):
    with pytest.raises(errors.MissingAPIKeyError, match=r"GEMINI_API_KEY.*GOOGLE_API_KEY"):
        make_client(key_var=None).generate("hello")
    assert server.requests == []


def test_usage_counts_thoughts_as_output_and_cached_content(make_client, server, tracker):
    server.script(Fault.reply("four", usage=THINKING_USAGE, reasoning="adding"))
    c = make_client().complete("hello")
    assert c.content == "four" and c.reasoning == "adding" and c.finish_reason == "stop"
    u = c.usage
    assert (u.prompt_tokens, u.completion_tokens, u.reasoning_tokens, u.cached_tokens) == (
        120,
        100,
        70,
        100,
    )
    row = tracker.to_dataframe().iloc[0]
    assert (row["prompt_tokens"], row["completion_tokens"], row["reasoning_tokens"]) == (
        120,
        100,
        70,
    )
    assert row["provider"] == "gemini" and row["cost_source"] == "price_table"
    assert row["cost_usd"] > 0


def test_stream_uses_alt_sse_and_ends_at_the_body_end(make_client, server, tracker):
    server.script(Fault.reply("a streamed gemini answer", reasoning="hmm", usage=THINKING_USAGE))
    stream = make_client().stream("hello")
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces) == "a streamed gemini answer"
    req = server.last_request
    assert req.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert req.query == "alt=sse"
    c = stream.completion
    assert c is not None and c.finish_reason == "stop" and c.reasoning == "hmm"
    assert c.usage.completion_tokens == 100 and c.usage.prompt_tokens == 120
    assert tracker.to_dataframe().iloc[0]["status"] == "ok"


def test_max_tokens_cut_reports_length(make_client, server):
    c = make_client().complete("hello", max_tokens=1)
    assert c.finish_reason == "length" and c.content == "Hi t"


def test_connection_cut_mid_stream_is_a_network_error(make_client, server, tracker):
    server.script(Fault.cut_stream(after_chunks=2))
    got: list[str] = []
    with pytest.raises(errors.NetworkError):
        for piece in make_client().stream("hello"):
            got.append(piece)
    assert got and len(server.requests) == 1


def _event(text: str, finish: str | None = None) -> str:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        candidate["finishReason"] = finish
    usage = {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}
    return f"data: {json.dumps({'candidates': [candidate], 'usageMetadata': usage})}\r\n\r\n"


def test_a_body_that_ends_cleanly_without_finish_reason_was_still_cut(make_client, server):
    server.script(Fault.sse(_event("Hel"), _event("lo")))
    got: list[str] = []
    with pytest.raises(errors.NetworkError, match="finishReason"):
        for piece in make_client().stream("hello"):
            got.append(piece)
    assert got == ["Hel", "lo"]


def test_the_last_event_may_carry_text_and_finish_reason_together(make_client, server, tracker):
    server.script(Fault.sse(_event("Hel"), _event("lo!", "STOP")))
    stream = make_client().stream("hello")
    assert list(stream) == ["Hel", "lo!"]
    assert stream.completion is not None and stream.completion.finish_reason == "stop"
    assert stream.completion.usage.completion_tokens == 2


def test_error_event_mid_stream_is_typed(make_client, server):
    server.script(Fault.stream_error(after_chunks=1, message="model overloaded", type="overloaded"))
    got: list[str] = []
    with pytest.raises(errors.OverloadedError, match="middle of the stream"):
        for piece in make_client().stream("hello"):
            got.append(piece)
    assert got and len(server.requests) == 1  # after the first text: not retried


def test_resource_exhausted_is_a_rate_limit_waiting_for_retry_info(make_client, server, tracker):
    server.script(Fault.rate_limit(retry_after=3))
    client = make_client()
    assert client.generate("hello") == "Hi there!"
    assert client.waits == [3.0]
    assert list(tracker.to_dataframe()["status"]) == ["RateLimitError", "ok"]


def test_per_minute_quota_worded_as_billing_is_still_retried(make_client, server):
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "You exceeded your current quota, please check your plan and billing "
            "details.",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"},
            ],
        }
    }
    server.script(Fault.status(429, body=body))
    client = make_client()
    assert client.generate("hello") == "Hi there!"
    assert client.waits == [7.0]


def test_daily_quota_is_a_quota_error_and_not_retried(make_client, server):
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "You exceeded your current quota.",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}],
                }
            ],
        }
    }
    server.script(Fault.status(429, body=body))
    with pytest.raises(errors.InsufficientQuotaError, match="PerDay"):
        make_client().complete("hello")
    assert len(server.requests) == 1


def test_invalid_key_400_is_an_authentication_error_without_the_key(make_client, server):
    body = {
        "error": {
            "code": 400,
            "status": "INVALID_ARGUMENT",
            "message": f"API key not valid. Please pass a valid API key. ({KEY})",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            ],
        }
    }
    server.script(Fault.status(400, body=body))
    with pytest.raises(errors.AuthenticationError, match="GEMINI_API_KEY") as info:
        make_client().complete("hello")
    assert KEY not in str(info.value) and KEY not in (info.value.body or "")
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("status", "exc"), [(503, errors.OverloadedError), (500, errors.ProviderError)]
)
def test_server_errors_are_retried(make_client, server, tracker, status, exc):
    server.script(Fault.status(status))
    assert make_client().generate("hello") == "Hi there!"
    assert list(tracker.to_dataframe()["status"]) == [exc.__name__, "ok"]


def test_blocked_prompt_is_an_invalid_request(make_client, server):
    server.script(Fault.json(200, {"promptFeedback": {"blockReason": "SAFETY"}}))
    with pytest.raises(errors.InvalidRequestError, match=r"blocked.*SAFETY"):
        make_client().complete("hello")
    assert len(server.requests) == 1


def test_structured_output_sets_json_mime_type_and_json_schema(make_client, server):
    client = make_client()
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    request = Request(
        messages=(Message(Role.USER, "hello"),), model="gemini-2.5-flash", response_schema=schema
    )
    server.script(Fault.reply('{"city": "Paris"}'))
    c = client.provider.complete(request)
    config = server.last_request.json["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}
    assert json.loads(c.content) == {"city": "Paris"}
    server.script(Fault.reply('{"city": "Rome"}'))
    chunks = list(client.provider.stream(dataclasses.replace(request, stream=True)))
    assert json.loads("".join(ch.content for ch in chunks)) == {"city": "Rome"}
    assert type(client.provider).structured_mode == "json_schema"


def test_async_matches_sync(make_client, server):
    client = make_client()
    client.generate("hello", temperature=0.2)
    sync_json = server.last_request.json

    async def run() -> tuple[str, str]:
        async with client:
            text = await client.agenerate("hello", temperature=0.2)
            assert server.last_request.json == sync_json
            streamed = "".join([p async for p in client.astream("hello")])
        return text, streamed

    assert asyncio.run(run()) == ("Hi there!", "Hi there!")


def test_async_stream_cut_is_detected_too(make_client, server):
    server.script(Fault.cut_stream(after_chunks=1))
    client = make_client()

    async def run() -> None:
        async with client:
            async for _ in client.astream("hello"):
                pass

    with pytest.raises(errors.NetworkError):
        asyncio.run(run())


# -- the fake server's Gemini wire itself ----------------------------------------------


def test_fake_rejects_assistant_role_and_streams_only_with_alt_sse(server):
    import httpx

    base = server.gemini_base_url + "/models/gemini-x"
    ok = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
    with httpx.Client() as http:
        r = http.post(base + ":generateContent", json=ok)
        assert r.status_code == 200 and r.json()["modelVersion"] == "gemini-x"
        bad = {"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}
        r = http.post(base + ":generateContent", json=bad)
        assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert "valid role: user, model" in r.json()["error"]["message"]
        assert http.post(base + ":streamGenerateContent", json=ok).status_code == 400
        server.script(Fault.rate_limit(retry_after=1.5))
        r = http.post(base + ":generateContent", json=ok)
        assert r.status_code == 429 and r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert r.json()["error"]["details"][0]["retryDelay"] == "1.5s"


@pytest.mark.parametrize(
    "event",
    [
        f'data: {{"error": {{"code": 500, "status": "INTERNAL", "message": "bad {KEY}"}}}}\n\n',
        f"data: {{'key': '{KEY}'}}\n\n",  # not JSON
    ],
)
def test_a_key_quoted_in_a_stream_event_is_scrubbed(make_client, server, tracker, event):
    server.script(Fault.sse(event))
    with pytest.raises(errors.ProviderError) as info:
        "".join(make_client(max_retries=0).stream("hello"))
    for text in (str(info.value), info.value.body or "", tracker.to_dataframe().to_csv()):
        assert KEY not in text


def test_a_key_quoted_in_a_200_error_envelope_is_scrubbed(make_client, server):
    body = {"error": {"code": 500, "status": "INTERNAL", "message": f"bad {KEY}"}}
    server.script(Fault.json(200, body))
    with pytest.raises(errors.ProviderError) as info:
        make_client(max_retries=0).complete("hello")
    assert KEY not in str(info.value) and KEY not in (info.value.body or "")
