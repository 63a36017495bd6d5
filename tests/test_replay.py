"""Record and replay: every layer records real attempts and replays them with no network."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pydantic
import pytest

import llmnb
import llmnb.batch
import llmnb.replay
from llmnb import errors
from llmnb.testing import FakeLLMServer, Fault
from llmnb.usage import UsageTracker
from tests._magics_shell import ip_fixture, run

ip = ip_fixture
CANARY = "sk-canary-REPLAY-3f9a7c1e5d"


@pytest.fixture(autouse=True)
def _no_replay_left() -> Iterator[None]:
    llmnb.replay.reset()
    yield
    llmnb.replay.reset()


def _settings(srv: FakeLLMServer, **extra: Any) -> dict[str, Any]:
    profile = {
        "type": "openai_compatible",
        "model": "gpt-4o-mini",
        "base_url": srv.base_url,
        "api_key_env": "REPLAY_TEST_KEY",
        "max_retries": 2,
    }
    return {
        "llm": {"active_provider": "main", "providers": {"main": profile, **extra}},
        "usage": {"store": "memory"},
    }


def _rows(tracker: UsageTracker) -> list[tuple[Any, ...]]:
    df = tracker.to_dataframe()
    return list(
        zip(
            df["status"],
            df["prompt_tokens"].astype("Int64").tolist(),
            df["completion_tokens"].astype("Int64").tolist(),
            df["cost_usd"].round(12).tolist(),
            strict=True,
        )
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def tape(tmp_path: Path) -> Path:
    return tmp_path / "cassettes" / "nb.jsonl"


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLAY_TEST_KEY", CANARY)


def _record_then_replay(
    write_settings: Callable[[dict[str, Any]], Path],
    tape: Path,
    run_calls: Callable[[], list[Any]],
    *,
    server: FakeLLMServer | None = None,
) -> tuple[list[Any], list[Any], UsageTracker, UsageTracker]:
    """Run ``run_calls`` live while recording, then again with the server gone."""
    answers = {"hello": "Hi there!", "second": "Two is the number after one."}
    srv = server or FakeLLMServer(responses=answers)
    with srv:
        write_settings(_settings(srv))
        llmnb.replay.use("record", tape)
        live_tracker = UsageTracker()
        with live_tracker.activate():
            live = run_calls()
    # The server is stopped: anything that tried the network would fail now.
    llmnb.replay.use("replay", tape)
    replay_tracker = UsageTracker()
    with replay_tracker.activate():
        replayed = run_calls()
    return live, replayed, live_tracker, replay_tracker


def test_plain_and_streamed_calls_replay_with_no_network(write_settings, tape, keyed):
    def calls() -> list[Any]:
        client = llmnb.create_llm_client_from_profile()
        c = client.complete("hello", temperature=0.2)
        pieces = list(client.stream("second"))
        return [c.content, c.usage.prompt_tokens, c.usage.completion_tokens, pieces]

    live, replayed, t_live, t_replay = _record_then_replay(write_settings, tape, calls)
    assert replayed == live
    assert live[0] == "Hi there!" and len(live[3]) > 1  # the stream came in pieces
    assert _rows(t_replay) == _rows(t_live)
    df = t_replay.to_dataframe()
    assert list(df["cost_source"]) == ["replay", "replay"]
    assert all(c > 0 for c in df["cost_usd"])  # the recorded price, not zero
    lines = _lines(tape)
    assert [e["request"]["stream"] for e in lines] == [False, True]
    assert lines[0]["request"]["temperature"] == 0.2
    assert lines[1]["answer"]["chunks"] == live[3]


def test_async_calls_replay(write_settings, tape, keyed):
    def calls() -> list[Any]:
        async def go() -> list[Any]:
            client = llmnb.create_llm_client_from_profile()
            c = await client.acomplete("hello")
            pieces = [p async for p in client.astream("second")]
            return [c.content, pieces]

        return asyncio.run(go())

    live, replayed, _, t_replay = _record_then_replay(write_settings, tape, calls)
    assert replayed == live
    assert set(t_replay.to_dataframe()["cost_source"]) == {"replay"}


def test_the_same_prompt_twice_gets_the_recorded_answers_in_turn(write_settings, tape, keyed):
    srv = FakeLLMServer()
    srv.script(Fault.reply("first answer"), Fault.reply("second answer"))

    def calls() -> list[Any]:
        client = llmnb.create_llm_client_from_profile()
        return [client.complete("same").content, client.complete("same").content]

    live, replayed, _, _ = _record_then_replay(write_settings, tape, calls, server=srv)
    assert live == replayed == ["first answer", "second answer"]
    # a third identical call has nothing left to replay: an error, never a live call
    with pytest.raises(errors.ReplayMissError):
        llmnb.create_llm_client_from_profile().complete("same")


def test_retries_are_recorded_and_replayed_as_they_happened(write_settings, tape, keyed):
    srv = FakeLLMServer(responses={"hello": "Hi there!"})
    srv.script(Fault.rate_limit(retry_after=0.01), Fault.status(503))

    def calls() -> list[Any]:
        c = llmnb.create_llm_client_from_profile().complete("hello")
        return [c.content, c.attempts]

    live, replayed, t_live, t_replay = _record_then_replay(write_settings, tape, calls, server=srv)
    assert live == replayed == ["Hi there!", 3]
    statuses = list(t_replay.to_dataframe()["status"])
    assert statuses == list(t_live.to_dataframe()["status"])
    assert statuses[:2] != ["ok", "ok"] and statuses[-1] == "ok"
    assert [e["error"]["type"] if e["error"] else None for e in _lines(tape)] == [
        "RateLimitError",
        "OverloadedError",
        None,
    ]


def test_failover_is_replayed_as_it_happened(write_settings, tape, keyed, tmp_path):
    broken = FakeLLMServer()
    for _ in range(3):
        broken.script(Fault.status(500))
    with broken, FakeLLMServer(responses={"hello": "from backup"}) as backup:
        settings = _settings(broken)
        settings["llm"]["providers"]["main"]["max_retries"] = 0
        settings["llm"]["providers"]["backup"] = {
            "type": "openai_compatible",
            "model": "gpt-4o-mini",
            "base_url": backup.base_url,
            "api_key_env": "REPLAY_TEST_KEY",
        }
        settings["llm"]["fallbacks"] = ["main", "backup"]
        write_settings(settings)
        llmnb.replay.use("record", tape)
        live = llmnb.create_llm_client_from_profile().complete("hello")
    llmnb.client.manager.reset_llm_manager()  # a new kernel: its clients are new too
    llmnb.replay.use("replay", tape)
    t = UsageTracker()
    with t.activate():
        again = llmnb.create_llm_client_from_profile().complete("hello")
    assert (
        (again.content, again.profile) == (live.content, live.profile) == ("from backup", "backup")
    )
    assert list(t.to_dataframe()["profile"]) == ["main", "backup"]


class City(pydantic.BaseModel):
    name: str
    population: int


def test_structured_outputs_with_a_re_ask_replay(write_settings, tape, keyed):
    srv = FakeLLMServer()
    srv.script(Fault.reply('{"name": "Tokyo"}'), Fault.reply('{"name": "Tokyo", "population": 37}'))

    def calls() -> list[Any]:
        c = llmnb.create_llm_client_from_profile().complete("city?", response_model=City)
        return [c.parsed, c.attempts]

    live, replayed, _, t_replay = _record_then_replay(write_settings, tape, calls, server=srv)
    assert live == replayed == [City(name="Tokyo", population=37), 2]
    assert len(t_replay) == 2


def test_a_dataframe_batch_replays(write_settings, tape, keyed):
    srv = FakeLLMServer(echo=True)

    def calls() -> list[Any]:
        df = pd.DataFrame({"text": [f"item {i}" for i in range(12)]})
        out = df.llm.complete("Summarize: {text}", out="s", concurrency=4, progress=False)
        return list(out["s"]) + list(out["s_error"])

    live, replayed, _, t_replay = _record_then_replay(write_settings, tape, calls, server=srv)
    assert replayed == live
    assert live[0].endswith("item 0") or "item 0" in live[0]
    assert len(t_replay) == 12 and set(t_replay.to_dataframe()["cost_source"]) == {"replay"}


def test_auto_mode_records_what_is_missing_and_replays_the_rest(write_settings, tape, keyed):
    with FakeLLMServer(responses={"hello": "Hi there!", "new": "Fresh."}) as srv:
        write_settings(_settings(srv))
        llmnb.replay.use("record", tape)
        llmnb.create_llm_client_from_profile().complete("hello")
        llmnb.replay.use("auto", tape)
        client = llmnb.create_llm_client_from_profile()
        assert client.complete("hello").cost_source == "replay"
        assert client.complete("new").cost_source == "price_table"
        assert len(srv.requests) == 2  # hello once (recording), new once (auto)
    assert [e["request"]["messages"][-1]["content"] for e in _lines(tape)] == ["hello", "new"]


def test_a_miss_names_the_profile_and_the_closest_recording_and_sends_nothing(
    write_settings, tape, keyed, tracker
):
    with FakeLLMServer(responses={"hello": "Hi there!"}) as srv:
        write_settings(_settings(srv))
        llmnb.replay.use("record", tape)
        llmnb.create_llm_client_from_profile().complete("hello")
        llmnb.replay.use("replay", tape)
        before = len(srv.requests)
        with pytest.raises(errors.ReplayMissError) as caught:
            llmnb.create_llm_client_from_profile().complete("hello there")
        assert len(srv.requests) == before  # never a silent live call
    message = str(caught.value)
    assert "'main'" in message and "'hello'" in message and "%llm replay record" in message
    last = tracker.to_dataframe().iloc[-1]
    assert (last["status"], last["cost_source"], last["cost_usd"]) == (
        "ReplayMissError",
        "not_sent",
        0.0,
    )


def test_a_cassette_never_holds_the_key(write_settings, tape, keyed):
    srv = FakeLLMServer(responses={"hello": "Hi there!"})
    # a server that echoes the key in its error text
    srv.script(Fault.json(401, {"error": {"message": f"bad key {CANARY}", "type": "auth"}}))
    with srv:
        write_settings(_settings(srv))
        llmnb.replay.use("record", tape)
        client = llmnb.create_llm_client_from_profile()
        with pytest.raises(errors.AuthenticationError):
            client.complete("hello")
        client.complete("hello")
    text = tape.read_text()
    assert CANARY not in text and CANARY[:12] not in text
    assert "base_url" not in text and srv.base_url not in text
    assert "Authorization" not in text and "Bearer" not in text


def test_the_magic_records_and_replays_a_notebook(ip, write_settings, tape, keyed):
    with FakeLLMServer(responses={"hello": "Hi there!"}) as srv:
        write_settings(_settings(srv))
        shown = run(ip, f"%llm replay record {tape}")
        assert "recording" in shown.text
        live = run(ip, "%%llm -f text\nhello")
        assert "Hi there!" in live.text
    run(ip, "%unload_ext llmnb")
    run(ip, "%load_ext llmnb")  # a new session: fresh clients
    assert "Replay on: answering from" in run(ip, f"%llm replay on {tape}").text
    again = run(ip, "%%llm -f text\nhello")
    assert "Hi there!" in again.text and again.result.success
    missing = run(ip, "%%llm -f text\nsomething never recorded")
    assert not missing.result.success
    assert any("ReplayMissError" in line for line in missing.error_lines)
    assert len(missing.error_lines) == 1  # one red line
    assert "Replay: replay" in run(ip, "%llm replay").text
    assert "off" in run(ip, "%llm replay off").text


def test_environment_variables_pick_the_notebook_cassette(
    write_settings, tmp_path, keyed, monkeypatch
):
    with FakeLLMServer(responses={"hello": "Hi there!"}) as srv:
        write_settings(_settings(srv))
        monkeypatch.setenv("LLMNB_NOTEBOOK", "report.ipynb")
        monkeypatch.setenv("LLMNB_REPLAY", str(tmp_path / "cassettes" / "{notebook}.jsonl"))
        monkeypatch.setenv("LLMNB_REPLAY_MODE", "record")
        llmnb.create_llm_client_from_profile().complete("hello")
    assert (tmp_path / "cassettes" / "report.jsonl").is_file()
    monkeypatch.setenv("LLMNB_REPLAY_MODE", "replay")
    c = llmnb.create_llm_client_from_profile().complete("hello")
    assert (c.content, c.cost_source) == ("Hi there!", "replay")


def test_settings_replay_section_in_auto_mode(write_settings, tmp_path, keyed):
    with FakeLLMServer(responses={"hello": "Hi there!"}) as srv:
        settings = _settings(srv)
        settings["replay"] = {"cassette": "cassettes/nb.jsonl", "mode": "auto"}
        write_settings(settings)
        first = llmnb.create_llm_client_from_profile().complete("hello")
    assert first.cost_source == "price_table"
    assert (tmp_path / "cassettes" / "nb.jsonl").is_file()  # relative to the project
    llmnb.replay.reset()  # a new kernel reads the cassette afresh
    second = llmnb.create_llm_client_from_profile().complete("hello")
    assert second.cost_source == "replay" and second.content == first.content


# -- bad cassettes and modes ------------------------------------------------------------


def _one_recording(write_settings: Callable[..., Path], tape: Path) -> None:
    with FakeLLMServer(responses={"hello": "Hi there!"}) as srv:
        write_settings(_settings(srv))
        llmnb.replay.use("record", tape)
        llmnb.create_llm_client_from_profile().complete("hello")


def test_a_damaged_line_is_named_by_its_number(write_settings, tape, keyed):
    _one_recording(write_settings, tape)
    with tape.open("a") as f:
        f.write('{"v": 1, "key": "x"}\n{not json\n')
    with pytest.raises(errors.ReplayError, match=r"line 3: damaged"):
        llmnb.replay.use("replay", tape)


def test_a_cassette_from_a_newer_llmnb_says_to_upgrade(tape):
    tape.parent.mkdir(parents=True)
    tape.write_text('{"v": 99, "key": "k", "llmnb": "9.0.0"}\n')
    with pytest.raises(errors.ReplayError, match=r"newer llmnb \(9\.0\.0.*upgrade llmnb"):
        llmnb.replay.use("replay", tape)


def test_recording_into_a_path_that_cannot_be_written_fails_at_once(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(errors.ReplayError, match="not writable"):
        llmnb.replay.use("record", blocker / "nb.jsonl")  # its parent is a file


def test_replay_without_a_cassette_is_an_error_not_a_live_call(monkeypatch, write_settings):
    with pytest.raises(errors.ReplayError, match="needs a cassette"):
        llmnb.replay.use("replay")
    monkeypatch.setenv("LLMNB_REPLAY_MODE", "replay")
    with pytest.raises(errors.ReplayError, match="no cassette"):
        llmnb.create_llm_client_from_profile(profile="demo")
    monkeypatch.setenv("LLMNB_REPLAY_MODE", "sometimes")
    monkeypatch.setenv("LLMNB_REPLAY", "x.jsonl")
    with pytest.raises(errors.ReplayError, match="'sometimes' is not one of"):
        llmnb.create_llm_client_from_profile(profile="demo")


def test_a_bad_mode_in_the_settings_names_the_field(write_settings):
    write_settings({"replay": {"mode": "sometimes", "cassette": "x.jsonl"}})
    with pytest.raises(errors.ConfigError, match=r"replay\.mode"):
        llmnb.config.load_settings()


def test_recording_into_another_notebooks_cassette_is_refused_unless_forced(
    write_settings, tape, keyed, monkeypatch
):
    monkeypatch.setenv("LLMNB_NOTEBOOK", "first.ipynb")
    _one_recording(write_settings, tape)
    monkeypatch.setenv("LLMNB_NOTEBOOK", "second.ipynb")
    with pytest.raises(errors.ReplayError, match="recorded by notebook 'first'"):
        llmnb.replay.use("record", tape)
    assert llmnb.replay.use("record", tape, force=True).recording
    assert llmnb.replay.use("replay", tape).replaying  # reading another's is fine


def test_replay_off_is_free_and_changes_nothing(write_settings, keyed, tmp_path):
    with FakeLLMServer(responses={"hello": "Hi there!"}) as srv:
        write_settings(_settings(srv))
        c = llmnb.create_llm_client_from_profile().complete("hello")
    assert c.cost_source == "price_table" and not math.isnan(c.cost_usd)
    assert not list(tmp_path.rglob("*.jsonl"))


def test_offline_providers_are_neither_recorded_nor_replayed(tape):
    llmnb.replay.use("replay", tape)  # an empty cassette: any replayed call would miss
    c = llmnb.create_llm_client_from_profile(profile="demo").complete("hello")
    assert c.cost_source != "replay" and c.content
    llmnb.replay.use("record", tape)
    llmnb.create_llm_client_from_profile(profile="demo").complete("hello")
    assert not tape.exists() or tape.read_text() == ""


def test_cache_write_tokens_are_recorded_and_replayed(write_settings, tape, keyed):
    usage = {
        "prompt_tokens": 1200,
        "completion_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 1000},
    }
    srv = FakeLLMServer()
    srv.script(Fault.reply("cached answer", usage=usage))

    def calls() -> list[Any]:
        c = llmnb.create_llm_client_from_profile().complete("long prompt")
        return [c.usage.cache_write_tokens, c.usage.prompt_tokens, round(c.cost_usd, 12)]

    live, replayed, _, _ = _record_then_replay(write_settings, tape, calls, server=srv)
    assert live == replayed and live[0] == 1000
