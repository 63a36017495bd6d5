"""Tracing CLI calls: one JSONL metadata record per call, and per-call transcripts.

Profile keys (relative paths are taken from the working directory)::

    trace: true                    # turn both on; transcripts go to trace_dir
    trace_dir: .llmnb/traces       # default folder (transcripts, and <profile>.jsonl)
    trace_jsonl_path: .llmnb/traces/codex.jsonl   # the metadata log alone turns it on
    options: {trace_prompts: true} # also log prompt and answer text (off by default)

A record holds: ``time`` (UTC), ``call_id``, ``profile``, ``provider``, ``model``,
``command`` (the executable's name, no arguments), ``prompt_chars``, ``stdout_bytes``,
``stderr_bytes``, ``output_chars``, ``duration_s``, ``exit_code``, ``status`` (``ok`` or
the error type), ``timed_out``, ``session_id``, token counts, ``cost_usd`` and the
transcript path. Never the environment (keys), never argv (it can carry the system
prompt), never prompt text unless ``trace_prompts`` is set. Transcripts — the CLI's own
event log or session export — hold the whole conversation by nature.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmnb.config.folders import make_folder

__all__ = ["DEFAULT_TRACE_DIR", "TracePlan", "plan_trace"]

DEFAULT_TRACE_DIR = ".llmnb/traces"
_lock = threading.Lock()


@dataclass(slots=True)
class TracePlan:
    """Where this call's trace goes; ``None`` paths mean "not traced"."""

    call_id: str
    jsonl: Path | None = None
    folder: Path | None = None  # transcripts, only with `trace: true`
    with_text: bool = False
    artifacts: list[str] = field(default_factory=list)

    def artifact(self, name: str) -> Path | None:
        """A transcript path for this call (``<trace_dir>/<call_id>.<name>``), or None."""
        if self.folder is None:
            return None
        make_folder(self.folder)  # transcripts hold whole conversations: kept out of git
        path = self.folder / f"{self.call_id}.{name}"
        self.artifacts.append(str(path))
        return path

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record to the JSONL log (no-op when the log is off)."""
        if self.jsonl is None:
            return
        data = {
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
            "call_id": self.call_id,
            **record,
        }
        if self.artifacts:
            data["transcripts"] = list(self.artifacts)
        if not self.with_text:
            data.pop("prompt", None)
            data.pop("output", None)
        line = json.dumps(data, ensure_ascii=False, default=str) + "\n"
        make_folder(self.jsonl.parent)
        with _lock, self.jsonl.open("a", encoding="utf-8") as f:
            f.write(line)


def plan_trace(profile: Mapping[str, Any], profile_name: str) -> TracePlan:
    """The trace plan of one call from the profile's ``trace*`` keys."""
    call_id = uuid.uuid4().hex[:12]
    on = bool(profile.get("trace"))
    jsonl_path = profile.get("trace_jsonl_path")
    folder = Path(str(profile.get("trace_dir") or DEFAULT_TRACE_DIR)).expanduser()
    options = profile.get("options") or {}
    plan = TracePlan(call_id, with_text=bool(options.get("trace_prompts")))
    if jsonl_path:
        plan.jsonl = Path(str(jsonl_path)).expanduser()
    elif on:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in profile_name)
        plan.jsonl = folder / f"{safe or 'cli'}.jsonl"
    if on:
        plan.folder = folder
    return plan
