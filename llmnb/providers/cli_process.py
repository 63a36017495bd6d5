"""Running one CLI process: its environment and executable, argv (never a shell), stdin,
a deadline, and a clean kill.

The process starts in its own process group (session), so a timeout or an abandoned
stream kills the agent *and* whatever it spawned (node workers, MCP servers, shell
commands) — otherwise those keep the stdout pipe open and the call never ends. The
group gets SIGTERM, a short grace period, then SIGKILL. On Windows only the process
itself is killed. Reading is bounded by the process, not by the pipe: once the agent has
exited, what is still in the pipe is read for up to ``DRAIN_S`` and the rest of its group
is stopped, so a child that kept stdout open cannot hold the answer back; and the
deadline ends the read even when a child in a session of its own (out of reach of the
group kill) still holds the pipe.

:class:`SyncRun` and :class:`AsyncRun` differ only in their I/O: both yield stdout line
by line and afterwards hold the exit code, the tail of stderr and whether the deadline
passed. Reading stops at 16 MiB per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from llmnb import errors
from llmnb.types import Secret

__all__ = [
    "AsyncRun",
    "Invocation",
    "SyncRun",
    "child_env",
    "find_executable",
    "is_secret_name",
    "working_dir",
]

GRACE_S = 1.0
DRAIN_S = 0.5  # how long output is still read after the agent itself has exited
_POLL_S = 0.05  # how often a blocked read looks whether the agent has exited
STDERR_KEEP = 16 * 1024
LINE_LIMIT = 16 * 1024 * 1024
_POSIX = os.name == "posix"
_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# llmnb's own key variables stay out of child processes unless a profile passes one on.
_KEY_VARS = re.compile(r"_API_KEYS?$")
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret."""
    return bool(_SECRET_NAME.search(name))


@dataclass(frozen=True, slots=True)
class Invocation:
    """What to run: ``argv[0]`` is a resolved executable path."""

    argv: tuple[str, ...]
    stdin: bytes | None
    env: dict[str, str] = field(repr=False)  # may hold keys a CLI needs: never shown
    cwd: str | None
    timeout: float
    # Values to scrub from anything the run leaves behind (errors, transcripts).
    secrets: tuple[str, ...] = field(default=(), repr=False)


def child_env(extra: Mapping[str, Any], where: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """The child's environment — ours without ``*_API_KEY(S)``, plus ``extra`` with
    ``${VAR}`` read from ``.env`` / the environment (MissingAPIKeyError names an unset
    one) — and the secret values to scrub from what the run prints: the keys left out,
    values read through ``${VAR}``, and variables whose names say they are secrets."""
    from llmnb import config

    env: dict[str, str] = {}
    secrets: list[str] = []
    for name, value in os.environ.items():
        if _KEY_VARS.search(name):
            secrets += value.split(",")
        else:
            env[name] = value
    env.setdefault("NO_COLOR", "1")
    for name, value in extra.items():
        refs = _VAR_REF.findall(str(value))
        missing = [v for v in refs if not config.get_env(v)]
        if missing:
            raise errors.MissingAPIKeyError(
                f"{where}: env.{name} reads ${{{missing[0]}}}, which is not set. Set it in "
                f".env or the environment (`%env {missing[0]}=...`)."
            )
        env[str(name)] = _VAR_REF.sub(lambda m: config.get_env(m.group(1)) or "", str(value))
        secrets += [config.get_env(v) or "" for v in refs]
    secrets += [v for k, v in env.items() if is_secret_name(k)]
    # Longest first, so a key is replaced whole before any shorter secret inside it.
    found = {s.strip() for s in secrets if len(s.strip()) >= 8}
    for value in found:
        Secret(value)  # registered: scrubbed from every llmnb message, not just this run's
    return env, tuple(sorted(found, key=len, reverse=True))


def find_executable(
    command: str, env: Mapping[str, str], where: str, install: str, docs: str = ""
) -> str:
    """The full path of ``command`` (a name looked up on the child's PATH, or a path);
    ConfigError says how to install it (``install``: a command, ``docs``: " (see URL)")."""
    if os.sep in command or (os.altsep and os.altsep in command):
        path = Path(command).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        raise errors.ConfigError(
            f"{where}: `command: {command}` is not an executable file. Fix the path, or "
            f"install the CLI with `{install}`{docs}."
        )
    found = shutil.which(command, path=env.get("PATH"))
    if found is None:
        raise errors.ConfigError(
            f"{where}: the `{command}` command was not found on PATH. Install it with "
            f"`{install}`{docs}, or set `command:` in the profile to its full path."
        )
    return found


def working_dir(cwd: Any, where: str) -> str | None:
    """The profile's ``cwd`` as a checked folder path, or None (the current folder)."""
    if not cwd:
        return None
    path = Path(str(cwd)).expanduser()
    if not path.is_dir():
        raise errors.ConfigError(
            f"{where}: `cwd: {cwd}` is not a folder. Fix the path (relative paths start at "
            "the notebook's working directory)."
        )
    return str(path)


def _spawn_options() -> dict[str, Any]:
    if _POSIX:
        return {"start_new_session": True}
    return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class _Outcome:
    """What the finished process left: exit code, stderr tail, timing."""

    def __init__(self) -> None:
        self.returncode: int | None = None
        self.timed_out = False
        self.started = time.monotonic()
        self.duration = 0.0
        self._stderr = bytearray()

    def add_stderr(self, data: bytes) -> None:
        self._stderr += data
        if len(self._stderr) > 2 * STDERR_KEEP:
            del self._stderr[:-STDERR_KEEP]

    @property
    def stderr(self) -> str:
        return bytes(self._stderr[-STDERR_KEEP:]).decode("utf-8", "replace")


class SyncRun(_Outcome):
    """A process run with blocking I/O; iterate :meth:`lines` once."""

    def __init__(self, inv: Invocation) -> None:
        super().__init__()
        self.inv = inv

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        if not _POSIX:
            with contextlib.suppress(OSError):
                proc.kill()
            return
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(GRACE_S)
        _signal_group(proc.pid, signal.SIGKILL)  # stragglers that ignored SIGTERM

    def _on_deadline(self, proc: subprocess.Popen[bytes]) -> None:
        self.timed_out = True
        self._kill(proc)

    def _pump_stderr(self, pipe: IO[bytes]) -> None:
        for data in iter(lambda: pipe.read1(65536), b""):  # type: ignore[attr-defined]
            self.add_stderr(data)

    def _feed(self, pipe: IO[bytes], data: bytes) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            pipe.write(data)
        with contextlib.suppress(BrokenPipeError, OSError):
            pipe.close()

    def _read(self, proc: subprocess.Popen[bytes]) -> Iterator[bytes]:
        """Stdout lines until EOF, the deadline, or ``DRAIN_S`` after the agent exited."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = self.started + self.inv.timeout
        exited: float | None = None
        pending = bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                if now >= deadline:
                    if not self.timed_out:
                        self._on_deadline(proc)
                    break
                if exited is None and proc.poll() is not None:
                    exited = now
                if exited is not None and now - exited > DRAIN_S:
                    break  # a child still holds the pipe; the agent's answer is in
                if not selector.select(min(deadline - now, _POLL_S)):
                    continue
                data = os.read(fd, 65536)
                if not data:
                    break
                pending += data
                while (end := pending.find(b"\n")) >= 0 or len(pending) > LINE_LIMIT:
                    cut = end + 1 if end >= 0 else LINE_LIMIT
                    yield bytes(pending[:cut])
                    del pending[:cut]
        if pending:
            yield bytes(pending)

    def lines(self) -> Iterator[bytes]:
        """Stdout lines as they come (with their newline). Stops the process when the
        caller stops early; raises ``FileNotFoundError`` if the executable vanished."""
        inv = self.inv
        proc = subprocess.Popen(
            inv.argv,
            stdin=subprocess.PIPE if inv.stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=inv.cwd,
            env=inv.env,
            **_spawn_options(),
        )
        assert proc.stdout is not None and proc.stderr is not None
        threads = [threading.Thread(target=self._pump_stderr, args=(proc.stderr,), daemon=True)]
        if inv.stdin is not None:
            assert proc.stdin is not None
            # A thread, so a child that prints before reading all of stdin cannot deadlock.
            threads.append(
                threading.Thread(target=self._feed, args=(proc.stdin, inv.stdin), daemon=True)
            )
        timer = threading.Timer(inv.timeout, self._on_deadline, args=(proc,))
        timer.daemon = True
        for t in threads:
            t.start()
        timer.start()
        try:
            yield from self._read(proc)
            if proc.poll() is not None:
                _signal_group(proc.pid, signal.SIGKILL)  # what it left running
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:  # the caller stopped early, or an error
                self._kill(proc)
                proc.wait()
            for t in threads:
                t.join(GRACE_S)
            proc.stdout.close()
            if not threads[0].is_alive():
                proc.stderr.close()
            # else a child in a session of its own still holds stderr: closing it under the
            # pump thread's blocked read would wait for that child; the daemon thread ends
            # (and the pipe with it) when the child does.
            self.returncode = proc.returncode
            self.duration = time.monotonic() - self.started


class AsyncRun(_Outcome):
    """A process run on the event loop; iterate :meth:`lines` once."""

    def __init__(self, inv: Invocation) -> None:
        super().__init__()
        self.inv = inv

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        if not _POSIX:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            return
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), GRACE_S)
        _signal_group(proc.pid, signal.SIGKILL)

    async def _pump_stderr(self, stream: asyncio.StreamReader) -> None:
        while data := await stream.read(65536):
            self.add_stderr(data)

    async def _feed(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
            writer.close()

    async def lines(self) -> AsyncIterator[bytes]:
        inv = self.inv
        proc = await asyncio.create_subprocess_exec(
            *inv.argv,
            stdin=subprocess.PIPE if inv.stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=inv.cwd,
            env=inv.env,
            limit=LINE_LIMIT,
            **_spawn_options(),
        )
        assert proc.stdout is not None and proc.stderr is not None
        tasks = [asyncio.ensure_future(self._pump_stderr(proc.stderr))]
        if inv.stdin is not None:
            assert proc.stdin is not None
            tasks.append(asyncio.ensure_future(self._feed(proc.stdin, inv.stdin)))
        deadline = self.started + inv.timeout
        exited: float | None = None
        read: asyncio.Future[bytes] | None = None
        try:
            while True:
                # proc.returncode, not proc.wait(): wait() also waits for the pipes, which a
                # child the agent left behind may hold open.
                now = time.monotonic()
                if exited is None and proc.returncode is not None:
                    exited = now
                if now >= deadline:
                    self.timed_out = True
                    await self._kill(proc)
                    break
                if exited is not None and now - exited > DRAIN_S:
                    break  # a child still holds the pipe; the agent's answer is in
                if read is None:
                    read = asyncio.ensure_future(proc.stdout.readline())
                done, _ = await asyncio.wait({read}, timeout=min(deadline - now, _POLL_S))
                if not done:
                    continue
                line, read = read.result(), None
                if not line:
                    break
                yield line
            if proc.returncode is not None:
                _signal_group(proc.pid, signal.SIGKILL)  # what it left running
        finally:
            if read is not None and not read.done():
                read.cancel()
            if proc.returncode is None:  # the caller stopped early, or an error
                await self._kill(proc)
            # A child out of the group's reach may still hold the pipes: close our ends
            # (asyncio has no public way; otherwise the transport warns when collected).
            transport = getattr(proc, "_transport", None)
            if transport is not None:
                transport.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), GRACE_S)
            for task in tasks:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(task, GRACE_S)
            self.returncode = proc.returncode
            self.duration = time.monotonic() - self.started
