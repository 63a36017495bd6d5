"""Run the example notebooks headless and save them with their outputs.

    python notebooks/execute_notebooks.py                  # all five, saved in place
    python notebooks/execute_notebooks.py 01 03            # some of them (by prefix)
    python notebooks/execute_notebooks.py --out DIR 01     # save copies in DIR instead

Saving in place is how the outputs in the repository are refreshed after a change:
``pytest --nbval notebooks/`` then compares a fresh run against them. Every notebook runs
in a fresh kernel of *this* Python, from ``notebooks/`` (so ``config/settings.yaml`` is
found by walking up), on the offline profiles: the developer's ``LLM_*`` / ``LLMNB_*``
choices and API keys are left out of the kernel's environment, as in the tests.

Needs nbclient and ipykernel (``pip install -e ".[dev]"`` has them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NOTEBOOKS = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))

_SCRUB_PREFIXES = ("LLM_", "LLMNB_")
_SCRUB_SUFFIXES = ("_API_KEY", "_API_KEYS")
_SCRUB_NAMES = ("MPLBACKEND", "IPYTHONDIR", "PYTHONSTARTUP")


def kernel_env(ipython_dir: str) -> dict[str, str]:
    """This environment without llmnb choices or keys, with an empty IPython profile."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_SCRUB_PREFIXES)
        and not k.endswith(_SCRUB_SUFFIXES)
        and k not in _SCRUB_NAMES
    }
    env["IPYTHONDIR"] = ipython_dir
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # debugpy's frozen-modules warning
    return env


def _kernel_manager() -> Any:
    """A kernel manager whose ``python3`` is always this interpreter's ipykernel."""
    import ipykernel.kernelspec
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import KernelManager

    class ThisPython(KernelSpecManager):  # type: ignore[misc]
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return KernelSpec(
                resource_dir=ipykernel.kernelspec.RESOURCES,
                **ipykernel.kernelspec.get_kernel_dict(),
            )

    return KernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())


def execute(path: Path, out: Path, timeout: int = 180) -> Any:
    """Execute the notebook at ``path`` (cwd: its folder) and write it to ``out``."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="llmnb-ipython-") as ipython_dir:
        client = NotebookClient(
            nb,
            km=_kernel_manager(),
            timeout=timeout,
            resources={"metadata": {"path": str(path.parent)}},
            record_timing=False,  # no per-cell timestamps: they would churn every diff
            # the kernel's "running over TCP without encryption" notice is loopback noise
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
            store_widget_state=True,  # nbviewer can then draw the widgets
        )
        client.execute(env=kernel_env(ipython_dir))
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return nb


def select(prefixes: list[str]) -> list[Path]:
    if not prefixes:
        return NOTEBOOKS
    chosen = [p for p in NOTEBOOKS if any(p.name.startswith(x) for x in prefixes)]
    missing = [x for x in prefixes if not any(p.name.startswith(x) for p in NOTEBOOKS)]
    if missing:
        names = ", ".join(p.name for p in NOTEBOOKS)
        raise SystemExit(f"no notebook starts with {', '.join(missing)} (there are: {names})")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="name prefixes, e.g. 01 03 (default: all)")
    parser.add_argument("--out", type=Path, help="write executed copies here (default: in place)")
    args = parser.parse_args(argv)
    for path in select(args.notebooks):
        out = (args.out / path.name) if args.out else path
        print(f"executing {path.name} …", flush=True)
        execute(path, out)
        print(f"  saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
