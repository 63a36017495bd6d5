"""The APIs of the five systems llmnb replaces, as thin adapters over llmnb's core.

Each subpackage mirrors the module paths its system's README shows, so code moves over
by changing its import lines (``docs/migrating.md``):

- :mod:`llmnb.compat.llm_connect` — ``llm_connect`` (settings.yaml profiles, registry)
- :mod:`llmnb.compat.llm_module` — the two "LLM Module" variants (``src.llm`` / ``llm``)
- :mod:`llmnb.compat.aitor` — Aitor's ``aitor.llm`` (``LLMManager.add_provider``)
- :mod:`llmnb.compat.llm_router` — ``ipfs_datasets_py.llm_router`` and its backend

Nothing here reimplements retries, pools, limits or HTTP: every call runs through
:class:`llmnb.LLMClient`, so it gets llmnb's retries, key pools, limits and usage rows.
``import llmnb`` never imports this package.
"""
