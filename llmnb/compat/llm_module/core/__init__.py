"""``src.llm.core`` / ``llm.core``: manager, connection pool, types and exceptions."""
