"""Shared fixtures: every test runs in its own folder, environment and usage tracker."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmnb import config, replay
from llmnb.testing import FakeLLMServer
from llmnb.usage import UsageTracker, reset_default_tracker, set_tracker

ROOT = Path(__file__).resolve().parents[1]

# Variables a developer's shell may carry that would change what a test resolves.
_ENV_PREFIXES = ("LLM_", "LLMNB_")
_ENV_SUFFIXES = ("_API_KEY", "_API_KEYS", "_BASE_URL")
# The SDKs' conventions llmnb honours (llmnb/providers/_env.py, openai_compat, azure).
_ENV_NAMES = ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) or name.endswith(_ENV_SUFFIXES) or name in _ENV_NAMES:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    config.set_session_provider(None)
    config.set_session_params(**dict.fromkeys(config.get_session_params()))
    replay.reset()
    # The default tracker is rooted in the test's own folder (its store lives there).
    reset_default_tracker()
    yield
    replay.reset()
    config.set_session_provider(None)
    config.set_session_params(**dict.fromkeys(config.get_session_params()))
    reset_default_tracker()


@pytest.fixture
def tracker() -> Iterator[UsageTracker]:
    """A fresh in-memory tracker, active for the test."""
    t = UsageTracker()
    token = set_tracker(t)
    yield t
    token.var.reset(token)


@pytest.fixture
def write_settings(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write ``config/settings.yaml`` (from a dict) into the test's folder."""

    def write(data: dict[str, Any]) -> Path:
        path = tmp_path / "config" / "settings.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(responses={"hello": "Hi there!"}) as srv:
        yield srv
