"""CLI agent providers, run against fake executables the tests put on PATH."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import llmnb
from llmnb import errors
from llmnb.providers.cli import CLIError
from llmnb.usage import UsageTracker

FAKE = Path(__file__).parent / "fake_bin" / "fake_agent.py"
BINARIES = {"claude": "claude", "codex": "codex", "copilot": "copilot", "gemini": "gemini"}
TYPES = {
    "claude_code": "claude",
    "codex_cli": "codex",
    "copilot_cli": "copilot",
    "gemini_cli": "gemini",
}

pytestmark = pytest.mark.skipif(os.name != "posix", reason="fake CLIs are POSIX scripts")


def install_fake(folder: Path, name: str) -> Path:
    """Copy the fake agent to ``folder/name`` as an executable running this Python."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    target.write_text(f"#!{sys.executable}\n" + FAKE.read_text(encoding="utf-8"))
    target.chmod(0o755)
    return target


class Agents:
    """The fakes on PATH, their call log and switches."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = tmp_path / "bin"
        self.log = tmp_path / "cli-calls.jsonl"
        self.pids = tmp_path / "pids.json"
        self.monkeypatch = monkeypatch
        for name in BINARIES.values():
            install_fake(self.bin, name)
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.setenv("FAKE_CLI_LOG", str(self.log))
        monkeypatch.setenv("FAKE_CLI_PIDS", str(self.pids))

    def behave(self, behavior: str) -> None:
        self.monkeypatch.setenv("FAKE_CLI_BEHAVIOR", behavior)

    @property
    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    @property
    def last(self) -> dict[str, Any]:
        return self.calls[-1]


@pytest.fixture
def agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Agents:
    return Agents(tmp_path, monkeypatch)


@pytest.fixture
def make_client(
    write_settings: Callable[[dict[str, Any]], Any], agents: Agents, tracker: UsageTracker
) -> Callable[..., llmnb.LLMClient]:
    def make(ptype: str, model: str = "default", **profile: Any) -> llmnb.LLMClient:
        prof = {"type": ptype, "model": model, **profile}
        write_settings({"llm": {"active_provider": "agent", "providers": {"agent": prof}}})
        return llmnb.create_llm_client_from_profile()

    return make


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def wait_dead(pids: list[int], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if alive(p)]}"
        time.sleep(0.02)


# ------------------------------------------------------------------------- claude_code


def test_claude_json_call_argv_stdin_usage_and_provider_cost(make_client, agents, tracker):
    c = make_client("claude_code", model="sonnet").complete("What is 2+2?")
    call = agents.last
    assert call["argv"] == ["-p", "--output-format", "json", "--model", "sonnet", "--tools", ""]
    assert call["stdin"] == "What is 2+2?"
    assert c.content == "Hello from fake claude."
    assert (c.usage.prompt_tokens, c.usage.cached_tokens, c.usage.completion_tokens) == (
        115,
        100,
        20,
    )
    assert not c.usage.estimated
    assert c.cost_usd == pytest.approx(0.0123) and c.cost_source == "provider"
    assert c.model == "claude-sonnet-4-5-20250929"  # the model that did the work
    row = tracker.to_dataframe().iloc[0]
    assert row["provider"] == "claude_code" and row["prompt_tokens"] == 115
    assert row["cost_source"] == "provider" and row["cost_usd"] == pytest.approx(0.0123)


def test_claude_system_prompt_tools_and_session_resume(make_client, agents):
    client = make_client(
        "claude_code",
        model="opus",
        allowed_tools=["Read", "Bash(git log:*)"],
        disallowed_tools=["Edit"],
        options={"resume": "last"},
        args=["--max-turns", "3"],
    )
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    client.generate(messages)
    first = agents.last
    assert first["stdin"] == "hi"
    assert first["argv"] == [
        "-p", "--output-format", "json", "--model", "opus",
        "--system-prompt", "Be brief.",
        "--tools", "Read,Bash",
        "--allowedTools", "Read,Bash(git log:*)",
        "--disallowedTools", "Edit",
        "--continue",  # no session seen yet: the most recent one
        "--max-turns", "3",
    ]  # fmt: skip
    client.generate(messages)
    argv = agents.last["argv"]
    assert argv[argv.index("--resume") + 1] == "sess-claude-123"
    assert client.provider.last_session_id == "sess-claude-123"


def test_claude_append_system_prompt_option(make_client, agents):
    client = make_client("claude_code", options={"append_system_prompt": True})
    client.generate([{"role": "system", "content": "Be kind."}, {"role": "user", "content": "x"}])
    argv = agents.last["argv"]
    assert argv[argv.index("--append-system-prompt") + 1] == "Be kind."
    assert "--model" not in argv  # model "default": the CLI's own choice


def test_claude_stream_uses_stream_json_with_partial_messages(make_client, agents, tracker):
    stream = make_client("claude_code", model="sonnet").stream("hello")
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces) == "Hello from fake claude."
    argv = agents.last["argv"]
    assert argv[:4] == ["-p", "--output-format", "stream-json", "--verbose"]
    assert "--include-partial-messages" in argv
    c = stream.completion
    assert c is not None and c.usage.completion_tokens == 20 and not c.usage.estimated
    assert c.cost_source == "provider"
    assert tracker.to_dataframe().iloc[0]["cost_usd"] == pytest.approx(0.0123)


def test_claude_stream_json_complete_and_json_stream(make_client, agents):
    client = make_client("claude_code", claude_output_format="stream-json")
    assert client.generate("hello") == "Hello from fake claude."
    assert "--include-partial-messages" not in agents.last["argv"]
    client = make_client("claude_code", claude_output_format="json")
    assert list(client.stream("hello")) == ["Hello from fake claude."]


def test_claude_text_format_estimates_usage(make_client, agents):
    c = make_client("claude_code", claude_output_format="text").complete("hello")
    assert agents.last["argv"][:3] == ["-p", "--output-format", "text"]
    assert c.content == "Hello from fake claude." and c.usage.estimated


def test_claude_bad_output_format_is_a_config_error(make_client, agents):
    with pytest.raises(errors.ConfigError, match="claude_output_format 'yaml'"):
        make_client("claude_code", claude_output_format="yaml").generate("hi")
    assert agents.calls == []


def test_claude_error_result_is_typed_from_its_json(make_client, agents, tracker):
    agents.behave("error_result")
    with pytest.raises(errors.InsufficientQuotaError, match="Credit balance is too low"):
        make_client("claude_code").generate("hi")
    assert len(agents.calls) == 1
    assert tracker.to_dataframe().iloc[0]["status"] == "InsufficientQuotaError"


def test_login_problem_is_an_authentication_error_with_the_way_to_log_in(make_client, agents):
    agents.behave("auth")
    with pytest.raises(errors.AuthenticationError, match=r"Invalid API key.*claude.*log in"):
        make_client("claude_code").generate("hi")


# ---------------------------------------------------------------------- shared machinery


def test_nonzero_exit_is_a_cli_error_with_stderr_and_is_not_retried(make_client, agents, tracker):
    agents.behave("fail")
    with pytest.raises(CLIError, match="exited with code 3: boom: the agent crashed") as info:
        make_client("codex_cli").generate("hi")
    assert info.value.exit_code == 3 and "boom" in info.value.stderr
    assert len(agents.calls) == 1
    assert list(tracker.to_dataframe()["status"]) == ["CLIError"]


@pytest.mark.parametrize(("ptype", "package"), [
    ("claude_code", "@anthropic-ai/claude-code"),
    ("codex_cli", "@openai/codex"),
    ("copilot_cli", "@github/copilot"),
    ("gemini_cli", "@google/gemini-cli"),
])  # fmt: skip
def test_missing_binary_names_it_and_how_to_install_it(
    make_client, monkeypatch, tracker, ptype, package
):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(errors.ConfigError) as info:
        make_client(ptype).generate("hi")
    assert f"`{TYPES[ptype]}` command was not found" in str(info.value)
    assert f"npm install -g {package}" in str(info.value)
    assert tracker.to_dataframe().iloc[0]["status"] == "ConfigError"


def test_command_may_be_a_path(make_client, agents, tmp_path):
    other = install_fake(tmp_path / "elsewhere", "claude")
    assert (
        make_client("claude_code", command=str(other)).generate("hi") == "Hello from fake claude."
    )
    with pytest.raises(errors.ConfigError, match="not an executable file"):
        make_client("claude_code", command=str(tmp_path / "nope" / "claude")).generate("hi")


def test_timeout_kills_the_agent_and_what_it_started(make_client, agents, tracker):
    agents.behave("hang")
    client = make_client("copilot_cli")
    with pytest.raises(errors.LLMTimeoutError, match="within 1s"):
        client.generate("hi", timeout=1)
    pids = json.loads(agents.pids.read_text())
    wait_dead(pids)
    assert len(agents.calls) == 1  # not retried
    assert tracker.to_dataframe().iloc[0]["status"] == "LLMTimeoutError"


def test_async_timeout_kills_the_process_group_too(make_client, agents):
    agents.behave("hang")
    client = make_client("gemini_cli")
    with pytest.raises(errors.LLMTimeoutError):
        asyncio.run(client.agenerate("hi", timeout=1))
    wait_dead(json.loads(agents.pids.read_text()))


@pytest.mark.parametrize("run", ["sync", "async"])
def test_an_answer_returns_when_the_agent_exits_though_a_child_holds_stdout(
    make_client, agents, tracker, run
):
    agents.behave("leave_child")
    client = make_client("copilot_cli")
    started = time.monotonic()
    if run == "sync":
        answer = client.generate("hi", timeout=60)
    else:
        answer = asyncio.run(client.agenerate("hi", timeout=60))
    took = time.monotonic() - started
    assert answer == "Hello\nfrom\nfake\ncopilot."  # copilot prints a word a line
    assert took < 20, f"waited {took:.1f} s for a child that kept stdout open"
    wait_dead(json.loads(agents.pids.read_text()))  # the child was stopped with its group
    assert tracker.to_dataframe().iloc[-1]["status"] == "ok"


@pytest.mark.parametrize("run", ["sync", "async"])
def test_the_timeout_holds_against_a_child_in_a_session_of_its_own(
    make_client, agents, tracker, run
):
    agents.behave("setsid_child")
    client = make_client("gemini_cli")
    started = time.monotonic()
    try:
        with pytest.raises(errors.LLMTimeoutError):
            if run == "sync":
                client.generate("hi", timeout=1)
            else:
                asyncio.run(client.agenerate("hi", timeout=1))
        took = time.monotonic() - started
        assert took < 10, f"the 1 s timeout took {took:.1f} s"
    finally:
        for pid in json.loads(agents.pids.read_text()):  # llmnb cannot reach the setsid one
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


def test_stopping_a_stream_early_stops_the_agent(make_client, agents, tracker):
    agents.behave("hang_after_first_line")
    stream = make_client("copilot_cli").stream("hi")
    assert next(stream).startswith("Hello")
    stream.close()
    wait_dead(json.loads(agents.pids.read_text()))
    assert tracker.to_dataframe().iloc[0]["status"] == "cancelled"


def test_env_passes_only_what_the_profile_names_and_keys_stay_out_of_argv(
    make_client, agents, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-should-not-leak-0000")
    monkeypatch.setenv("MY_SECRET", "sk-codex-explicit-1111")
    monkeypatch.setenv("FAKE_CLI_WATCH", "OPENAI_API_KEY,CODEX_API_KEY,NO_COLOR,EXTRA")
    make_client("codex_cli", env={"CODEX_API_KEY": "${MY_SECRET}", "EXTRA": "plain"}).generate("hi")
    call = agents.last
    assert call["env"] == {
        "OPENAI_API_KEY": None,  # another provider's key is not inherited
        "CODEX_API_KEY": "sk-codex-explicit-1111",
        "NO_COLOR": "1",
        "EXTRA": "plain",
    }
    assert not any("sk-" in a for a in call["argv"])


def test_env_reference_to_an_unset_variable_names_it(make_client, agents):
    with pytest.raises(errors.MissingAPIKeyError, match=r"env.CODEX_API_KEY reads \$\{NOPE_KEY\}"):
        make_client("codex_cli", env={"CODEX_API_KEY": "${NOPE_KEY}"}).generate("hi")
    assert agents.calls == []


def test_cwd_is_where_the_agent_runs(make_client, agents, tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    make_client("gemini_cli", cwd=str(work)).generate("hi")
    assert Path(agents.last["cwd"]) == work
    with pytest.raises(errors.ConfigError, match="is not a folder"):
        make_client("gemini_cli", cwd=str(tmp_path / "missing")).generate("hi")


def test_a_conversation_becomes_one_labelled_prompt_on_stdin(make_client, agents):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another."},
    ]
    make_client("codex_cli").generate(messages)
    stdin = agents.last["stdin"]
    # codex has no system-prompt flag: the system text leads the prompt.
    assert stdin.startswith("You are terse.\n\n")
    assert "User: Name a colour.\n\nAssistant: Blue.\n\nUser: Another." in stdin


def test_trace_jsonl_has_one_metadata_record_per_call_without_prompt_text(
    make_client, agents, tmp_path
):
    log = tmp_path / "traces" / "calls.jsonl"
    client = make_client("claude_code", model="sonnet", trace_jsonl_path=str(log))
    client.generate("my secret plan")
    agents.behave("fail")
    with pytest.raises(CLIError):
        client.generate("my secret plan")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 2
    ok, failed = records
    assert ok["status"] == "ok" and ok["exit_code"] == 0 and ok["provider"] == "claude_code"
    assert ok["model"] == "claude-sonnet-4-5-20250929" and ok["command"] == "claude"
    assert ok["prompt_chars"] == len("my secret plan") and ok["stdout_bytes"] > 0
    assert ok["prompt_tokens"] == 115 and ok["cost_usd"] == pytest.approx(0.0123)
    assert ok["session_id"] == "sess-claude-123" and ok["duration_s"] >= 0
    assert failed["status"] == "CLIError" and failed["exit_code"] == 3
    assert "my secret plan" not in log.read_text()
    assert "transcripts" not in ok  # transcripts need `trace: true`


def test_trace_prompts_option_logs_prompt_and_answer(make_client, agents, tmp_path):
    log = tmp_path / "t.jsonl"
    make_client("gemini_cli", trace_jsonl_path=str(log), options={"trace_prompts": True}).generate(
        "my plan"
    )
    record = json.loads(log.read_text())
    assert record["prompt"] == "my plan" and record["output"] == "Hello from fake gemini."


# ------------------------------------------------------------------------------ codex


def test_codex_exec_json_argv_events_and_usage(make_client, agents, tracker):
    c = make_client("codex_cli", model="gpt-5-codex").complete("list files")
    assert agents.last["argv"] == [
        "exec", "--json", "--model", "gpt-5-codex",
        "--sandbox", "read-only", "--skip-git-repo-check", "-",
    ]  # fmt: skip
    assert agents.last["stdin"] == "list files"
    assert c.content == "Hello from fake codex." and c.reasoning == "**Plan**\n"
    u = c.usage
    assert (u.prompt_tokens, u.cached_tokens, u.completion_tokens, u.estimated) == (
        2000, 1500, 40, False,
    )  # fmt: skip
    row = tracker.to_dataframe().iloc[0]
    assert row["provider"] == "codex_cli" and row["cached_tokens"] == 1500


def test_codex_resume_last_uses_the_thread_it_saw_and_user_sandbox_wins(make_client, agents):
    client = make_client(
        "codex_cli", args=["--sandbox", "workspace-write"], options={"resume": "last"}
    )
    client.generate("one")
    assert agents.last["argv"][-3:] == ["resume", "--last", "-"]
    assert agents.last["argv"].count("--sandbox") == 1
    client.generate("two")
    assert agents.last["argv"][-3:] == ["resume", "thread-codex-42", "-"]


def test_codex_plain_output_when_json_is_off(make_client, agents):
    stream = make_client("codex_cli", options={"json": False}).stream("hi")
    assert "".join(stream).strip() == "Hello from fake codex."
    assert "--json" not in agents.last["argv"]
    assert stream.completion is not None and stream.completion.usage.estimated


def test_codex_stream_yields_the_agent_message_and_usage(make_client, agents):
    stream = make_client("codex_cli").stream("hi")
    assert "".join(stream) == "Hello from fake codex."
    assert stream.completion is not None and stream.completion.usage.prompt_tokens == 2000


def test_codex_turn_failed_message_is_the_error(make_client, agents):
    agents.behave("turn_failed")
    with pytest.raises(CLIError, match="model overloaded"):
        make_client("codex_cli").generate("hi")


# ---------------------------------------------------------------------------- copilot


def test_copilot_argv_defaults_to_read_only_and_estimates_usage(make_client, agents, tracker):
    c = make_client("copilot_cli", model="gpt-5").complete("explain")
    assert agents.last["argv"] == [
        "-s",
        "--no-ask-user",
        "--model=gpt-5",
        "--deny-tool=shell,write,url",
    ]
    assert agents.last["stdin"] == "explain"
    assert c.content == "Hello\nfrom\nfake\ncopilot." and c.usage.estimated
    row = tracker.to_dataframe().iloc[0]
    assert row["provider"] == "copilot_cli" and row["prompt_tokens"] > 0


def test_copilot_tracing_shares_the_transcript_and_logs_into_trace_dir(
    make_client, agents, tmp_path
):
    traces = tmp_path / "tr"
    client = make_client(
        "copilot_cli",
        allowed_tools=["shell(git:*)"],
        trace=True,
        trace_dir=str(traces),
        options={"continue": True},
    )
    client.generate("hi")
    argv = agents.last["argv"]
    assert "--allow-tool=shell(git:*)" in argv and "--continue" in argv
    assert not any(a.startswith("--deny-tool") for a in argv)
    share = next(a for a in argv if a.startswith("--share=")).split("=", 1)[1]
    assert Path(share).parent == traces and Path(share).read_text().startswith("# Copilot")
    assert f"--log-dir={traces / 'copilot-logs'}" in argv
    assert (traces / "copilot-logs" / "session.log").exists()
    record = json.loads((traces / "agent.jsonl").read_text())
    assert share in record["transcripts"]
    assert any(t.endswith(".stdout.log") for t in record["transcripts"])


def test_copilot_resume_by_id(make_client, agents):
    make_client("copilot_cli", options={"resume": "abc-123"}).generate("hi")
    assert "--resume=abc-123" in agents.last["argv"]


# -------------------------------------------------------------------------- gemini_cli


def test_gemini_cli_json_argv_and_usage_from_stats(make_client, agents, tracker):
    c = make_client("gemini_cli", model="gemini-2.5-pro").complete("hello")
    assert agents.last["argv"] == ["--output-format", "json", "--model", "gemini-2.5-pro"]
    assert agents.last["stdin"] == "hello"
    u = c.usage
    assert (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens) == (
        50, 30, 20, 20,
    )  # fmt: skip
    assert c.content == "Hello from fake gemini." and c.model == "gemini-2.5-pro"
    assert tracker.to_dataframe().iloc[0]["provider"] == "gemini_cli"


def test_gemini_cli_stream_json_deltas_and_resume(make_client, agents):
    stream = make_client("gemini_cli", options={"resume": "last"}).stream("hello")
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces) == "Hello from fake gemini."
    argv = agents.last["argv"]
    assert argv[:2] == ["--output-format", "stream-json"] and argv[-2:] == ["--resume", "latest"]
    assert stream.completion is not None and stream.completion.usage.completion_tokens == 30


def test_gemini_cli_error_json_is_typed(make_client, agents):
    agents.behave("error_result")
    with pytest.raises(errors.InsufficientQuotaError, match="Quota exceeded"):
        make_client("gemini_cli").generate("hi")


def test_async_complete_and_stream_share_argv_and_parsing(make_client, agents):
    client = make_client("claude_code", model="sonnet")
    client.generate("hello")
    sync_call = agents.last

    async def run() -> tuple[str, str]:
        text = await client.agenerate("hello")
        assert agents.last["argv"] == sync_call["argv"] and agents.last["stdin"] == "hello"
        streamed = "".join([p async for p in client.astream("hello")])
        return text, streamed

    assert asyncio.run(run()) == ("Hello from fake claude.", "Hello from fake claude.")


def test_repr_shows_no_env_values(make_client, agents, monkeypatch):
    monkeypatch.setenv("MY_SECRET", "sk-very-secret-value-9999")
    client = make_client("codex_cli", env={"CODEX_API_KEY": "${MY_SECRET}"})
    client.generate("hi")
    assert "sk-very-secret" not in repr(client) + repr(client.provider)


def test_a_key_the_agent_prints_is_scrubbed_from_errors_rows_and_transcripts(
    make_client, agents, monkeypatch, tmp_path, tracker
):
    secret = "ghp-secret-token-value-0123456789"
    monkeypatch.setenv("MY_GH_TOKEN", secret)
    monkeypatch.setenv("FAKE_CLI_LEAK_VAR", "COPILOT_GITHUB_TOKEN")
    agents.behave("leak")
    traces = tmp_path / "traces"
    client = make_client(
        "copilot_cli",
        env={"COPILOT_GITHUB_TOKEN": "${MY_GH_TOKEN}"},
        trace=True,
        trace_dir=str(traces),
    )
    with pytest.raises(CLIError, match=r"key \[redacted\] was refused") as info:
        client.generate("hi")
    assert "--secret-env-vars=COPILOT_GITHUB_TOKEN" in agents.last["argv"]
    share = next(traces.glob("*.copilot.md")).read_text()
    assert "[redacted]" in share  # the agent did print the token it was given
    surfaces = [str(info.value), repr(vars(info.value)), tracker.to_dataframe().to_csv()]
    surfaces += [p.read_text() for p in traces.rglob("*") if p.is_file()]
    assert len(surfaces) >= 5  # error, attributes, rows, share transcript, stdout, jsonl
    for text in surfaces:
        assert secret not in text


def test_the_default_trace_folder_is_kept_out_of_git(make_client, agents, tmp_path):
    make_client("claude_code", model="sonnet", trace=True).generate("my secret plan")
    assert any((tmp_path / ".llmnb" / "traces").iterdir())  # transcripts and the log
    assert (tmp_path / ".llmnb" / ".gitignore").read_text() == "*\n"


def test_traces_in_an_existing_llmnb_folder_get_a_gitignore_of_their_own(
    make_client, agents, tmp_path
):
    (tmp_path / ".llmnb").mkdir()  # the user's (or an older llmnb's): left as it is
    make_client("claude_code", model="sonnet", trace=True).generate("my secret plan")
    assert (tmp_path / ".llmnb" / "traces" / ".gitignore").read_text() == "*\n"
    assert not (tmp_path / ".llmnb" / ".gitignore").exists()


def test_a_trace_folder_the_user_names_gets_no_gitignore(make_client, agents, tmp_path):
    folder = tmp_path / "my-traces"
    make_client("claude_code", model="sonnet", trace=True, trace_dir=str(folder)).generate("hi")
    assert any(folder.iterdir()) and not (folder / ".gitignore").exists()
