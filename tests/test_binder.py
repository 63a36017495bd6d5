"""The Binder demo: a fresh environment built from ``binder/`` alone runs the notebooks.

This does what repo2docker (mybinder.org) does, without Docker: a new virtual
environment, ``pip install -r binder/requirements.txt`` from the repository root,
``binder/postBuild`` — then ``jupyter nbconvert --execute`` runs every notebook with
that environment's own Jupyter and kernel. The executed notebooks must have no errors
and the same text outputs as the saved ones (after ``notebooks/sanitize.cfg``).

It works on a copy of the repository, so nothing is built or written in the checkout.
pip's cache makes the install fast after the first run (~1 min); the first run
downloads JupyterLab and friends from PyPI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from browser_support import ROOT, scrubbed_env

pytestmark = pytest.mark.slow

_IGNORED_DIRS = {
    ".git",
    ".venv",
    "venv",
    ".llmnb",
    "artifacts",
    "build",
    "dist",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    "node_modules",
}


def _copy_repository(dst: Path) -> Path:
    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in _IGNORED_DIRS or n.endswith((".egg-info", ".pyc"))}

    shutil.copytree(ROOT, dst, ignore=ignore)
    return dst


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited with {proc.returncode}:\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return proc.stdout + proc.stderr


def _sanitizer() -> Any:
    text = (ROOT / "notebooks" / "sanitize.cfg").read_text()
    patterns = re.findall(r"^regex: (.*)$\n^replace: (.*)$", text, flags=re.M)
    assert patterns, "notebooks/sanitize.cfg has no regex/replace pairs"

    def sanitize(s: str) -> str:
        for regex, replace in patterns:
            s = re.sub(regex, replace, s)
        return s

    return sanitize


def _ignored(cell: dict[str, Any]) -> bool:
    source = "".join(cell["source"])
    tags = cell.get("metadata", {}).get("tags", [])
    return "nbval-ignore-output" in tags or any(
        line.strip().lstrip("#").strip() == "NBVAL_IGNORE_OUTPUT" for line in source.splitlines()
    )


def _texts(cell: dict[str, Any], sanitize: Any) -> list[str]:
    """The text a reader sees of a cell's outputs: streams and text/plain, sanitized."""
    out: list[str] = []
    for o in cell.get("outputs", []):
        if o["output_type"] == "stream":
            out.append(sanitize("".join(o["text"])))
        elif o["output_type"] in ("execute_result", "display_data"):
            plain = o.get("data", {}).get("text/plain")
            if plain is not None:
                out.append(sanitize("".join(plain)))
    return ["".join(out)]  # streams may be split differently between runs


def test_a_fresh_environment_from_binder_runs_the_notebooks(tmp_path: Path) -> None:
    started = time.monotonic()
    repo = _copy_repository(tmp_path / "repo")
    venv = tmp_path / "venv"
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    home = tmp_path / "home"
    for d in ("config", "data", "runtime", "ipython"):
        (home / d).mkdir(parents=True)
    env = scrubbed_env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    env.pop("PYTHONPATH", None)
    env.pop("NB_PYTHON_PREFIX", None)

    _run([sys.executable, "-m", "venv", str(venv)], repo, env, 120)
    # As repo2docker does: from the repository root, so `.` in the file is llmnb.
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q"]
    _run([*pip, "-r", "binder/requirements.txt"], repo, env, 900)
    installed = time.monotonic()
    log = _run(["bash", "binder/postBuild"], repo, env, 300)
    assert "postBuild: llmnb" in log and "ready" in log, log

    overrides = venv / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings = json.loads(overrides.read_text())
    notification = settings["@jupyterlab/apputils-extension:notification"]
    assert notification == {"fetchNews": "false", "checkForUpdates": False}

    out_dir = tmp_path / "executed"
    notebooks = sorted((repo / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(notebooks) == 7, notebooks
    _run(
        [
            str(bin_dir / "jupyter"),
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--ExecutePreprocessor.timeout=180",
            "--ExecutePreprocessor.kernel_name=python3",
            "--output-dir",
            str(out_dir),
            *[str(p) for p in notebooks],
        ],
        repo / "notebooks",
        env,
        600,
    )
    executed_at = time.monotonic()

    sanitize = _sanitizer()
    for saved_path in notebooks:
        saved = json.loads(saved_path.read_text())
        fresh = json.loads((out_dir / saved_path.name).read_text())
        assert len(fresh["cells"]) == len(saved["cells"])
        for i, (old, new) in enumerate(zip(saved["cells"], fresh["cells"], strict=True)):
            if new["cell_type"] != "code":
                continue
            errors = [o for o in new["outputs"] if o["output_type"] == "error"]
            assert not errors, f"{saved_path.name} cell {i} raised: {errors[0]['evalue']}"
            if _ignored(old):
                continue
            assert _texts(new, sanitize) == _texts(old, sanitize), (
                f"{saved_path.name} cell {i} shows something else in the Binder environment"
            )

    # The checkout is untouched: everything happened in the copy.
    assert not (ROOT / "binder" / "build").exists()
    print(
        f"binder env: install {installed - started:.0f} s, postBuild + notebooks "
        f"{executed_at - installed:.0f} s"
    )
