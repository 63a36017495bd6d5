"""Run sizes, and the state the sections share: the server, the workspace, the workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench._driver import WorkerError, WorkerProcess
from bench._workspace import Workspace
from bench.contenders import CONTENDERS, DIAGNOSTICS

__all__ = ["SIZES", "Context", "Size"]


@dataclass(frozen=True)
class Size:
    """How much work each section does. ``full`` is issue #8's counts."""

    name: str
    import_samples: int  # rounds: each samples every light variant and one slow peer
    calls: int  # sequential completions per contender
    call_rounds: int
    conc_requests: int  # async requests per contender
    conc_rounds: int
    diag_requests: int  # per diagnostic variant of the concurrency section
    stream_chunks: int
    stream_samples: int
    ttft_samples: int  # short streams, for time to first token
    tracker_rows: int  # rows for the DataFrame and memory measures
    sqlite_rows: int
    ceiling_seq: int
    ceiling_conc: int
    profile_calls: int  # work done under the profiler when a target is missed
    profile_conc: int
    profile: bool
    concurrency: int = 64
    frame_rows: int = 200  # rows for df.llm.complete (§7)
    frame_rounds: int = 1
    backlog_s: float = 0.2  # seconds of record() at 100k rows/s into the SQLite store
    # Seconds a section may spend on its measured rounds before it stops at the next
    # round boundary (None: no limit). Keeps `full` well under 10 minutes on a busy
    # machine; the results then say how many rounds ran.
    budget_s: dict[str, float] | None = None

    def budget(self, section: str) -> float | None:
        return None if self.budget_s is None else self.budget_s.get(section)


SIZES: dict[str, Size] = {
    "tiny": Size(
        name="tiny",
        import_samples=3,
        calls=20,
        call_rounds=2,
        conc_requests=128,
        conc_rounds=2,
        diag_requests=128,
        stream_chunks=200,
        stream_samples=1,
        ttft_samples=3,
        tracker_rows=10_000,
        sqlite_rows=5_000,
        ceiling_seq=50,
        ceiling_conc=256,
        profile_calls=0,
        profile_conc=0,
        profile=False,
    ),
    "full": Size(
        name="full",
        import_samples=12,
        calls=2_000,
        call_rounds=20,
        conc_requests=5_000,
        conc_rounds=10,
        diag_requests=1_500,
        stream_chunks=1_000,
        stream_samples=9,
        ttft_samples=30,
        tracker_rows=1_000_000,
        sqlite_rows=300_000,
        ceiling_seq=2_000,
        ceiling_conc=5_000,
        profile_calls=1_500,
        profile_conc=1_500,
        profile=True,
        frame_rows=10_000,
        frame_rounds=3,
        backlog_s=2.0,
        budget_s={
            "frame": 60,
            "import": 45,
            "calls": 40,
            "conc": 90,
            "diag": 40,
            "stream": 35,
            "ttft": 10,
        },
    ),
}


@dataclass
class Context:
    """Shared by the sections of one run. Workers are started on first use and kept
    (a contender's client lives as long as a notebook kernel's would)."""

    size: Size
    workspace: Workspace
    base_url: str
    port: int
    out_dir: Path
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return self.workspace.env(self.base_url)

    def worker(self, key: str) -> WorkerProcess | None:
        """The running worker for ``key``; None (with the reason in ``unavailable``)
        when its package is missing or it failed."""
        if key in self.workers:
            return self.workers[key]
        if key in self.unavailable:
            return None
        contender = CONTENDERS.get(key) or DIAGNOSTICS[key]
        if not contender.installed:
            self.unavailable[key] = "not installed"
            return None
        env = self.env
        if key.endswith("-memory"):
            env["LLMNB_USAGE_STORE"] = "memory"
        try:
            self.workers[key] = WorkerProcess(key, self.base_url, env, self.workspace.path)
        except WorkerError as exc:
            self.unavailable[key] = f"failed to start: {exc}"
            return None
        return self.workers[key]

    def fail(self, key: str, reason: str) -> None:
        """Stop using a worker that failed mid-run."""
        worker = self.workers.pop(key, None)
        if worker is not None:
            worker.kill()
        self.unavailable[key] = f"failed: {reason}"

    def status(self, key: str) -> str:
        return self.unavailable.get(key, "ok")

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()
        self.workers.clear()
