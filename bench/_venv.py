"""``bench/.venv``: a virtualenv with llmnb (editable) and the peers it is compared with.

Standard library only: this runs under whatever ``python3`` started the command. The
venv is (re)built when it is missing or when ``bench/requirements.txt`` or
``pyproject.toml`` changed since it was built (a stamp file holds their hash). If the
peers cannot all be installed together, each is tried alone, so one that fails to
install is reported by the run as "not installed" rather than stopping it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

__all__ = ["VENV", "ensure_venv", "in_venv", "venv_python"]

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "bench" / ".venv"
REQUIREMENTS = ROOT / "bench" / "requirements.txt"
_STAMP = VENV / ".llmnb-bench-stamp"
_LOG = VENV / "install.log"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def in_venv() -> bool:
    """True when this interpreter is bench/.venv's."""
    try:
        return Path(sys.prefix).resolve() == VENV.resolve()
    except OSError:
        return False


def _fingerprint() -> str:
    h = hashlib.sha256()
    for path in (REQUIREMENTS, ROOT / "pyproject.toml"):
        h.update(path.read_bytes() if path.exists() else b"")
    return h.hexdigest()


def _peers() -> list[str]:
    lines = REQUIREMENTS.read_text().splitlines() if REQUIREMENTS.exists() else []
    return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]


def _pip(args: list[str], log: object) -> bool:
    cmd = [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", *args]
    print("$ " + " ".join(cmd), file=log, flush=True)  # type: ignore[call-overload]
    return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode == 0  # type: ignore[arg-type]


def ensure_venv() -> list[str]:
    """Create or refresh bench/.venv; returns the peers that could not be installed.

    Raises ``RuntimeError`` if llmnb itself cannot be installed.
    """
    fingerprint = _fingerprint()
    if venv_python().exists() and _STAMP.exists() and _STAMP.read_text() == fingerprint:
        return []
    if not venv_python().exists():
        print("bench: creating bench/.venv (first run: a few minutes)…", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    else:
        print("bench: requirements changed; updating bench/.venv…", file=sys.stderr)
    failed: list[str] = []
    with _LOG.open("a") as log:
        if not _pip(["-e", str(ROOT)], log):
            raise RuntimeError(f"could not install llmnb into {VENV}; see {_LOG}")
        peers = _peers()
        if peers and not _pip(peers, log):
            failed = [p for p in peers if not _pip([p], log)]
    if failed:
        print(f"bench: could not install {', '.join(failed)} (see {_LOG})", file=sys.stderr)
    else:
        _STAMP.write_text(fingerprint)
    return failed
