"""nbval settings for the example notebooks: ``pytest --nbval notebooks/`` needs no flags.

- The sanitize file next to this conftest (``sanitize.cfg``) is used unless
  ``--nbval-sanitize-with`` names another: it normalises what differs from run to run
  (latencies, timestamps, ports, memory addresses, paths of the checkout).
- The kernel is this Python (``--nbval-current-env``) unless ``--nbval-kernel-name`` is
  given, so the notebooks test the llmnb installed here, not some other "python3".
- Each notebook's kernel starts without the developer's llmnb choices, API keys,
  ``MPLBACKEND`` or IPython profile: the notebooks must give the same outputs on any
  machine, on the offline profiles.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

_SCRUB_PREFIXES = ("LLM_", "LLMNB_")
_SCRUB_SUFFIXES = ("_API_KEY", "_API_KEYS")
_SCRUB_NAMES = ("MPLBACKEND", "IPYTHONDIR", "PYTHONSTARTUP")
_ipython_dir: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    option = config.option
    if not (getattr(option, "nbval", False) or getattr(option, "nbval_lax", False)):
        return
    if option.nbval_sanitize_with is None:
        option.nbval_sanitize_with = str(HERE / "sanitize.cfg")
    if not option.nbval_kernel_name:
        option.nbval_current_env = True


def pytest_unconfigure(config: pytest.Config) -> None:
    if _ipython_dir is not None:
        shutil.rmtree(_ipython_dir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    # nbval starts a notebook's kernel while setting up its first cell: the kernel
    # process inherits the environment as it is during this hook, and only then.
    global _ipython_dir
    if type(item).__name__ != "IPyNbCell":
        yield
        return
    if _ipython_dir is None:  # an empty IPython profile: no startup files, no history
        _ipython_dir = tempfile.mkdtemp(prefix="llmnb-nbval-ipython-")
    saved = dict(os.environ)
    for name in list(os.environ):
        scrub = name.startswith(_SCRUB_PREFIXES) or name.endswith(_SCRUB_SUFFIXES)
        if scrub or name in _SCRUB_NAMES:
            del os.environ[name]
    os.environ["IPYTHONDIR"] = _ipython_dir
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
