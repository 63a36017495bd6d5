"""Aitor's LLM layer on llmnb: ``from aitor.llm import X`` becomes
``from llmnb.compat.aitor.llm import X``. Aitor's agents (``create_react_agent``,
``ReactAgent``) are not part of it: they are an agent framework, not an LLM client, and
the README documents their calls but not their reasoning loop (see ``_AGENTS``).
"""

from __future__ import annotations

from typing import NoReturn

# Why each agent name is not ported. The README shows how these are called, but not what
# they do: no prompt or reply format (the mock provider's "THINK:" / "ACT: tool(args)"
# strings are the only hint, with no final-answer marker), no tool type (``your_tools``
# is undefined), no rule for feeding tool results back or for running out of
# ``max_reasoning_steps``, no import line for ``ReactAgent``. Porting would mean
# inventing an agent, not adapting one.
_AGENTS = ("create_react_agent", "ReactAgent")


def __getattr__(name: str) -> NoReturn:
    from llmnb.compat._unsupported import NotPortedError

    if name in _AGENTS:
        raise NotPortedError(
            f"aitor.{name} (Aitor's agent framework) is not part of llmnb.compat: its "
            "README documents how agents are called but not their reasoning loop (reply "
            "format, tool type, stopping rule). Keep `from aitor import "
            f"{name}`; where an agent takes `llm_manager=`, an "
            "llmnb.compat.aitor.llm.LLMManager (same methods) runs its calls on llmnb."
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
