"""mode="batch_api": OpenAI Batch and Anthropic Message Batches against the fake server."""

from __future__ import annotations

import json

import pandas as pd
import pydantic
import pytest

import llmnb.batch
from llmnb import errors
from llmnb.batch.api import DISCOUNT
from llmnb.client.client import LLMClient
from llmnb.providers.anthropic import AnthropicProvider
from llmnb.providers.openai_compat import OpenAICompatibleProvider
from llmnb.testing import FakeLLMServer, Fault
from llmnb.usage import UsageTracker
from llmnb.usage.pricing import cost_of, price_for

PRICE = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}


class Clock:
    """Time that moves only when the batch sleeps between polls."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def _openai(srv: FakeLLMServer, tracker: UsageTracker) -> LLMClient:
    profile = {"base_url": srv.base_url, "model": "gpt-4o-mini", "pricing": PRICE}
    return LLMClient(OpenAICompatibleProvider("oa", profile, "gpt-4o-mini"), tracker=tracker)


def _paths(srv: FakeLLMServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in srv.requests]


def test_openai_batch_round_trip_maps_results_to_rows_at_half_price(
    tracker: UsageTracker,
) -> None:
    prompts = [f"item {i}" for i in range(30)]
    clock = Clock()
    with FakeLLMServer(echo=True) as srv:
        client = _openai(srv, tracker)
        res = llmnb.batch.map(
            prompts, client=client, mode="batch_api", max_tokens=50, poll_interval=5,
            sleep=clock.sleep, clock=clock, progress=False,
        )  # fmt: skip
        paths = _paths(srv)
        upload = srv.requests[0]
    assert res.mode == "batch_api" and res.failed == 0
    assert res.outputs == [f"Echo: {p}" for p in prompts]  # matched by custom_id, in order
    assert paths[:2] == ["POST /v1/files", "POST /v1/batches"]
    assert paths.count("GET /v1/batches/" + paths[2].rsplit("/", 1)[1]) == 3
    assert not any("chat/completions" in p for p in paths)  # no direct calls
    assert clock.sleeps == [5, 5]
    # the uploaded JSONL: one chat-completions request per row, as a direct call builds it
    assert b'name="purpose"' in upload.body and b"batch" in upload.body
    first = json.loads(upload.body.split(b"\r\n\r\n", 2)[2].split(b"\n", 1)[0])
    assert first["custom_id"] == "row-0" and first["url"] == "/v1/chat/completions"
    assert first["body"]["model"] == "gpt-4o-mini" and first["body"]["max_tokens"] == 50
    assert set(first["body"]) == {"model", "messages", "max_tokens"}  # no batch options

    rows = tracker.to_dataframe()
    assert len(rows) == 30 and set(rows["status"].astype(str)) == {"ok"}
    price = price_for("gpt-4o-mini", "openai_compatible", None, PRICE)
    assert price is not None
    full = sum(
        cost_of(price, p, c)
        for p, c in zip(rows["prompt_tokens"], rows["completion_tokens"], strict=True)
    )
    assert rows["cost_usd"].sum() == pytest.approx(full * DISCOUNT)
    assert res.cost_usd == pytest.approx(full * DISCOUNT)
    tags = rows["tags"].iloc[0]
    assert tags["batch_api"] == "openai" and tags["discount"] == 0.5
    assert tags["batch_id"].startswith("batch_")


def test_a_failed_line_keeps_its_error_and_the_others_their_answers(
    tracker: UsageTracker,
) -> None:
    with FakeLLMServer(echo=True) as srv:
        srv.script(Fault.status(500))  # the first line of the batch fails
        res = llmnb.batch.map(
            ["a 1", "a 2", "a 3"], client=_openai(srv, tracker), mode="batch_api",
            sleep=lambda s: None, progress=False,
        )  # fmt: skip
    assert res.errors[0] is not None and "server_error" in res.errors[0]
    assert res.outputs[1:] == ["Echo: a 2", "Echo: a 3"]
    statuses = tracker.to_dataframe()["status"].astype(str).tolist()
    assert statuses.count("ok") == 2 and len(statuses) == 3


def test_anthropic_message_batch_round_trip(
    tracker: UsageTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-batch-test-0001")
    with FakeLLMServer(echo=True) as srv:
        profile = {"base_url": srv.anthropic_base_url, "model": "claude-x", "pricing": PRICE}
        client = LLMClient(AnthropicProvider("claude", profile, "claude-x"), tracker=tracker)
        df = pd.DataFrame({"q": ["one", "two"]})
        out = df.llm.complete(
            "Q: {q}", client=client, mode="batch_api", sleep=lambda s: None, progress=False
        )
        created = srv.requests[0]
    assert out["output"].tolist() == ["Echo: Q: one", "Echo: Q: two"]
    assert out["output_error"].isna().all()
    assert created.path == "/v1/messages/batches"
    assert created.headers["x-api-key"] == "sk-ant-batch-test-0001"
    assert "anthropic-version" in created.headers
    sent = created.json["requests"]
    assert [r["custom_id"] for r in sent] == ["row-0", "row-1"]
    assert sent[0]["params"]["messages"] == [{"role": "user", "content": "Q: one"}]
    rows = tracker.to_dataframe()
    assert rows["tags"].iloc[0]["batch_api"] == "anthropic"
    price = price_for("claude-x", "anthropic", None, PRICE)
    assert price is not None
    expect = cost_of(price, int(rows["prompt_tokens"][0]), int(rows["completion_tokens"][0]))
    assert rows["cost_usd"][0] == pytest.approx(expect * DISCOUNT)


def test_a_batch_that_outlasts_max_wait_can_be_resumed_by_id(tracker: UsageTracker) -> None:
    clock = Clock()
    with FakeLLMServer(echo=True) as srv:
        client = _openai(srv, tracker)
        with pytest.raises(errors.LLMTimeoutError, match=r"batch_id='batch_") as info:
            llmnb.batch.map(
                ["x 1", "x 2"], client=client, mode="batch_api", poll_interval=5, max_wait=4,
                sleep=clock.sleep, clock=clock, progress=False,
            )  # fmt: skip
        batch_id = str(info.value).split("batch_id='")[1].split("'")[0]
        res = llmnb.batch.map(
            ["x 1", "x 2"], client=client, mode="batch_api", batch_id=batch_id,
            sleep=clock.sleep, clock=clock, progress=False,
        )  # fmt: skip
        creates = [r for r in srv.requests if r.method == "POST"]
    assert res.outputs == ["Echo: x 1", "Echo: x 2"]
    assert len(creates) == 2  # one file upload, one batch: the resume submitted nothing


def test_batch_api_needs_an_openai_or_anthropic_profile(tracker: UsageTracker) -> None:
    client = llmnb.create_llm_client_from_profile(profile="demo")
    with pytest.raises(errors.InvalidOptionError, match="OpenAI or Anthropic"):
        llmnb.batch.map(["hi"], client=client, mode="batch_api", progress=False)


class Answer(pydantic.BaseModel):
    text: str


def test_response_model_is_refused_in_batch_api_mode(
    server: FakeLLMServer, tracker: UsageTracker
) -> None:
    with pytest.raises(errors.InvalidOptionError, match="response_model"):
        llmnb.batch.map(
            ["hi"], client=_openai(server, tracker), mode="batch_api", response_model=Answer
        )
    assert server.requests == []
