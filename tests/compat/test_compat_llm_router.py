# ruff: noqa: W293 — README blocks are kept verbatim, whitespace included
"""Seed 004 (llm_router backend): the README's configs and run.py example, imports changed.

CLI providers run the fake CLIs of tests/fake_bin; OpenRouter is FakeLLMServer through
``IPFS_DATASETS_PY_OPENROUTER_BASE_URL``.
"""

from __future__ import annotations

import json
import logging

import pytest

from llmnb import errors
from llmnb.compat.llm_router import LLMRouterBackend, generate_text, get_llm_provider
from llmnb.testing import FakeLLMServer

IMPORTS = {"from backends import": "from llmnb.compat.llm_router import"}

BASIC_JSON = """
{
    "BACKENDS": [
        {
            "id": "llm-router",
            "type": "llm_router",
            "provider": "copilot_cli",
            "model": "gpt-5-mini",
            "max_tokens": 128
        }
    ],
    "MEDIATOR": {
        "backends": ["llm-router"]
    }
}
"""
OPENROUTER_JSON = """
{
    "BACKENDS": [
        {
            "id": "llm-router-openrouter",
            "type": "llm_router",
            "provider": "openrouter",
            "model": "anthropic/claude-2",
            "max_tokens": 256
        }
    ]
}
"""
AUTO_JSON = """
{
    "BACKENDS": [
        {
            "id": "llm-router-auto",
            "type": "llm_router",
            "max_tokens": 256
        }
    ]
}
"""

# README "## Example in run.py" (its "..." lines are comments, so it runs as written)
RUN_PY = """
from backends import LLMRouterBackend

# ... existing code ...

for backend_id in config_mediator['backends']:
    backend_config = next((conf for conf in config_backends if conf['id'] == backend_id), None)
    
    if not backend_config:
        log.error('missing backend configuration "%s" - cannot continue' % backend_id)
        exit(-1)
    
    if backend_config['type'] == 'llm_router':
        backend = LLMRouterBackend(**backend_config)
    elif backend_config['type'] == 'openai':
        backend = OpenAIBackend(**backend_config)
    # ... other backend types ...
    
    backends.append(backend)
"""


def _run_py(example, cfg: str):
    config = json.loads(cfg)
    ns = {
        "config_backends": config["BACKENDS"],
        "config_mediator": config.get(
            "MEDIATOR", {"backends": [b["id"] for b in config["BACKENDS"]]}
        ),
        "log": logging.getLogger("run"),
        "backends": [],
    }
    return example(RUN_PY, IMPORTS, ns)["backends"]


@pytest.fixture
def openrouter(monkeypatch):
    with FakeLLMServer(report_cost=0.00042) as srv:
        monkeypatch.setenv("IPFS_DATASETS_PY_OPENROUTER_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
        yield srv


def test_run_py_with_the_copilot_cli_backend(fake_clis, tracker, example):
    (backend,) = _run_py(example, BASIC_JSON)
    # the fake copilot prints one word a line; llmnb returns its stdout as the answer
    assert backend("Draft a complaint") == "Hello\nfrom\nfake\ncopilot."
    call = fake_clis()[-1]
    assert call["kind"] == "copilot" and "--model=gpt-5-mini" in call["argv"]
    (row,) = tracker.records
    assert row.provider == "copilot_cli" and row.model == "gpt-5-mini" and row.status == "ok"
    assert row.prompt_tokens > 0  # copilot reports none: estimated, and labelled so


def test_openrouter_backend_reports_cost(openrouter, tracker, example):
    (backend,) = _run_py(example, OPENROUTER_JSON)
    assert backend("hello") == "Hello from FakeLLMServer."
    sent = openrouter.last_request
    assert sent.json["model"] == "anthropic/claude-2" and sent.json["max_tokens"] == 256
    assert sent.headers["authorization"] == "Bearer sk-or-test"
    (row,) = tracker.records
    assert row.provider == "openrouter" and row.cost_usd == pytest.approx(0.00042)


def test_auto_detect_picks_openrouter_when_its_key_is_set(openrouter, tracker, example):
    (backend,) = _run_py(example, AUTO_JSON)
    assert backend("hello") == "Hello from FakeLLMServer."
    assert tracker.records[0].provider == "openrouter"


def test_environment_variables_force_provider_and_model(fake_clis, tracker, monkeypatch):
    monkeypatch.setenv("IPFS_DATASETS_PY_LLM_PROVIDER", "codex_cli")
    monkeypatch.setenv("IPFS_DATASETS_PY_LLM_MODEL", "gpt-5.1-codex-mini")
    assert generate_text("hi") == "Hello from fake codex."
    assert fake_clis()[-1]["kind"] == "codex"
    assert tracker.records[0].model == "gpt-5.1-codex-mini"


def test_claude_code_keys(fake_clis, tracker):
    text = generate_text(
        "hi",
        provider="claude_code",
        claude_output_format="json",
        claude_tools="default",
        claude_add_dir=["a", "b"],
        claude_no_session_persistence=True,
        resume_session_id="sess-1",
    )
    assert text == "Hello from fake claude."
    argv = fake_clis()[-1]["argv"]
    assert argv[:3] == ["-p", "--output-format", "json"]
    assert argv[-7:] == [
        "--tools",
        "default",
        "--add-dir",
        "a",
        "--add-dir",
        "b",
        "--no-session-persistence",
    ]
    assert argv[argv.index("--resume") : argv.index("--resume") + 2] == ["--resume", "sess-1"]
    assert tracker.records[0].cost_source == "provider"  # claude's json carries its cost


def test_copilot_cli_keys_and_tracing(fake_clis, tracker, tmp_path):
    generate_text(
        "hi",
        provider="copilot_cli",
        copilot_config_dir=str(tmp_path / "cfg"),
        continue_session=True,
        trace_dir=str(tmp_path / "traces"),
    )
    argv = fake_clis()[-1]["argv"]
    assert f"--config-dir={tmp_path / 'cfg'}" in argv and "--continue" in argv
    assert any(a.startswith(f"--share={tmp_path / 'traces'}") for a in argv)


def test_provider_names_aliases_and_unsupported_ones():
    assert get_llm_provider("huggingface") == "local_hf"
    with pytest.raises(errors.ProviderNotFoundError, match="copilot_cli"):
        generate_text("hi", provider="copilot_sdk")
    with pytest.raises(errors.ProviderNotFoundError, match="openrouter"):
        generate_text("hi", provider="open_router")
    with pytest.raises(errors.InvalidOptionError, match="max_tokns"):
        LLMRouterBackend(id="x", provider="copilot_cli", max_tokns=3)("hi")
