"""``import llmnb`` loads no compat package; each compat package loads no HTTP, SDK or
model library until a call needs one (checked in a fresh interpreter each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("httpx", "pydantic", "yaml", "pandas", "transformers", "torch", "copilot", "IPython")


def loaded_after(statement: str) -> list[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return list(json.loads(out.stdout))


def test_import_llmnb_loads_no_compat_package():
    assert [m for m in loaded_after("import llmnb") if m.startswith("llmnb.compat")] == []


@pytest.mark.parametrize(
    "package",
    [
        "llmnb.compat.llm_connect",
        "llmnb.compat.llm_module",
        "llmnb.compat.aitor",
        "llmnb.compat.llm_router",
    ],
)
def test_compat_package_import_is_light(package):
    modules = loaded_after(f"import {package}")
    assert package in modules
    assert [m for m in modules if m.split(".")[0] in HEAVY] == []
