"""The runner's side of a contender worker: start it, send commands, stop it.

Every read has a deadline, so a contender that hangs costs at most that long and is
then reported as failed; the worker also exits on its own when its stdin closes.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["WorkerError", "WorkerProcess"]


class WorkerError(RuntimeError):
    """A worker failed to start, answered an error, or missed its deadline."""


class WorkerProcess:
    """``python -m bench._worker KEY BASE_URL`` with JSON lines over pipes.

    ``prefix`` runs the worker under another command (``py-spy record ... --``).
    """

    def __init__(
        self,
        key: str,
        base_url: str,
        env: dict[str, str],
        cwd: Path,
        prefix: list[str] | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        self.key = key
        cmd = [*(prefix or []), sys.executable, "-m", "bench._worker", key, base_url]
        # stderr to a file: a chatty library must not fill a pipe nobody reads.
        self.stderr_path = cwd / f"{key}.stderr.txt"
        with self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
                cwd=cwd,
            )
        hello = self._read(start_timeout)
        if not hello.get("ok"):
            self.close()
            raise WorkerError(f"{key}: could not start: {hello.get('error')}")
        self.setup_s = float(hello.get("setup_s", float("nan")))

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise WorkerError(f"{self.key}: no answer within {timeout:.0f} s")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                continue
            line = self.proc.stdout.readline()
            if not line:
                err = self._stderr_tail()
                raise WorkerError(f"{self.key}: the worker exited ({err})")
            try:
                return dict(json.loads(line))
            except ValueError:
                continue  # a library printed to stdout: skip the line

    def _stderr_tail(self) -> str:
        self.kill()
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            text = ""
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        return lines[-1][:300] if lines else f"exit status {self.proc.returncode}"

    def request(self, cmd: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
        """Send one command and return the answer; ``WorkerError`` on failure."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise WorkerError(f"{self.key}: the worker is gone ({exc})") from None
        answer = self._read(timeout)
        if not answer.get("ok"):
            raise WorkerError(f"{self.key}: {answer.get('error')}")
        return answer

    def close(self, timeout: float = 30.0) -> None:
        """Ask the worker to quit (it closes its clients), then wait for it."""
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
