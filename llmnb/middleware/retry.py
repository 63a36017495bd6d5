"""When to retry a failed attempt, and how long to wait first.

429, 408, 409, 5xx, timeouts and connection errors are retried (2 retries by default)
with exponential backoff ``min(0.5·2^n, 8) s`` less up to 25 % jitter. A server's
``Retry-After`` / ``retry-after-ms`` decides the wait instead, up to 60 s; a longer
one is raised at once as ``RateLimitError`` carrying ``retry_after``, because
blocking a notebook cell for minutes is worse than telling the user. Quota errors and
other 4xx are never retried. Sleeping is injectable so tests take milliseconds.

The limiter and the key pool read the same cap (:func:`server_wait`): a wait beyond it
is not imposed on later calls either — they go to the server, which says so again if it
still means it — and ``inf``, NaN or negative values never reach a sleep.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from llmnb import errors

__all__ = ["DEFAULT_MAX_RETRY_AFTER", "RetryPolicy", "server_wait"]

DEFAULT_MAX_RETRY_AFTER = 60.0


@dataclass(slots=True)
class RetryPolicy:
    """Bounded retries with backoff and jitter.

    Example::

        RetryPolicy(max_retries=4, sleep=lambda s: None)   # no real waits (tests)
    """

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    jitter: float = 0.25
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    asleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise errors.InvalidOptionError(
                f"RetryPolicy(max_retries=...) must be >= 0, got {self.max_retries}"
            )

    def backoff(self, retry_index: int) -> float:
        """Wait before retry number ``retry_index`` (0-based) when the server gave none."""
        delay = min(self.base_delay * float(2**retry_index), self.max_delay)
        return delay * (1 - self.jitter * random.random())

    def delay_for(self, error: BaseException, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up and raise.

        ``attempt`` is the 1-based number of the attempt that just failed.
        """
        if attempt > self.max_retries:
            return None
        if not isinstance(error, errors.APIError) or not error.retryable:
            return None
        if isinstance(error, errors.RateLimitError) and error.retry_after is not None:
            wait = float(error.retry_after)
            if math.isnan(wait):
                return self.backoff(attempt - 1)  # no usable wait: as if none was given
            if wait > self.max_retry_after:
                return None
            return max(wait, 0.0)
        return self.backoff(attempt - 1)


def server_wait(retry_after: float | None, client: object) -> float | None:
    """A server's ``Retry-After`` as a wait to impose on later calls, or None.

    None when there is none, when it is not a number, or when it is beyond the
    client's ``retry.max_retry_after``: that call was raised at once, and later calls
    must not sleep for it either. Negative waits count as 0.
    """
    if retry_after is None:
        return None
    wait = float(retry_after)
    retry = getattr(client, "retry", None)
    cap = float(getattr(retry, "max_retry_after", DEFAULT_MAX_RETRY_AFTER))
    if math.isnan(wait) or wait > cap:
        return None
    return max(wait, 0.0)
