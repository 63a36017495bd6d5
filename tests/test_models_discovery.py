"""``llmnb.models()`` and ``%llm models``: each endpoint's listing, with prices."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _magics_shell import ip_fixture, run

import llmnb
from llmnb import errors
from llmnb.client.models import COLUMNS, clear_models_cache
from llmnb.testing import FakeLLMServer

ip = ip_fixture
KEY = "sk-models-canary-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    clear_models_cache()
    with FakeLLMServer(models=["gpt-4o-mini", "text-embedding-3-small", "my-finetune"]) as srv:
        yield srv
    clear_models_cache()


def _dead_url() -> str:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


@pytest.fixture
def settings(
    server: FakeLLMServer,
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    monkeypatch.setenv("MODELS_KEY", KEY)
    providers = {
        "oai": {
            "type": "openai",
            "model": "gpt-4o-mini",
            "base_url": server.base_url,
            "api_key_env": "MODELS_KEY",
        },
        "claude": {
            "type": "anthropic",
            "model": "claude-sonnet-4-5",
            "base_url": server.anthropic_base_url,
            "api_key_env": "MODELS_KEY",
        },
        "gem": {
            "type": "gemini",
            "model": "gemini-2.5-flash",
            "base_url": server.gemini_base_url,
            "api_key_env": "MODELS_KEY",
        },
        "offline": {"type": "mock", "model": "mock-1", "models": ["mock-1", "mock-2"]},
        "dead": {"type": "openai_compatible", "model": "x", "base_url": _dead_url()},
    }
    data = {"llm": {"active_provider": "oai", "providers": providers}}
    write_settings(data)
    return data


def listing_requests(server: FakeLLMServer) -> list[Any]:
    return [r for r in server.requests if r.method == "GET"]


def test_models_lists_every_profile_with_prices_and_a_note_for_the_dead_one(server, settings):
    with pytest.warns(UserWarning, match="profile 'dead'.*NetworkError"):
        df = llmnb.models()
    assert list(df.columns) == COLUMNS
    by = {(r["profile"], r["model"]): r for r in df.to_dict("records")}
    mini = by["oai", "gpt-4o-mini"]
    assert mini["input_per_mtok"] == pytest.approx(0.15)
    assert mini["output_per_mtok"] == pytest.approx(0.6)
    assert mini["price_source"].startswith("genai-prices")
    assert by["oai", "text-embedding-3-small"]["input_per_mtok"] == pytest.approx(0.02)
    assert math.isnan(by["oai", "my-finetune"]["input_per_mtok"])  # unknown: NaN, not 0
    assert by["gem", "gpt-4o-mini"]["context_window"] == 1048576
    assert {m for p, m in by if p == "claude"} == {
        "gpt-4o-mini",
        "text-embedding-3-small",
        "my-finetune",
    }
    assert {m for p, m in by if p == "offline"} == {"mock-1", "mock-2"}
    dead = df[df["profile"] == "dead"].to_dict("records")
    assert len(dead) == 1 and pd.isna(dead[0]["model"]) and "cannot reach" in dead[0]["note"]
    # What each endpoint was asked, with its own auth; the key shown nowhere.
    paths = sorted(r.path for r in listing_requests(server))
    assert paths == ["/v1/models", "/v1/models", "/v1beta/models"]
    gem = next(r for r in listing_requests(server) if r.path == "/v1beta/models")
    assert gem.headers["x-goog-api-key"] == KEY
    claude = next(r for r in listing_requests(server) if "anthropic-version" in r.headers)
    assert claude.headers["x-api-key"] == KEY
    assert KEY not in df.to_string()


def test_listings_are_cached_for_the_session(server, settings):
    llmnb.models("oai")
    llmnb.models("oai")
    assert len(listing_requests(server)) == 1
    llmnb.models("oai", refresh=True)
    assert len(listing_requests(server)) == 2


def test_filter_by_profile_or_provider_type(server, settings):
    assert set(llmnb.models("gemini")["profile"]) == {"gem"}
    assert set(llmnb.models("offline")["model"]) == {"mock-1", "mock-2"}
    with pytest.raises(errors.InvalidOptionError, match=r"'nosuch'.*oai"):
        llmnb.models("nosuch")


def test_an_endpoint_that_refuses_the_listing_is_a_row_note(server, settings, write_settings):
    settings["llm"]["providers"]["oai"]["base_url"] = server.url + "/nowhere"
    write_settings(settings)
    with pytest.warns(UserWarning, match="profile 'oai'.*404"):
        df = llmnb.models("oai")
    assert len(df) == 1 and "404" in df["note"][0]
    assert KEY not in df.to_string()


def test_import_llmnb_does_not_load_pandas_for_models() -> None:
    code = "import sys, llmnb; llmnb.models; print('pandas' in sys.modules)"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_magic_shows_the_table(ip, server, settings):
    ran = run(ip, "%llm models offline")
    assert ran.result.error_in_exec is None
    shown = ran.result.result
    assert list(shown["model"]) == ["mock-1", "mock-2"]
    assert "mock-2" in ran.text or "mock-2" in shown.to_string()
    bad = run(ip, "%llm models a b")
    assert "one PROFILE" in bad.text
