"""Helpers for the real-browser tests: a JupyterLab on 127.0.0.1 and headless Chromium.

The browser is Debian's Chromium (``/usr/bin/chromium``, or ``$LLMNB_CHROMIUM``) driven
by Playwright through ``executable_path`` — Playwright's own browser download is never
used. JupyterLab runs from a temporary folder with its own config, data, runtime and
settings folders, a random token, and every feature that would reach the internet
switched off (news feed, update check, PyPI extension manager).

Without Chromium or Playwright the tests skip locally and fail when ``CI=true``: CI
must not go green by skipping the test that proves the widgets render.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"

# The flags this machine's notes ask for: no sandbox (root in a container), no GPU, and
# none of Chromium's own background traffic (the network beyond loopback is closed).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# Variables of the developer's shell that would change what the notebooks resolve.
_SCRUB_PREFIXES = ("LLM_", "LLMNB_")
_SCRUB_SUFFIXES = ("_API_KEY", "_API_KEYS")
_SCRUB_NAMES = ("MPLBACKEND", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "IPYTHONDIR")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> None:
    """Skip with ``reason`` — or fail, under CI=true, where the test must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the browser test must run, not skip)", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    """Debian's Chromium: ``$LLMNB_CHROMIUM``, /usr/bin/chromium, or ``chromium`` on PATH."""
    for candidate in (os.environ.get("LLMNB_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def require_browser() -> str:
    """The Chromium path, after checking that Playwright imports (else skip/fail)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("Playwright is not installed: pip install -e '.[dev]'")
    path = chromium_path()
    if path is None:
        unavailable(
            "Chromium not found (apt-get install chromium, or set LLMNB_CHROMIUM); "
            "Playwright's own browser download is not used"
        )
    assert path is not None
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrubbed_env(**extra: str) -> dict[str, str]:
    """This process's environment without llmnb choices, API keys or Jupyter paths."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_SCRUB_PREFIXES)
        and not k.endswith(_SCRUB_SUFFIXES)
        and k not in _SCRUB_NAMES
    }
    env.update(extra)
    return env


def jupyter_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment whose Jupyter and IPython folders all live under ``home``."""
    dirs = {
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "IPYTHONDIR": home / "ipython",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    return scrubbed_env(
        **{k: str(v) for k, v in dirs.items()},
        JUPYTER_PLATFORM_DIRS="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",  # silence debugpy's frozen-modules warning
        **extra,
    )


def write_lab_settings(config_dir: Path) -> None:
    """User settings: no news or update check, no toasts, every cell rendered."""
    settings = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
            "doNotDisturbMode": True,
        },
        # "none": every cell is in the DOM, so cells can be found by position.
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for rel, value in settings.items():
        path = config_dir / "lab" / "user-settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, indent=2))


def copy_demo_project(dst: Path) -> Path:
    """Copy ``notebooks/`` and ``config/`` to ``dst`` (the lab edits the copies only)."""
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", ".llmnb", "*.pyc")
    shutil.copytree(ROOT / "notebooks", dst / "notebooks", ignore=ignore)
    shutil.copytree(ROOT / "config", dst / "config", ignore=ignore)
    return dst / "notebooks"


class JupyterLab:
    """A JupyterLab server on 127.0.0.1 with a random token, started and stopped here."""

    def __init__(self, root_dir: Path, home: Path, python: str = sys.executable) -> None:
        self.root_dir = root_dir
        self.home = home
        self.python = python
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "jupyterlab.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}/{path.lstrip('/')}{sep}token={self.token}"

    def command(self) -> list[str]:
        return [
            self.python,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.terminals_enabled=False",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            # window.jupyterapp: lets the test wait on the kernel's real status
            "--LabApp.expose_app_in_browser=True",
            *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        ]

    def start(self, timeout: float = 60.0) -> None:
        env = jupyter_env(self.home)
        write_lab_settings(Path(env["JUPYTER_CONFIG_DIR"]))
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.command(), cwd=self.root_dir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            if self._status_ok():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def _status_ok(self) -> bool:
        request = urllib.request.Request(
            f"{self.base_url}/api/status", headers={"Authorization": f"token {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def api(self, path: str) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}/api/{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # SIGTERM: the server shuts its kernels down
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]).replace(self.token, "<token>")


@contextmanager
def running_lab(root_dir: Path, home: Path) -> Iterator[JupyterLab]:
    lab = JupyterLab(root_dir, home)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


@contextmanager
def chromium_context(user_data_dir: Path, executable: str) -> Iterator[Any]:
    """A Playwright browser context on a fresh Chromium profile folder."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1000},
            timeout=60_000,
        )
        try:
            yield context
        finally:
            context.close()


# -- driving a notebook in JupyterLab ----------------------------------------------------

_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
_KERNEL_IDLE_JS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session
            && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && !w.sessionContext.isRestarting;
}"""


def notebook_cells(path: Path) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = json.loads(path.read_text())["cells"]
    return cells


def cell_index(path: Path, needle: str, cell_type: str = "code") -> int:
    """Position (among all cells, as in the DOM) of the first cell containing ``needle``."""
    for i, cell in enumerate(notebook_cells(path)):
        source = "".join(cell["source"])
        if cell["cell_type"] == cell_type and needle in source:
            return i
    raise AssertionError(f"no {cell_type} cell containing {needle!r} in {path.name}")


class LabNotebook:
    """One open notebook in a JupyterLab page."""

    def __init__(self, page: Any, timeout_ms: int = 60_000) -> None:
        self.page = page
        self.timeout_ms = timeout_ms
        self.executed = 0

    def open(self, lab: JupyterLab, name: str) -> None:
        # ?reset: an empty workspace, so this notebook is the only one open
        self.page.goto(lab.url(f"lab/tree/{name}?reset"), timeout=self.timeout_ms)
        self.page.wait_for_selector(f"{_PANEL} .jp-Notebook .jp-Cell", timeout=self.timeout_ms)
        self.wait_idle()
        # Start from a clean page: the saved outputs (and their prompt numbers) go, so
        # everything asserted below was produced by this kernel in this browser.
        self.command("notebook:clear-all-cell-outputs")
        self.page.wait_for_function(
            """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden)'
                                                   + ' .jp-InputPrompt')]
                     .every(p => !/\\d/.test(p.textContent))""",
            timeout=self.timeout_ms,
        )

    def command(self, name: str, args: dict[str, Any] | None = None) -> None:
        self.page.evaluate(
            "([name, args]) => window.jupyterapp.commands.execute(name, args)", [name, args or {}]
        )

    def wait_idle(self) -> None:
        self.page.wait_for_function(_KERNEL_IDLE_JS, timeout=self.timeout_ms)

    def cell(self, index: int) -> Any:
        return self.page.locator(f"{_PANEL} .jp-Notebook .jp-Cell").nth(index)

    def run(self, index: int) -> Any:
        """Select cell ``index`` by clicking its prompt, Shift+Enter, wait until it ran."""
        cell = self.cell(index)
        cell.scroll_into_view_if_needed(timeout=self.timeout_ms)
        cell.locator(".jp-InputPrompt").first.click()
        self.page.keyboard.press("Escape")  # command mode: the keys go to the notebook
        self.page.keyboard.press("Shift+Enter")
        self.executed += 1
        prompt = cell.locator(".jp-InputArea .jp-InputPrompt").first
        expected = re.compile(rf"\[{self.executed}\]")
        deadline = time.monotonic() + self.timeout_ms / 1000
        while not expected.search(prompt.text_content() or ""):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"cell {index} did not finish as execution {self.executed}: "
                    f"prompt {prompt.text_content()!r}"
                )
            time.sleep(0.1)
        self.wait_idle()
        if cell.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").count():
            raise AssertionError(f"cell {index} raised:\n{cell.inner_text()}")
        return cell

    def run_range(self, stop: int) -> None:
        """Run the code cells before position ``stop``, in order."""
        for i in range(stop):
            if "jp-CodeCell" in (self.cell(i).get_attribute("class") or ""):
                self.run(i)
