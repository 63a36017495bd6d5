"""Coding-agent CLIs as providers: the base class whose calls run the agent, sync or async.

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
everything but the process I/O (:mod:`llmnb.providers.cli_process`): the I/O-free work
(argv, errors, tracing) is in :mod:`llmnb.providers._cli_core`, prompt rendering and
output reading in :mod:`llmnb.providers._cli_text`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from llmnb.providers._cli_core import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from llmnb.providers._cli_core import CLICall, CLICore, CLIError
from llmnb.providers._cli_text import json_lines, json_object, render_prompt
from llmnb.providers.cli_process import AsyncRun, SyncRun
from llmnb.types import Chunk, Completion, Request

__all__ = ["CLICall", "CLIError", "CLIProvider", "json_lines", "json_object", "render_prompt"]


class CLIProvider(CLICore):
    """Base of the CLI agents; subclasses set the declarative attributes and parsers.

    The I/O-free work is in :class:`~llmnb.providers._cli_core.CLICore`; the four methods
    here only run the process (sync or async) and hand its output to that core.
    """

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
