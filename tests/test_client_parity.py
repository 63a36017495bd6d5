"""Sync and async share one core: the same scenario gives the same rows and requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pydantic
import pytest
import yaml

import llmnb
from llmnb.middleware import ManualClock, RetryPolicy
from llmnb.testing import FakeLLMServer, Fault
from llmnb.usage import UsageTracker

KEYS = ["sk-parity-key-0001", "sk-parity-key-0002", "sk-parity-key-0003"]
ROW_FIELDS = [
    "profile",
    "provider",
    "model",
    "status",
    "attempt",
    "cached",
    "key_id",
    "prompt_tokens",
    "completion_tokens",
    "cost_source",
]


class City(pydantic.BaseModel):
    name: str
    population: int


@pytest.fixture
def backup() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(default_response="backup answer") as srv:
        yield srv


def _settings(server: FakeLLMServer, backup: FakeLLMServer) -> dict[str, Any]:
    return {
        "llm": {
            "active_provider": "main",
            "fallbacks": ["backup"],
            "providers": {
                "main": {
                    "type": "openai_compatible",
                    "model": "main-model",
                    "base_url": server.base_url,
                    "api_keys": KEYS,
                    "max_retries": 1,
                    "pricing": {"input_per_mtok": 1, "output_per_mtok": 2},
                    "rate_limits": {"requests_per_minute": 2},
                },
                "backup": {
                    "type": "openai_compatible",
                    "model": "backup-model",
                    "base_url": backup.base_url,
                },
            },
        },
        "cache": {"backend": "memory"},
    }


def _scenario(name: str, server: FakeLLMServer) -> Callable[[llmnb.LLMClient], Any]:
    """What to script and call; returns a function of the client that makes the calls,
    given as (method, args, kwargs) steps so both shells run the very same steps."""
    steps: dict[str, list[tuple[str, tuple[Any, ...], dict[str, Any]]]] = {
        "plain": [("complete", ("hello",), {})],
        "retry": [("complete", ("hello",), {})],
        "key_switch": [("complete", ("hello",), {}), ("complete", ("again",), {})],
        "cache": [("complete", ("hello",), {}), ("complete", ("hello",), {})],
        "structured": [("complete", ("city?",), {"response_model": City})],
        "failover": [("complete", ("hello",), {})],
        "rate_limited": [("complete", (f"q{i}",), {}) for i in range(5)],
        "stream_retry": [("stream", ("hello",), {})],
    }
    faults = {
        "retry": [Fault.status(500)],
        "key_switch": [Fault.status(401)],
        "structured": [Fault.reply("nope"), Fault.reply('{"name": "Tokyo", "population": 37}')],
        "failover": [Fault.status(503), Fault.status(503)],
        "stream_retry": [Fault.status(502)],
    }
    server.script(*faults.get(name, []))
    plan = steps[name]

    def run_sync(client: llmnb.LLMClient) -> list[Any]:
        out = []
        for method, args, kwargs in plan:
            if method == "stream":
                out.append("".join(client.stream(*args, **kwargs)))
            else:
                c = client.complete(*args, **kwargs)
                out.append((c.content, c.parsed, c.profile, c.attempts, c.cached))
        return out

    async def run_async(client: llmnb.LLMClient) -> list[Any]:
        out = []
        for method, args, kwargs in plan:
            if method == "stream":
                out.append("".join([p async for p in client.astream(*args, **kwargs)]))
            else:
                c = await client.acomplete(*args, **kwargs)
                out.append((c.content, c.parsed, c.profile, c.attempts, c.cached))
        return out

    run_sync.run_async = run_async  # type: ignore[attr-defined]
    return run_sync


def _recorder(waits: list[float]) -> Callable[[float], Any]:
    async def asleep(seconds: float) -> None:
        waits.append(seconds)

    return asleep


SCENARIOS = [
    "plain",
    "retry",
    "key_switch",
    "cache",
    "structured",
    "failover",
    "rate_limited",
    "stream_retry",
]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sync_and_async_give_the_same_rows_requests_and_waits(
    scenario, server, backup, write_settings, tmp_path, monkeypatch
):
    results = {}
    for mode in ("sync", "async"):
        # A fresh project folder per run: shared pools, limiters and caches start empty.
        folder = tmp_path / mode
        folder.mkdir()
        monkeypatch.chdir(folder)
        (folder / "config").mkdir()
        (folder / "config" / "settings.yaml").write_text(yaml.safe_dump(_settings(server, backup)))
        server.reset()
        backup.reset()
        tracker = UsageTracker()
        clock = ManualClock()
        manager = llmnb.LLMManager.from_settings(tracker=tracker, clock=clock)
        client = manager.get_client()
        waits: list[float] = []
        client.retry = RetryPolicy(
            max_retries=1, sleep=waits.append, asleep=_recorder(waits), jitter=0
        )
        manager.get_client("backup").retry = RetryPolicy(max_retries=0)
        run = _scenario(scenario, server)
        if mode == "sync":
            answers = run(client)
        else:
            answers = asyncio.run(run.run_async(client))  # type: ignore[attr-defined]
        rows = tracker.to_dataframe()
        results[mode] = {
            "answers": answers,
            "rows": rows[ROW_FIELDS]
            .astype(object)
            .where(rows[ROW_FIELDS].notna(), None)
            .values.tolist(),
            "calls": rows["call_id"].nunique(),
            "requests": [
                (r.json, r.headers.get("authorization")) for r in server.requests + backup.requests
            ],
            "retry_waits": waits,
            "limiter_waited": clock.slept,
        }
    assert results["sync"] == results["async"]
    assert results["sync"]["rows"]  # every scenario leaves rows
