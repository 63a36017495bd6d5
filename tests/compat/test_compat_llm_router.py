# ruff: noqa: W293 — README blocks are kept verbatim, whitespace included
"""Seed 004 (llm_router backend): the README's configs and run.py example, imports changed.

CLI providers run the fake CLIs of tests/fake_bin; OpenRouter is FakeLLMServer through
``IPFS_DATASETS_PY_OPENROUTER_BASE_URL``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

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
    with pytest.raises(errors.ProviderNotFoundError, match=r"defined only by.*'copilot_cli'"):
        generate_text("hi", provider="copilot_sdk")
    with pytest.raises(errors.ProviderNotFoundError, match="copilot_sdk"):
        LLMRouterBackend(id="x", type="llm_router", provider="copilot_sdk")("hi")
    with pytest.raises(errors.InvalidOptionError, match="copilot_sdk_cli_path"):
        generate_text("hi", provider="copilot_cli", copilot_sdk_cli_path="/usr/bin/copilot")
    with pytest.raises(errors.ProviderNotFoundError, match="openrouter"):
        generate_text("hi", provider="open_router")
    with pytest.raises(errors.InvalidOptionError, match="max_tokns"):
        LLMRouterBackend(id="x", provider="copilot_cli", max_tokns=3)("hi")


# README "### Using OpenRouter" and "### Missing Dependencies" (the same line, twice)
OPENROUTER_BASH = """
export OPENROUTER_API_KEY="your-api-key"
"""


def test_openrouter_shell_block_makes_auto_detect_pick_openrouter(
    monkeypatch, shell, tracker, example
):
    env = shell(OPENROUTER_BASH)
    assert env == {"OPENROUTER_API_KEY": "your-api-key"}
    with FakeLLMServer() as srv:
        monkeypatch.setenv("IPFS_DATASETS_PY_OPENROUTER_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENROUTER_API_KEY", env["OPENROUTER_API_KEY"])
        (backend,) = _run_py(example, AUTO_JSON)
        assert isinstance(backend("hi"), str)
        assert srv.last_request.headers["authorization"] == "Bearer your-api-key"
        assert srv.last_request.json["max_tokens"] == 256
    assert tracker.records[0].provider == "openrouter"


def test_copilot_cli_log_dir_resume_and_jsonl_only_tracing(fake_clis, tracker, tmp_path):
    jsonl = tmp_path / "runs" / "calls.jsonl"
    generate_text(
        "hi",
        provider="copilot_cli",
        copilot_log_dir=str(tmp_path / "logs"),
        resume_session_id="sess-9",
        continue_session=True,  # ignored: resume_session_id is set
        trace_jsonl_path=str(jsonl),
    )
    argv = fake_clis()[-1]["argv"]
    assert "--resume=sess-9" in argv and "--continue" not in argv
    # copilot_log_dir is the one --log-dir, tracing or not
    assert [a for a in argv if a.startswith("--log-dir")] == [f"--log-dir={tmp_path / 'logs'}"]
    # only trace_jsonl_path: the --share transcript goes next to it
    (share,) = [a.split("=", 1)[1] for a in argv if a.startswith("--share=")]
    assert share.startswith(str(jsonl.parent) + "/") and share.endswith(".copilot.md")
    assert "Hello from fake copilot." in Path(share).read_text()
    assert jsonl.exists() and len(jsonl.read_text().splitlines()) == 1
    generate_text("hi", provider="copilot_cli", continue_session=True)
    argv = fake_clis()[-1]["argv"]
    assert "--continue" in argv and not any(a.startswith("--log-dir") for a in argv)
    assert [r.status for r in tracker.records] == ["ok", "ok"]


def test_claude_code_remaining_keys_and_tracing(fake_clis, tracker, tmp_path):
    text = generate_text(
        "hi",
        provider="claude_code",
        claude_output_format="stream-json",
        claude_include_partial_messages=True,
        claude_input_format="text",
        claude_permission_mode="plan",
        claude_system_prompt="Be terse.",
        claude_append_system_prompt="Cite.",
        claude_allowed_tools="Read,Grep",
        claude_disallowed_tools=["Bash"],
        claude_session_id="0000-1",
        claude_fork_session=True,
        continue_session=True,
        trace_dir=str(tmp_path / "ct"),
        trace_jsonl_path=str(tmp_path / "ct.jsonl"),
    )
    assert text == "Hello from fake claude."  # parsed out of the stream-json events
    argv = fake_clis()[-1]["argv"]

    def after(flag):
        return argv[argv.index(flag) + 1]

    assert argv[:3] == ["-p", "--output-format", "stream-json"]
    assert (after("--allowedTools"), after("--disallowedTools")) == ("Read,Grep", "Bash")
    assert (after("--input-format"), after("--permission-mode")) == ("text", "plan")
    assert (after("--system-prompt"), after("--append-system-prompt")) == ("Be terse.", "Cite.")
    assert after("--session-id") == "0000-1"
    for switch in ("--include-partial-messages", "--fork-session", "--continue"):
        assert switch in argv
    assert [p.suffix for p in (tmp_path / "ct").iterdir()] == [".log"]  # claude's stdout
    (meta,) = (tmp_path / "ct.jsonl").read_text().splitlines()
    assert json.loads(meta)["status"] == "ok"
    assert tracker.records[0].provider == "claude_code"


def test_codex_cli_tracing_adds_json_and_keeps_its_events(fake_clis, tracker, tmp_path):
    assert generate_text("hi", provider="codex_cli", trace_dir=str(tmp_path / "cx")) == (
        "Hello from fake codex."
    )
    argv = fake_clis()[-1]["argv"]
    assert argv[:2] == ["exec", "--json"]
    (events,) = (tmp_path / "cx").glob("*.jsonl")
    assert len(events.read_text().splitlines()) == 1
    assert tracker.records[0].prompt_tokens == 2000  # codex's own usage event


def test_huggingface_alias_and_env_vars_reach_local_hf(monkeypatch, tracker):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no download: the model is not cached
    monkeypatch.setenv("IPFS_DATASETS_PY_LLM_PROVIDER", "huggingface")
    monkeypatch.setenv("IPFS_DATASETS_PY_LLM_MODEL", "no-such-org/tiny-model")
    assert get_llm_provider() == "local_hf"
    with pytest.raises(errors.ConfigError, match=r"llm_router\.local_hf\..*no-such-org/tiny-model"):
        generate_text("hi")
    monkeypatch.delenv("IPFS_DATASETS_PY_LLM_PROVIDER")
    with pytest.raises(errors.ConfigError, match=r"llm_router\.local_hf\..*'gpt2'"):
        generate_text("hi", provider="huggingface", model_name="gpt2")
