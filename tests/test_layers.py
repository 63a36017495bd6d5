"""The package's layers: no import circles, and every import goes downward.

Every ``import`` of every module of ``llmnb`` counts — at module level, inside functions
and under ``TYPE_CHECKING`` — and so does a module named as a string in a lazy table
(``"llmnb.client.manager"``, ``"llmnb.providers.mock:MockProvider"``). The layer order is
the one written in ``docs/architecture.md`` between ``<!-- layers -->`` markers.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOT_PACKAGE = "llmnb"
_MODULE_STRING = re.compile(r"llmnb(?:\.\w+)+(?::[\w\[\]]+)?")


def modules(package_dir: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _not_imports(tree: ast.AST) -> set[int]:
    """Strings that are no import even when they look like one: docstrings and logger
    names (``getLogger("llmnb.usage")``)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called == "getLogger":
                ids.update(id(arg) for arg in node.args)
    return ids


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The llmnb modules ``name`` imports, by any route."""
    known = set(known)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    docs = _not_imports(tree)
    out: set[str] = set()

    def add(target: str) -> None:
        # the longest known module that ``target`` starts with
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, *([node.module] if node.module else [])])
            else:
                prefix = node.module or ""
            # `from pkg import name` runs pkg's __init__ first, whatever the name is: an edge
            # to pkg, and to pkg.name too when that is a module. The root package is left
            # out: it is the facade that every import passes through, and it imports the
            # layers only lazily, by name.
            if prefix != ROOT_PACKAGE:
                add(prefix)
            for alias in node.names:
                sub = f"{prefix}.{alias.name}"
                if sub in known:
                    add(sub)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docs
            and _MODULE_STRING.fullmatch(node.value)
            and node.value.partition(":")[0] in known  # not a logger name or a path
        ):
            add(node.value.partition(":")[0])
    return out


def graph(package_dir: Path) -> dict[str, set[str]]:
    mods = modules(package_dir)
    return {name: imports_of(name, path, mods) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def layer_order(doc: Path) -> list[list[str]]:
    """The layers written in the doc, top first: each line lists a layer's modules."""
    text = doc.read_text(encoding="utf-8")
    match = re.search(r"<!-- layers -->\s*```\w*\n(.*?)```\s*<!-- /layers -->", text, re.S)
    assert match, f"{doc} has no <!-- layers --> block"
    layers = []
    for line in match.group(1).splitlines():
        names = line.split("#", 1)[0].split()
        if names:
            layers.append(names)
    return layers


def layer_of(module: str, layers: list[list[str]]) -> int | None:
    """The layer (0 = top) of the longest prefix of ``module`` that a layer lists."""
    best: tuple[int, int] | None = None
    for level, names in enumerate(layers):
        for prefix in names:
            covers = module == prefix or module.startswith(prefix + ".")
            if covers and (best is None or len(prefix) > best[0]):
                best = (len(prefix), level)
    return None if best is None else best[1]


def upward(edges: dict[str, set[str]], layers: list[list[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(edges.items()):
        mine = layer_of(module, layers)
        for target in sorted(targets):
            theirs = layer_of(target, layers)
            if mine is not None and theirs is not None and theirs < mine:
                bad.append(f"{module} (layer {mine}) imports {target} (layer {theirs})")
    return bad


# -- the package itself --------------------------------------------------------------------

EDGES = graph(ROOT / "llmnb")
LAYERS = layer_order(ROOT / "docs" / "architecture.md")


def test_no_import_circles() -> None:
    assert cycles(EDGES) == []


def test_every_module_has_a_layer() -> None:
    assert [m for m in EDGES if layer_of(m, LAYERS) is None] == []


def test_imports_only_go_downward() -> None:
    assert upward(EDGES, LAYERS) == []


def test_testing_imports_nothing_else_of_llmnb() -> None:
    # FakeLLMServer must be usable against any layer, so it depends on none of them.
    outside = {
        f"{m} -> {t}"
        for m, targets in EDGES.items()
        if m.startswith("llmnb.testing")
        for t in targets
        if not t.startswith("llmnb.testing")
    }
    assert outside == set()


def test_middleware_does_not_import_the_client() -> None:
    assert [
        (m, t)
        for m, ts in EDGES.items()
        if m.startswith("llmnb.middleware")
        for t in ts
        if t.startswith("llmnb.client")
    ] == []


# -- the checker finds what it is meant to find ---------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "llmnb"
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_checker_sees_lazy_type_checking_and_string_imports(tmp_path: Path) -> None:
    pkg = _tree(
        tmp_path,
        {
            "__init__.py": '"""llmnb.low is not an import: a docstring."""\n',
            "low.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from llmnb import high\n"
            ),
            "high.py": "def f():\n    from .low import x\n",
            "lazy.py": 'import logging\nlog = logging.getLogger("llmnb.low")\n'
            'TABLE = {"m": "llmnb.high:thing"}\n',
        },
    )
    edges = graph(pkg)
    assert edges["llmnb.low"] == {"llmnb.high"}
    assert edges["llmnb.high"] == {"llmnb.low"}
    assert edges["llmnb.lazy"] == {"llmnb.high"}
    assert edges["llmnb"] == set()
    assert cycles(edges) == [["llmnb.high", "llmnb.low"]]


def test_a_submodule_importing_a_sibling_through_its_package_is_a_circle(
    tmp_path: Path,
) -> None:
    # `from llmnb.pkg import b` runs llmnb/pkg/__init__.py, which imports a: a circle.
    pkg = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "pkg/__init__.py": "from llmnb.pkg import a\n",
            "pkg/a.py": "from llmnb.pkg import b\n",
            "pkg/b.py": "",
            "pkg/c.py": "import llmnb.pkg.b as b\n",  # names the module only
        },
    )
    edges = graph(pkg)
    assert edges["llmnb.pkg.a"] == {"llmnb.pkg", "llmnb.pkg.b"}
    assert edges["llmnb.pkg.c"] == {"llmnb.pkg.b"}
    assert cycles(edges) == [["llmnb.pkg", "llmnb.pkg.a"]]


@pytest.mark.parametrize(
    ("importer", "imported", "bad"),
    [("llmnb.low", "llmnb.high", True), ("llmnb.high", "llmnb.low", False)],
)
def test_checker_flags_upward_imports(importer: str, imported: str, bad: bool) -> None:
    layers = [["llmnb.high"], ["llmnb.low"]]
    assert bool(upward({importer: {imported}}, layers)) is bad


def test_checker_reads_the_documented_order(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text(
        "x\n<!-- layers -->\n```text\nllmnb.a  # top\n\nllmnb.b llmnb.c\n```\n<!-- /layers -->\n"
    )
    assert layer_order(doc) == [["llmnb.a"], ["llmnb.b", "llmnb.c"]]
    assert layer_of("llmnb.b.x", layer_order(doc)) == 1


def test_import_llmnb_loads_only_the_facade_and_the_value_types() -> None:
    import subprocess
    import sys

    code = "import sys, llmnb; print(sorted(m for m in sys.modules if m.startswith('llmnb')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['llmnb', 'llmnb.types']"
