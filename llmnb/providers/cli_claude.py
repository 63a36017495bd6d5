"""``type: claude_code`` — Anthropic's Claude Code in print mode (``claude -p``).

Profile::

    claude_code:
      type: claude_code
      model: sonnet                       # "default": the CLI's own choice
      claude_output_format: json          # json (default), stream-json or text
      allowed_tools: [Read, Grep]         # none by default: `--tools ""`
      disallowed_tools: [Bash]
      options: {resume: last, append_system_prompt: false}

``json`` and ``stream-json`` carry usage and ``total_cost_usd``, recorded as the
provider's cost; ``text`` gives only the answer (usage estimated). Streaming uses
``stream-json`` with ``--include-partial-messages`` (print mode needs ``--verbose`` for
it). A system message goes to ``--system-prompt`` (``--append-system-prompt`` with
``options.append_system_prompt``), the prompt to stdin. ``options.resume`` takes a
session id, or ``last`` to continue this profile's previous session.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from llmnb import errors
from llmnb.providers.cli import CLICall, CLIProvider, json_lines, json_object
from llmnb.types import Chunk, Usage

__all__ = ["CLAUDE_FORMATS", "ClaudeCodeProvider"]

CLAUDE_FORMATS = ("text", "json", "stream-json")


def _claude_usage(raw: Mapping[str, Any] | None, cost: Any) -> Usage | None:
    if not raw:
        return None
    written = int(raw.get("cache_creation_input_tokens") or 0)
    read = int(raw.get("cache_read_input_tokens") or 0)
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0) + written + read,
        completion_tokens=int(raw.get("output_tokens") or 0),
        cached_tokens=read,
        cost_usd=float(cost) if isinstance(cost, (int, float)) else None,
    )


class ClaudeCodeProvider(CLIProvider):
    """Anthropic's Claude Code in print mode (``claude -p``)."""

    type_name: ClassVar[str] = "claude_code"
    binary: ClassVar[str] = "claude"
    npm_package: ClassVar[str] = "@anthropic-ai/claude-code"
    docs_url: ClassVar[str] = "https://docs.anthropic.com/en/docs/claude-code"
    login_hint: ClassVar[str] = "Run `claude` once in a terminal and log in (/login)."

    def _format(self, call: CLICall) -> str:
        fmt = self.profile.get("claude_output_format")
        if fmt and fmt not in CLAUDE_FORMATS:
            raise errors.ConfigError(
                f"profile {self.profile_name!r}: claude_output_format {fmt!r} is not one of "
                f"{', '.join(CLAUDE_FORMATS)}."
            )
        # json has usage and cost; stream-json has them too and arrives as it is written.
        return str(fmt or ("stream-json" if call.stream else "json"))

    def args(self, call: CLICall) -> list[str]:
        fmt = call.flags["format"] = self._format(call)
        argv = ["-p", "--output-format", fmt]
        if fmt == "stream-json":
            argv.append("--verbose")  # print mode refuses stream-json without it
            if call.stream:
                argv.append("--include-partial-messages")
        argv += self.model_args()
        if call.system:
            append = self.options.get("append_system_prompt")
            argv += ["--append-system-prompt" if append else "--system-prompt", call.system]
            call.flags["system_sent"] = True
        allowed = self.tool_list("allowed_tools")
        # --tools sets which tools exist at all ("" = none); --allowedTools which of them
        # run without asking (rules such as "Bash(git log:*)" name the tool first).
        names = dict.fromkeys(t.split("(", 1)[0].strip() for t in allowed)
        argv += ["--tools", ",".join(names)]
        if allowed:
            argv += ["--allowedTools", ",".join(allowed)]
        denied = self.tool_list("disallowed_tools")
        if denied:
            argv += ["--disallowedTools", ",".join(denied)]
        target = self.resume_target()
        if target == "last" or (not target and self.options.get("continue")):
            argv.append("--continue")
        elif target:
            argv += ["--resume", target]
        return argv + self.user_args()

    def _result(self, data: Mapping[str, Any], call: CLICall) -> str:
        call.session_id = data.get("session_id") or call.session_id
        text = str(data.get("result") or "")
        subtype = str(data.get("subtype") or "")
        if data.get("is_error") or subtype.startswith("error"):
            detail = text or subtype or "no details"
            raise self.classify(f"Claude Code reported an error: {detail}", None, "")
        call.usage = _claude_usage(data.get("usage"), data.get("total_cost_usd"))
        models = data.get("modelUsage") or {}
        if isinstance(models, dict) and models:
            # Claude Code may use a small model for chores; the answer came from the
            # model that cost the most.
            call.model = max(models, key=lambda m: float(models[m].get("costUSD") or 0))
        return text

    def parse_output(self, stdout: str, call: CLICall) -> None:
        fmt = call.flags["format"]
        if fmt == "text":
            super().parse_output(stdout, call)
            return
        try:
            events = [json_object(stdout)] if fmt == "json" else json_lines(stdout)
            result = next((e for e in reversed(events) if e.get("type") == "result"), None)
            if result is None:
                raise ValueError("no result event")
        except (ValueError, TypeError) as exc:
            raise self.unreadable(stdout, exc) from exc
        for event in events:
            if event.get("type") == "system":
                call.model = call.model or event.get("model")
        call.text = [self._result(result, call)]

    def parse_line(self, line: str, call: CLICall) -> Chunk | None:
        fmt = call.flags["format"]
        if fmt == "text":
            return super().parse_line(line, call)
        if fmt == "json":
            return None  # one object at the end: see end_of_stream
        try:
            data = json.loads(line)
        except ValueError:
            return None
        kind = data.get("type")
        if kind == "system":
            call.session_id = data.get("session_id") or call.session_id
            call.model = data.get("model") or call.model
        elif kind == "stream_event":
            event = data.get("event") or {}
            delta = event.get("delta") or {}
            if event.get("type") == "content_block_delta":
                call.flags["partial"] = True
                if delta.get("type") == "text_delta":
                    return Chunk(content=delta.get("text") or "")
                if delta.get("type") == "thinking_delta":
                    return Chunk(reasoning=delta.get("thinking") or "")
        elif kind == "assistant" and not call.flags.get("partial"):
            blocks = (data.get("message") or {}).get("content") or ()
            text = "".join(b.get("text") or "" for b in blocks if b.get("type") == "text")
            return Chunk(content=text) if text else None
        elif kind == "result":
            self._result(data, call)
        return None

    def end_of_stream(self, stdout: str, call: CLICall) -> Chunk | None:
        if call.flags["format"] != "json":
            return None
        self.parse_output(stdout, call)
        return Chunk(content="".join(call.text))

    def failure_detail(self, stdout: str, stderr: str) -> str:
        # A failed run still prints its JSON result, whose text says what went wrong.
        for event in reversed(json_lines(stdout)):
            if event.get("type") == "result" and event.get("result"):
                return str(event["result"])
        return super().failure_detail(stdout, stderr)
