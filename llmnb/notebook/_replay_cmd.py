"""``%llm replay``: record a notebook's calls into a cassette, or answer from one.

%llm replay record PATH [--force]   call the providers; write every attempt to PATH
%llm replay on PATH                  answer only from PATH (no key, no network)
%llm replay auto PATH                replay what PATH has, record what it lacks
%llm replay off                      back to live calls
%llm replay                          what is in force
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from IPython.core.error import UsageError

if TYPE_CHECKING:
    from llmnb.notebook._host import MagicsHost

__all__ = ["cmd_replay"]

_USAGE = "usage: %llm replay [record|on|auto PATH [--force] | off]"
_MODES = {"record": "record", "on": "replay", "replay": "replay", "auto": "auto"}


def cmd_replay(magics: MagicsHost, rest: str) -> None:
    from llmnb import replay

    words = rest.split()
    force = "--force" in words
    words = [w for w in words if w != "--force"]
    if not words:
        session = replay.current()
        if session is None:
            print("Replay is off: calls go to the providers.")
        else:
            tape = session.cassette
            where = f"{tape.path} · {len(tape)} recorded" if tape is not None else "—"
            print(f"Replay: {session.mode} · {where}")
        return
    verb, args = words[0].lower(), words[1:]
    if verb == "off":
        if args:
            raise UsageError(_USAGE)
        replay.use("off")
        print("Replay is off: calls go to the providers.")
        return
    if verb not in _MODES or len(args) != 1:
        raise UsageError(_USAGE)
    session = replay.use(_MODES[verb], args[0], force=force)
    tape = session.cassette
    assert tape is not None
    what = {
        "record": "recording every call into",
        "replay": "answering from",
        "auto": "answering from (and recording what is missing into)",
    }[session.mode]
    label = {"record": "recording", "replay": "on", "auto": "auto"}[session.mode]
    print(f"Replay {label}: {what} {tape.path} ({len(tape)} recorded attempts).")
