"""Tools and the tool loop, through the public API against FakeLLMServer: the JSON sent
in each round, the loop's usage rows, and real recorded tool-call exchanges."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pydantic
import pytest
from _recordings import load, recordings, replayer, sse_data

import llmnb
from llmnb import errors
from llmnb.middleware import RetryPolicy
from llmnb.testing import FakeLLMServer, Fault
from llmnb.tools import as_tool, tool
from llmnb.usage import UsageTracker

KEY = "sk-tools-canary-0123456789abcdef"
_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}


def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict[str, Any]:
    """Current weather for a city.

    Args:
        city: the city's name
        unit: degrees Celsius or Fahrenheit
    """
    return {"city": city, "temp": 12, "unit": unit, "rain": True}


class Order(pydantic.BaseModel):
    """An order to look up."""

    order_id: int
    express: bool = False


def oa_call(*calls: tuple[str, Any, str], content: str | None = None) -> Fault:
    """An OpenAI chat answer asking for these (name, arguments, id) calls."""
    tool_calls = [
        {
            "id": cid,
            "type": "function",
            "function": {
                "name": name,
                "arguments": args if isinstance(args, str) else json.dumps(args),
            },
        }
        for name, args, cid in calls
    ]
    return Fault.json(
        200,
        {
            "id": "r",
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {"role": "assistant", "content": content, "tool_calls": tool_calls},
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 7},
        },
    )


@pytest.fixture
def make_client(
    server: FakeLLMServer,
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
    tracker: UsageTracker,
) -> Callable[..., llmnb.LLMClient]:
    def make(kind: str = "openai", model: str = "gpt-4o", **profile: Any) -> llmnb.LLMClient:
        monkeypatch.setenv(_ENV[kind], KEY)
        base = {
            "openai": server.base_url,
            "anthropic": server.anthropic_base_url,
            "gemini": server.gemini_base_url,
        }[kind]
        prof = {"type": kind, "model": model, "base_url": base, **profile}
        write_settings({"llm": {"active_provider": "p", "providers": {"p": prof}}})
        client = llmnb.create_llm_client_from_profile()
        client.retry = RetryPolicy(max_retries=2, sleep=lambda s: None)
        return client

    return make


# --- tools from Python --------------------------------------------------------------
def test_schema_comes_from_type_hints_and_docstring() -> None:
    t = as_tool(get_weather)
    assert t.name == "get_weather" and t.description == "Current weather for a city."
    p = t.parameters
    assert p["type"] == "object" and p["required"] == ["city"]
    assert (
        p["properties"]["unit"]["enum"] == ["C", "F"] and p["properties"]["unit"]["default"] == "C"
    )
    assert p["properties"]["city"]["description"] == "the city's name"
    assert p["additionalProperties"] is False


def test_a_pydantic_model_is_a_tool() -> None:
    t = as_tool(Order)
    assert t.name == "Order" and t.description == "An order to look up."
    assert t.parameters["required"] == ["order_id"]


@pytest.mark.parametrize("bad", [42, "get_weather", None])
def test_a_tool_that_is_not_callable_is_refused_by_name(make_client, server, bad) -> None:
    with pytest.raises(errors.InvalidRequestError, match=r"tools\[1\].*not callable"):
        make_client().complete("hi", tools=[get_weather, bad])
    assert server.requests == []


def test_two_tools_with_one_name_and_a_bad_choice_are_refused(make_client, server) -> None:
    with pytest.raises(errors.InvalidRequestError, match="two tools are named"):
        make_client().complete("hi", tools=[get_weather, tool(get_weather)])
    with pytest.raises(errors.InvalidRequestError, match="tool_choice='nope'"):
        make_client().complete("hi", tools=[get_weather], tool_choice="nope")
    with pytest.raises(errors.InvalidOptionError, match="max_tool_rounds=0"):
        make_client().complete("hi", tools=[get_weather], max_tool_rounds=0)
    assert server.requests == []


# --- the loop on the OpenAI wire ------------------------------------------------------
def test_loop_runs_the_call_and_sends_the_result_back(make_client, server, tracker) -> None:
    server.script(oa_call(("get_weather", {"city": "Paris"}, "call_1")), Fault.reply("Umbrella."))
    c = make_client().complete("Umbrella in Paris?", tools=[get_weather])
    assert c.content == "Umbrella."
    [call] = c.tool_calls
    assert call.name == "get_weather" and call.arguments == {"city": "Paris"}
    assert call.result == {"city": "Paris", "temp": 12, "unit": "C", "rain": True}
    first, second = (r.json for r in server.requests)
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert first["tools"][0]["function"]["parameters"]["required"] == ["city"]
    assert "tool_choice" not in first
    assistant, result = second["messages"][1:]
    assert assistant["role"] == "assistant" and assistant["content"] is None
    assert assistant["tool_calls"][0]["id"] == "call_1"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert result == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '{"city":"Paris","temp":12,"unit":"C","rain":true}',
    }
    rows = tracker.records
    assert [r.round for r in rows] == [1, 2]
    assert len({r.call_id for r in rows}) == 1 and rows[0].call_id == c.call_id
    assert c.usage.prompt_tokens == rows[0].prompt_tokens + rows[1].prompt_tokens
    # Arguments and results travel in messages only, never in a usage row.
    assert "Paris" not in repr(rows)


def test_invalid_arguments_go_back_to_the_model_and_the_tool_does_not_run(
    make_client, server
) -> None:
    ran: list[Any] = []

    def lookup(order_id: int) -> str:
        ran.append(order_id)
        return "shipped"

    server.script(oa_call(("lookup", {"order_id": "not a number"}, "c1")), Fault.reply("Sorry."))
    c = make_client().complete("where is my order", tools=[lookup])
    assert ran == []
    assert c.tool_calls[0].error is not None and "order_id" in c.tool_calls[0].error
    sent = server.requests[1].json["messages"][-1]
    assert sent["role"] == "tool" and sent["content"].startswith("Error: invalid arguments")


def test_unparsable_arguments_and_unknown_tools_are_errors_the_model_sees(
    make_client, server
) -> None:
    server.script(
        oa_call(("get_weather", "{not json", "a"), ("delete_all", {}, "b")), Fault.reply("ok")
    )
    c = make_client().complete("hi", tools=[get_weather])
    bad_args, unknown = c.tool_calls
    assert "invalid arguments" in (bad_args.error or "")
    assert "no tool named 'delete_all'" in (unknown.error or "")
    contents = [m["content"] for m in server.requests[1].json["messages"][2:]]
    assert all(text.startswith("Error: ") for text in contents)


def test_a_raising_tool_reports_its_error_to_the_model(make_client, server) -> None:
    def boom(x: int) -> int:
        raise RuntimeError("database is down")

    server.script(oa_call(("boom", {"x": 1}, "c1")), Fault.reply("The database is down."))
    c = make_client().complete("hi", tools=[boom])
    assert c.tool_calls[0].error == "RuntimeError: database is down"
    assert (
        server.requests[1].json["messages"][-1]["content"]
        == "Error: RuntimeError: database is down"
    )


def test_a_hanging_tool_times_out_instead_of_hanging(make_client, server) -> None:
    def hang() -> str:
        time.sleep(30)
        return "never"

    server.script(oa_call(("hang", {}, "c1")), Fault.reply("gave up"))
    t0 = time.monotonic()
    c = make_client().complete("hi", tools=[tool(hang, timeout=0.2)])
    assert time.monotonic() - t0 < 10
    assert "did not finish within 0.2 s" in (c.tool_calls[0].error or "")


def test_over_max_rounds_raises_tool_loop_error_with_the_transcript(
    make_client, server, tracker
) -> None:
    server.script(*(oa_call(("get_weather", {"city": "Oslo"}, f"c{i}")) for i in range(3)))
    with pytest.raises(errors.ToolLoopError, match="max_tool_rounds=3") as info:
        make_client().complete("hi", tools=[get_weather], max_tool_rounds=3)
    assert info.value.rounds == 3 and len(info.value.tool_calls) == 3
    roles = [str(m.role) for m in info.value.transcript]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert [r.round for r in tracker.records] == [1, 2, 3]


def test_run_tools_false_returns_the_calls_only(make_client, server, tracker) -> None:
    ran: list[str] = []

    def note(text: str) -> None:
        ran.append(text)

    server.script(oa_call(("note", {"text": "x"}, "c1")))
    c = make_client().complete("hi", tools=[note], run_tools=False)
    assert c.finish_reason == "tool_calls" and ran == []
    assert [(t.name, dict(t.arguments), t.result) for t in c.tool_calls] == [
        ("note", {"text": "x"}, None)
    ]
    assert len(server.requests) == 1 and len(tracker.records) == 1


def test_tool_choice_is_sent_and_forced_only_in_the_first_round(make_client, server) -> None:
    server.script(oa_call(("get_weather", {"city": "Rome"}, "c")), Fault.reply("ok"))
    make_client().complete("hi", tools=[get_weather], tool_choice="get_weather")
    first, second = (r.json for r in server.requests)
    assert first["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert "tool_choice" not in second  # else the model could never answer in text
    server.reset()
    server.script(Fault.reply("ok"))
    make_client().complete("hi", tools=[get_weather], tool_choice="required")
    assert server.requests[0].json["tool_choice"] == "required"


def test_each_round_is_retried_on_its_own(make_client, server, tracker) -> None:
    server.script(
        oa_call(("get_weather", {"city": "Paris"}, "c")), Fault.status(500), Fault.reply("ok")
    )
    c = make_client().complete("hi", tools=[get_weather])
    assert c.content == "ok"
    rows = tracker.records
    assert [(r.round, r.attempt, r.status) for r in rows] == [
        (1, 1, "ok"),
        (2, 1, "ProviderError"),
        (2, 2, "ok"),
    ]
    assert len({r.call_id for r in rows}) == 1
    # The retried round sent the same conversation again.
    assert server.requests[1].json["messages"] == server.requests[2].json["messages"]


def test_acomplete_runs_parallel_calls_concurrently(make_client, server, tracker) -> None:
    running = 0
    both = asyncio.Event()

    async def wait_for_the_other(n: int) -> str:
        nonlocal running
        running += 1
        if running == 2:
            both.set()
        # Run one after the other, the first would wait here for ever (and time out).
        await asyncio.wait_for(both.wait(), 5)
        return f"done {n}"

    server.script(
        oa_call(("wait_for_the_other", {"n": 1}, "a"), ("wait_for_the_other", {"n": 2}, "b")),
        Fault.reply("both done"),
    )
    c = asyncio.run(make_client().acomplete("hi", tools=[wait_for_the_other]))
    assert [t.result for t in c.tool_calls] == ["done 1", "done 2"]
    assert [t.error for t in c.tool_calls] == [None, None]
    assert [r.round for r in tracker.records] == [1, 2]


def test_async_tool_in_sync_complete(make_client, server) -> None:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    server.script(oa_call(("add", {"a": 2, "b": "3"}, "c")), Fault.reply("5"))
    c = make_client().complete("2+3?", tools=[add])
    assert c.tool_calls[0].result == 5  # "3" validated to the int the signature asks for


def test_streamed_tool_call_arguments_are_assembled(make_client, server) -> None:
    def ev(delta: dict[str, Any], finish: str | None = None) -> str:
        chunk = {
            "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n"

    fn = {"name": "get_weather", "arguments": ""}
    server.script(
        Fault.sse(
            ev(
                {
                    "role": "assistant",
                    "tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": fn}],
                }
            ),
            ev({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
            ev({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Par'}}]}),
            ev({"tool_calls": [{"index": 0, "function": {"arguments": 'is"}'}}]}),
            ev({}, "tool_calls"),
            "data: [DONE]\n\n",
        )
    )
    stream = make_client().stream("hi")
    assert list(stream) == []
    assert stream.completion is not None and stream.completion.finish_reason == "tool_calls"
    [call] = stream.completion.tool_calls
    assert (call.name, dict(call.arguments), call.id) == ("get_weather", {"city": "Paris"}, "c1")


def test_structured_output_still_works_with_tools(make_client, server) -> None:
    class Answer(pydantic.BaseModel):
        umbrella: bool

    server.script(
        oa_call(("get_weather", {"city": "Paris"}, "c")), Fault.reply('{"umbrella": true}')
    )
    c = make_client().complete("hi", tools=[get_weather], response_model=Answer)
    assert c.parsed == Answer(umbrella=True)
    assert server.requests[1].json["response_format"]["type"] == "json_schema"
    assert server.requests[1].json["tools"]


# --- Anthropic --------------------------------------------------------------------------
def test_anthropic_tool_use_and_tool_result_blocks(make_client, server, tracker) -> None:
    server.script(
        Fault.json(
            200,
            {
                "id": "m",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 30, "output_tokens": 9},
            },
        ),
        Fault.reply("Take an umbrella."),
    )
    client = make_client("anthropic", "claude-sonnet-4-5")
    c = client.complete("Umbrella?", tools=[get_weather], tool_choice="required")
    assert c.content == "Take an umbrella." and c.tool_calls[0].result["rain"] is True
    first, second = (r.json for r in server.requests)
    assert first["tools"][0]["input_schema"]["required"] == ["city"]
    assert first["tool_choice"] == {"type": "any"}
    assert second["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ],
    }
    [block] = second["messages"][2]["content"]
    assert block["type"] == "tool_result" and block["tool_use_id"] == "toolu_1"
    assert json.loads(block["content"])["city"] == "Paris"
    assert [r.round for r in tracker.records] == [1, 2]


def test_anthropic_streamed_tool_input_is_assembled(make_client, server) -> None:
    def ev(data: dict[str, Any]) -> str:
        return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"

    server.script(
        Fault.sse(
            ev(
                {
                    "type": "message_start",
                    "message": {
                        "model": "claude-sonnet-4-5",
                        "usage": {"input_tokens": 5, "output_tokens": 1},
                    },
                }
            ),
            ev(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {
                        "type": "tool_use",
                        "id": "toolu_9",
                        "name": "get_weather",
                        "input": {},
                    },
                }
            ),
            ev(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
                }
            ),
            ev(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'},
                }
            ),
            ev({"type": "content_block_stop", "index": 0}),
            ev(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use"},
                    "usage": {"output_tokens": 12},
                }
            ),
            ev({"type": "message_stop"}),
        )
    )
    stream = make_client("anthropic", "claude-sonnet-4-5").stream("hi")
    assert list(stream) == []
    assert stream.completion is not None and stream.completion.finish_reason == "tool_calls"
    [call] = stream.completion.tool_calls
    assert (call.name, dict(call.arguments), call.id) == (
        "get_weather",
        {"city": "Oslo"},
        "toolu_9",
    )


# --- Gemini -----------------------------------------------------------------------------
def test_gemini_function_call_and_function_response(make_client, server) -> None:
    server.script(
        Fault.json(
            200,
            {
                "candidates": [
                    {
                        "content": {
                            "role": "model",
                            "parts": [
                                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
                            ],
                        },
                        "finishReason": "STOP",
                    }
                ],
                "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4},
                "modelVersion": "gemini-2.5-flash",
            },
        ),
        Fault.reply("Umbrella."),
    )
    c = make_client("gemini", "gemini-2.5-flash").complete(
        "hi", tools=[get_weather], tool_choice="none"
    )
    assert c.content == "Umbrella." and c.tool_calls[0].name == "get_weather"
    first, second = (r.json for r in server.requests)
    decl = first["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "get_weather" and decl["parametersJsonSchema"]["required"] == ["city"]
    assert first["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    assert second["contents"][1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
    }
    [part] = second["contents"][2]["parts"]
    assert part["functionResponse"]["name"] == "get_weather"
    assert part["functionResponse"]["response"]["city"] == "Paris"


# --- real recorded tool-call exchanges ---------------------------------------------------
def _recorded_calls(rec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls a recording holds, read from its body without llmnb's parsers."""
    kind = rec["provider"]
    datas = list(sse_data(rec["body"])) if rec["stream"] else [rec["body"]]
    out: list[tuple[str, dict[str, Any]]] = []
    pieces: dict[int, list[str]] = {}
    for raw in datas:
        if raw == "[DONE]":
            continue
        data = json.loads(raw)
        if kind == "anthropic":
            blocks = data.get("content") or []
            if data.get("type") == "content_block_start":
                b = data["content_block"]
                if b["type"] == "tool_use":
                    pieces[data["index"]] = [b["name"], ""]
            delta = data.get("delta") or {}
            # Not a server tool's input (only tool_use blocks opened a slot).
            if delta.get("type") == "input_json_delta" and data["index"] in pieces:
                pieces[data["index"]][1] += delta["partial_json"]
            out += [(b["name"], b["input"]) for b in blocks if b.get("type") == "tool_use"]
        elif kind == "gemini":
            for cand in (data.get("candidates") or [])[:1]:
                for p in (cand.get("content") or {}).get("parts") or []:
                    if "functionCall" in p:
                        out.append((p["functionCall"]["name"], p["functionCall"].get("args") or {}))
        else:
            for choice in (data.get("choices") or [])[:1]:
                msg = choice.get("message") or choice.get("delta") or {}
                for i, tc in enumerate(msg.get("tool_calls") or []):
                    fn = tc.get("function") or {}
                    if rec["stream"]:
                        slot = pieces.setdefault(tc.get("index", i), ["", ""])
                        slot[0] = slot[0] or fn.get("name") or ""
                        slot[1] += fn.get("arguments") or ""
                    else:
                        out.append((fn["name"], json.loads(fn.get("arguments") or "{}")))
    out += [(name, json.loads(args or "{}")) for _, (name, args) in sorted(pieces.items())]
    return out


_TOOL_RECORDINGS = [
    p
    for p in recordings()
    if p.parent.name
    in ("openai", "anthropic", "gemini", "groq", "mistral", "openrouter", "deepseek")
    and load(p)["status"] == 200
    and _recorded_calls(load(p))
]


def test_enough_real_tool_call_recordings() -> None:
    kinds = {p.parent.name for p in _TOOL_RECORDINGS}
    assert {"openai", "anthropic", "gemini"} <= kinds, kinds
    assert len(_TOOL_RECORDINGS) >= 20


@pytest.mark.parametrize("path", _TOOL_RECORDINGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_real_tool_calls_are_parsed(
    path: Path, server, write_settings, monkeypatch, tracker
) -> None:
    rec = load(path)
    c = replayer(server, write_settings, monkeypatch)(rec)
    assert not isinstance(c, Exception), c
    assert [(t.name, dict(t.arguments)) for t in c.tool_calls] == _recorded_calls(rec)
    assert c.finish_reason in ("tool_calls", "stop", "length")


# --- FakeLLMServer scripts tool calls on every wire ----------------------------------------
_KINDS = [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("gemini", "gemini-2.5-flash")]


@pytest.mark.parametrize(("kind", "model"), _KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_fake_server_scripts_tool_calls(make_client, server, kind, model, stream) -> None:
    args = {"city": "Reykjavík", "unit": "F", "note": "x" * 40}
    server.script(
        Fault.tool_calls(("get_weather", args, "id-1"), ("get_weather", {"city": "Rome"}, ""))
    )
    client = make_client(kind, model)
    if stream:
        s = client.stream("hi")
        assert list(s) == []
        c = s.completion
        assert c is not None
    else:
        c = client.complete("hi")
    # Gemini says STOP for an answer of function calls, and llmnb reports what it said.
    assert c.finish_reason == ("stop" if kind == "gemini" else "tool_calls")
    assert [(t.name, dict(t.arguments)) for t in c.tool_calls] == [
        ("get_weather", args),
        ("get_weather", {"city": "Rome"}),
    ]
    assert c.tool_calls[0].id == "id-1" and c.tool_calls[1].id


@pytest.mark.parametrize(("kind", "model"), _KINDS)
def test_the_loop_on_every_wire(make_client, server, tracker, kind, model) -> None:
    server.script(Fault.tool_call("get_weather", {"city": "Paris"}), Fault.reply("Umbrella."))
    c = make_client(kind, model).complete("Paris?", tools=[get_weather])
    assert c.content == "Umbrella." and c.tool_calls[0].result["rain"] is True
    assert [r.round for r in tracker.records] == [1, 2]
    assert '"rain": true' in json.dumps(server.requests[1].json) or '\\"rain\\":true' in json.dumps(
        server.requests[1].json
    )


@pytest.mark.parametrize(("kind", "model"), _KINDS)
def test_stream_with_tools_yields_text_and_tool_calls_in_order(
    make_client, server, tracker, kind, model
) -> None:
    server.script(
        Fault.tool_call("get_weather", {"city": "Paris"}), Fault.reply("Take an umbrella.")
    )
    s = make_client(kind, model).stream("Paris?", tools=[get_weather])
    events = list(s)
    calls = [e for e in events if isinstance(e, llmnb.ToolCall)]
    assert events.index(calls[0]) == 0  # the call came before any text of the answer
    assert "".join(e for e in events if isinstance(e, str)) == "Take an umbrella."
    assert calls[0].result["rain"] is True
    assert s.completion is not None and s.completion.content == "Take an umbrella."
    assert [r.round for r in tracker.records] == [1, 2]
    assert all(r.json.get("stream") or "stream" in r.path.lower() for r in server.requests)


def test_astream_with_tools(make_client, server, tracker) -> None:
    server.script(Fault.tool_call("get_weather", {"city": "Oslo"}), Fault.reply("No umbrella."))

    async def run() -> list[Any]:
        s = make_client().astream("Oslo?", tools=[get_weather])
        return [e async for e in s]

    events = asyncio.run(run())
    assert isinstance(events[0], llmnb.ToolCall) and events[0].result["city"] == "Oslo"
    assert "".join(e for e in events if isinstance(e, str)) == "No umbrella."
    assert [r.round for r in tracker.records] == [1, 2]
