"""Failover: a provider's failure moves the call to the next profile of the sequence."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import llmnb
from llmnb import errors
from llmnb.client.manager import reset_llm_manager
from llmnb.middleware import ManualClock, RetryPolicy
from llmnb.testing import FakeLLMServer, Fault


@pytest.fixture(autouse=True)
def _fresh_manager() -> Iterator[None]:
    reset_llm_manager()  # the process-wide one serves llm.fallbacks of plain clients
    yield
    reset_llm_manager()


@pytest.fixture
def second() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(default_response="from the backup") as srv:
        yield srv


@pytest.fixture
def manager(
    server: FakeLLMServer, second: FakeLLMServer, write_settings: Callable[[dict[str, Any]], Any]
) -> Callable[..., llmnb.LLMManager]:
    def make(fallbacks: list[str] | None = None, **primary: Any) -> llmnb.LLMManager:
        providers = {
            "main": {
                "type": "openai_compatible",
                "model": "main-model",
                "base_url": server.base_url,
                "max_retries": 0,
                **primary,
            },
            "backup": {
                "type": "openai_compatible",
                "model": "backup-model",
                "base_url": second.base_url,
            },
        }
        write_settings(
            {
                "llm": {
                    "active_provider": "main",
                    "providers": providers,
                    "fallbacks": ["backup"] if fallbacks is None else fallbacks,
                }
            }
        )
        return llmnb.LLMManager.from_settings(clock=ManualClock())

    return make


def test_failover_reaches_the_second_profile_and_tracks_both_attempts(
    manager, server, second, tracker
):
    server.script(Fault.status(500))
    c = manager().get_client().complete("hi")
    assert c.profile == "backup" and c.content == "from the backup" and c.attempts == 2
    rows = tracker.to_dataframe()
    assert list(rows["profile"]) == ["main", "backup"]
    assert list(rows["status"]) == ["ProviderError", "ok"]
    assert list(rows["attempt"]) == [1, 2]
    assert rows["call_id"].nunique() == 1
    assert len(server.requests) == 1 and second.last_request.json["model"] == "backup-model"


def test_failover_happens_after_the_retries_are_exhausted(manager, server, tracker):
    m = manager(max_retries=2)
    client = m.get_client()
    client.retry = RetryPolicy(max_retries=2, sleep=lambda s: None)
    server.script(Fault.status(503), Fault.status(503), Fault.status(503))
    c = client.complete("hi")
    assert c.profile == "backup"
    assert list(tracker.to_dataframe()["status"]) == ["OverloadedError"] * 3 + ["ok"]


def test_the_callers_own_bad_request_does_not_fail_over(manager, server, second, tracker):
    server.script(Fault.status(400))
    with pytest.raises(errors.InvalidRequestError):
        manager().get_client().complete("hi")
    assert second.requests == []
    assert list(tracker.to_dataframe()["profile"]) == ["main"]


def test_quota_and_auth_failures_fail_over(manager, server):
    server.script(Fault.insufficient_quota())
    assert manager().get_client().complete("hi").profile == "backup"
    server.script(Fault.status(401))
    assert manager().get_client().complete("hi").profile == "backup"


def test_every_profile_failing_raises_the_last_error(manager, server, second, tracker):
    server.script(Fault.status(500))
    second.script(Fault.status(502))
    m = manager()
    m.get_client("backup").retry = RetryPolicy(max_retries=0)
    with pytest.raises(errors.ProviderError, match="502"):
        m.get_client().complete("hi")
    assert list(tracker.to_dataframe()["profile"]) == ["main", "backup"]


def test_a_profile_is_visited_once_per_call(manager, server, second):
    # backup → main → backup would loop: each profile is tried at most once.
    server.script(Fault.status(500))
    second.script(Fault.status(500))
    m = manager(fallbacks=["main", "backup"])
    m.get_client("backup").retry = RetryPolicy(max_retries=0)
    with pytest.raises(errors.ProviderError):
        m.get_client("main").complete("hi")
    assert len(server.requests) == 1 and len(second.requests) == 1


def test_set_failover_sequence_overrides_the_settings(manager, server, second):
    m = manager(fallbacks=[])
    server.script(Fault.status(500))
    with pytest.raises(errors.ProviderError):
        m.get_client().complete("hi")
    m.set_failover_sequence(["backup"])
    server.script(Fault.status(500))
    assert m.get_client().complete("hi").profile == "backup"


def test_async_failover_matches_sync(manager, server, tracker):
    server.script(Fault.status(500))
    c = asyncio.run(manager().get_client().acomplete("hi"))
    assert c.profile == "backup" and c.attempts == 2
    assert list(tracker.to_dataframe()["status"]) == ["ProviderError", "ok"]


def test_a_stream_fails_over_before_its_first_token(manager, server, tracker):
    server.script(Fault.status(500))
    stream = manager().get_client().stream("hi")
    assert "".join(stream) == "from the backup"
    assert stream.completion is not None and stream.completion.profile == "backup"
    assert list(tracker.to_dataframe()["profile"]) == ["main", "backup"]


def test_a_stream_cut_after_text_does_not_fail_over(manager, server, second):
    server.script(Fault.cut_stream(after_chunks=3))
    with pytest.raises(errors.NetworkError):
        "".join(manager().get_client().stream("hi"))
    assert second.requests == []


def test_async_stream_fails_over_before_its_first_token(manager, server):
    server.script(Fault.status(500))

    async def read() -> tuple[str, Any]:
        stream = manager().get_client().astream("hi")
        return "".join([piece async for piece in stream]), stream.completion

    text, completion = asyncio.run(read())
    assert text == "from the backup" and completion.profile == "backup"


def test_clients_built_from_the_settings_follow_llm_fallbacks_too(manager, server, second, tracker):
    manager()  # writes the settings: main, then backup
    client = llmnb.create_llm_client_from_profile()  # as the %%llm magic builds them
    server.script(Fault.status(500))
    c = client.complete("hi")
    assert c.profile == "backup" and list(tracker.to_dataframe()["profile"]) == ["main", "backup"]


def test_a_client_without_failover_raises(manager, server, second):
    manager()
    client = llmnb.create_llm_client_from_profile()
    client.failover = None
    server.script(Fault.status(500))
    with pytest.raises(errors.ProviderError):
        client.complete("hi")
    assert second.requests == []
