"""Which profile and model a cell uses, and the clients kept across cells.

Clients are cached per ``(profile, model, agent, step)`` so that a notebook reuses its HTTP
connections from cell to cell; the cache is dropped (and its clients closed) when the
settings file changes, since profiles may have changed with it.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

if TYPE_CHECKING:
    from llmnb.client.client import LLMClient

__all__ = ["ClientCache", "Target", "parse_target", "parse_targets"]


@dataclass(frozen=True)
class Target:
    """A profile (None: the active one) and a model (None: the resolved default)."""

    profile: str | None = None
    model: str | None = None

    @property
    def label(self) -> str:
        return f"{self.profile}:{self.model}" if self.model else str(self.profile)


def parse_target(spec: str) -> Target:
    """``PROFILE[:MODEL]``; the model may itself contain ``:`` (``ollama:llama3.2:3b``)."""
    profile, sep, model = spec.strip().partition(":")
    if not profile.strip() or (sep and not model.strip()):
        raise UsageError(
            f"{spec!r} is not PROFILE or PROFILE:MODEL (e.g. openrouter:openai/gpt-4o)"
        )
    return Target(profile.strip(), model.strip() or None)


def parse_targets(specs: str) -> list[Target]:
    """``P1,P2:MODEL,…`` of ``--compare``."""
    parts = [p.strip() for p in specs.split(",")]
    if not any(parts) or not all(parts):
        raise UsageError(
            f"--compare {specs!r}: give profiles separated by commas, e.g. --compare demo,claude"
        )
    return [parse_target(p) for p in parts]


def resolve(target: Target, agent: str | None) -> tuple[str, str | None]:
    """``(profile name, model)`` by the documented resolution order."""
    from llmnb import config
    from llmnb.client.profiles import create_llm_client_from_profile

    if target.profile is None:
        active = config.get_active_profile(agent)
        if active is None:
            create_llm_client_from_profile(target.model, agent)  # raises, saying what to do
            raise AssertionError("unreachable")  # pragma: no cover
        return active[0], target.model or config.get_model_name(None, agent)
    profile = config.get_profile(target.profile)  # ProviderNotFoundError lists the names
    if target.model:
        return target.profile, target.model
    active = config.get_active_profile(agent)
    if active is not None and active[0] == target.profile:
        # The active profile keeps its session / LLM_MODEL choice when named explicitly.
        return target.profile, config.get_model_name(None, agent)
    model = profile.get("model")
    return target.profile, str(model) if model else None


class ClientCache:
    """Clients by ``(profile, model, agent, step)``, valid while the settings stay the same.

    The agent and step are the client's own (not per-call options) so that they land in
    the ``agent`` and ``step`` columns of every usage row the client writes.
    """

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str | None, str | None, str | None], LLMClient] = {}
        self._settings: Any = None
        self._lock = threading.Lock()

    def get(self, target: Target, agent: str | None = None, step: str | None = None) -> LLMClient:
        """The client for ``target`` (as ``agent`` at ``step``); built without I/O on first use."""
        from llmnb import config
        from llmnb.client.profiles import create_llm_client_from_profile

        settings = config.load_settings()
        with self._lock:
            if settings is not self._settings:
                self._close_all()
                self._settings = settings
        name, model = resolve(target, agent)
        key = (name, model, agent, step)
        with self._lock:
            client = self._clients.get(key)
        if client is None:
            client = create_llm_client_from_profile(model, agent, profile=name, step=step)
            with self._lock:
                client = self._clients.setdefault(key, client)
        return client

    def clear(self) -> None:
        """Close and forget every client."""
        with self._lock:
            self._close_all()
            self._settings = None

    def __len__(self) -> int:
        return len(self._clients)

    def _close_all(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            # a client that cannot close must not stand in the way of a new one
            with contextlib.suppress(Exception):
                client.close()
