"""The fault soak (see ``_engine.py``); ``python -m tests.soak --help``."""
