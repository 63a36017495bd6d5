"""A Python function or pydantic model as a tool a model can call.

The JSON schema comes from pydantic (a model built from the signature with
``create_model``), never a hand-written converter; the same model validates the
arguments the model sends before the function runs.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from llmnb.errors import InvalidRequestError

__all__ = ["Tool", "as_tool", "as_tools"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
# "name: text" / "name (type): text" lines under an Args:/Parameters: heading.
_ARG_LINE = re.compile(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


@dataclass(eq=False)
class Tool:
    """One tool: its wire ``name``, ``description``, JSON-schema ``parameters`` and the
    callable that runs it. ``timeout`` (seconds) bounds one run; ``None`` waits."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any] = field(repr=False)
    model: Any = field(repr=False)
    is_async: bool = False
    timeout: float | None = None

    def spec(self) -> dict[str, Any]:
        """The provider-neutral declaration that travels on ``Request.tools``."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments as the function's own types (raises pydantic's ValidationError)."""
        obj = self.model.model_validate(dict(arguments))
        return {k: getattr(obj, k) for k in type(obj).model_fields}


def _doc_parts(doc: str | None) -> tuple[str, dict[str, str]]:
    """The docstring's description (up to an Args: section) and each argument's text."""
    if not doc:
        return "", {}
    text = inspect.cleandoc(doc)
    described: list[str] = []
    args: dict[str, str] = {}
    in_args = False
    for line in text.splitlines():
        heading = line.strip().rstrip(":").lower()
        if line.strip().endswith(":") and heading in {"args", "arguments", "parameters", "params"}:
            in_args = True
            continue
        if in_args:
            m = _ARG_LINE.match(line)
            if m:
                args[m.group(1)] = m.group(2).strip()
            elif line.strip() and not line.startswith((" ", "\t")):
                in_args = False  # another section
            if in_args:
                continue
        if not args or not in_args:
            described.append(line)
    return "\n".join(described).strip(), args


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    schema.pop("title", None)
    for prop in (schema.get("properties") or {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    schema.setdefault("properties", {})
    return schema


def _from_function(fn: Callable[..., Any], name: str | None, timeout: float | None) -> Tool:
    import pydantic

    tool_name = name or getattr(fn, "__name__", "") or type(fn).__name__
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"tools: cannot read the signature of {tool_name!r} ({exc}); wrap it in a def."
        ) from None
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        hints = {}
    description, arg_docs = _doc_parts(inspect.getdoc(fn))
    fields: dict[str, Any] = {}
    for pname, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue  # *args / **kwargs: nothing a model can fill by name
        annotation = hints.get(pname, p.annotation)
        if annotation is inspect.Parameter.empty:
            annotation = Any
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[pname] = (
            annotation,
            pydantic.Field(default, description=arg_docs.get(pname)),
        )
    try:
        model = pydantic.create_model(  # type: ignore[call-overload]
            f"{tool_name}_arguments",
            __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True),
            **fields,
        )
        parameters = _clean_schema(model.model_json_schema())
    except Exception as exc:
        raise InvalidRequestError(
            f"tools: {tool_name!r} has a parameter type pydantic cannot turn into a JSON "
            f"schema ({type(exc).__name__}: {str(exc).splitlines()[0]}); annotate its "
            "parameters with JSON-friendly types (str, int, float, bool, list, dict, "
            "Literal, pydantic models)."
        ) from None
    # A callable object's coroutine-ness is its class's __call__'s.
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else type(fn).__call__
    is_async = inspect.iscoroutinefunction(target)
    return Tool(tool_name, description, parameters, fn, model, is_async, timeout)


def _from_model(cls: Any, name: str | None, timeout: float | None) -> Tool:
    description, _ = _doc_parts(cls.__doc__)
    parameters = _clean_schema(cls.model_json_schema())

    def build(**kwargs: Any) -> Any:
        return cls(**kwargs)

    return Tool(name or cls.__name__, description, parameters, build, cls, False, timeout)


def as_tool(
    obj: Any, *, name: str | None = None, timeout: float | None = None, where: str = "tools"
) -> Tool:
    """``obj`` (a function, async function, callable object, pydantic model class or a
    :class:`Tool`) as a :class:`Tool`. Anything else raises InvalidRequestError."""
    if isinstance(obj, Tool):
        return obj
    import pydantic

    if isinstance(obj, type) and issubclass(obj, pydantic.BaseModel):
        tool = _from_model(obj, name, timeout)
    elif callable(obj) and not isinstance(obj, type):
        tool = _from_function(obj, name, timeout)
    else:
        raise InvalidRequestError(
            f"{where}: {obj!r} ({type(obj).__name__}) is not callable; pass functions, "
            "async functions or pydantic model classes."
        )
    if not _NAME.match(tool.name):
        raise InvalidRequestError(
            f"{where}: the tool name {tool.name!r} is not a valid function name for the "
            "providers (letters, digits, _ and -, up to 64); pass llmnb.tool(fn, name=...)."
        )
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise InvalidRequestError(f"{where}: timeout={timeout!r} for {tool.name!r} must be > 0")
    return tool


def as_tools(objs: Any) -> tuple[Tool, ...]:
    """A list of tools (``tools=`` of a call), checked: names unique, each usable."""
    if callable(objs) or isinstance(objs, (Tool, str, bytes)) or not hasattr(objs, "__iter__"):
        raise InvalidRequestError(
            f"tools={objs!r}: pass a list of functions or pydantic models, e.g. tools=[f]."
        )
    tools = tuple(as_tool(o, where=f"tools[{i}]") for i, o in enumerate(objs))
    seen: set[str] = set()
    for t in tools:
        if t.name in seen:
            raise InvalidRequestError(
                f"tools: two tools are named {t.name!r}; rename one with llmnb.tool(fn, name=...)."
            )
        seen.add(t.name)
    return tools
