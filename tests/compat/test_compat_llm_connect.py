"""Seed 000 (llm_connect): the README's configuration examples and factory signature.

The YAML blocks are written to config/settings.yaml as they are (a ``<your-endpoint>``
placeholder filled with the fake server); the OpenRouter endpoint comes from
``OPENROUTER_BASE_URL``, the OpenAI-compatible key from ``OPENAI_API_KEY`` as the README
says.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llmnb import errors
from llmnb.compat.llm_connect import create_llm_client_from_profile, list_providers
from llmnb.compat.llm_connect.config import get_active_profile, get_model_name
from llmnb.compat.llm_connect.openrouter_client import OpenRouterLLMClient
from llmnb.compat.llm_connect.usage_tracker import UsageTracker, get_tracker, set_tracker
from llmnb.testing import FakeLLMServer

OPENROUTER_YAML = """
llm:
  active_provider: openrouter
  providers:
    openrouter:
      type: openrouter
      model: openai/gpt-5.2
      # Optional; defaults to https://openrouter.ai/api/v1
      # base_url: https://openrouter.ai/api/v1
      http_referer: "https://example.com"
      x_title: "prepbench"
"""
ENV_BASH = """
cat << 'EOF' > .env
OPENROUTER_API_KEY=your-key
EOF
"""
COMPATIBLE_YAML = """
llm:
  active_provider: volc
  providers:
    volc:
      type: openai_compatible
      model: your-model-name
      base_url: https://<your-endpoint>/v1
      # Optional; can also come from .env OPENAI_API_KEY/OPENROUTER_API_KEY
      # api_key: your-api-key
"""
CUSTOM_YAML = """
llm:
  active_provider: my_provider
  providers:
    my_provider:
      provider_factory: "my_pkg.my_provider:create_client"
      model: "your/model"
"""
# "Factory signature" and "Returned object must implement", with bodies filled in
FACTORY = """
def create_client(profile: dict, model_name: str, agent: str | None = None) -> object:
    return Client(model_name)

class Client:
    def __init__(self, model_name):
        self.model_name = model_name

    def generate(self, messages, temperature, max_tokens, timeout) -> str:
        return f"{self.model_name} says hi to {messages[-1]['content']}"
"""


def settings(tmp_path: Path, text: str) -> None:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "settings.yaml").write_text(text)


@pytest.fixture
def srv():
    with FakeLLMServer(report_cost=0.0012) as server:
        yield server


def test_builtin_openrouter_profile_and_env_file(srv, tmp_path, tracker, monkeypatch):
    settings(tmp_path, OPENROUTER_YAML)
    subprocess.run(["bash", "-c", ENV_BASH], cwd=tmp_path, check=True)  # the README's .env
    monkeypatch.setenv("OPENROUTER_BASE_URL", srv.base_url)
    client = create_llm_client_from_profile()
    text = client.generate([{"role": "user", "content": "hi"}], 0.2, 50, 30)
    assert text == "Hello from FakeLLMServer."
    sent = srv.last_request
    assert sent.headers["authorization"] == "Bearer your-key"
    assert sent.headers["http-referer"] == "https://example.com"
    assert sent.headers["x-title"] == "prepbench" and sent.json["model"] == "openai/gpt-5.2"
    (row,) = tracker.records
    assert row.profile == "openrouter" and row.cost_usd == pytest.approx(0.0012)
    assert get_active_profile()[0] == "openrouter" and get_model_name() == "openai/gpt-5.2"


def test_builtin_openai_compatible_reads_openai_api_key(srv, tmp_path, tracker, monkeypatch):
    settings(tmp_path, COMPATIBLE_YAML.replace("https://<your-endpoint>/v1", srv.base_url))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-shared")
    text = create_llm_client_from_profile().generate("hi")
    assert text == "Hello from FakeLLMServer."
    assert srv.last_request.headers["authorization"] == "Bearer sk-shared"
    assert tracker.records[0].profile == "volc"


def test_custom_provider_factory(tmp_path, tracker, monkeypatch):
    settings(tmp_path, CUSTOM_YAML)
    (tmp_path / "my_pkg").mkdir()
    (tmp_path / "my_pkg" / "__init__.py").write_text("")
    (tmp_path / "my_pkg" / "my_provider.py").write_text(textwrap.dedent(FACTORY))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        client = create_llm_client_from_profile()
        assert client.generate([{"role": "user", "content": "you"}]) == "your/model says hi to you"
    finally:
        sys.modules.pop("my_pkg.my_provider", None)
        sys.modules.pop("my_pkg", None)
    (row,) = tracker.records
    assert row.profile == "my_provider" and row.prompt_tokens > 0  # estimated, labelled


def test_no_provider_resolves_gives_guidance(tmp_path):
    settings(tmp_path, "llm:\n  providers: {}\n")
    with pytest.raises(errors.ConfigError, match="active_provider"):
        create_llm_client_from_profile()


def test_usage_tracker_and_openrouter_client(srv, monkeypatch):
    mine = UsageTracker()
    token = set_tracker(mine)
    try:
        assert get_tracker() is mine
        mine.record(10, 5)
        mine.record_unknown()
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or")
        monkeypatch.setenv("OPENROUTER_BASE_URL", srv.base_url)
        client = OpenRouterLLMClient(model="openai/gpt-4o-mini", x_title="prepbench")
        assert client.generate("hi") == "Hello from FakeLLMServer."
    finally:
        token.var.reset(token)
    rows = mine.records
    assert len(rows) == 3 and rows[-1].cost_usd == pytest.approx(0.0012)
    assert {"openrouter", "openai_compatible"} <= set(list_providers())
