"""``core/pool.py``: a connection pool over API keys — llmnb's :class:`KeyPool`.

Round-robin over healthy keys, ``max_connections_per_key`` concurrent calls per key, a
key that fails cools down for ``health_check_interval`` seconds and is then tried again.
The manager's clients build their pools from the configuration; this class is for code
that built a pool by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ConnectionPool"]


class ConnectionPool:
    """``ConnectionPool(api_keys=[...], max_connections_per_key=5, health_check_interval=60)``."""

    def __init__(
        self,
        api_keys: Sequence[str],
        max_connections_per_key: int = 5,
        health_check_interval: float = 60.0,
        *,
        acquire_timeout: float = 30.0,
        provider: str = "pool",
    ) -> None:
        from llmnb.middleware.keypool import KeyPool

        keys = [str(k) for k in api_keys if str(k).strip()]
        self.max_connections_per_key = max_connections_per_key
        self.health_check_interval = health_check_interval
        self.pool = KeyPool(
            keys,
            profile=provider,
            max_connections_per_key=max_connections_per_key,
            cooldown=float(health_check_interval),
            acquire_timeout=acquire_timeout,
        )

    def status(self) -> dict[str, Any]:
        """Keys (as fingerprints), their health, connections in use and free."""
        return self.pool.status()

    def __repr__(self) -> str:
        return repr(self.pool)  # fingerprints and counts only, never a key
