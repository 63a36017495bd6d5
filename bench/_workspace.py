"""A throw-away folder and environment for the processes a run starts.

Workers run in a temporary project folder whose ``config/settings.yaml`` points llmnb
at the loopback server and keeps usage rows in a SQLite file there, so a run never
touches the repository's own settings or usage database. Peers are told to stay
offline (LiteLLM's price map is read from its package, not fetched).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = ["ROOT", "Workspace"]

ROOT = Path(__file__).resolve().parents[1]

_SETTINGS = """\
llm:
  active_provider: bench
  providers:
    bench: {{type: openai_compatible, model: fake-model, base_url: "{base_url}"}}
    demo: {{type: mock, model: mock-1}}
usage: {{store: "sqlite:///usage.db"}}
"""

# Variables of the caller's shell that would change what a contender does.
_DROP_PREFIXES = ("LLM_", "LLMNB_", "OPENAI_", "LITELLM_")


class Workspace:
    """``with Workspace() as ws: ws.env(base_url)`` — a temp folder and an environment."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="llmnb-bench-"))

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def env(self, base_url: str | None = None) -> dict[str, str]:
        """The environment for a child process; with ``base_url``, llmnb's settings
        file points at that server."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP_PREFIXES)}
        # A notebook user's Python writes bytecode: without it every import of a changed
        # module compiles its source again, and the import rows measure the compiler.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
        env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        env["HF_HUB_OFFLINE"] = "1"
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        env["IPYTHONDIR"] = str(self.path / "ipython")
        env["MPLBACKEND"] = "Agg"
        if base_url is not None:
            settings = self.path / "config" / "settings.yaml"
            settings.parent.mkdir(exist_ok=True)
            settings.write_text(_SETTINGS.format(base_url=base_url))
            env["LLMNB_SETTINGS"] = str(settings)
        return env
