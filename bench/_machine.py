"""The machine and the software a run measured: CPU, cores, RAM, OS, Python, versions."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from bench._report import NOT_INSTALLED, Section

__all__ = ["PACKAGES", "load_average", "machine_section", "version_of"]

# What the run compares, and the libraries underneath that shape the numbers.
PACKAGES: tuple[tuple[str, str], ...] = (
    ("llmnb", "llmnb"),
    ("raw httpx", "httpx"),
    ("httpx's pool", "httpcore"),
    ("httpx2 (diagnostics)", "httpx2"),
    ("OpenAI SDK", "openai"),
    ("LiteLLM", "litellm"),
    ("Jupyter AI", "jupyter-ai-magics"),
    ("IPython", "ipython"),
    ("anyio", "anyio"),
    ("sniffio (see §3)", "sniffio"),
    ("pandas", "pandas"),
    ("py-spy (profiles)", "py-spy"),
    ("pyinstrument (profiles)", "pyinstrument"),
)


def version_of(dist: str) -> str:
    """The installed version of a distribution, or ``not installed``."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return NOT_INSTALLED


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return float("nan")


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))} ({platform.release()})"
    except OSError:
        pass
    return platform.platform()


def load_average() -> str:
    """The 1/5/15-minute load averages, for the record: other work skews timings."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_section(
    size: str, started: _dt.datetime, elapsed_s: float, load_start: str, load_end: str
) -> Section:
    section = Section("Machine and versions")
    t = section.table("", ["what", "value"])
    t.add("date (UTC)", started.strftime("%Y-%m-%d %H:%M"))
    t.add("CPU", _cpu_model())
    t.add("cores", os.cpu_count() or 0)
    t.add("RAM", f"{_ram_gib():.1f} GiB")
    t.add("OS", _os_name())
    t.add("Python", f"{platform.python_version()} ({platform.python_implementation()})")
    t.add("interpreter", sys.executable)
    t.add("size", size)
    t.add("whole run", f"{elapsed_s:.0f} s")
    t.add("load average at start (1/5/15 min)", load_start)
    t.add("load average at end (1/5/15 min)", load_end)
    v = section.table("Versions", ["contender / library", "package", "version"])
    for label, dist in PACKAGES:
        v.add(label, dist, version_of(dist))
    return section
