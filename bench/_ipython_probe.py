"""``python -m bench._ipython_probe [EXTENSION] [--cell PROFILE | --raw URL]``.

Start IPython, maybe ``%load_ext EXTENSION``; then, with ``--cell``, run one ``%%llm -p
PROFILE`` cell (the first answer in a fresh kernel), or with ``--raw``, import httpx2 and
make one raw POST to the loopback server (the floor of that first answer).

Run once per sample in a fresh process by the import section. Prints one JSON line:
the shell's start time, the ``%load_ext`` time, the first answer's time, whether the
extension is loaded, and how many modules the process holds.
"""

from __future__ import annotations

import json
import sys
import time

__all__ = ["main"]


def _peak_rss_kib() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def main(argv: list[str]) -> int:
    t0 = time.perf_counter()
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    t1 = time.perf_counter()
    args = list(argv)
    cell = raw = ""
    if "--cell" in args:
        i = args.index("--cell")
        cell = args[i + 1]
        del args[i : i + 2]
    if "--raw" in args:
        i = args.index("--raw")
        raw = args[i + 1]
        del args[i : i + 2]
    ext = args[0] if args else ""
    error = None
    if ext:
        try:
            shell.run_line_magic("load_ext", ext)
        except Exception as exc:  # reported, not raised: the runner shows it
            error = f"{type(exc).__name__}: {exc}"
    t2 = time.perf_counter()
    loaded = not ext or ext in shell.extension_manager.loaded
    if ext and not loaded and error is None:
        error = f"{ext} has no load_ipython_extension()"
    if cell and error is None:
        result = shell.run_cell(f"%%llm -p {cell}\nSay hi.", store_history=True)
        if not result.success:
            error = f"%%llm failed: {result.error_in_exec or result.error_before_exec!r}"
            loaded = False
    if raw and error is None:
        shell.run_cell(
            "import httpx2, json\n"
            f"_r = httpx2.post({raw + '/chat/completions'!r}, json={{'model': 'fake-model', "
            "'messages': [{'role': 'user', 'content': 'Say hi.'}]})\n"
            "_r.raise_for_status(); json.loads(_r.content)\n",
            store_history=True,
        )
    t3 = time.perf_counter()
    print(
        json.dumps(
            {
                "shell_s": t1 - t0,
                "load_s": t2 - t1,
                "first_s": t3 - t2,
                "loaded": loaded,
                "error": error,
                "modules": len(sys.modules),
                "hwm_kib": _peak_rss_kib(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
