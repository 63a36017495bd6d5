"""One contender in its own process, driven by JSON lines on stdin/stdout.

``python -m bench._worker KEY BASE_URL`` builds the contender's client once, then
answers commands until ``quit`` or end of input (so it stops by itself when the runner
goes away). A process per contender keeps each library's imports, caches and garbage
out of the others' timings; the runner alternates between workers round by round.

Commands (one JSON object per line) and answers::

    {"op": "calls", "n": 200}            -> {"ns": [per-call nanoseconds, ...], "cpu": s}
    {"op": "conc", "n": 1000, "c": 64}   -> {"s": wall seconds, "cpu": CPU seconds}
    {"op": "stream", "prompt": "..."}    -> {"ttft": s, "total": s, "pieces": k}
    {"op": "frame", "n": 10000, "c": 16, "how": "accessor"|"gather"}
                                         -> {"s": wall seconds, "cpu": CPU seconds}
    {"op": "info"}                       -> {"store": ..., "sniffio_imports": ...}
    {"op": "quit"}

``"warm": true`` on a command marks it as warm-up (profiles leave it out).

Every answer has ``"ok"``; a failure answers ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.abc
import json
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


class HideModule(importlib.abc.MetaPathFinder):
    """Make ``import <name>`` fail as it does when the package is not installed.

    It first lets every other finder search for a module that does not exist, so a
    failed import costs what it costs on a machine without the package (a scan of
    ``sys.path``), then raises ``ModuleNotFoundError``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.attempts = 0

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name and not fullname.startswith(self.name + "."):
            return None
        self.attempts += 1
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                finder.find_spec(f"_{fullname}_absent", path)
        raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


class Worker:
    def __init__(self, key: str, base_url: str) -> None:
        self.key = key
        self.hidden: HideModule | None = None
        if key.endswith("-nosniffio"):
            self.hidden = HideModule("sniffio")
            sys.modules.pop("sniffio", None)
            sys.meta_path.insert(0, self.hidden)
        from bench.contenders import make_adapter

        self.loop = asyncio.new_event_loop()
        self.adapter = make_adapter(key, base_url)

    def calls(self, n: int) -> dict[str, Any]:
        call = self.adapter.call
        clock = time.perf_counter_ns
        out: list[int] = []
        cpu0 = time.process_time()
        for _ in range(n):
            t0 = clock()
            call()
            out.append(clock() - t0)
        return {"ns": out, "cpu": time.process_time() - cpu0}

    def conc(self, n: int, c: int) -> dict[str, Any]:
        acall = self.adapter.acall
        left = n

        async def lane() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await acall()

        async def run() -> None:
            await asyncio.gather(*(lane() for _ in range(min(c, n))))

        cpu0, t0 = time.process_time(), time.perf_counter()
        self.loop.run_until_complete(run())
        return {"s": time.perf_counter() - t0, "cpu": time.process_time() - cpu0}

    def stream(self, prompt: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        ttft = None
        pieces = 0
        for _piece in self.adapter.stream(prompt):
            if ttft is None:
                ttft = time.perf_counter() - t0
            pieces += 1
        return {"ttft": ttft, "total": time.perf_counter() - t0, "pieces": pieces}

    def frame(self, n: int, c: int, how: str) -> dict[str, Any]:
        """llmnb only: ``df.llm.complete`` over ``n`` rows, or the bare floor it is
        compared with — a gather of ``acomplete`` with ``c`` in flight."""
        import pandas as pd

        import llmnb.batch  # noqa: F401  (registers the .llm accessor)

        client = self.adapter.client  # type: ignore[attr-defined]
        prompts = [f"Say hi to row {i}." for i in range(n)]
        cpu0, t0 = time.process_time(), time.perf_counter()
        if how == "accessor":
            df = pd.DataFrame({"q": prompts})
            out = df.llm.complete("{q}", client=client, concurrency=c, progress=False)
            failed = int(out["output_error"].notna().sum())
        else:
            gate = asyncio.Semaphore(c)

            async def one(prompt: str) -> str:
                async with gate:
                    return (await client.acomplete(prompt)).content

            async def run() -> list[str]:
                return await asyncio.gather(*(one(p) for p in prompts))

            failed = n - len(self.loop.run_until_complete(run()))
        return {"s": time.perf_counter() - t0, "cpu": time.process_time() - cpu0, "failed": failed}

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sniffio_imports": None if self.hidden is None else self.hidden.attempts,
            "sniffio_loaded": "sniffio" in sys.modules,
        }
        if self.key.startswith("llmnb"):
            from llmnb.usage import get_tracker

            tracker = get_tracker()
            store = tracker.store
            out["store"] = type(store).__name__
            out["store_rows"] = len(tracker)
            flush = getattr(store, "flush", None)
            out["store_flushed"] = bool(flush()) if callable(flush) else None
        return out

    def close(self) -> None:
        self.loop.run_until_complete(self.adapter.aclose())
        self.loop.close()

    def warmup(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """A command run only to warm up (first-use imports, connections): its own frame
        lets a profile leave it out."""
        return self.handle({**cmd, "warm": False})

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        if cmd.get("warm"):
            return self.warmup(cmd)
        op = cmd["op"]
        if op == "calls":
            return self.calls(int(cmd["n"]))
        if op == "conc":
            return self.conc(int(cmd["n"]), int(cmd["c"]))
        if op == "stream":
            return self.stream(str(cmd["prompt"]))
        if op == "frame":
            return self.frame(int(cmd["n"]), int(cmd["c"]), str(cmd["how"]))
        if op == "info":
            return self.info()
        raise ValueError(f"unknown op {op!r}")


def _send(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str]) -> int:
    key, base_url = argv[0], argv[1]
    try:
        t0 = time.perf_counter()
        worker = Worker(key, base_url)
        _send({"ok": True, "ready": True, "setup_s": time.perf_counter() - t0})
    except Exception as exc:
        _send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("op") == "quit":
            break
        try:
            _send({"ok": True, **worker.handle(cmd)})
        except Exception as exc:
            detail = traceback.format_exc(limit=3).strip().splitlines()[-1]
            _send({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500], "at": detail})
    # A client that cannot close cleanly must not hide the results already sent.
    with contextlib.suppress(Exception):
        worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
