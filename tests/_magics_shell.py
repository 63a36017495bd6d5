"""A real IPython shell for the magic tests, and a helper that runs a cell and captures it.

``InteractiveShell.instance()`` is a process-wide singleton, so the shell is made once
(with an in-memory history and a throwaway IPYTHONDIR) and each test gets a clean user
namespace and a freshly loaded extension (``%unload_ext`` + ``%load_ext``), which resets
the magics' settings, conversations and client cache.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _shell() -> InteractiveShell:
    if not InteractiveShell.initialized():
        if "IPYTHONDIR" not in os.environ:  # keep the user's ~/.ipython out of the tests
            path = tempfile.mkdtemp(prefix="llmnb-ipython-")
            atexit.register(shutil.rmtree, path, True)
            os.environ["IPYTHONDIR"] = path
        cfg = Config()
        cfg.HistoryManager.hist_file = ":memory:"
        InteractiveShell.instance(config=cfg)
    shell: InteractiveShell = InteractiveShell.instance()
    return shell


def shell_fixture(tracker: Any) -> Iterator[InteractiveShell]:
    """Fixture body: the shell with llmnb freshly loaded and an empty namespace.

    It asks for conftest's ``tracker`` so every call lands in a fresh in-memory tracker."""
    ip = _shell()
    # Not ip.reset(): its gc.collect() costs ~0.1 s a test once pandas & co. are loaded.
    for name in [n for n in ip.user_ns if n not in ip.user_ns_hidden]:
        del ip.user_ns[name]
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            setattr(sys, name, None)
    if "llmnb" in ip.extension_manager.loaded:
        ip.run_line_magic("unload_ext", "llmnb")
    # %config merges into the shell's config, where a reloaded extension would find it.
    ip.config.pop("LLMMagics", None)
    ip.run_line_magic("load_ext", "llmnb")
    yield ip
    ip.run_line_magic("unload_ext", "llmnb")


ip_fixture = pytest.fixture(name="ip")(shell_fixture)


@dataclass
class Ran:
    """What one cell showed."""

    result: Any
    stdout: str
    stderr: str
    outputs: list[Any]

    @property
    def text(self) -> str:
        """Everything visible as plain text: stdout, stderr and each output's text/plain."""
        shown = [str(o.data.get("text/plain", "")) for o in self.outputs]
        return _ANSI.sub("", "\n".join([self.stdout, self.stderr, *shown]))

    @property
    def error_lines(self) -> list[str]:
        """Non-empty lines of the error report (stdout + stderr), colours removed."""
        return [line for line in _ANSI.sub("", self.stdout + self.stderr).splitlines() if line]

    def data(self, mime: str) -> list[Any]:
        return [o.data[mime] for o in self.outputs if mime in o.data]


def run(ip: InteractiveShell, source: str, *, store_history: bool = False) -> Ran:
    """Run ``source`` as a cell and capture what it printed and displayed."""
    with capture_output() as cap:
        result = ip.run_cell(source, store_history=store_history)
    return Ran(result, cap.stdout, cap.stderr, list(cap.outputs))


def mock_settings(**profiles: dict[str, Any]) -> dict[str, Any]:
    """Settings with the given profiles (first one active); ``demo`` is a plain mock."""
    providers = {"demo": {"type": "mock", "model": "mock-1"}, **profiles}
    first = next(iter(profiles), "demo")
    return {"llm": {"active_provider": first, "providers": providers}}
