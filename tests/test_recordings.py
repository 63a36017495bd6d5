"""Recorded real provider traffic replayed through FakeLLMServer and a real LLMClient.

Every file under ``tests/recordings`` (see its README for sources and licences) is served
verbatim to a client of the recording's provider type; the answer and its usage row must
match what the recording itself says (``tests/_recordings.py`` reads it independently) and
what genai-prices makes of its token counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _recordings import expected_cost, load, recordings, reference, replayer

from llmnb import errors
from llmnb.testing import FakeLLMServer
from llmnb.usage import UsageTracker


@pytest.fixture
def replay(
    server: FakeLLMServer,
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[dict[str, Any]], Any]:
    return replayer(server, write_settings, monkeypatch)


PATHS = recordings()


def test_enough_recordings_from_every_provider() -> None:
    kinds: dict[str, int] = {}
    streamed = errored = 0
    for path in PATHS:
        rec = load(path)
        kinds[rec["provider"]] = kinds.get(rec["provider"], 0) + 1
        streamed += rec["stream"]
        errored += reference(rec).error_status is not None
    assert len(PATHS) >= 100, kinds
    assert set(kinds) >= {"openai", "anthropic", "gemini", "openrouter", "mistral", "groq"}
    assert streamed >= 20 and errored >= 5


@pytest.mark.parametrize("path", PATHS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_replay(path: Path, replay: Callable[[dict[str, Any]], Any], tracker: UsageTracker) -> None:
    rec = load(path)
    want = reference(rec)
    got = replay(rec)
    row = tracker.records[-1]
    if want.error_status is not None:
        assert isinstance(got, errors.APIError), got
        assert got.status == want.error_status
        if want.error_text:
            assert want.error_text[:40] in str(got)
        assert row.status == type(got).__name__
        if want.usage_seen:  # an in-stream error that reports what was billed
            assert (row.prompt_tokens, row.completion_tokens) == (want.prompt, want.completion)
            cost, source = expected_cost(rec, want)
            assert (row.cost_usd, row.cost_source) == (pytest.approx(cost), source)
        return
    assert not isinstance(got, BaseException), got
    assert got.content == want.content
    assert got.reasoning == want.reasoning
    assert got.finish_reason == want.finish
    u = got.usage
    assert not u.estimated
    assert (u.prompt_tokens, u.completion_tokens) == (want.prompt, want.completion)
    assert (u.cached_tokens, u.cache_write_tokens) == (want.cached, want.cache_write)
    assert u.cache_write_1h_tokens == want.cache_write_1h
    assert u.reasoning_tokens == want.reasoning_tokens
    assert row.cache_write_tokens == want.cache_write
    cost, source = expected_cost(rec, want)
    assert got.cost_source == row.cost_source == source
    if math.isnan(cost):
        assert math.isnan(got.cost_usd)
    else:
        assert got.cost_usd == pytest.approx(cost, rel=1e-9, abs=1e-15)
