"""``type: gemini_cli`` — Google's Gemini CLI in headless mode.

Profile::

    gemini_cli:
      type: gemini_cli
      model: gemini-2.5-pro               # "default": the CLI's own choice
      env: {GEMINI_API_KEY: "${GEMINI_API_KEY}"}   # only if it logs in with a key
      options: {resume: last}             # --resume latest

The prompt is piped on stdin (a non-TTY run is headless). ``--output-format json`` gives
the answer and ``stats`` (token counts per model: ``prompt``, ``candidates``, ``cached``,
``thoughts``); streaming uses ``stream-json`` (``message`` deltas, a ``result`` with
stats). ``options: {output_format: text}`` reads plain text (usage estimated).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from llmnb.providers.cli import CLICall, CLIProvider, json_lines, json_object
from llmnb.types import Chunk, Usage

__all__ = ["GeminiCLIProvider"]


class GeminiCLIProvider(CLIProvider):
    """Google's Gemini CLI in headless mode (prompt piped on stdin)."""

    type_name: ClassVar[str] = "gemini_cli"
    binary: ClassVar[str] = "gemini"
    npm_package: ClassVar[str] = "@google/gemini-cli"
    docs_url: ClassVar[str] = "https://geminicli.com/docs/cli/headless"
    login_hint: ClassVar[str] = (
        'Run `gemini` once and sign in, or pass `env: {GEMINI_API_KEY: "${GEMINI_API_KEY}"}`.'
    )

    def _format(self, call: CLICall) -> str:
        if self.options.get("output_format") == "text":
            return "text"
        return "stream-json" if call.stream else "json"

    def args(self, call: CLICall) -> list[str]:
        fmt = call.flags["format"] = self._format(call)
        argv = ["--output-format", fmt, *self.model_args()]
        allowed = self.tool_list("allowed_tools")
        if allowed:
            argv += ["--allowed-tools", ",".join(allowed)]
        target = self.resume_target()
        if target:
            argv += ["--resume", "latest" if target == "last" else target]
        return argv + self.user_args()

    def _stats(self, stats: Mapping[str, Any], call: CLICall) -> None:
        models = stats.get("models")
        if isinstance(models, dict) and models:
            usage = Usage()
            for tokens in (m.get("tokens") or {} for m in models.values()):
                thoughts = int(tokens.get("thoughts") or 0)
                usage = usage + Usage(
                    prompt_tokens=int(tokens.get("prompt") or tokens.get("input") or 0),
                    completion_tokens=int(tokens.get("candidates") or 0) + thoughts,
                    cached_tokens=int(tokens.get("cached") or 0),
                    reasoning_tokens=thoughts,
                )
            call.usage = usage
            call.model = max(
                models, key=lambda m: int((models[m].get("tokens") or {}).get("total") or 0)
            )
        elif "input_tokens" in stats or "output_tokens" in stats:
            call.usage = Usage(
                prompt_tokens=int(stats.get("input_tokens") or 0),
                completion_tokens=int(stats.get("output_tokens") or 0),
                cached_tokens=int(stats.get("cached") or 0),
            )

    def _raise_error(self, error: Any) -> None:
        if error:
            message = error.get("message") if isinstance(error, dict) else error
            raise self.classify(f"Gemini CLI reported an error: {message}", None, "")

    def parse_output(self, stdout: str, call: CLICall) -> None:
        if call.flags["format"] == "text":
            super().parse_output(stdout, call)
            return
        if call.flags["format"] == "stream-json":
            for event in json_lines(stdout):
                chunk = self.parse_line(json.dumps(event), call)
                if chunk is not None:
                    call.text.append(chunk.content)
            return
        try:
            data = json_object(stdout)
        except (ValueError, TypeError) as exc:
            raise self.unreadable(stdout, exc) from exc
        self._raise_error(data.get("error"))
        call.session_id = data.get("session_id") or call.session_id
        self._stats(data.get("stats") or {}, call)
        call.text = [str(data.get("response") or "")]

    def parse_line(self, line: str, call: CLICall) -> Chunk | None:
        if call.flags["format"] == "text":
            return super().parse_line(line, call)
        events = json_lines(line)
        if not events:
            return None
        event = events[0]
        kind = event.get("type")
        if kind == "init":
            call.session_id = event.get("session_id") or call.session_id
            call.model = event.get("model") or call.model
        elif kind == "message" and event.get("role") == "assistant":
            return Chunk(content=str(event.get("content") or ""))
        elif kind == "result":
            if event.get("status") == "error":
                self._raise_error(event.get("error") or "the run failed")
            self._stats(event.get("stats") or {}, call)
        return None

    def failure_detail(self, stdout: str, stderr: str) -> str:
        for event in reversed(json_lines(stdout)):
            error = event.get("error")
            if isinstance(error, dict) and error.get("message"):
                return str(error["message"])
        return super().failure_detail(stdout, stderr)
