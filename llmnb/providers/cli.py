"""Coding-agent CLIs as providers: the shared core (argv, environment, errors, tracing).

A CLI provider runs an installed agent (``claude``, ``codex``, ``copilot``, ``gemini``)
once per call: arguments as a list (never a shell), the prompt on stdin, a timeout
that kills the agent and everything it started, and a typed error for every failure —
a missing executable names the npm package to install, a non-zero exit carries an
excerpt of stderr. The agents log in on their own (``claude`` then ``/login``…); no key
is put in argv. The child gets the notebook's environment *without* ``*_API_KEY``
variables, so a key meant for one provider does not silently switch a CLI from its
login to API billing; pass one on purpose with ``env: {ANTHROPIC_API_KEY:
"${ANTHROPIC_API_KEY}"}`` (``${VAR}`` is read from ``.env`` / the environment).

Common profile keys: ``command`` (executable name or path), ``args`` (extra arguments),
``cwd``, ``env``, ``timeout`` (default 600 s), ``allowed_tools``, ``disallowed_tools``,
tracing (see :mod:`llmnb.providers.cli_trace`) and ``options: {resume: <id> | last}``.
Each CLI is a subclass in its own module (``cli_claude``, ``cli_codex``, ``cli_copilot``,
``cli_gemini``) that writes ``args()`` and the output parsers; sync and async calls share
everything but the process I/O (:mod:`llmnb.providers.cli_process`).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from llmnb import errors
from llmnb._http import scrub
from llmnb.providers.base import Provider
from llmnb.providers.cli_process import (
    AsyncRun,
    Invocation,
    SyncRun,
    child_env,
    find_executable,
    working_dir,
)
from llmnb.providers.cli_trace import TracePlan, plan_trace
from llmnb.providers.mock import estimate_tokens
from llmnb.types import Chunk, Completion, Message, Request, Role, Usage

__all__ = ["CLICall", "CLIError", "CLIProvider", "json_lines", "json_object", "render_prompt"]

DEFAULT_TIMEOUT = 600.0
_EXCERPT = 500
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_AUTH_WORDS = ("not logged in", "log in", "login", "unauthorized", "authenticat", "api key")
_QUOTA_WORDS = ("credit balance", "quota", "usage limit", "spend limit")


class CLIError(errors.ProviderError):
    """A CLI agent failed (non-zero exit or an error result).

    ``exit_code`` is the process's exit code (``None`` if it reported the error in its
    output), ``stderr`` an excerpt of what it printed there. Not retried: an agent that
    failed usually fails the same way again, and each try can take minutes.
    """

    retryable = False

    def __init__(
        self, message: str, *, exit_code: int | None = None, stderr: str = "", **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.exit_code = exit_code
        self.stderr = stderr


def render_prompt(messages: tuple[Message, ...]) -> tuple[str | None, str]:
    """``(system, prompt)``: system messages joined, the rest as one prompt.

    One user message is sent as it is; a conversation becomes a labelled transcript,
    since these CLIs take a single prompt per run.
    """
    system = "\n\n".join(m.content for m in messages if m.role is Role.SYSTEM) or None
    turns = [m for m in messages if m.role is not Role.SYSTEM]
    if len(turns) == 1 and turns[0].role is Role.USER:
        return system, turns[0].content
    labels = {Role.USER: "User", Role.ASSISTANT: "Assistant", Role.TOOL: "Tool"}
    lines = [f"{labels[m.role]}: {m.content}" for m in turns]
    head = "Continue this conversation as the assistant; reply to the last user message.\n\n"
    return system, head + "\n\n".join(lines)


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among ``text``'s lines (other lines are skipped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out


def json_object(text: str) -> dict[str, Any]:
    """The one JSON object a ``--output-format json`` run prints (noise lines skipped)."""
    try:
        value = json.loads(text)
    except ValueError:
        start = text.find("\n{")
        value = json.loads(text[start + 1 :] if start >= 0 else text[text.find("{") :])
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _excerpt(text: str) -> str:
    text = _ANSI.sub("", text).strip()
    return text if len(text) <= _EXCERPT else "…" + text[-_EXCERPT:]


@dataclass(slots=True)
class CLICall:
    """One call's state: what was asked, and what the parsers learned on the way."""

    request: Request
    system: str | None
    prompt: str
    stream: bool
    trace: TracePlan
    command: str = ""
    session_id: str | None = None
    model: str | None = None
    usage: Usage | None = None
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)  # parser scratch space
    # Key values the agent could print (see cli_process.child_env): scrubbed on the way out.
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)


class CLIProvider(Provider):
    """Base of the CLI agents; subclasses set the declarative attributes and parsers."""

    type_name: ClassVar[str] = "cli"
    binary: ClassVar[str] = ""
    npm_package: ClassVar[str] = ""
    docs_url: ClassVar[str] = ""
    login_hint: ClassVar[str] = ""

    def __init__(self, profile_name: str, profile: Mapping[str, Any], model: str) -> None:
        super().__init__(profile_name, profile, model)
        self.last_session_id: str | None = None

    # --- to implement ---------------------------------------------------------------
    def args(self, call: CLICall) -> list[str]:
        """The arguments after the executable, for this call (``user_args()`` included)."""
        raise NotImplementedError(f"{type(self).__name__} must implement args()")

    def parse_output(self, stdout: str, call: CLICall) -> None:
        """Read a finished run's stdout into ``call`` (text, usage, session id...)."""
        call.text.append(_ANSI.sub("", stdout).strip())

    def parse_line(self, line: str, call: CLICall) -> Chunk | None:
        """One stdout line of a streamed run → a chunk, or None to skip it."""
        return Chunk(content=_ANSI.sub("", line)) if line else None

    def end_of_stream(self, stdout: str, call: CLICall) -> Chunk | None:
        """A last chunk once a streamed run ended well (for outputs only whole runs parse)."""
        return None

    def failure_detail(self, stdout: str, stderr: str) -> str:
        """What to quote when the run failed: stderr, else the end of stdout."""
        return _excerpt(stderr) or _excerpt(stdout)

    # --- helpers for subclasses ---------------------------------------------------------
    @property
    def options(self) -> Mapping[str, Any]:
        return self.profile.get("options") or {}

    def user_args(self) -> list[str]:
        """The profile's ``args``, as given."""
        return [str(a) for a in self.profile.get("args") or ()]

    def model_args(self, flag: str = "--model", joined: bool = False) -> list[str]:
        """``[flag, model]`` unless the model is "default" (let the CLI choose)."""
        if self.model.strip().lower() in ("", "default"):
            return []
        return [f"{flag}={self.model}"] if joined else [flag, self.model]

    def resume_target(self) -> str | None:
        """``options.resume``: a session id, or "last" for this profile's last session."""
        value = self.options.get("resume")
        if not value:
            return None
        value = str(value)
        if value == "last":
            return self.last_session_id or "last"
        return value

    def tool_list(self, key: str) -> list[str]:
        return [str(t) for t in self.profile.get(key) or ()]

    # --- building the run ---------------------------------------------------------------
    def _begin(self, request: Request, stream: bool) -> tuple[CLICall, Invocation]:
        system, prompt = render_prompt(request.messages)
        call = CLICall(request, system, prompt, stream, plan_trace(self.profile, self.profile_name))
        where = f"profile {self.profile_name!r}"
        env, secrets = child_env(self.profile.get("env") or {}, where)
        call.secrets = secrets
        install = f"npm install -g {self.npm_package}" if self.npm_package else "install it"
        docs = f" (see {self.docs_url})" if self.docs_url else ""
        command = str(self.profile.get("command") or self.binary)
        exe = find_executable(command, env, f"{where} (type {self.type_name})", install, docs)
        call.command = Path(exe).name
        argv = (exe, *self.args(call))
        timeout = float(request.timeout or self.profile.get("timeout") or DEFAULT_TIMEOUT)
        stdin = self.stdin_text(call)
        cwd = working_dir(self.profile.get("cwd"), where)
        data = stdin.encode() if stdin is not None else None
        inv = Invocation(argv, data, env, cwd, timeout, secrets)
        return call, inv

    def stdin_text(self, call: CLICall) -> str | None:
        """What goes to stdin: the prompt (and the system prompt, for CLIs without a flag)."""
        if call.system and not call.flags.get("system_sent"):
            return f"{call.system}\n\n{call.prompt}"
        return call.prompt

    # --- finishing the run --------------------------------------------------------------
    def unreadable(self, stdout: str, exc: Exception) -> errors.ResponseFormatError:
        """The error for output the parser cannot read (a changed CLI version?)."""
        return errors.ResponseFormatError(
            f"could not read the CLI's JSON output ({type(exc).__name__}: {exc}): "
            f"{stdout.strip()[:200]!r}. Is the installed version current?",
            **self._kw(),
        )

    def _kw(self) -> dict[str, Any]:
        return {"provider": self.type_name, "profile": self.profile_name, "model": self.model}

    def _check(self, call: CLICall, run: SyncRun | AsyncRun, stdout: str, inv: Invocation) -> None:
        """Raise the typed error of a failed run."""
        if run.timed_out:
            err = errors.LLMTimeoutError(
                f"`{call.command}` gave no complete answer within {inv.timeout:g}s and was "
                "stopped, with the processes it started. Raise `timeout` in the profile or "
                "the call if the agent needs longer.",
                **self._kw(),
            )
            err.retryable = False  # an agent run that timed out would time out again
            raise err
        if run.returncode:
            detail = self.failure_detail(stdout, run.stderr)
            raise self.classify(
                f"`{call.command}` exited with code {run.returncode}"
                + (f": {detail}" if detail else " and printed nothing on stderr."),
                run.returncode,
                _excerpt(run.stderr),
            )

    def classify(self, message: str, exit_code: int | None, stderr: str) -> errors.APIError:
        """The error class a failure message calls for (login, quota, or CLIError)."""
        lowered = message.lower()
        if any(w in lowered for w in _QUOTA_WORDS):
            return errors.InsufficientQuotaError(message, code=str(exit_code), **self._kw())
        if any(w in lowered for w in _AUTH_WORDS):
            hint = f" {self.login_hint}" if self.login_hint else ""
            return errors.AuthenticationError(
                message.rstrip(". ") + f".{hint}", code=str(exit_code), **self._kw()
            )
        return CLIError(message, exit_code=exit_code, stderr=stderr, **self._kw())

    def _completion(self, call: CLICall) -> Completion:
        text = "".join(call.text)
        usage = call.usage
        if usage is None:  # the CLI reports no counts: estimate, and say so
            prompt = estimate_tokens(call.prompt) + estimate_tokens(call.system or "")
            usage = Usage(prompt, estimate_tokens(text), estimated=True)
        return Completion(
            content=text,
            model=call.model or call.request.model,
            usage=usage,
            finish_reason="stop",
            reasoning="".join(call.reasoning),
        )

    @staticmethod
    def _scrub_error(exc: BaseException, call: CLICall) -> None:
        """Take key values out of an error before it leaves (agents quote bad keys)."""
        if not call.secrets or not isinstance(exc, errors.LLMError):
            return
        exc.args = tuple(call.scrub(a) if isinstance(a, str) else a for a in exc.args)
        for name in ("message", "body", "stderr"):
            value = getattr(exc, name, None)
            if isinstance(value, str):
                setattr(exc, name, call.scrub(value))

    def _scrub_files(self, call: CLICall) -> None:
        """Transcripts the agent wrote itself (``--share``) get the same scrubbing."""
        for name in call.trace.artifacts:
            path = Path(name)
            if call.secrets and path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                if (clean := call.scrub(text)) != text:
                    path.write_text(clean, encoding="utf-8")

    def _trace(
        self,
        call: CLICall,
        run: SyncRun | AsyncRun | None,
        stdout: str,
        status: str,
        completion: Completion | None,
    ) -> None:
        if call.session_id:
            self.last_session_id = call.session_id
        self._scrub_files(call)
        # The CLI's own output (an event log in the JSON formats) is the transcript.
        transcript = call.trace.artifact("stdout.log") if stdout else None
        if transcript is not None:
            transcript.write_text(call.scrub(stdout), encoding="utf-8")
        record: dict[str, Any] = {
            "profile": self.profile_name,
            "provider": self.type_name,
            "model": (completion.model if completion else None) or call.request.model,
            "command": call.command,
            "stream": call.stream,
            "prompt_chars": len(call.prompt) + len(call.system or ""),
            "stdout_bytes": len(stdout.encode()),
            "stderr_bytes": len(run.stderr.encode()) if run else 0,
            "duration_s": round(run.duration, 3) if run else 0.0,
            "exit_code": run.returncode if run else None,
            "timed_out": run.timed_out if run else False,
            "status": status,
            "session_id": call.session_id,
            "prompt": call.scrub(((call.system + "\n\n") if call.system else "") + call.prompt),
        }
        if completion is not None:
            u = completion.usage
            record.update(
                output_chars=len(completion.content),
                prompt_tokens=u.prompt_tokens,
                completion_tokens=u.completion_tokens,
                cached_tokens=u.cached_tokens,
                estimated=u.estimated,
                cost_usd=u.cost_usd,
                output=call.scrub(completion.content),
            )
        call.trace.write(record)

    def _missing(self, call: CLICall, exc: OSError) -> errors.ConfigError:
        return errors.ConfigError(
            f"profile {self.profile_name!r}: cannot run `{call.command}` ({exc.strerror}). "
            f"Reinstall it with `npm install -g {self.npm_package}`."
        )

    # --- sync I/O -----------------------------------------------------------------------
    def complete(self, request: Request) -> Completion:
        call, inv = self._begin(request, stream=False)
        run = SyncRun(inv)
        out: list[str] = []
        status, completion = "ok", None
        try:
            try:
                out = [line.decode("utf-8", "replace") for line in run.lines()]
            except OSError as exc:
                raise self._missing(call, exc) from exc
            stdout = "".join(out)
            self._check(call, run, stdout, inv)
            self.parse_output(stdout, call)
            completion = self._completion(call)
            return completion
        except BaseException as exc:
            status = type(exc).__name__
            self._scrub_error(exc, call)
            raise
        finally:
            self._trace(call, run, "".join(out), status, completion)

    def _streamed(self, call: CLICall, pieces: list[str], reasoning: list[str]) -> Completion:
        """What a stream amounted to (for the trace record)."""
        call.text, call.reasoning = pieces, reasoning
        return self._completion(call)

    def stream(self, request: Request) -> Iterator[Chunk]:
        call, inv = self._begin(request, stream=True)
        run = SyncRun(inv)
        out: list[str] = []
        pieces: list[str] = []
        thoughts: list[str] = []
        status, completion = "ok", None
        try:
            try:
                for raw in run.lines():
                    line = raw.decode("utf-8", "replace")
                    out.append(line)
                    chunk = self.parse_line(line, call)
                    if chunk is not None:
                        pieces.append(chunk.content)
                        thoughts.append(chunk.reasoning)
                        yield chunk
            except OSError as exc:
                raise self._missing(call, exc) from exc
            self._check(call, run, "".join(out), inv)
            tail = self.end_of_stream("".join(out), call)
            if tail is not None:
                pieces.append(tail.content)
                thoughts.append(tail.reasoning)
                yield tail
            completion = self._streamed(call, pieces, thoughts)
            yield Chunk(finish_reason="stop", usage=call.usage, model=call.model)
        except BaseException as exc:
            status = "cancelled" if isinstance(exc, GeneratorExit) else type(exc).__name__
            self._scrub_error(exc, call)
            raise
        finally:
            self._trace(call, run, "".join(out), status, completion)

    # --- async I/O ----------------------------------------------------------------------
    async def acomplete(self, request: Request) -> Completion:
        call, inv = self._begin(request, stream=False)
        run = AsyncRun(inv)
        out: list[str] = []
        status, completion = "ok", None
        try:
            try:
                out = [line.decode("utf-8", "replace") async for line in run.lines()]
            except OSError as exc:
                raise self._missing(call, exc) from exc
            stdout = "".join(out)
            self._check(call, run, stdout, inv)
            self.parse_output(stdout, call)
            completion = self._completion(call)
            return completion
        except BaseException as exc:
            status = type(exc).__name__
            self._scrub_error(exc, call)
            raise
        finally:
            self._trace(call, run, "".join(out), status, completion)

    async def astream(self, request: Request) -> AsyncIterator[Chunk]:
        call, inv = self._begin(request, stream=True)
        run = AsyncRun(inv)
        out: list[str] = []
        pieces: list[str] = []
        thoughts: list[str] = []
        status, completion = "ok", None
        try:
            try:
                async for raw in run.lines():
                    line = raw.decode("utf-8", "replace")
                    out.append(line)
                    chunk = self.parse_line(line, call)
                    if chunk is not None:
                        pieces.append(chunk.content)
                        thoughts.append(chunk.reasoning)
                        yield chunk
            except OSError as exc:
                raise self._missing(call, exc) from exc
            self._check(call, run, "".join(out), inv)
            tail = self.end_of_stream("".join(out), call)
            if tail is not None:
                pieces.append(tail.content)
                thoughts.append(tail.reasoning)
                yield tail
            completion = self._streamed(call, pieces, thoughts)
            yield Chunk(finish_reason="stop", usage=call.usage, model=call.model)
        except BaseException as exc:
            status = "cancelled" if isinstance(exc, GeneratorExit) else type(exc).__name__
            self._scrub_error(exc, call)
            raise
        finally:
            self._trace(call, run, "".join(out), status, completion)

    def __repr__(self) -> str:
        command = self.profile.get("command") or self.binary
        return (
            f"<{type(self).__name__} profile={self.profile_name!r} model={self.model!r} "
            f"command={command!r}>"
        )
