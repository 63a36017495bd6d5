"""What a benchmark section returns, and how RESULTS.md is written from it.

Every number in the file comes from a :class:`Section` built by the run; nothing is
typed in by hand. A :class:`Target` knows its limit and says ✓ or ✗ itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Section", "Table", "Target", "fmt", "render"]

NOT_INSTALLED = "not installed"


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: numbers with ``digits`` significant figures (thousands separated),
    NaN/None as ``n/a``, anything else as text."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if value == 0:
            return "0"
        magnitude = math.floor(math.log10(abs(value)))
        decimals = max(0, digits - 1 - magnitude)
        return f"{value:,.{decimals}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


@dataclass
class Table:
    """A markdown table."""

    headers: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append(list(cells))

    def markdown(self) -> str:
        head = "| " + " | ".join(self.headers) + " |"
        rule = "|" + "|".join("---" for _ in self.headers) + "|"
        body = ["| " + " | ".join(fmt(c) for c in row) + " |" for row in self.rows]
        return "\n".join([head, rule, *body])


@dataclass
class Target:
    """A goal from issue #8: ``measured`` compared with ``limit`` (``<=`` or ``>=``).

    ``measured`` NaN (a contender missing, a step that failed) gives neither ✓ nor ✗
    but ``n/a`` — a target is never shown as met without a number behind it.
    """

    name: str
    measured: float
    limit: float
    unit: str
    op: str = "<="  # "<=", "<" or ">="
    note: str = ""

    @property
    def ok(self) -> bool | None:
        if not math.isfinite(self.measured):
            return None
        if self.op == "<=":
            return self.measured <= self.limit
        if self.op == "<":
            return self.measured < self.limit
        return self.measured >= self.limit

    @property
    def mark(self) -> str:
        return {True: "✓", False: "✗", None: "n/a"}[self.ok]

    def row(self) -> list[Any]:
        return [
            self.name,
            f"{fmt(self.measured)} {self.unit}".strip(),
            f"{self.op} {fmt(self.limit)} {self.unit}".strip(),
            self.mark,
            self.note,
        ]


@dataclass
class Section:
    """One numbered part of the results."""

    title: str
    intro: str = ""
    tables: list[tuple[str, Table]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Raw numbers for programs (tests, the profiler step); not rendered.
    data: dict[str, Any] = field(default_factory=dict)

    def table(self, caption: str, headers: list[str]) -> Table:
        t = Table(headers)
        self.tables.append((caption, t))
        return t

    def markdown(self) -> str:
        parts = [f"## {self.title}"]
        if self.intro:
            parts.append(self.intro)
        for caption, table in self.tables:
            if caption:
                parts.append(f"**{caption}**")
            parts.append(table.markdown())
        if self.targets:
            t = Table(["target", "measured", "limit", "met", "note"])
            for target in self.targets:
                t.add(*target.row())
            parts.append("**Targets**")
            parts.append(t.markdown())
        parts.extend(f"- {n}" for n in self.notes)
        return "\n\n".join(parts)


def render(
    title: str,
    preamble: list[str],
    head: list[Section],
    sections: list[Section],
    after_summary: list[Section] | None = None,
) -> str:
    """The whole RESULTS.md: a summary of every target first (then ``after_summary``),
    then each section."""
    summary = Table(["§", "target", "measured", "limit", "met", "note"])
    for section in sections:
        number = section.title.split(".", 1)[0]
        for target in section.targets:
            summary.add(number if number.isdigit() else "", *target.row())
    parts = [f"# {title}", *preamble]
    parts.extend(s.markdown() for s in head)
    parts.append("## Targets at a glance\n\n" + summary.markdown())
    parts.extend(s.markdown() for s in after_summary or ())
    parts.extend(s.markdown() for s in sections)
    return "\n\n".join(parts) + "\n"
