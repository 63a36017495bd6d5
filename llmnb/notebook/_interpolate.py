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
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Interpolation", "InterpolationError", "interpolate"]

_BUILTINS = frozenset(dir(builtins))


class InterpolationError(ValueError):
    """A ``{expression}`` whose names exist failed when evaluated."""

    def __init__(self, expression: str, error: BaseException) -> None:
        self.expression = expression
        self.error = error
        super().__init__(
            f"{{{expression}}} failed: {type(error).__name__}: {error}. Fix the expression, "
            f"or write {{{{{expression}}}}} to keep it as text."
        )


@dataclass
class Interpolation:
    """The interpolated text, and the ``{...}`` left as written because of missing names."""

    text: str
    missing: list[tuple[str, list[str]]] = field(default_factory=list)

    def note(self) -> str | None:
        """A one-line note about what was left as written, or None."""
        if not self.missing:
            return None
        pieces = ", ".join(f"{{{expr}}}" for expr, _ in self.missing)
        names = sorted({n for _, ns in self.missing for n in ns})
        return (
            f"note: left as written: {pieces} ({', '.join(names)} not defined). "
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


def _names(tree: ast.AST) -> set[str] | None:
    """Free names an expression reads, or None when it must not be evaluated."""
    used: set[str] = set()
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)):
            return None  # no assignments or coroutines from inside a prompt
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return used - bound


class _Interpolator:
    def __init__(self, text: str, namespace: dict[str, Any]) -> None:
        self.text = text
        self.namespace = namespace
        self.missing: list[tuple[str, list[str]]] = []

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
        names = _names(tree)
        if not names:
            return None  # {1}, {"a"}: no reference to the user's data
        missing = sorted(n for n in names if n not in self.namespace and n not in _BUILTINS)
        if missing:
            self.missing.append((expr, missing))
            return None
        if not any(n in self.namespace for n in names):
            return None  # {list}, {print}: builtins alone are not a reference
        try:
            code = compile(tree, "<llmnb interpolation>", "eval")
        except SyntaxError:
            return None
        try:
            # The namespace is the globals, so comprehensions inside {…} see it too.
            return str(eval(code, self.namespace))
        except Exception as exc:
            raise InterpolationError(expr, exc) from exc


def interpolate(text: str, namespace: dict[str, Any]) -> Interpolation:
    """Replace ``{expr}`` in ``text`` by values from ``namespace`` (see the module doc)."""
    if "__builtins__" not in namespace:
        namespace = {**namespace, "__builtins__": builtins}  # eval would add it to theirs
    worker = _Interpolator(text, namespace)
    result = worker.render(_parse(text))
    return Interpolation(result, worker.missing)
