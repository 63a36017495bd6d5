"""Benchmarks of llmnb against raw httpx, the OpenAI SDK, LiteLLM and Jupyter AI.

Run ``python3 -m bench`` from the repository root; see ``bench/README.md``.
"""
