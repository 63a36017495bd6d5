"""The cassette: one JSON line per recorded attempt, matched by a request fingerprint.

A line (keys sorted, so cassettes diff well)::

    {"answer": {"content": "…", "usage": {…}, "cost_usd": 0.0012, …} | null,
     "error": {"type": "RateLimitError", "message": "…", "status": 429, …} | null,
     "key": "<sha256 of the request fingerprint>", "llmnb": "0.1.0", "v": 1,
     "notebook": "report", "profile": "openai", "request": {fingerprint}}

The fingerprint holds what decides the answer — provider type, model, messages,
temperature, max_tokens, other wire parameters, response schema, stream or not — and
never an API key, a header, a base URL or a timeout. Recordings of one fingerprint are
answered in the order they were recorded: the same prompt twice gets the two recorded
answers in turn.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from llmnb.errors import ReplayError
from llmnb.types import Message, Request

__all__ = ["FORMAT_VERSION", "Cassette", "fingerprint", "request_key"]

FORMAT_VERSION = 1


def fingerprint(request: Request, provider_type: str) -> dict[str, Any]:
    """What identifies a request in a cassette (no key, header, base URL or timeout)."""
    return {
        "provider": provider_type,
        "model": request.model,
        "messages": [_message_key(m) for m in request.messages],
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "params": dict(request.extra),
        "schema": request.response_schema,
        "schema_name": request.schema_name,
        "stream": request.stream,
    }


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)


def request_key(fp: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(fp).encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _summary(fp: Mapping[str, Any]) -> str:
    """A short human description: profile-independent, the last user message."""
    messages = fp.get("messages") or []
    last: Mapping[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    text = str(last.get("content", ""))
    text = text if len(text) <= 60 else text[:57] + "…"
    kind = "stream" if fp.get("stream") else "call"
    return f"{fp.get('provider')} · {fp.get('model')} · {kind} · {text!r}"


class Cassette:
    """A cassette file: reads it once, answers in recording order, appends new lines.

    ``notebook`` names who records; appending to a cassette another notebook made is
    refused unless ``force=True`` (two notebooks sharing one cassette would replay each
    other's answers)."""

    def __init__(self, path: str | Path, *, notebook: str | None = None, force: bool = False):
        self.path = Path(path).expanduser()
        self.notebook = notebook
        self.force = force
        self._lock = threading.Lock()
        self._queues: dict[str, deque[dict[str, Any]]] = {}
        self._entries: list[dict[str, Any]] = []
        self._owners: set[str] = set()
        self._load()

    # -- reading --------------------------------------------------------------------
    def _load(self) -> None:
        if self.path.is_dir():
            raise ReplayError(
                f"replay cassette {self.path} is a folder; give a file path such as "
                f"{self.path / 'cassette.jsonl'}"
            )
        if not self.path.exists():
            return
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ReplayError(f"replay cassette {self.path} cannot be read: {exc}") from None
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict):
                    raise ValueError("not a JSON object")
                version = int(entry["v"])
                key = str(entry["key"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ReplayError(
                    f"replay cassette {self.path}, line {number}: damaged ({exc}); fix or "
                    "delete that line, or record the cassette again"
                ) from None
            if version > FORMAT_VERSION:
                raise ReplayError(
                    f"replay cassette {self.path}, line {number}: written by a newer llmnb "
                    f"({entry.get('llmnb', '?')}, format {version}); upgrade llmnb "
                    "(pip install -U llmnb) to replay it"
                )
            self._entries.append(entry)
            self._queues.setdefault(key, deque()).append(entry)
            if entry.get("notebook"):
                self._owners.add(str(entry["notebook"]))

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._entries))

    def next_for(self, key: str) -> dict[str, Any] | None:
        """The next unreplayed recording of ``key``, or None."""
        with self._lock:
            queue = self._queues.get(key)
            return queue.popleft() if queue else None

    def closest(self, fp: Mapping[str, Any]) -> str | None:
        """A description of the recorded request most like ``fp``, for a miss message."""
        if not self._entries:
            return None
        want = _canonical(fp)
        best = max(
            self._entries,
            key=lambda e: difflib.SequenceMatcher(
                None, want, _canonical(e.get("request")), autojunk=False
            ).quick_ratio(),
        )
        return _summary(best.get("request") or {})

    # -- writing --------------------------------------------------------------------
    def check_writable(self) -> None:
        """Refuse early: a foreign cassette, or a path that cannot be written."""
        others = self._owners - {self.notebook} if self.notebook else set()
        if others and not self.force:
            raise ReplayError(
                f"replay cassette {self.path} was recorded by notebook "
                f"{', '.join(sorted(others))!r}, not {self.notebook!r}; use a cassette of "
                "this notebook's own, or record with force (`%llm replay record PATH "
                "--force`, or replay: {force: true})"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise ReplayError(
                f"replay cassette {self.path} is not writable ({exc.strerror or exc}); "
                "choose a writable path for recording"
            ) from None

    def append(self, entry: dict[str, Any]) -> None:
        """Add one recorded attempt (and keep it answerable by this cassette)."""
        entry = {"v": FORMAT_VERSION, **entry}
        if self.notebook:
            entry.setdefault("notebook", self.notebook)
        line = json.dumps(entry, sort_keys=True, ensure_ascii=False, default=repr)
        # Text from servers may carry lone surrogates: keep the line valid UTF-8.
        data = (line + "\n").encode("utf-8", "replace")
        with self._lock:
            try:
                with self.path.open("ab") as f:
                    f.write(data)
            except OSError as exc:
                raise ReplayError(
                    f"replay cassette {self.path}: cannot append ({exc.strerror or exc})"
                ) from None
            self._entries.append(entry)

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r}, {len(self)} recordings)"


def _message_key(m: Message) -> dict[str, Any]:
    """The message as its text, plus each attachment's content hash when it has some (so
    two different images under one prompt never share a key)."""
    d: dict[str, Any] = m.to_dict()
    if m.has_attachments:
        from llmnb.parts import part_hashes

        d["parts"] = part_hashes(m.parts)
    return d
