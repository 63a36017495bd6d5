"""Profiles for missed targets: py-spy samples of the same workload, boiled down.

A worker (or any command) runs under ``py-spy record --format raw``; the collapsed
stacks are summarised three ways: CPU by library (the leaf frame's package), the
functions with the most own time, and the share of samples inside chosen functions
(inclusive). ``%load_ext`` time is profiled with ``python -X importtime`` instead:
which modules the extension pulls in that bare IPython does not.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._context import Context
from bench._driver import WorkerError, WorkerProcess
from bench._report import Table

__all__ = ["Profile", "import_profile", "pyspy", "pyspy_command", "pyspy_worker"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def pyspy() -> str | None:
    """The py-spy executable next to this interpreter, else on PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def _short(path: str) -> str:
    """py-spy already names files relative to their ``sys.path`` entry; keep that."""
    if "site-packages/" in path:
        return path.rsplit("site-packages/", 1)[1]
    if path.startswith("/"):
        return "/".join(path.rsplit("/", 2)[-2:])
    return path


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{m['func']} ({_short(m['file'])})"


def _library(frame: str) -> str:
    """``llmnb``, ``httpcore``, ``stdlib: asyncio``… from the leaf frame's file."""
    m = _FRAME.match(frame.strip())
    path = _short(m["file"]) if m else frame
    top = path.split("/", 1)[0].removesuffix(".py")
    if top.startswith("<frozen") or top in sys.stdlib_module_names:
        return f"stdlib: {top.strip('<>').removeprefix('frozen ')}"
    return top or "other"


@dataclass
class Profile:
    """Collapsed py-spy samples of one workload."""

    title: str
    total: int = 0
    own: collections.Counter[str] = field(default_factory=collections.Counter)
    inclusive: collections.Counter[str] = field(default_factory=collections.Counter)
    libraries: collections.Counter[str] = field(default_factory=collections.Counter)
    error: str | None = None

    @classmethod
    def read(
        cls, title: str, path: Path, within: str | None = None, without: str | None = None
    ) -> Profile:
        """Read py-spy's raw output; with ``within``, keep only the stacks that pass
        through a frame matching it (the measured work, not start-up imports or other
        threads), and with ``without`` drop those passing through one matching that
        (warm-up: first-use imports and connections)."""
        p = cls(title)
        rx = re.compile(within) if within else None
        skip = re.compile(without) if without else None
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [
                f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))
            ]
            if not frames or (rx is not None and not any(rx.search(f) for f in frames)):
                continue
            if skip is not None and any(skip.search(f) for f in frames):
                continue
            p.total += n
            p.own[_name(frames[-1])] += n
            p.libraries[_library(frames[-1])] += n
            for name in {_name(f) for f in frames}:
                p.inclusive[name] += n
        return p

    def share(self, pattern: str) -> float:
        """Largest inclusive share among functions whose name matches ``pattern``."""
        rx = re.compile(pattern)
        best = max((v for k, v in self.inclusive.items() if rx.search(k)), default=0)
        return best / self.total if self.total else float("nan")

    def tables(self, focus: str | None = None, top: int = 12) -> list[tuple[str, Table]]:
        if self.error or not self.total:
            return []
        lib = Table(["library (leaf frame)", "share of CPU samples"])
        for name, n in self.libraries.most_common(8):
            lib.add(name, f"{n / self.total:.1%}")
        own = Table(["function (own time)", "share"])
        for name, n in self.own.most_common(top):
            own.add(name, f"{n / self.total:.1%}")
        out = [
            (f"{self.title}: CPU by library ({self.total:,} samples)", lib),
            (f"{self.title}: top functions by own time", own),
        ]
        if focus:
            rx = re.compile(focus)
            inc = Table(["function (inclusive: it and what it calls)", "share"])
            picked = [(k, v) for k, v in self.inclusive.most_common() if rx.search(k)][:top]
            for name, n in picked:
                inc.add(name, f"{n / self.total:.1%}")
            out.append((f"{self.title}: time inside chosen functions", inc))
        return out


def pyspy_worker(
    ctx: Context, key: str, commands: list[dict[str, Any]], title: str, rate: int = 400
) -> Profile:
    """Run ``commands`` in a fresh worker for ``key`` under py-spy; only the samples
    taken while a command ran count, those of ``"warm": true`` commands excepted."""
    exe = pyspy()
    if exe is None:
        return Profile(title, error="py-spy is not installed (bench/requirements.txt has it)")
    out = (
        ctx.workspace.path / f"profile-{key}-{len(list(ctx.workspace.path.glob('profile-*')))}.txt"
    )
    prefix = [exe, "record", "--rate", str(rate), "--format", "raw", "--output", str(out), "--"]
    try:
        worker = WorkerProcess(key, ctx.base_url, ctx.env, ctx.workspace.path, prefix=prefix)
    except WorkerError as exc:
        return Profile(title, error=f"could not start the profiled worker: {exc}")
    try:
        for cmd in commands:
            worker.request(cmd, timeout=600)
    except WorkerError as exc:
        worker.kill()
        return Profile(title, error=str(exc))
    worker.close(timeout=60)
    if not out.exists():
        return Profile(title, error="py-spy wrote no profile (is ptrace allowed here?)")
    return Profile.read(
        title, out, within=r"^Worker\.(calls|conc|stream) ", without=r"^Worker\.warmup "
    )


def pyspy_command(
    ctx: Context, args: list[str], title: str, within: str | None = None, rate: int = 400
) -> Profile:
    """Run ``python *args`` under py-spy (``within``: see :meth:`Profile.read`)."""
    exe = pyspy()
    if exe is None:
        return Profile(title, error="py-spy is not installed (bench/requirements.txt has it)")
    out = ctx.workspace.path / f"profile-cmd-{len(list(ctx.workspace.path.glob('profile-*')))}.txt"
    cmd = [
        exe,
        "record",
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--output",
        str(out),
        "--",
        sys.executable,
        *args,
    ]
    try:
        subprocess.run(
            cmd,
            capture_output=True,
            env=ctx.workspace.env(),
            cwd=ctx.workspace.path,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Profile(title, error="the profiled command did not finish within 600 s")
    if not out.exists():
        return Profile(title, error="py-spy wrote no profile (is ptrace allowed here?)")
    return Profile.read(title, out, within)


def _importtime(ctx: Context, ext: str | None) -> dict[str, tuple[int, int]]:
    args = [sys.executable, "-X", "importtime", "-m", "bench._ipython_probe"]
    if ext:
        args.append(ext)
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        env=ctx.env,
        cwd=ctx.workspace.path,
        timeout=120,
        check=False,
    )
    out: dict[str, tuple[int, int]] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3:
            continue
        out[parts[2].strip()] = (int(parts[0]), int(parts[1]))
    return out


def import_profile(ctx: Context, ext: str, top: int = 12) -> tuple[str, Table] | None:
    """Modules ``%load_ext ext`` imports that bare IPython does not, by own import time."""
    bare = _importtime(ctx, None)
    loaded = _importtime(ctx, ext)
    extra = {k: v for k, v in loaded.items() if k not in bare}
    if not extra:
        return None
    t = Table(["module", "own µs", "cumulative µs"])
    for name, (own, cum) in sorted(extra.items(), key=lambda kv: -kv[1][0])[:top]:
        t.add(name, own, cum)
    total = sum(v[0] for v in extra.values())
    caption = (
        f"`-X importtime`: `%load_ext {ext}` imports {len(extra)} modules bare IPython does "
        f"not, {total / 1000:.0f} ms of own import time; the largest"
    )
    return caption, t
