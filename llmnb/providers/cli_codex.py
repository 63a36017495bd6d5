"""``type: codex_cli`` — OpenAI's Codex CLI, non-interactive (``codex exec``).

Profile::

    codex:
      type: codex_cli
      model: gpt-5-codex                  # "default": the CLI's own choice
      args: ["--sandbox", "workspace-write"]   # default: --sandbox read-only
      options: {json: true, resume: last}

``codex exec --json … -`` streams JSONL events (the prompt comes on stdin, ``-``): the
answer is the last ``agent_message`` item, usage comes from ``turn.completed``
(``input_tokens`` includes ``cached_input_tokens``), the thread id allows ``resume``.
``options: {json: false}`` reads the plain final message instead (usage estimated).
``--skip-git-repo-check`` is passed because notebooks rarely live in a git repository.
Codex logs in on its own (``codex login``); to use a key, pass it through the profile:
``env: {CODEX_API_KEY: "${OPENAI_API_KEY}"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from llmnb.providers.cli import CLICall, CLIProvider, json_lines
from llmnb.types import Chunk, Usage

__all__ = ["CodexCLIProvider"]


class CodexCLIProvider(CLIProvider):
    """OpenAI's Codex CLI, non-interactive (``codex exec``)."""

    type_name: ClassVar[str] = "codex_cli"
    binary: ClassVar[str] = "codex"
    npm_package: ClassVar[str] = "@openai/codex"
    docs_url: ClassVar[str] = "https://github.com/openai/codex"
    login_hint: ClassVar[str] = (
        'Run `codex login`, or pass a key with `env: {CODEX_API_KEY: "${OPENAI_API_KEY}"}`.'
    )
    _SANDBOX_FLAGS = ("--sandbox", "-s", "--full-auto", "--yolo")

    @property
    def _json(self) -> bool:
        return bool(self.options.get("json", True))

    def args(self, call: CLICall) -> list[str]:
        argv = ["exec"]
        if self._json:
            argv.append("--json")
        argv += self.model_args()
        extra = self.user_args()
        if not any(a.split("=", 1)[0] in self._SANDBOX_FLAGS for a in extra) and not any(
            a.startswith("--dangerously") for a in extra
        ):
            argv += ["--sandbox", "read-only"]  # the documented default, made explicit
        # Notebooks rarely live in a git repository, which codex otherwise insists on.
        argv.append("--skip-git-repo-check")
        argv += extra
        target = self.resume_target()
        if target:
            argv += ["resume", "--last" if target == "last" else target]
        return [*argv, "-"]  # "-": the prompt comes on stdin

    def _event(self, event: Mapping[str, Any], call: CLICall) -> Chunk | None:
        kind = event.get("type")
        if kind == "thread.started":
            call.session_id = event.get("thread_id") or call.session_id
        elif kind == "item.completed":
            item = event.get("item") or {}
            text = str(item.get("text") or "")
            if item.get("type") == "agent_message":
                call.flags.setdefault("messages", []).append(text)
                sep = "\n\n" if len(call.flags["messages"]) > 1 else ""
                return Chunk(content=sep + text)
            if item.get("type") == "reasoning":
                return Chunk(reasoning=text + "\n")
        elif kind == "turn.completed":
            raw = event.get("usage") or {}
            usage = Usage(
                prompt_tokens=int(raw.get("input_tokens") or 0),
                completion_tokens=int(raw.get("output_tokens") or 0),
                cached_tokens=int(raw.get("cached_input_tokens") or 0),
            )
            call.usage = usage if call.usage is None else call.usage + usage
        elif kind == "turn.failed":
            message = (event.get("error") or {}).get("message") or "turn failed"
            raise self.classify(f"Codex reported an error: {message}", None, "")
        elif kind == "error":
            # Also sent for transient trouble it retries itself: fatal only if no answer.
            call.flags.setdefault("errors", []).append(str(event.get("message") or ""))
        return None

    def parse_output(self, stdout: str, call: CLICall) -> None:
        if not self._json:
            super().parse_output(stdout, call)
            return
        for event in json_lines(stdout):
            chunk = self._event(event, call)
            if chunk is not None and chunk.reasoning:
                call.reasoning.append(chunk.reasoning)
        messages = call.flags.get("messages") or []
        if not messages:
            problems = "; ".join(call.flags.get("errors") or []) or "no agent message"
            raise self.classify(f"Codex gave no answer: {problems}", None, "")
        call.text = [messages[-1]]  # the final message is the answer, as `codex exec` prints

    def parse_line(self, line: str, call: CLICall) -> Chunk | None:
        if not self._json:
            return super().parse_line(line, call)
        events = json_lines(line)
        return self._event(events[0], call) if events else None

    def end_of_stream(self, stdout: str, call: CLICall) -> Chunk | None:
        if self._json and not call.flags.get("messages"):
            problems = "; ".join(call.flags.get("errors") or []) or "no agent message"
            raise self.classify(f"Codex gave no answer: {problems}", None, "")
        return None

    def failure_detail(self, stdout: str, stderr: str) -> str:
        for event in reversed(json_lines(stdout)):
            if event.get("type") == "turn.failed":
                return str((event.get("error") or {}).get("message") or "")
            if event.get("type") == "error" and event.get("message"):
                return str(event["message"])
        return super().failure_detail(stdout, stderr)
