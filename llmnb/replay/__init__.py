"""Record and replay: answer calls from a cassette of earlier real answers.

Example::

    import llmnb.replay
    llmnb.replay.use("record", "cassettes/report.jsonl")   # once, with real keys
    llmnb.replay.use("replay", "cassettes/report.jsonl")   # anywhere: no key, no network
    llmnb.replay.use("off")

In a notebook: ``%llm replay record PATH`` / ``%llm replay on PATH`` / ``%llm replay off``;
for a whole run ``LLMNB_REPLAY=PATH`` and ``LLMNB_REPLAY_MODE=replay|record|auto``; in the
settings ``replay: {cassette: PATH, mode: auto}``.

What it holds: ``cassette`` (the JSON-lines file and its request fingerprints),
``session`` (which cassette and mode are in force), ``wire`` (answering in place of the
provider, and writing attempts). It sits between ``middleware`` and ``providers`` in the
layer order: it may import ``providers``, ``usage``, ``config`` and the bottom modules;
the client core imports it.
"""

from __future__ import annotations

from llmnb.replay.session import MODES, ReplaySession, current, reset, use

__all__ = ["MODES", "ReplaySession", "current", "reset", "use"]
