"""Run the quickstart notebook headless on the offline profile and show what it printed.

    python notebooks/run_quickstart.py                 # → .llmnb/notebooks/01_quickstart.ipynb
    python notebooks/run_quickstart.py --out DIR

The notebook runs top to bottom in a fresh kernel of this Python, from ``notebooks/``,
on the ``demo`` profile of ``config/settings.yaml`` (no key, no network). Each code cell
and its text output are printed, then the path of the executed notebook — open it in
JupyterLab, or with ``jupyter nbconvert --to html`` for a browser. The repository's copy
of the notebook is not modified.

Needs nbclient and ipykernel besides llmnb (``pip install -e ".[dev]"`` has them).
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
QUICKSTART = HERE / "01_quickstart.ipynb"
DEFAULT_OUT = ROOT / ".llmnb" / "notebooks"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _text_of(output: Any) -> str:
    """The plain-text form of one notebook output (what a terminal can show)."""
    kind = output.get("output_type")
    if kind == "stream":
        return str(output.get("text", ""))
    if kind == "error":
        return _ANSI.sub("", "\n".join(output.get("traceback", [])))
    data = output.get("data", {})
    if "application/vnd.jupyter.widget-view+json" in data:
        return "[an interactive widget: open the notebook in JupyterLab]"
    if "image/png" in data:
        return "[a plot: open the notebook to see it]"
    return str(data.get("text/plain", ""))


def render(nb: Any) -> str:
    """Each code cell as ``In [n]:`` with its source, then its outputs, indented."""
    parts: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        parts.append(f"In [{cell.execution_count}]:\n{textwrap.indent(cell.source, '    ')}")
        for output in cell.outputs:
            text = _text_of(output).rstrip("\n")
            if text:
                parts.append(textwrap.indent(text, "  │ ", lambda _line: True))
        parts.append("")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder for the executed copy ({DEFAULT_OUT})",
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    from execute_notebooks import execute

    out = args.out.resolve() / QUICKSTART.name
    print(f"Running {QUICKSTART.relative_to(ROOT)} on the offline demo profile …\n", flush=True)
    nb = execute(QUICKSTART, out)
    print(render(nb))
    print(f"Executed notebook: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
