"""The I/O-free core of a CLI provider: building a run, classifying failures, tracing it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from llmnb import errors
from llmnb._http import scrub
from llmnb.providers._cli_text import ANSI, excerpt, render_prompt
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
from llmnb.types import Chunk, Completion, Request, Usage

__all__ = ["DEFAULT_TIMEOUT", "CLICall", "CLICore", "CLIError"]

DEFAULT_TIMEOUT = 600.0
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


class CLICore(Provider):
    """What a CLI provider does without I/O: argv, parsing hooks, errors, the trace record."""

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
        call.text.append(ANSI.sub("", stdout).strip())

    def parse_line(self, line: str, call: CLICall) -> Chunk | None:
        """One stdout line of a streamed run → a chunk, or None to skip it."""
        return Chunk(content=ANSI.sub("", line)) if line else None

    def end_of_stream(self, stdout: str, call: CLICall) -> Chunk | None:
        """A last chunk once a streamed run ended well (for outputs only whole runs parse)."""
        return None

    def failure_detail(self, stdout: str, stderr: str) -> str:
        """What to quote when the run failed: stderr, else the end of stdout."""
        return excerpt(stderr) or excerpt(stdout)

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
            f"{scrub(stdout.strip())[:200]!r}. Is the installed version current?",
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
                excerpt(run.stderr),
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

    def _streamed(self, call: CLICall, pieces: list[str], reasoning: list[str]) -> Completion:
        """What a stream amounted to (for the trace record)."""
        call.text, call.reasoning = pieces, reasoning
        return self._completion(call)

    def __repr__(self) -> str:
        command = self.profile.get("command") or self.binary
        return (
            f"<{type(self).__name__} profile={self.profile_name!r} model={self.model!r} "
            f"command={command!r}>"
        )
