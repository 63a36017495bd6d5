"""``{expr}`` interpolation of prompts from the user namespace — safe around code and JSON.

Rules (the README's "Interpolation" section says the same):

- A balanced ``{...}`` is replaced by ``str(value)`` when its content parses as one Python
  expression that uses at least one name of the namespace and every name it uses exists
  (there, or as a builtin): ``{name}``, ``{df.head()}``, ``{len(rows)}``, ``{In[3]}``,
  ``{Out[3]}``.
- Anything else is left exactly as written: dict literals and comprehensions, JSON, set
  literals, bare tuples and lambdas (``{a, b}`` — code, not a question), code blocks, ``{}``.
  Nested groups inside such text are still candidates: ``{"id": {rid}}`` becomes
  ``{"id": 42}``.
- ``{{x}}`` is the escape: it becomes ``{x}`` and is not interpolated.
- It happens once: the value put in is never scanned again.
- A reference whose names are missing (``{user_name}`` with no ``user_name``) is left as
  written and reported in :attr:`Interpolation.missing`, so the caller can print a note.
- An expression whose names all exist but that fails (``{Out[99]}``, ``{df.nope}``) raises
  :class:`InterpolationError` naming it.
- Only the user's own names are evaluated: their variables, ``In`` / ``Out`` and a short
  list of pure builtins (:data:`SAFE_BUILTINS`). The shell's hidden names
  (``get_ipython``, ``exit``, ``open``, ``_ih``, ``_i3``, ``_3`` …: IPython keeps them in
  ``shell.user_ns_hidden``), modules (``os``, ``np``: a module is not data), dunder names
  and dunder attributes (``x.__class__``) are never evaluated: such a ``{...}`` is left
  as written and reported in :attr:`Interpolation.refused` for the one-line note. So a
  prompt quoting code — ``{get_ipython().system('rm …')}`` — is sent, not run.
"""

from __future__ import annotations

import ast
import builtins
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SAFE_BUILTINS", "Interpolation", "InterpolationError", "interpolate"]

_BUILTINS = frozenset(dir(builtins))
# Builtins an expression may call: they compute from their arguments and touch nothing
# else (no files, imports, attribute or namespace access, code execution, input).
SAFE_BUILTINS = frozenset(
    [
        "abs",
        "all",
        "any",
        "bool",
        "chr",
        "dict",
        "divmod",
        "enumerate",
        "float",
        "frozenset",
        "hex",
        "int",
        "len",
        "list",
        "max",
        "min",
        "oct",
        "ord",
        "pow",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "sorted",
        "str",
        "sum",
        "tuple",
        "zip",
    ]
)
_SAFE = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
# Names the shell makes for its history and output cache (_i3, _ii, _3, _, __, _oh …).
_SHELL_NAME = re.compile(r"_i*\d*|__|___|_[iod]h")
_ALWAYS = frozenset({"In", "Out"})


def _dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


class InterpolationError(ValueError):
    """A ``{expression}`` whose names exist failed when evaluated."""

    def __init__(self, expression: str, error: BaseException) -> None:
        self.expression = expression
        self.error = error
        hint = "Fix the expression"
        if isinstance(error, ImportError) and "tabulate" in str(error):
            # DataFrame.to_markdown() needs tabulate; a DataFrame itself needs nothing.
            hint = "Write the DataFrame itself ({df.head()}): it goes in as a Markdown table"
        super().__init__(
            f"{{{expression}}} failed: {type(error).__name__}: {error}. {hint}, "
            f"or write {{{{{expression}}}}} to keep it as text."
        )


@dataclass
class Interpolation:
    """The interpolated text, and the ``{...}`` left as written because of missing names."""

    text: str
    missing: list[tuple[str, list[str]]] = field(default_factory=list)
    # ``{...}`` not evaluated because they use names that are not the user's own data.
    refused: list[tuple[str, list[str]]] = field(default_factory=list)
    # Figures / Axes / PIL images put in as markers (llmnb.notebook._attach.marker).
    images: list[Any] = field(default_factory=list)

    def note(self) -> str | None:
        """A one-line note about what was left as written, or None."""
        if not self.missing and not self.refused:
            return None
        found = self.missing + self.refused
        pieces = ", ".join(f"{{{expr}}}" for expr, _ in found)
        why: list[str] = []
        if self.missing:
            names = sorted({n for _, ns in self.missing for n in ns})
            why.append(f"{', '.join(names)} not defined")
        if self.refused:
            names = sorted({n for _, ns in self.refused for n in ns})
            why.append(
                f"{', '.join(names)} not evaluated in a prompt: only your variables, In, Out "
                "and pure builtins are"
            )
        return (
            f"note: left as written: {pieces} ({'; '.join(why)}). "
            "Write {{…}} to keep braces without this note."
        )


@dataclass
class _Group:
    """A balanced ``{...}``: ``start`` / ``end`` index its braces in the source text."""

    start: int
    end: int
    children: list[str | _Group]


def _parse(text: str) -> list[str | _Group]:
    # A stack of open groups; unmatched braces become plain text.
    stack: list[tuple[int, list[str | _Group]]] = [(-1, [])]
    plain_from = 0

    def flush(upto: int) -> None:
        if upto > plain_from:
            stack[-1][1].append(text[plain_from:upto])

    for i, ch in enumerate(text):
        if ch == "{":
            flush(i)
            stack.append((i, []))
            plain_from = i + 1
        elif ch == "}" and len(stack) > 1:
            flush(i)
            start, children = stack.pop()
            stack[-1][1].append(_Group(start, i, children))
            plain_from = i + 1
    flush(len(text))
    while len(stack) > 1:  # an unclosed "{": it and what follows are text
        start, children = stack.pop()
        stack[-1][1].extend(["{", *children])
    return stack[0][1]


def _names(tree: ast.AST) -> tuple[set[str], set[str]] | None:
    """Free names an expression reads and the dunder attributes it uses, or None when
    it must not be evaluated."""
    used: set[str] = set()
    bound: set[str] = set()
    dunders: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)):
            return None  # no assignments or coroutines from inside a prompt
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Attribute) and _dunder(node.attr):
            dunders.add(f".{node.attr}")  # x.__class__.__subclasses__(): the way out
    return used - bound, dunders


class _Interpolator:
    def __init__(self, text: str, namespace: Mapping[str, Any], hidden: Mapping[str, Any]) -> None:
        self.text = text
        self.namespace = namespace
        self.hidden = hidden
        self.missing: list[tuple[str, list[str]]] = []
        self.refused: list[tuple[str, list[str]]] = []
        self.images: list[Any] = []

    def _users(self, name: str) -> bool:
        """Whether ``name`` is one of the user's own variables (or In / Out)."""
        if name in _ALWAYS:
            return True
        if _dunder(name) or _SHELL_NAME.fullmatch(name):
            return False
        value = self.namespace[name]
        # As IPython's %who: a hidden name the user rebound is theirs again.
        if name in self.hidden and self.hidden[name] is value:
            return False
        return not isinstance(value, types.ModuleType)

    def render(self, nodes: list[str | _Group]) -> str:
        out: list[str] = []
        for node in nodes:
            out.append(node if isinstance(node, str) else self.group(node))
        return "".join(out)

    def group(self, g: _Group) -> str:
        inner = self.text[g.start + 1 : g.end]
        if len(g.children) == 1 and isinstance(g.children[0], _Group):
            only = g.children[0]
            if only.start == g.start + 1 and only.end == g.end - 1:
                return inner  # {{x}} -> {x}, untouched
        value = self.evaluate(inner)
        if value is not None:
            return value
        return "{" + self.render(g.children) + "}"

    def evaluate(self, source: str) -> str | None:
        expr = source.strip()
        if not expr:
            return None
        try:
            tree = ast.parse(expr, mode="eval")
        except SyntaxError:
            return None  # dict literal, comprehension, JSON, code: text
        if isinstance(tree.body, (ast.Tuple, ast.Lambda)):
            return None  # {a, b} and {lambda: x} read as set literals in code
        found = _names(tree)
        if found is None:
            return None
        names, dunders = found
        if not names:
            return None  # {1}, {"a"}: no reference to the user's data
        dunders |= {n for n in names if _dunder(n)}
        names -= dunders
        missing = sorted(n for n in names if n not in self.namespace and n not in _BUILTINS)
        if missing:
            self.missing.append((expr, missing))
            return None
        ours = {n for n in names if n in self.namespace and self._users(n)}
        refused = sorted(n for n in names - ours if n not in SAFE_BUILTINS or n in self.namespace)
        if not ours and not refused and not dunders:
            return None  # {list}, {len}: safe builtins alone are not a reference
        if refused or dunders:
            self.refused.append((expr, [*refused, *sorted(dunders)]))
            return None
        try:
            code = compile(tree, "<llmnb interpolation>", "eval")
        except SyntaxError:
            return None
        # Globals of exactly the names checked above, and builtins of only the safe ones:
        # what the checks missed fails as a NameError instead of running.
        scope: dict[str, Any] = {n: self.namespace[n] for n in ours}
        scope["__builtins__"] = _SAFE
        try:
            value = eval(code, scope)
        except Exception as exc:
            raise InterpolationError(expr, exc) from exc
        from llmnb.notebook._attach import is_image, marker

        if is_image(value):  # attached as an image at this place, not its repr
            self.images.append(value)
            return marker(len(self.images) - 1)
        try:
            return as_text(value)
        except Exception as exc:
            raise InterpolationError(expr, exc) from exc


_TABLE_ROWS = 20  # a longer DataFrame is shown as its first and last rows


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: Any) -> str:
    """A DataFrame as a compact Markdown table, without tabulate (``to_markdown`` needs it).

    Longer than 20 rows: the first and last 10 with a ``…`` row, and its shape below.
    """
    rows = len(frame)
    shown = frame if rows <= _TABLE_ROWS else None
    half = _TABLE_ROWS // 2
    index_name = ", ".join(str(n) for n in frame.index.names if n is not None)
    header = [index_name, *(str(c) for c in frame.columns)]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")

    def add(part: Any) -> None:
        for key, row in zip(part.index, part.itertuples(index=False), strict=True):
            lines.append("| " + " | ".join(_cell(v) for v in (key, *row)) + " |")

    if shown is not None:
        add(frame)
    else:
        add(frame.head(half))
        lines.append("| " + " | ".join("…" for _ in header) + " |")
        add(frame.tail(half))
    if shown is None:
        lines.append(f"\n({rows:,} rows × {len(frame.columns):,} columns)")
    return "\n".join(lines)


def as_text(value: Any) -> str:
    """How a value goes into a prompt: a DataFrame as a Markdown table, else ``str``."""
    kind = type(value)
    if kind.__module__.startswith("pandas") and kind.__name__ == "DataFrame":
        return markdown_table(value)
    return str(value)


def interpolate(
    text: str, namespace: Mapping[str, Any], hidden: Mapping[str, Any] | None = None
) -> Interpolation:
    """Replace ``{expr}`` in ``text`` by values from ``namespace`` (see the module doc).

    ``hidden`` holds the names the shell put in ``namespace`` itself (IPython's
    ``user_ns_hidden``), which are never evaluated.
    """
    worker = _Interpolator(text, namespace, hidden or {})
    result = worker.render(_parse(text))
    return Interpolation(result, worker.missing, worker.refused, worker.images)
