"""OpenAI's Responses API (``type: openai`` with ``api: responses``) end to end against
FakeLLMServer, and replays of real recorded Responses answers (pydantic-ai cassettes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest

import llmnb
from llmnb import errors
from llmnb.middleware import RetryPolicy
from llmnb.testing import FakeLLMServer, Fault
from llmnb.usage import UsageTracker

KEY = "sk-responses-canary-0123456789abcdef"
RECORDINGS = sorted((Path(__file__).parent / "recordings_responses").glob("*.json"))


def get_weather(city: str) -> dict[str, Any]:
    """Current weather for a city."""
    return {"city": city, "rain": True}


@pytest.fixture
def make_client(
    server: FakeLLMServer,
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
    tracker: UsageTracker,
) -> Callable[..., llmnb.LLMClient]:
    def make(model: str = "gpt-5-mini", **profile: Any) -> llmnb.LLMClient:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        prof = {"type": "openai", "model": model, "base_url": server.base_url, "api": "responses"}
        prof.update(profile)
        prof = {k: v for k, v in prof.items() if v is not None}
        write_settings({"llm": {"active_provider": "p", "providers": {"p": prof}}})
        client = llmnb.create_llm_client_from_profile()
        client.retry = RetryPolicy(max_retries=2, sleep=lambda s: None)
        return client

    return make


def test_request_goes_to_responses_with_input_items_and_instructions(make_client, server) -> None:
    c = make_client().complete(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}],
        max_tokens=50,
    )
    assert c.content == "Hi there!"
    req = server.last_request
    assert req.path.endswith("/responses")
    assert req.json["instructions"] == "Be brief."
    assert req.json["input"] == [{"role": "user", "content": "hello"}]
    assert req.json["max_output_tokens"] == 50
    assert "messages" not in req.json and "max_tokens" not in req.json
    assert req.headers.get("authorization") == f"Bearer {KEY}"


def test_models_served_only_by_responses_use_it_unasked(make_client, server) -> None:
    make_client("gpt-5-codex", api=None).complete("hello")
    assert server.last_request.path.endswith("/responses")
    make_client("gpt-4o", api=None).complete("hello")
    assert server.last_request.path.endswith("/chat/completions")
    make_client("o3-pro", api="chat").complete("hello")  # the profile's word wins
    assert server.last_request.path.endswith("/chat/completions")


def test_usage_reasoning_and_cached_tokens_and_summary(make_client, server, tracker) -> None:
    usage = {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 60},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 25},
        "total_tokens": 140,
    }
    server.script(Fault.reply("42", usage=usage, reasoning="thought about it"))
    c = make_client().complete("hi")
    assert (c.content, c.reasoning) == ("42", "thought about it")
    assert (c.usage.prompt_tokens, c.usage.cached_tokens) == (100, 60)
    assert (c.usage.completion_tokens, c.usage.reasoning_tokens) == (40, 25)
    [row] = tracker.records
    assert row.cached_tokens == 60 and row.reasoning_tokens == 25


def test_stream_of_events(make_client, server) -> None:
    server.script(Fault.reply("streamed answer", reasoning="hmm"))
    s = make_client().stream("hi")
    assert "".join(s) == "streamed answer"
    assert s.completion is not None and s.completion.reasoning == "hmm"
    assert s.completion.finish_reason == "stop" and not s.completion.usage.estimated
    assert server.last_request.json["stream"] is True


def test_a_cut_stream_is_an_error_not_a_short_answer(make_client, server) -> None:
    delta = {"type": "response.output_text.delta", "delta": "Hal"}
    server.script(Fault.sse(f"event: response.output_text.delta\ndata: {json.dumps(delta)}\n\n"))
    with pytest.raises(errors.NetworkError, match="ended before"):
        "".join(make_client().stream("hi"))


def test_failed_response_and_error_event_are_typed(make_client, server, tracker) -> None:
    failed = {
        "type": "response.failed",
        "response": {"status": "failed", "error": {"code": "server_error", "message": "boom"}},
    }
    # A server error before any text: retried like any 5xx (max_retries=2), then raised.
    server.script(*[Fault.sse(f"event: response.failed\ndata: {json.dumps(failed)}\n\n")] * 3)
    with pytest.raises(errors.ProviderError, match="boom"):
        "".join(make_client().stream("hi"))
    assert [r.status for r in tracker.records] == ["ProviderError"] * 3
    server.script(Fault.rate_limit(retry_after=0), Fault.reply("after a retry"))
    assert make_client().complete("hi").content == "after a retry"
    assert [r.status for r in tracker.records][-2:] == ["RateLimitError", "ok"]
    bad_key = {"type": "error", "code": "invalid_api_key", "message": "bad key"}
    server.script(Fault.sse(f"event: error\ndata: {json.dumps(bad_key)}\n\n"))
    with pytest.raises(errors.APIError, match="bad key"):
        "".join(make_client().stream("hi"))


def test_structured_output_uses_text_format(make_client, server) -> None:
    class City(pydantic.BaseModel):
        name: str

    server.script(Fault.reply('{"name": "Paris"}'))
    c = make_client().complete("Largest city in France?", response_model=City)
    assert c.parsed == City(name="Paris")
    fmt = server.last_request.json["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["schema"]["required"] == ["name"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_tool_loop_on_responses(make_client, server, tracker, stream) -> None:
    server.script(
        Fault.tool_call("get_weather", {"city": "Paris"}, "call_7"), Fault.reply("Umbrella.")
    )
    client = make_client()
    if stream:
        events = list(client.stream("Paris?", tools=[get_weather], tool_choice="required"))
        assert isinstance(events[0], llmnb.ToolCall)
    else:
        c = client.complete("Paris?", tools=[get_weather], tool_choice="required")
        assert c.content == "Umbrella." and c.tool_calls[0].result == {
            "city": "Paris",
            "rain": True,
        }
    first, second = (r.json for r in server.requests)
    assert first["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": first["tools"][0]["parameters"],
            "strict": False,
        }
    ]
    assert first["tool_choice"] == "required" and "tool_choice" not in second
    call_item, output_item = second["input"][1:]
    assert call_item == {
        "type": "function_call",
        "call_id": "call_7",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert output_item["type"] == "function_call_output" and output_item["call_id"] == "call_7"
    assert json.loads(output_item["output"]) == {"city": "Paris", "rain": True}
    assert [r.round for r in tracker.records] == [1, 2]


# --- real recorded Responses answers ----------------------------------------------------
def _reference(rec: dict[str, Any]) -> dict[str, Any]:
    """What a recording says, read without llmnb's parser."""
    if rec["stream"]:
        final = None
        text = ""
        for line in rec["body"].splitlines():
            if line.startswith("data: "):
                data = json.loads(line[6:])
                if data["type"] == "response.output_text.delta":
                    text += data["delta"]
                if data["type"] == "response.completed":
                    final = data["response"]
        assert final is not None
        response = final
    else:
        response = json.loads(rec["body"])
        text = "".join(
            p["text"]
            for o in response["output"]
            if o["type"] == "message"
            for p in o["content"]
            if p["type"] == "output_text"
        )
    u = response["usage"]
    return {
        "text": text,
        "calls": [
            (o["name"], json.loads(o["arguments"]))
            for o in response["output"]
            if o["type"] == "function_call"
        ],
        "summary": [
            s["text"] for o in response["output"] if o["type"] == "reasoning" for s in o["summary"]
        ],
        "tokens": (
            u["input_tokens"],
            u["output_tokens"],
            u["input_tokens_details"]["cached_tokens"],
            u["output_tokens_details"]["reasoning_tokens"],
        ),
    }


def test_enough_responses_recordings() -> None:
    recs = [json.loads(p.read_text()) for p in RECORDINGS]
    assert sum(r["stream"] for r in recs) >= 3 and sum(not r["stream"] for r in recs) >= 4
    assert any(_reference(r)["calls"] for r in recs) and any(_reference(r)["summary"] for r in recs)


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.stem)
def test_real_responses_answers_replay(path: Path, make_client, server, tracker) -> None:
    rec = json.loads(path.read_text())
    want = _reference(rec)
    if rec["stream"]:
        chunks = [c + "\n\n" for c in rec["body"].split("\n\n") if c.strip()]
        server.script(Fault.sse(*chunks))
        s = make_client(rec["model"]).stream("hi")
        assert "".join(s) == want["text"]
        c = s.completion
        assert c is not None
    else:
        server.script(Fault.json(200, json.loads(rec["body"])))
        c = make_client(rec["model"]).complete("hi")
        assert c.content == want["text"]
    assert [(t.name, dict(t.arguments)) for t in c.tool_calls] == want["calls"]
    assert c.reasoning == "\n\n".join(want["summary"])
    u = c.usage
    assert (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens) == want[
        "tokens"
    ]
    assert c.finish_reason == ("tool_calls" if want["calls"] else "stop")
    [row] = tracker.records
    assert row.prompt_tokens == want["tokens"][0] and row.reasoning_tokens == want["tokens"][3]
