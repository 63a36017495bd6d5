"""Running README examples as written: only their import lines are changed."""

from __future__ import annotations

import ast
import asyncio
import inspect
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

FAKE_AGENT = Path(__file__).resolve().parents[1] / "fake_bin" / "fake_agent.py"


def port(example: str, imports: dict[str, str]) -> str:
    """The example with each import prefix ``old`` (at a line start) replaced by ``new``;
    nothing else is changed."""
    for old, new in imports.items():
        example = "\n".join(
            new + line[len(old) :] if line.lstrip().startswith(old) else line
            for line in example.split("\n")
        )
    return example


def run(code: str, ns: dict[str, Any]) -> dict[str, Any]:
    """Execute ``code`` (top-level ``await`` allowed, as in the READMEs) in ``ns``."""
    compiled = compile(code, "<README example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, ns)
    if inspect.iscoroutine(result):
        asyncio.run(result)
    return ns


@pytest.fixture
def example() -> Iterator[Callable[..., dict[str, Any]]]:
    # A real module (registered while the test runs): pydantic resolves a model's
    # annotations through sys.modules[cls.__module__].
    module = types.ModuleType("readme_example")
    sys.modules[module.__name__] = module

    def go(text: str, imports: dict[str, str], ns: dict[str, Any] | None = None) -> dict[str, Any]:
        if ns is None:
            ns = module.__dict__
        elif ns is not module.__dict__:
            module.__dict__.update(ns)
            ns = module.__dict__
        return run(port(text, imports), ns)

    yield go
    del sys.modules[module.__name__]


@pytest.fixture(autouse=True)
def _fresh_compat_state() -> Iterator[None]:
    yield
    for name in ("llmnb.compat.llm_module.core.manager", "llmnb.compat.llm_router.router"):
        module = sys.modules.get(name)
        if module is not None:
            reset = getattr(module, "reset_llm_manager", None) or module.reset_router
            reset()


@pytest.fixture
def fake_clis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], list[dict[str, Any]]]:
    """claude / codex / copilot / gemini stand-ins on PATH; returns a reader of their log."""
    import json
    import os

    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("claude", "codex", "copilot", "gemini"):
        target = folder / name
        target.write_text(f"#!{sys.executable}\n" + FAKE_AGENT.read_text(encoding="utf-8"))
        target.chmod(0o755)
    log = tmp_path / "cli-calls.jsonl"
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_CLI_LOG", str(log))
    monkeypatch.setenv("FAKE_CLI_PIDS", str(tmp_path / "pids.json"))

    def calls() -> list[dict[str, Any]]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    return calls


def shell_env(block: str) -> dict[str, str]:
    """The variables a README shell block exports, run by bash as written (empty env)."""
    out = subprocess.run(
        ["bash", "-c", block + "\nenv -0"], capture_output=True, check=True, env={}
    ).stdout
    pairs = (item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    return {k: v for k, v in pairs if k not in ("PWD", "SHLVL", "_", "OLDPWD")}


@pytest.fixture
def shell() -> Callable[[str], dict[str, str]]:
    return shell_env
