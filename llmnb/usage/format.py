"""One number format for money, tokens and time, everywhere llmnb shows them.

Example::

    from llmnb.usage.format import money, tokens, duration
    money(0.002861)       # "$0.0029"
    money(12.3456)        # "$12.35"
    money(float("nan"))   # "n/a"
    tokens(1234)          # "1,234"
    tokens(2_500_000)     # "2.5M"
    duration(0.000026)    # "26 µs"

The rules (the README's "Numbers" lines say the same):

- **Money**: unknown (None, NaN) is ``n/a``, never ``$0``; zero is ``$0``; from $1 up, cents
  (``$12.35``, ``$1,234.50``); below $1, two significant digits (``$0.29``, ``$0.0029``,
  ``$0.000026``); below $0.000001 ``<$0.000001`` (never rounded to ``$0``). An estimate
  gets ``~``.
- **Tokens**: thousands separators below 100,000 (``12,345``), then ``123k``, ``1.2M``.
- **Time**: ``26 µs``, ``12 ms``, ``1.2 s`` (``12 s`` from 10 s), ``2 min 5 s``.
"""

from __future__ import annotations

import math

__all__ = ["duration", "money", "money_axis", "plural", "tokens"]

_TINY = 1e-6


def _unknown(value: float | None) -> bool:
    return value is None or not math.isfinite(value)


def money(usd: float | None, source: str | None = None) -> str:
    """``$0.0029``; ``n/a`` when unknown; ``~`` in front when ``source`` is ``estimate``."""
    if usd is None or usd != usd:
        return "n/a"
    if math.isinf(usd):
        return "n/a"
    prefix = "~" if source == "estimate" else ""
    sign = "-" if usd < 0 else ""
    x = abs(usd)
    if x == 0:
        return f"{prefix}$0"
    if x >= 1:
        return f"{prefix}{sign}${x:,.2f}"
    if x < _TINY:
        return f"{prefix}{sign}<${_TINY:.6f}"
    digits = max(2, 1 - math.floor(math.log10(x)))
    return f"{prefix}{sign}${x:.{digits}f}"


def money_axis(usd: float) -> str:
    """A plot tick: like :func:`money`, with ``$0`` for the origin."""
    return money(usd) if usd > 0 else "$0"


def tokens(count: float | None, estimated: bool = False) -> str:
    """``1,234``, ``123k``, ``1.2M``; ``n/a`` when unknown; ``~`` when estimated."""
    if _unknown(count):
        return "n/a"
    assert count is not None
    mark = "~" if estimated else ""
    n = round(count)
    if abs(n) < 100_000:
        return f"{mark}{n:,}"
    if abs(n) < 1_000_000:
        return f"{mark}{n / 1000:.0f}k"
    if abs(n) < 10_000_000:
        return f"{mark}{n / 1e6:.1f}M"
    return f"{mark}{n / 1e6:,.0f}M"


def duration(seconds: float | None) -> str:
    """``26 µs``, ``12 ms``, ``1.2 s``, ``12 s``, ``2 min 5 s``; ``n/a`` when unknown."""
    if _unknown(seconds):
        return "n/a"
    assert seconds is not None
    s = max(0.0, seconds)
    if s == 0:
        return "0 s"
    if s < 1e-3:
        return f"{max(1, round(s * 1e6))} µs"
    if s < 1:
        ms = round(s * 1e3)
        return f"{ms} ms" if ms < 1000 else "1.0 s"
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{round(s)} s" if round(s) < 60 else "1 min 0 s"
    minutes, rest = divmod(round(s), 60)
    return f"{minutes} min {rest} s"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``1,000 rows`` (``many`` for irregular plurals)."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"
