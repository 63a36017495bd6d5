"""Key pools: round-robin, cooldown of failing keys, connection caps, no key ever shown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest

import llmnb
from llmnb import errors
from llmnb.middleware import KeyPool, ManualClock, RetryPolicy
from llmnb.providers import Provider
from llmnb.providers.base import key_fingerprint
from llmnb.testing import FakeLLMServer, Fault
from llmnb.types import Completion, Request, Usage

KEYS = ["sk-pool-key-one-0001", "sk-pool-key-two-0002", "sk-pool-key-three-0003"]
FP = [key_fingerprint(k) for k in KEYS]


def sent_keys(server: FakeLLMServer) -> list[str]:
    return [r.headers["authorization"].removeprefix("Bearer ") for r in server.requests]


@pytest.fixture
def pool_client(
    server: FakeLLMServer, write_settings: Callable[[dict[str, Any]], Any]
) -> Callable[..., llmnb.LLMClient]:
    def make(clock: ManualClock | None = None, **profile: Any) -> llmnb.LLMClient:
        prof = {
            "type": "openai_compatible",
            "model": "m",
            "base_url": server.base_url,
            "api_keys": KEYS,
            **profile,
        }
        write_settings({"llm": {"active_provider": "pool", "providers": {"pool": prof}}})
        manager = llmnb.LLMManager.from_settings(clock=clock or ManualClock())
        client = manager.get_client()
        client.retry = RetryPolicy(max_retries=client.retry.max_retries, sleep=lambda s: None)
        return client

    return make


def test_round_robin_order_across_three_keys(pool_client, server, tracker):
    client = pool_client()
    for _ in range(6):
        client.complete("hi")
    assert sent_keys(server) == KEYS + KEYS
    # Rows name keys by fingerprint, in the same order.
    assert list(tracker.to_dataframe()["key_id"]) == FP + FP


def test_env_pool_variable_gives_a_pool_of_keys(server, write_settings, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEYS", ",".join(KEYS[:2]))
    write_settings(
        {
            "llm": {
                "active_provider": "oa",
                "providers": {
                    "oa": {"type": "openai", "model": "gpt-4o", "base_url": server.base_url}
                },
            }
        }
    )
    client = llmnb.create_llm_client_from_profile()
    for _ in range(4):
        client.complete("hi")
    assert sent_keys(server) == KEYS[:2] * 2


def test_a_rejected_key_is_cooled_down_skipped_and_returned_after_the_cooldown(
    pool_client, server, tracker
):
    clock = ManualClock()
    client = pool_client(clock, cooldown=30)
    server.script(Fault.status(401))
    c = client.complete("hi")  # key one: 401 → the same call retries at once with key two
    assert c.content and c.attempts == 2
    rows = tracker.to_dataframe()
    assert list(rows["status"]) == ["AuthenticationError", "ok"]
    assert list(rows["key_id"]) == FP[:2]
    assert rows["call_id"].nunique() == 1

    for _ in range(4):  # key one is cooling down: only two and three are used
        client.complete("hi")
    assert sent_keys(server)[2:] == [KEYS[2], KEYS[1], KEYS[2], KEYS[1]]

    pool = next(m for m in client.middleware if isinstance(m, KeyPool))
    one = pool.status()["keys"][0]
    assert (
        one["key_id"] == FP[0] and not one["healthy"] and one["last_error"] == "AuthenticationError"
    )
    assert one["cooldown_remaining_s"] == pytest.approx(30)

    clock.advance(30)  # the cooldown is over: key one is back in the rotation
    server.reset()
    for _ in range(3):
        client.complete("hi")
    assert sorted(sent_keys(server)) == sorted(KEYS)
    assert pool.status()["keys"][0]["healthy"]


def test_cooldown_doubles_while_a_key_keeps_failing(pool_client, server):
    clock = ManualClock()
    client = pool_client(clock, cooldown=10, api_keys=KEYS[:1], max_retries=0)
    pool = next(m for m in client.middleware if isinstance(m, KeyPool))
    server.script(Fault.status(500))
    with pytest.raises(errors.ProviderError):
        client.complete("hi")
    assert pool.status()["keys"][0]["cooldown_remaining_s"] == pytest.approx(10)
    clock.advance(10)
    server.script(Fault.status(500))
    with pytest.raises(errors.ProviderError):
        client.complete("hi")
    assert pool.status()["keys"][0]["cooldown_remaining_s"] == pytest.approx(20)
    clock.advance(20)
    client.complete("hi")  # a success resets the streak
    assert pool.status()["keys"][0]["successes"] == 1


def test_a_429_cools_the_key_for_the_servers_retry_after(pool_client, server):
    clock = ManualClock()
    client = pool_client(clock, cooldown=5)
    server.script(Fault.rate_limit(retry_after=42))
    client.complete("hi")
    pool = next(m for m in client.middleware if isinstance(m, KeyPool))
    first = pool.status()["keys"][0]
    assert first["cooldown_remaining_s"] == pytest.approx(42)
    assert sent_keys(server) == KEYS[:2]


def test_all_keys_cooling_waits_for_the_first_to_come_back(pool_client, server):
    clock = ManualClock()
    client = pool_client(clock, cooldown=8, api_keys=KEYS[:2], max_retries=0)
    server.script(Fault.status(401), Fault.status(401))
    with pytest.raises(errors.AuthenticationError):
        client.complete("hi")  # both keys rejected: the call fails, both cool down
    t0 = clock.now()
    client.complete("hi")  # waits (on the injected clock) for a key to come back
    assert clock.now() - t0 == pytest.approx(8)


class Reentrant(Provider):
    """Calls the client again while its own key is leased: a second caller that must
    wait for a connection, deterministically and without threads."""

    type_name = "reentrant"
    caught: ClassVar[list[BaseException]] = []
    status_during: ClassVar[list[dict[str, Any]]] = []

    def complete(self, request: Request) -> Completion:
        assert request.api_key in KEYS
        if request.messages[-1].content == "outer":
            manager = Reentrant.manager  # type: ignore[attr-defined]
            Reentrant.status_during.append(manager.get_status("r"))
            try:
                manager.get_client("r").complete("inner")
            except errors.PoolExhaustedError as exc:
                Reentrant.caught.append(exc)
        return Completion(content="ok", model=request.model, usage=Usage(1, 1))


def test_busy_pool_raises_pool_exhausted_after_acquire_timeout():
    clock = ManualClock()
    manager = llmnb.LLMManager(clock=clock)
    manager.register_provider_class("reentrant", Reentrant)
    manager.add_provider(
        "r",
        "reentrant",
        {
            "model": "m",
            "api_keys": KEYS[:1],
            "max_connections_per_key": 1,
            "acquire_timeout": 5,
        },
    )
    Reentrant.manager = manager  # type: ignore[attr-defined]
    Reentrant.caught.clear()
    Reentrant.status_during.clear()
    assert manager.get_client("r").complete("outer").content == "ok"
    (exc,) = Reentrant.caught
    assert exc.profile == "r" and exc.waited == pytest.approx(5)
    assert "acquire_timeout=5" in str(exc) and "max_connections_per_key=1" in str(exc)
    assert KEYS[0] not in str(exc) and FP[0] in str(exc)
    during = Reentrant.status_during[0]
    assert during["connections"] == {"total": 1, "available": 0, "in_flight": 1}
    after = manager.get_status("r")
    assert after["connections"]["available"] == 1 and after["queue"] == 0


def test_keys_never_appear_in_status_reprs_rows_or_errors(pool_client, server, tracker):
    client = pool_client(max_retries=0, api_keys=KEYS[:2])
    server.script(
        *(Fault.status(401, body={"error": {"message": f"bad key {k}"}}) for k in KEYS[:2])
    )
    with pytest.raises(errors.AuthenticationError) as info:
        client.complete("hi")  # both keys rejected, each echoed back by the server
    pool = next(m for m in client.middleware if isinstance(m, KeyPool))
    texts = [
        str(info.value),
        repr(pool),
        repr(pool.status()),
        repr(client),
        tracker.to_dataframe().to_csv(),
    ]
    assert "[redacted]" in texts[0]
    for text in texts:
        assert KEYS[0] not in text and KEYS[1] not in text


def test_key_pool_rejects_a_zero_connection_cap():
    with pytest.raises(errors.InvalidOptionError, match="max_connections_per_key"):
        KeyPool(KEYS, max_connections_per_key=0)
