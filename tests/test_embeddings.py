"""``client.embed`` / ``aembed`` and ``df.llm.embed`` end to end against FakeLLMServer."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import llmnb
from llmnb import errors
from llmnb.middleware import ManualClock, RetryPolicy, budget
from llmnb.testing import FakeLLMServer, Fault
from llmnb.usage import UsageTracker

KEY = "sk-embed-canary-0123456789abcdef"
KEYS = ["sk-embed-key-one-0123456789", "sk-embed-key-two-0123456789"]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_budget() -> Iterator[None]:
    budget.reset_session_budget()
    budget.reset_spend()
    yield
    budget.reset_session_budget()
    budget.reset_spend()


@pytest.fixture
def make(
    server: FakeLLMServer,
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., llmnb.LLMClient]:
    def build(kind: str = "openai", model: str = "text-embedding-3-small", **extra: Any) -> Any:
        monkeypatch.setenv("EMBED_KEY", KEY)
        base = server.gemini_base_url if kind == "gemini" else server.base_url
        prof: dict[str, Any] = {"type": kind, "model": model, "base_url": base}
        if kind != "mock":
            prof["api_key_env"] = "EMBED_KEY"
        else:
            prof.pop("base_url")
        prof.update(extra)
        write_settings({"llm": {"active_provider": "p", "providers": {"p": prof}}})
        client = llmnb.create_llm_client_from_profile()
        client.retry = RetryPolicy(max_retries=client.retry.max_retries, sleep=lambda s: None)
        return client

    return build


def embed_requests(server: FakeLLMServer) -> list[Any]:
    return [r for r in server.requests if "mbed" in r.path]


def rows(tracker: UsageTracker) -> pd.DataFrame:
    return tracker.to_dataframe()


# --- the wire ------------------------------------------------------------------------------
def test_openai_embeddings_send_the_exact_json_and_return_rows_in_order(make, server, tracker):
    client = make()
    e = client.embed(["alpha", "beta", "gamma"], dimensions=16)
    assert [r.json for r in embed_requests(server)] == [
        {
            "model": "text-embedding-3-small",
            "input": ["alpha", "beta", "gamma"],
            "encoding_format": "float",
            "dimensions": 16,
        }
    ]
    assert server.last_request.path == "/v1/embeddings"
    assert server.last_request.headers["authorization"] == f"Bearer {KEY}"
    assert isinstance(e.vectors, np.ndarray) and e.vectors.dtype == np.float32
    assert e.vectors.shape == (3, 16) and len(e) == 3
    # Row i is text i: the same text embedded alone gives the same vector.
    alone = client.embed("beta", dimensions=16)
    assert alone.vectors.shape == (1, 16)
    np.testing.assert_array_equal(alone.vectors[0], e.vectors[1])
    assert not np.array_equal(e.vectors[0], e.vectors[1])
    assert [list(v) for v in e] == [list(v) for v in e.vectors]
    # Usage: the server's prompt tokens (ceil(chars/4): 2+1+2), priced from the table.
    assert e.usage.prompt_tokens == 5 and not e.usage.estimated
    assert e.cost_source == "price_table"
    assert e.cost_usd == pytest.approx(5 * 0.02 / 1e6)
    df = rows(tracker)
    assert list(df["kind"]) == ["embedding", "embedding"]
    assert list(df["completion_tokens"]) == [0, 0]
    assert list(df["prompt_tokens"]) == [5, 1]
    assert KEY not in df.to_string() and KEY not in repr(e)


def test_gemini_batch_embed_contents_with_estimated_tokens(make, server, tracker):
    client = make("gemini", "gemini-embedding-001")
    e = client.embed(["hello", "world!"], dimensions=4)
    (req,) = embed_requests(server)
    assert req.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert req.headers["x-goog-api-key"] == KEY
    assert req.json == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "hello"}]},
                "outputDimensionality": 4,
            },
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "world!"}]},
                "outputDimensionality": 4,
            },
        ]
    }
    assert e.vectors.shape == (2, 4)
    assert e.usage.estimated and e.usage.prompt_tokens == 2 + 2
    (row,) = rows(tracker).to_dict("records")
    assert row["kind"] == "embedding" and row["cost_source"] == "estimate"
    assert row["completion_tokens"] == 0 and row["prompt_tokens"] == 4


def test_mistral_names_the_vector_size_output_dimension(make, server):
    make("mistral", "codestral-embed").embed(["x"], dimensions=8)
    body = server.last_request.json
    assert body["output_dimension"] == 8 and "dimensions" not in body


def test_mock_vectors_are_deterministic_offline(make, server):
    client = make("mock", "mock-embed")
    a = client.embed(["same", "other"])
    b = asyncio.run(client.aembed(["other", "same"]))
    np.testing.assert_array_equal(a.vectors[0], b.vectors[1])
    np.testing.assert_allclose(np.linalg.norm(a.vectors, axis=1), 1.0, rtol=1e-5)
    assert client.embed("x", dimensions=32).vectors.shape == (1, 32)
    assert server.requests == []


# --- batching and concurrency ----------------------------------------------------------
def test_batches_follow_batch_size_and_the_provider_limit(make, server, tracker):
    client = make()
    texts = [f"t{i}" for i in range(5)]
    e = client.embed(texts, batch_size=2, concurrency=1)
    assert [r.json["input"] for r in embed_requests(server)] == [["t0", "t1"], ["t2", "t3"], ["t4"]]
    server.reset()
    again = client.embed(texts, batch_size=2)  # concurrent: any order on the wire, same rows
    assert sorted(len(r.json["input"]) for r in embed_requests(server)) == [1, 2, 2]
    np.testing.assert_array_equal(again.vectors, e.vectors)
    assert e.vectors.shape[0] == 5 and e.requests == 3
    np.testing.assert_array_equal(e.vectors[4], client.embed("t4").vectors[0])
    server.reset()
    client.embed([f"x{i}" for i in range(2050)])  # OpenAI: 2048 inputs a request
    assert sorted(len(r.json["input"]) for r in embed_requests(server)) == [2, 2048]
    with pytest.raises(errors.InvalidOptionError, match="at most 2048"):
        client.embed(["a"], batch_size=5000)


def test_gemini_batches_are_at_most_100(make, server):
    make("gemini", "gemini-embedding-001").embed([f"g{i}" for i in range(250)])
    sizes = sorted(len(r.json["requests"]) for r in embed_requests(server))
    assert sizes == [50, 100, 100]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_concurrency_bounds_requests_in_flight(make, server, mode):
    client = make()
    server.embeddings.latency = 0.05
    texts = [f"c{i}" for i in range(8)]
    if mode == "sync":
        e = client.embed(texts, batch_size=1, concurrency=3)
    else:
        e = asyncio.run(client.aembed(texts, batch_size=1, concurrency=3))
    assert len(embed_requests(server)) == 8
    assert server.embeddings.peak_in_flight == 3
    assert [r.json["input"] for r in embed_requests(server)] != [] and len(e) == 8
    np.testing.assert_array_equal(e.vectors[7], client.embed("c7").vectors[0])


# --- the core path: cache, retries, key pool, budget --------------------------------------
def test_cache_hit_is_a_cached_row_and_dimensions_are_part_of_the_key(make, server, tracker):
    client = make()
    first = client.embed(["a", "b"], cache=True)
    again = client.embed(["a", "b"], cache=True)
    assert len(embed_requests(server)) == 1
    np.testing.assert_array_equal(first.vectors, again.vectors)
    assert again.cost_source == "cache" and again.cost_usd == 0 and again.cached == 1
    df = rows(tracker)
    assert list(df["cached"]) == [False, True] and list(df["kind"]) == ["embedding"] * 2
    client.embed(["a", "b"], dimensions=4, cache=True)  # another size: another request
    client.embed(["a", "c"], cache=True)  # another text: another request
    assert len(embed_requests(server)) == 3
    # A chat call with the same text is not answered from the embeddings' entry.
    assert client.complete("a", cache=True).content == "Hello from FakeLLMServer."


def test_a_server_error_is_retried_with_one_row_per_attempt(make, server, tracker):
    client = make()
    server.script(Fault.status(500))
    e = client.embed(["x"])
    assert len(e) == 1 and len(embed_requests(server)) == 2
    df = rows(tracker)
    assert list(df["status"]) == ["ProviderError", "ok"]
    assert list(df["kind"]) == ["embedding", "embedding"]
    assert list(df["attempt"]) == [1, 2]


def test_key_pool_switches_key_on_a_bad_key(make, server, tracker, monkeypatch):
    client = make(api_keys=KEYS)
    server.script(Fault.status(401))
    client.embed(["x"])
    sent = [r.headers["authorization"] for r in embed_requests(server)]
    assert sent == [f"Bearer {KEYS[0]}", f"Bearer {KEYS[1]}"]
    assert not any(k in rows(tracker).to_string() for k in KEYS)


def test_budget_refuses_before_sending(make, server, tracker):
    client = make()
    budget.set_session_budget(1e-12)
    with pytest.raises(errors.BudgetExceededError):
        client.embed(["a long enough text to cost something"] * 10)
    assert embed_requests(server) == []
    (row,) = rows(tracker).to_dict("records")
    assert row["cost_source"] == "not_sent" and row["kind"] == "embedding"


def test_budget_settles_the_spend_of_embeddings(make, server):
    client = make()
    budget.set_session_budget(1.0)
    e = client.embed(["abcd" * 100])
    assert budget.get_session_spend() == pytest.approx(e.cost_usd)
    assert e.cost_usd > 0


# --- bad input and bad answers ---------------------------------------------------------
def test_bad_input_is_refused_before_anything_is_sent(make, server, tracker):
    client = make()
    with pytest.raises(errors.InvalidRequestError, match="item 1 is int"):
        client.embed(["ok", 3])
    with pytest.raises(errors.InvalidRequestError, match="item 2 has a lone surrogate"):
        client.embed(["ok", "fine", "bad \ud800"], batch_size=1)
    with pytest.raises(errors.InvalidRequestError, match="got bytes"):
        client.embed(b"raw")
    with pytest.raises(errors.InvalidOptionError, match="dimensions=0"):
        client.embed(["a"], dimensions=0)
    with pytest.raises(errors.InvalidOptionError, match="unknown option"):
        client.embed(["a"], temperature=0.2)
    empty = client.embed([])
    assert len(empty) == 0 and empty.vectors.ndim == 2 and empty.cost_usd == 0
    assert empty.cost_source == "not_sent" and len(tracker.records) == 0
    assert embed_requests(server) == []


def test_a_provider_that_cannot_embed_says_which_can(server, write_settings, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    prof = {"type": "anthropic", "model": "claude-sonnet-4-5", "base_url": server.url}
    write_settings({"llm": {"active_provider": "claude", "providers": {"claude": prof}}})
    client = llmnb.create_llm_client_from_profile()
    with pytest.raises(errors.InvalidRequestError, match=r"'claude' \(type anthropic\).*openai"):
        client.embed(["a"])
    assert server.requests == []


@pytest.mark.parametrize(
    "body",
    [
        {"data": [{"index": 0, "embedding": [1.0, 2.0]}], "model": "m"},  # 1 vector for 2
        {"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1.0, 2.0]}]},
        {"data": [{"index": 0, "embedding": ["a"]}, {"index": 1, "embedding": ["b"]}]},
    ],
    ids=["wrong-count", "ragged", "not-numbers"],
)
def test_a_malformed_answer_is_a_typed_provider_error(make, server, tracker, body):
    client = make(max_retries=0)
    server.script(Fault.json(200, body))
    with pytest.raises(errors.ProviderError, match="embeddings answer has"):
        client.embed(["a", "b"])
    (row,) = rows(tracker).to_dict("records")
    assert row["status"] == "ResponseFormatError" and row["kind"] == "embedding"


def test_vectors_come_back_in_index_order(make, server):
    client = make()
    body = {
        "data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    server.script(Fault.json(200, body))
    assert client.embed(["a", "b"]).vectors.tolist() == [[1.0], [2.0]]


# --- df.llm.embed --------------------------------------------------------------------------
def test_dataframe_embed_keeps_per_row_errors(make, server, tracker):
    client = make()
    df = pd.DataFrame({"text": ["r0", "r1", None, "r3", "r4"]}, index=[10, 11, 12, 13, 14])
    server.script(Fault.status(400))  # the first request (rows 10, 11) fails
    out = df.llm.embed("text", out="vec", client=client, batch_size=2, concurrency=1)
    assert list(out.columns) == ["text", "vec", "vec_error"]
    assert out.loc[10, "vec"] is None and out.loc[11, "vec"] is None
    assert out.loc[10, "vec_error"].startswith("InvalidRequestError")
    assert "not text" in out.loc[12, "vec_error"] and out.loc[12, "vec"] is None
    np.testing.assert_array_equal(out.loc[14, "vec"], client.embed("r4").vectors[0])
    assert out.loc[13, "vec_error"] is None and out.loc[13, "vec"].shape == (8,)
    assert out.attrs["llm"]["errors"] == 3 and out.attrs["llm"]["embedded"] == 2
    assert [r.json["input"] for r in embed_requests(server)][:2] == [["r0", "r1"], ["r3", "r4"]]
    assert set(rows(tracker)["kind"]) == {"embedding"}


def test_series_embed(make):
    client = make("mock", "mock-embed")
    out = pd.Series(["a", "b"], name="t").llm.embed(client=client, out="v", progress=False)
    assert list(out.columns) == ["t", "v", "v_error"]
    np.testing.assert_array_equal(out["v"][1], client.embed("b").vectors[0])


def test_dataframe_embed_names_a_missing_column(make):
    client = make("mock", "mock-embed")
    with pytest.raises(errors.InvalidOptionError, match=r"'nope'.*'text'"):
        pd.DataFrame({"text": ["a"]}).llm.embed("nope", client=client)


def test_dataframe_embed_costs_sum_up(make, server):
    client = make()
    out = pd.DataFrame({"t": ["abcd", "efgh"]}).llm.embed("t", client=client, progress=False)
    assert out.attrs["llm"]["requests"] == 1
    assert out.attrs["llm"]["cost_usd"] == pytest.approx(2 * 0.02 / 1e6)
    assert not math.isnan(out.attrs["llm"]["cost_usd"])


# --- a real answer, a rate limit, failover ---------------------------------------------
RECORDED = Path(__file__).parent / "embedding_recordings" / "openai_documents_base64.json"


def test_a_recorded_openai_answer_in_base64_parses(make):
    """OpenAI's SDKs ask for base64 and some servers always send it: a real answer."""
    import httpx

    recorded = json.loads(RECORDED.read_text())
    client = make()
    seen: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=recorded["response"])

    client.provider.transport = httpx.MockTransport(answer)
    e = client.embed(recorded["request"]["input"])
    assert seen[0]["input"] == ["hello", "world"]
    assert e.vectors.shape == (2, 1536) and e.usage.prompt_tokens == 2
    # text-embedding-3 vectors are unit length: the bytes were read as float32 LE.
    np.testing.assert_allclose(np.linalg.norm(e.vectors, axis=1), 1.0, rtol=1e-3)
    assert e.cost_usd == pytest.approx(2 * 0.02 / 1e6)


def test_a_broken_base64_vector_is_a_typed_error(make, server):
    client = make(max_retries=0)
    server.script(Fault.json(200, {"data": [{"index": 0, "embedding": "%%%not-base64"}]}))
    with pytest.raises(errors.ResponseFormatError):
        client.embed(["a"])


def test_the_rate_limiter_spaces_embedding_requests(server, write_settings, monkeypatch):
    monkeypatch.setenv("EMBED_KEY", KEY)
    prof = {
        "type": "openai",
        "model": "text-embedding-3-small",
        "base_url": server.base_url,
        "api_key_env": "EMBED_KEY",
        "rate_limits": {"requests_per_minute": 2},
    }
    write_settings({"llm": {"active_provider": "p", "providers": {"p": prof}}})
    clock = ManualClock()
    client = llmnb.LLMManager.from_settings(clock=clock).get_client()
    client.embed(["a", "b", "c"], batch_size=1, concurrency=1)
    assert len(embed_requests(server)) == 3
    assert clock.slept >= 29  # the third request waited for the minute's window


def test_failover_moves_an_embedding_call_to_the_next_profile(
    server, write_settings, monkeypatch, tracker
):
    monkeypatch.setenv("EMBED_KEY", KEY)
    first = {
        "type": "openai_compatible",
        "model": "emb",
        "base_url": server.base_url,
        "max_retries": 0,
    }
    second = {"type": "mock", "model": "mock-embed"}
    write_settings(
        {
            "llm": {
                "active_provider": "a",
                "fallbacks": ["b"],
                "providers": {"a": first, "b": second},
            }
        }
    )
    client = llmnb.create_llm_client_from_profile()
    server.script(Fault.status(503))
    e = client.embed(["x"])
    assert len(embed_requests(server)) == 1
    assert e.profile == "b" and len(e) == 1
    df = rows(tracker)
    assert list(df["profile"]) == ["a", "b"] and set(df["kind"]) == {"embedding"}


def test_recording_a_cassette_leaves_embeddings_out_of_it(make, server, tmp_path):
    tape = tmp_path / "tape.jsonl"
    client = make()
    llmnb.replay.use("record", tape)
    try:
        client.complete("hello")
        e = client.embed(["a", "b"])
    finally:
        llmnb.replay.reset()
    assert len(e) == 2
    lines = [json.loads(x) for x in tape.read_text().splitlines() if x.strip()]
    assert lines and all("llmnb_embedding" not in json.dumps(x) for x in lines)
