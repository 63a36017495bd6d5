"""``python -m bench._ipython_probe [EXTENSION]``: start IPython, maybe ``%load_ext``.

Run once per sample in a fresh process by the import section. Prints one JSON line:
the shell's start time, the ``%load_ext`` time, whether the extension is loaded, and
how many modules the process holds.
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
    ext = argv[0] if argv else ""
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
    print(
        json.dumps(
            {
                "shell_s": t1 - t0,
                "load_s": t2 - t1,
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
