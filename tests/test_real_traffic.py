"""Defects found by replaying real provider traffic, each pinned by a real recording.

The numbers asserted are the recordings' own (token counts, provider-billed costs) and the
providers' published rates; tests/recordings/README.md names every source.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from _recordings import RECORDINGS, load, replayer

from llmnb import errors
from llmnb.testing import FakeLLMServer, Fault
from llmnb.usage import UsageTracker
from llmnb.usage.pricing import cost_of, price_for
from llmnb.usage.sqlite_store import read_usage


@pytest.fixture
def replay(
    server: FakeLLMServer,
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Any]:
    return replayer(server, write_settings, monkeypatch)


def rec(name: str) -> dict[str, Any]:
    return load(RECORDINGS / f"{name}.json")


# -- 1. cache writes at their own rate ------------------------------------------------------


def test_anthropic_cache_writes_are_billed_at_the_cache_write_rate(
    replay: Callable[..., Any], tracker: UsageTracker
) -> None:
    # usage: input 3, cache_creation 418 (all 5-minute), cache_read 1111, output 33.
    got = replay(rec("anthropic/test_anthropic_cache_real_api__1"))
    u = got.usage
    assert (u.prompt_tokens, u.cached_tokens, u.cache_write_tokens) == (1532, 1111, 418)
    # claude-sonnet-4-5: $3 input, $3.75 cache write (5 min), $0.30 cache read, $15 output.
    billed = (3 * 3 + 418 * 3.75 + 1111 * 0.30 + 33 * 15) / 1e6
    assert got.cost_usd == pytest.approx(billed, rel=1e-12)
    assert got.cost_source == "price_table"
    row = tracker.records[-1]
    assert (row.cache_write_tokens, row.cost_usd) == (418, got.cost_usd)


def test_openai_cache_write_tokens_are_billed_at_the_cache_write_rate(
    replay: Callable[..., Any], tracker: UsageTracker
) -> None:
    # prompt 4020 of which 4012 written to the cache, 4 output; gpt-5.6-sol in genai-prices:
    # $4 input, $5 cache write, $20 output.
    got = replay(rec("openai/test_openai_chat_prompt_cache_e2e__0"))
    assert got.usage.cache_write_tokens == 4012
    assert got.cost_usd == pytest.approx((8 * 4 + 4012 * 5 + 4 * 20) / 1e6, rel=1e-12)
    assert tracker.records[-1].cache_write_tokens == 4012


def test_table_price_of_cache_writes_matches_what_openrouter_billed() -> None:
    # OpenRouter billed this anthropic/claude-sonnet-4.6 call $0.01355025 (usage.cost) for
    # prompt 3214 (3211 of them cache writes) and 100 output tokens: the price table must
    # agree with the bill, which it only does with writes at $3.75 instead of $3.
    r = rec("openrouter/test_openrouter_cache_messages_anthropic_real_api__0")
    assert '"cost": 0.01355025' in r["body"]
    price = price_for("anthropic/claude-sonnet-4.6", "openai_compatible")
    assert price is not None
    assert cost_of(price, 3214, 100, 0, 3211) == pytest.approx(0.01355025, rel=1e-9)


def test_one_hour_cache_writes_cost_more_than_five_minute_ones() -> None:
    # Anthropic's documented rates: 1.25x input for 5-minute writes, 2x for 1-hour writes.
    price = price_for("claude-sonnet-4-5", "anthropic")
    assert price is not None
    five = cost_of(price, 1000, 0, 0, 1000)
    hour = cost_of(price, 1000, 0, 0, 1000, 1000)
    assert (five, hour) == (pytest.approx(1000 * 3.75 / 1e6), pytest.approx(1000 * 6 / 1e6))


def test_profile_pricing_takes_a_cache_write_rate(
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
    server: FakeLLMServer,
    tracker: UsageTracker,
) -> None:
    pricing = {"input_per_mtok": 2, "output_per_mtok": 10, "cache_write_per_mtok": 4}
    got = replayer(server, write_settings, monkeypatch)(
        rec("anthropic/test_anthropic_cache_real_api__1"), pricing=pricing
    )
    # no cached_input_per_mtok: cache reads at the input rate
    assert got.cost_usd == pytest.approx(((3 + 1111) * 2 + 418 * 4 + 33 * 10) / 1e6)


def test_cache_writes_survive_the_sqlite_store_and_an_old_file_gains_the_column(
    tmp_path: Any,
) -> None:
    import sqlite3

    from llmnb.usage.sqlite_store import SQLiteStore

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)  # a version-1 file, as llmnb wrote them before
    cols = [c for c in UsageTracker().record(1, 1)._fields if c != "cache_write_tokens"]
    conn.execute(f"CREATE TABLE usage (id INTEGER PRIMARY KEY AUTOINCREMENT, {', '.join(cols)})")
    conn.execute("INSERT INTO usage (time, session, cost_usd, cached) VALUES (1.0, 'old', 0.5, 0)")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    assert [r.cache_write_tokens for r in read_usage(path)] == [None]  # read-only, old file
    store = SQLiteStore(path)
    UsageTracker(store=store).record(1532, 33, cache_write_tokens=418, cached_tokens=1111)
    assert store.flush() is True
    store.close()
    back = read_usage(path)
    assert (back[0].session, back[0].cache_write_tokens) == ("old", None)
    assert back[1].cache_write_tokens == 418


# -- 2. free models -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model", ["deepseek/deepseek-r1:free", "meta-llama/llama-3.3-70b-instruct:free"]
)
def test_a_free_model_costs_zero_from_the_price_table(
    model: str,
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
    server: FakeLLMServer,
    tracker: UsageTracker,
) -> None:
    # The recorded :free stream (minimax/minimax-m2:free) reported cost 0; without a
    # reported cost the table's exact ":free" entry must say the same.
    price = price_for(model, "openrouter")
    assert price is not None and price.source == f"genai-prices:openrouter/{model}"
    assert (price.input, price.output) == (0.0, 0.0)
    usage = {"prompt_tokens": 43, "completion_tokens": 10, "total_tokens": 53}
    server.script(Fault.reply("Hello", usage=usage))
    got = replayer(server, write_settings, monkeypatch)(
        {"provider": "openrouter", "model": model, "stream": False, "status": 0, "body": ""},
        _script=False,
    )
    assert (got.cost_usd, got.cost_source) == (0.0, "price_table")
    assert tracker.records[-1].cost_usd == 0.0


# -- 3. content as a list of parts ----------------------------------------------------------


def test_mistral_thinking_parts_become_reasoning_and_text_parts_the_content(
    replay: Callable[..., Any], tracker: UsageTracker
) -> None:
    got = replay(rec("mistral/test_reasoning_wire_contract_mistral-small-thinking-high___0"))
    assert got.content == "4"
    assert got.reasoning.startswith("The user is asking for the result of 2+2.")
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (28, 35)
    assert got.finish_reason == "stop"


def test_a_streamed_mistral_answer_with_thinking_parts_is_read_whole(
    replay: Callable[..., Any], tracker: UsageTracker
) -> None:
    got = replay(rec("mistral/test_mistral_model_thinking_part_iter__0"))
    assert not isinstance(got, Exception), got
    assert got.reasoning.startswith("Okay")
    assert got.content and "[{" not in got.content
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (10, 232)
    assert tracker.records[-1].status == "ok"


# -- 4. wire options per provider -----------------------------------------------------------


def test_mistral_streams_without_stream_options_and_still_get_their_usage(
    replay: Callable[..., Any], server: FakeLLMServer, tracker: UsageTracker
) -> None:
    # Mistral answers stream_options with 422 extra_forbidden; the recorded stream was
    # requested without it (request_keys) and carries its usage in the last chunk.
    r = rec("mistral/test_mistral_model_thinking_part_iter__0")
    assert "stream_options" not in r["request_keys"]
    got = replay(r)
    sent = server.last_request
    assert sent is not None and sent.json["stream"] is True
    assert "stream_options" not in sent.json
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (10, 232)
    assert not got.usage.estimated


def test_openai_streams_still_ask_for_usage(
    replay: Callable[..., Any], server: FakeLLMServer
) -> None:
    r = next(
        load(p)
        for p in sorted((RECORDINGS / "openai").glob("*.json"))
        if load(p)["stream"] and load(p)["status"] == 200
    )
    replay(r)
    sent = server.last_request
    assert sent is not None and sent.json["stream_options"] == {"include_usage": True}


def test_groq_stream_usage_only_under_x_groq_is_read(
    replay: Callable[..., Any], tracker: UsageTracker
) -> None:
    # The whole recorded stream reports usage once: x_groq.usage on the finishing chunk.
    r = rec("groq/test_groq_model_thinking_part_iter__0")
    assert r["body"].count('"usage"') == 1
    got = replay(r)
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (21, 988)
    assert not got.usage.estimated
    assert got.finish_reason == "stop"
    row = tracker.records[-1]
    assert (row.prompt_tokens, row.completion_tokens) == (21, 988)


# -- 5. errors inside a stream --------------------------------------------------------------


def test_openrouter_error_event_mid_stream_is_typed_by_its_own_code_and_keeps_usage(
    replay: Callable[..., Any], server: FakeLLMServer, tracker: UsageTracker
) -> None:
    # Reasoning chunks, then {"error": {"code": 400, "message": "Token limit reached"}} with
    # usage 43 + 10 (cost 0, a :free model).
    got = replay(rec("openrouter/test_openrouter_stream_error__0"))
    assert isinstance(got, errors.InvalidRequestError), got
    assert got.status == 400 and not got.retryable
    assert "Token limit reached" in str(got)
    assert len(server.requests) == 1  # not retried
    row = tracker.records[-1]
    assert (row.prompt_tokens, row.completion_tokens) == (43, 10)
    assert (row.cost_usd, row.cost_source, row.status) == (0.0, "provider", "InvalidRequestError")


def test_openrouter_upstream_reason_is_in_the_error_message(
    replay: Callable[..., Any],
) -> None:
    got = replay(rec("openrouter/test_openrouter_errors_raised__0"))
    assert isinstance(got, errors.RateLimitError), got
    assert "Provider returned error (Google: google/gemini-2.0-flash-exp:free is " in str(got)
    assert "temporarily rate-limited upstream" in str(got)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (401, errors.AuthenticationError),
        (429, errors.RateLimitError),
        (502, errors.ProviderError),
        ("server_error", errors.ProviderError),
    ],
)
def test_an_error_event_mid_stream_maps_like_the_http_status(
    code: Any,
    kind: type[errors.APIError],
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
    server: FakeLLMServer,
) -> None:
    # The recorded OpenRouter stream with only the error event's code changed.
    r = rec("openrouter/test_openrouter_stream_error__0")
    body = r["body"].replace('"error":{"code":400,', f'"error":{{"code":{json.dumps(code)},')
    assert body != r["body"]
    server.script(Fault.sse(body))
    got = replayer(server, write_settings, monkeypatch)(r, _script=False)
    assert type(got) is kind or (kind is errors.ProviderError and isinstance(got, kind)), got
    assert got.retryable is (kind is errors.ProviderError or kind is errors.RateLimitError)


# -- 6. Anthropic compaction and stream usage -----------------------------------------------


def test_compaction_bills_every_iteration(
    replay: Callable[..., Any], tracker: UsageTracker
) -> None:
    # usage.iterations: compaction (input 100, cache write 55096, output 131), then the
    # message (input 229, output 5); the top level repeats only the last step.
    got = replay(rec("anthropic/test_anthropic_compaction_usage_with_cache__0"))
    u = got.usage
    assert (u.prompt_tokens, u.completion_tokens) == (100 + 55096 + 229, 131 + 5)
    assert (u.cache_write_tokens, u.cached_tokens) == (55096, 0)
    # claude-sonnet-4-6: $3 input, $3.75 cache write, $15 output: about $0.21, not $0.0008.
    assert got.cost_usd == pytest.approx((329 * 3 + 55096 * 3.75 + 136 * 15) / 1e6, rel=1e-12)
    assert tracker.records[-1].cost_usd == got.cost_usd


def test_a_compaction_stream_takes_the_final_message_delta_usage(
    replay: Callable[..., Any], tracker: UsageTracker
) -> None:
    # message_start: input 100, cache read 55096, output 7; the final message_delta:
    # iterations (100 + 55096 read, 83 out) and (181, 8 out).
    got = replay(rec("anthropic/test_anthropic_compaction_usage_with_cache_streaming__0"))
    u = got.usage
    assert (u.prompt_tokens, u.completion_tokens) == (100 + 55096 + 181, 83 + 8)
    assert (u.cached_tokens, u.cache_write_tokens) == (55096, 0)
    row = tracker.records[-1]
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (55377, 91, 55096)


def test_a_message_delta_field_replaces_the_start_value_even_when_smaller(
    server: FakeLLMServer,
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Anthropic's documented stream shape: the counts in message_delta are cumulative
    # totals, so a field it reports replaces message_start's (here the preliminary
    # output_tokens and a cache read the final count corrects); input it leaves out stays.
    events = [
        'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":'
        '"message","role":"assistant","model":"claude-sonnet-4-5","content":[],'
        '"usage":{"input_tokens":25,"cache_read_input_tokens":40,"output_tokens":9}}}\n\n',
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        '"content_block":{"type":"text","text":""}}\n\n',
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"text_delta","text":"Hi"}}\n\n',
        'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
        '"end_turn"},"usage":{"cache_read_input_tokens":0,"output_tokens":3}}\n\n',
        'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ]
    server.script(Fault.sse(*events))
    r = {"provider": "anthropic", "model": "claude-sonnet-4-5", "stream": True}
    got = replayer(server, write_settings, monkeypatch)({**r, "status": 200}, _script=False)
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (25, 3)
    assert got.usage.cached_tokens == 0


# -- 7. developer role; Anthropic system messages -------------------------------------------

CONVERSATION = [
    {"role": "system", "content": "You are a code reviewer."},
    {"role": "user", "content": "Review `def add(a, b): return a + b`."},
    {"role": "assistant", "content": "Looks fine."},
    {
        "role": "system",
        "content": "From now on, every suggestion must include explicit type annotations.",
    },
    {"role": "user", "content": "Review it again."},
]


def test_anthropic_mid_conversation_system_message_stays_in_place(
    replay: Callable[..., Any], server: FakeLLMServer
) -> None:
    # The recorded request (pydantic-ai to claude-sonnet-4-6, answered 200 with a review
    # that follows the late instruction): the leading system message is `system`, the
    # later one <system> text in the user turn, next to "Review it again.".
    r = rec("anthropic/test_mid_conversation_system_prompt_inline-system-unsupported___0")
    recorded = r["request"]
    got = replay(r, _messages=CONVERSATION)
    assert "type annotations" in got.content
    sent = server.last_request
    assert sent is not None
    assert sent.json["system"] == recorded["system"] == "You are a code reviewer."
    assert [t["role"] for t in sent.json["messages"]] == [t["role"] for t in recorded["messages"]]
    late = sent.json["messages"][-1]["content"]
    for block in recorded["messages"][-1]["content"]:
        assert block["text"] in late
    assert "type annotations" not in sent.json["system"]


@pytest.mark.parametrize(
    ("kind", "role"),
    [("openai", "developer"), ("groq", "system"), ("openrouter", "system")],
)
def test_developer_messages_go_as_they_are_only_to_openai(
    kind: str,
    role: str,
    replay: Callable[..., Any],
    server: FakeLLMServer,
) -> None:
    r = next(
        load(p)
        for p in sorted((RECORDINGS / kind).glob("*.json"))
        if not load(p)["stream"] and load(p)["status"] == 200
    )
    replay(
        r,
        _messages=[
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": "hi"},
        ],
    )
    sent = server.last_request
    assert sent is not None
    assert sent.json["messages"][0] == {"role": role, "content": "Be terse."}


def test_developer_messages_are_system_instructions_for_anthropic_and_gemini(
    replay: Callable[..., Any], server: FakeLLMServer
) -> None:
    msgs = [{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "hi"}]
    replay(rec("anthropic/test_anthropic_cache_real_api__1"), _messages=msgs)
    assert server.last_request is not None
    assert server.last_request.json["system"] == "Be terse."
    assert [t["role"] for t in server.last_request.json["messages"]] == ["user"]
    gemini = next(
        load(p)
        for p in sorted((RECORDINGS / "gemini").glob("*.json"))
        if not load(p)["stream"] and load(p)["status"] == 200
    )
    replay(gemini, _messages=msgs)
    sent = server.last_request.json
    assert sent["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert [c["role"] for c in sent["contents"]] == ["user"]
