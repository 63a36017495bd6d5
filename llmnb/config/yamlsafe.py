"""Reading settings YAML strictly: no key written twice, no alias bombs.

Private helper of :mod:`llmnb.config.schema`. pyyaml's ``safe_load`` keeps the last of
two equal keys without a word (a profile written twice silently loses its first
definition) and lets a few lines of anchors and aliases stand for billions of values
("billion laughs"), which hang whatever walks them later. Here the document is first
composed into nodes (by libyaml when it is installed), then one linear walk over the
distinct nodes checks both, and only then is it turned into Python values.

Example::

    data = load_yaml(text, "config/settings.yaml")   # ConfigError on either problem
"""

from __future__ import annotations

from typing import Any

import yaml

from llmnb.errors import ConfigError

__all__ = ["MAX_EXPANDED_NODES", "load_yaml"]

# A settings file is a few hundred nodes; aliases may multiply that (merge keys), but a
# document that stands for more than this is a bomb, not a configuration.
MAX_EXPANDED_NODES = 100_000

_MERGE = "tag:yaml.org,2002:merge"
# libyaml's parser is ~20x faster than pure Python's; the constructor is Python in both.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# A node's place for messages: (parent place, key) links, formatted only on error.
_Place = tuple[Any, str | int] | None


def load_yaml(text: str, shown: str) -> Any:
    """``text`` as Python values; yaml.YAMLError for bad syntax, ConfigError for a key
    written twice in one mapping or aliases that expand beyond ``MAX_EXPANDED_NODES``."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check(node, shown)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _dotted(place: _Place) -> str:
    parts: list[str | int] = []
    while place is not None:
        place, part = place
        parts.append(part)
    out = ""
    for part in reversed(parts):
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "the top level"


def _children(node: yaml.Node) -> list[tuple[yaml.Node, str | int]]:
    if isinstance(node, yaml.MappingNode):
        out: list[tuple[yaml.Node, str | int]] = []
        for key, value in node.value:
            label = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            out += [(key, label), (value, label)]
        return out
    if isinstance(node, yaml.SequenceNode):
        return [(child, i) for i, child in enumerate(node.value)]
    return []


def _check(root: yaml.Node, shown: str) -> None:
    """One iterative walk: duplicate keys per mapping, and the size aliases expand to
    (memoised per node, so shared nodes cost once — linear in the file)."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, _Place, bool]] = [(root, None, False)]
    while stack:
        node, place, done = stack.pop()
        nid = id(node)
        children = _children(node)
        if done:
            open_nodes.discard(nid)
            total = 1 + sum(size[id(child)] for child, _ in children)
            if total > MAX_EXPANDED_NODES:
                raise ConfigError(
                    f"{shown}: {_dotted(place)} (line {node.start_mark.line + 1}) uses YAML "
                    f"aliases (*name) that expand to more than {MAX_EXPANDED_NODES:,} values "
                    "— a settings file never needs that many; write the values out, or "
                    "remove the anchors (&name) and aliases there."
                )
            size[nid] = total
            continue
        if nid in size:
            continue
        if nid in open_nodes:
            raise ConfigError(
                f"{shown}: {_dotted(place)} (line {node.start_mark.line + 1}) is an alias "
                "(*name) of a value that contains it — settings cannot be recursive; "
                "write the value out."
            )
        open_nodes.add(nid)
        stack.append((node, place, True))
        if isinstance(node, yaml.MappingNode):
            _check_keys(node, place, shown)
        stack.extend((child, (place, label), False) for child, label in reversed(children))


def _check_keys(node: yaml.MappingNode, place: _Place, shown: str) -> None:
    # Keys brought in by a merge (`<<: *defaults`) may be overridden: that is its point.
    seen: dict[tuple[str, str], yaml.Node] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE:
            continue
        first = seen.setdefault((key.tag, key.value), key)
        if first is key:
            continue
        where = _dotted(place)
        what = (
            f"profile {key.value!r} is defined twice under llm.providers"
            if where == "llm.providers"
            else f"the key {key.value!r} is written twice in {where}"
        )
        raise ConfigError(
            f"{shown}: {what} ({_both(first, key)}) — YAML would keep only "
            "the last one, silently. Remove one of them, or rename it."
        )


def _both(first: yaml.Node, second: yaml.Node) -> str:
    a, b = first.start_mark, second.start_mark
    if a.line != b.line:
        return f"lines {a.line + 1} and {b.line + 1}"
    return f"line {a.line + 1}, columns {a.column + 1} and {b.column + 1}"
