"""Aitor's LLM layer on llmnb: ``from aitor.llm import X`` becomes
``from llmnb.compat.aitor.llm import X``. Aitor's agents (``create_react_agent``,
``ReactAgent``) are not part of it: they are an agent framework, not an LLM client.
"""
