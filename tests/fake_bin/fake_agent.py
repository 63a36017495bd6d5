"""A stand-in for the agent CLIs (claude, codex, copilot, gemini) in tests.

The tests copy it onto PATH under the CLI's name (``FAKE_CLI_KIND`` comes from the file
name). Each run appends one JSON line to ``$FAKE_CLI_LOG``: argv, stdin, cwd, pid and
the environment variables listed in ``$FAKE_CLI_WATCH``. ``$FAKE_CLI_BEHAVIOR`` picks
what it does: ``ok`` (default), ``fail``, ``auth``, ``error_result``, ``hang`` (starts a
child, records both pids in ``$FAKE_CLI_PIDS``, sleeps), ``hang_after_first_line``,
``leak`` (prints the value of ``$FAKE_CLI_LEAK_VAR`` on stderr, in its transcript and on
stdout, then fails — as an agent complaining about a key may), ``leave_child`` (answers
and exits, leaving a child that holds stdout open), ``setsid_child`` (starts a child in
a session of its own that holds stdout open, then sleeps).
Outputs follow the shapes the real CLIs document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

KIND = Path(sys.argv[0]).name.split(".")[0]
ARGS = sys.argv[1:]
BEHAVIOR = os.environ.get("FAKE_CLI_BEHAVIOR", "ok")
ANSWER = os.environ.get("FAKE_CLI_ANSWER", f"Hello from fake {KIND}.")


def out(obj: object) -> None:
    print(json.dumps(obj), flush=True)


def value_of(flag: str) -> str | None:
    for i, arg in enumerate(ARGS):
        if arg == flag and i + 1 < len(ARGS):
            return ARGS[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def log(stdin: str) -> None:
    watched = [v for v in os.environ.get("FAKE_CLI_WATCH", "").split(",") if v]
    record = {
        "kind": KIND,
        "argv": ARGS,
        "stdin": stdin,
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "env": {v: os.environ.get(v) for v in watched},
    }
    with open(os.environ["FAKE_CLI_LOG"], "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def hang(first_line: str | None = None) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    Path(os.environ["FAKE_CLI_PIDS"]).write_text(json.dumps([os.getpid(), child.pid]))
    if first_line is not None:
        print(first_line, flush=True)
    time.sleep(600)


def claude() -> None:
    fmt = value_of("--output-format") or "text"
    session = "sess-claude-123"
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 1234,
        "num_turns": 1,
        "result": ANSWER,
        "session_id": session,
        "total_cost_usd": 0.0123,
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 5,
            "cache_read_input_tokens": 100,
            "output_tokens": 20,
        },
        "modelUsage": {
            "claude-haiku-4-5": {"inputTokens": 50, "outputTokens": 3, "costUSD": 0.0003},
            "claude-sonnet-4-5-20250929": {"inputTokens": 10, "outputTokens": 20, "costUSD": 0.012},
        },
    }
    if BEHAVIOR == "error_result":
        result.update(is_error=True, subtype="success", result="Credit balance is too low")
        out(result)
        sys.exit(1)
    if fmt == "json":
        out(result)
    elif fmt == "stream-json":
        model = "claude-sonnet-4-5-20250929"
        out({"type": "system", "subtype": "init", "session_id": session, "model": model})
        if "--include-partial-messages" in ARGS:
            out({"type": "stream_event", "event": {"type": "message_start"}})
            for i in range(0, len(ANSWER), 5):
                delta = {"type": "text_delta", "text": ANSWER[i : i + 5]}
                out(
                    {
                        "type": "stream_event",
                        "event": {"type": "content_block_delta", "index": 0, "delta": delta},
                    }
                )
        message = {"role": "assistant", "content": [{"type": "text", "text": ANSWER}]}
        out({"type": "assistant", "message": message, "session_id": session})
        out(result)
    else:
        print(ANSWER, flush=True)


def codex() -> None:
    if "--json" not in ARGS:
        print("thinking...", file=sys.stderr)
        print(ANSWER, flush=True)
        return
    out({"type": "thread.started", "thread_id": "thread-codex-42"})
    out({"type": "turn.started"})
    if BEHAVIOR == "turn_failed":
        out({"type": "turn.failed", "error": {"message": "stream disconnected: model overloaded"}})
        sys.exit(1)
    out({"type": "item.completed", "item": {"id": "i0", "type": "reasoning", "text": "**Plan**"}})
    command = {"id": "i1", "type": "command_execution", "command": "ls", "exit_code": 0}
    out({"type": "item.completed", "item": command})
    out({"type": "item.completed", "item": {"id": "i2", "type": "agent_message", "text": ANSWER}})
    usage = {"input_tokens": 2000, "cached_input_tokens": 1500, "output_tokens": 40}
    out({"type": "turn.completed", "usage": usage})


def leaked() -> str:
    return os.environ.get(os.environ.get("FAKE_CLI_LEAK_VAR", ""), "")


def copilot() -> None:
    share = value_of("--share")
    if share:
        Path(share).write_text(f"# Copilot session\n\n{ANSWER} {leaked()}\n", encoding="utf-8")
    if BEHAVIOR == "leak":
        print(f"using key {leaked()}", flush=True)
        print(f"Error: key {leaked()} was refused", file=sys.stderr)
        sys.exit(2)
    logs = value_of("--log-dir")
    if logs:
        Path(logs).mkdir(parents=True, exist_ok=True)
        (Path(logs) / "session.log").write_text("log\n", encoding="utf-8")
    for line in ANSWER.split(" "):
        print(line, flush=True)


def gemini() -> None:
    fmt = value_of("--output-format") or "text"
    if BEHAVIOR == "error_result":
        out({"error": {"type": "Error", "message": "Quota exceeded for gemini-2.5-pro", "code": 1}})
        sys.exit(1)
    if fmt == "json":
        tokens = {"prompt": 50, "candidates": 10, "total": 80, "cached": 20, "thoughts": 20}
        stats = {"models": {"gemini-2.5-pro": {"api": {"totalRequests": 1}, "tokens": tokens}}}
        out({"session_id": "gem-1", "response": ANSWER, "stats": stats})
    elif fmt == "stream-json":
        out({"type": "init", "session_id": "gem-1", "model": "gemini-2.5-pro"})
        out({"type": "message", "role": "user", "content": "(the prompt)"})
        for i in range(0, len(ANSWER), 6):
            out(
                {
                    "type": "message",
                    "role": "assistant",
                    "content": ANSWER[i : i + 6],
                    "delta": True,
                }
            )
        stats = {"input_tokens": 50, "output_tokens": 30, "total_tokens": 80, "cached": 20}
        out({"type": "result", "status": "success", "stats": stats})
    else:
        print(ANSWER, flush=True)


def holder(new_session: bool) -> int:
    """A child that keeps our stdout open for ten minutes (it inherits the pipe)."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=new_session
    )
    return child.pid


def main() -> None:
    stdin = sys.stdin.read() if not sys.stdin.isatty() else ""
    log(stdin)
    if BEHAVIOR == "hang":
        hang()
    if BEHAVIOR == "hang_after_first_line":
        hang(first_line=ANSWER)
    if BEHAVIOR == "leave_child":
        Path(os.environ["FAKE_CLI_PIDS"]).write_text(json.dumps([holder(False)]))
    if BEHAVIOR == "setsid_child":
        Path(os.environ["FAKE_CLI_PIDS"]).write_text(json.dumps([os.getpid(), holder(True)]))
        time.sleep(600)
    if BEHAVIOR == "fail":
        print("boom: the agent crashed while starting", file=sys.stderr)
        sys.exit(3)
    if BEHAVIOR == "auth":
        print("Error: Invalid API key · Please run /login", file=sys.stderr)
        sys.exit(1)
    {"claude": claude, "codex": codex, "copilot": copilot, "gemini": gemini}[KIND]()


if __name__ == "__main__":
    main()
