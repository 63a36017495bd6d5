"""The README is executable documentation: its commands and examples must stay true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import llmnb

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_has_exactly_two_setup_commands():
    assert len(_blocks("bash")) == 2


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = _blocks("bash")[1].strip()
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_readme_python_examples_run(index, tracker, capsys, monkeypatch):
    # Run on the shipped settings (offline demo profile), as a reader of the README would.
    monkeypatch.setenv("LLMNB_SETTINGS", str(ROOT / "config" / "settings.yaml"))
    namespace = {"llmnb": llmnb}
    for code in _blocks("python")[: index + 1]:  # later blocks build on earlier ones
        exec(compile(code, f"README.md python block {index}", "exec"), namespace)
    capsys.readouterr()
