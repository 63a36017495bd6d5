"""The ``.llm`` pandas accessor: ``df.llm.complete("Summarize: {text}", out="summary")``.

The DataFrame it returns is a copy of ``df`` with two more columns (the contract):

==================  ====================================================================
``<out>``           the answer's text, or the validated ``response_model`` object;
                    None where the call failed
``<out>_error``     None, or ``"ErrorType: message"`` of the row's failed call
==================  ====================================================================

and ``result.attrs["llm"]``: rows, answered, errors, cached, cost_usd, mode. A
``Series`` of text has the same accessor (``s.llm.complete("Translate: {}")``).

Registration without an extra step, and without making ``import llmnb`` import pandas:
``import llmnb`` registers the accessor at once when pandas is already imported, and
otherwise leaves a one-shot import hook (in ``llmnb/__init__.py``) that calls
:func:`register` right after pandas' own import finishes. This module never imports
pandas at import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LLMFrameAccessor", "LLMSeriesAccessor", "register"]

_registered = False


def register() -> None:
    """Register ``DataFrame.llm`` and ``Series.llm`` (once per process)."""
    global _registered
    if _registered:
        return
    import pandas as pd

    _registered = True  # first: pandas warns if an accessor is registered twice
    pd.api.extensions.register_dataframe_accessor("llm")(LLMFrameAccessor)
    pd.api.extensions.register_series_accessor("llm")(LLMSeriesAccessor)


# -- the accessors ------------------------------------------------------------------------

Template = Union[str, Callable[[Mapping[str, Any]], Any]]


class LLMFrameAccessor:
    """``df.llm``: run a prompt template over every row.

    Example::

        out = df.llm.complete("Summarize: {text}", profile="openai", concurrency=16,
                              out="summary", cache=True)
        out[out["summary_error"].notna()]          # the rows that failed
    """

    def __init__(self, df: pd.DataFrame) -> None:
        duplicated = df.columns[df.columns.duplicated()]
        if len(duplicated):
            names = ", ".join(repr(c) for c in duplicated.unique())
            raise AttributeError(
                f".llm needs unique column names to fill a template; duplicated: {names}"
            )
        self._df = df

    def render(self, template: Template, system: str | None = None) -> list[Any]:
        """The prompt (or message list, with ``system``) of every row, in row order."""
        rows = self._df.to_dict("records")
        if callable(template):
            prompts = [template({str(k): v for k, v in row.items()}) for row in rows]
        else:
            _check_fields(template, [str(c) for c in self._df.columns], "column")
            prompts = [template.format_map({str(k): v for k, v in row.items()}) for row in rows]
        return [_with_system(p, system) for p in prompts]

    def complete(
        self,
        template: Template,
        *,
        out: str = "output",
        system: str | None = None,
        **options: Any,
    ) -> Any:
        """Answer ``template`` filled from each row; a copy of the frame with ``<out>`` and
        ``<out>_error`` columns (see the module docs). ``options`` are those of
        :func:`llmnb.batch.map` (profile, model, client, concurrency, response_model,
        errors, progress, cache, dry_run, mode) and call parameters (max_tokens, …).
        ``dry_run=True`` returns a :class:`~llmnb.batch.DryRun` instead."""
        return _complete(self._df, self.render(template, system), out, options)

    def embed(self, column: str, *, out: str = "embedding", **options: Any) -> Any:
        """Embed the text of ``column``: a copy of the frame with ``<out>`` (a float32
        vector per row, None where it failed) and ``<out>_error``. Options: profile,
        model, client, dimensions, batch_size, concurrency, cache, tags, progress, errors."""
        from llmnb.batch.embed import embed_frame

        return embed_frame(self._df, column, out, options)


class LLMSeriesAccessor:
    """``s.llm``: a Series of text, each value filled into ``{}`` (or ``{value}``)."""

    def __init__(self, s: pd.Series) -> None:
        import pandas as pd

        if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
            raise AttributeError(
                f".llm works on a Series of text (object or string dtype), not {s.dtype}; "
                "convert it with .astype(str) first"
            )
        self._s = s

    def render(self, template: Template = "{}", system: str | None = None) -> list[Any]:
        if callable(template):
            prompts = [template({"value": v}) for v in self._s]
        else:
            _check_fields(template, ["value", ""], "placeholder")
            prompts = [template.format(v, value=v) for v in self._s]
        return [_with_system(p, system) for p in prompts]

    def complete(
        self, template: Template = "{}", *, system: str | None = None, **options: Any
    ) -> Any:
        """Answer each value; returns a DataFrame with ``output`` and ``output_error``
        (``out=`` renames them), indexed like the Series."""
        out = options.pop("out", "output")
        frame = self._s.to_frame(name=self._s.name if self._s.name is not None else "input")
        return _complete(frame, self.render(template, system), out, options)

    def embed(self, *, out: str = "embedding", **options: Any) -> Any:
        """Embed each value; a DataFrame with the values, ``<out>`` and ``<out>_error``."""
        from llmnb.batch.embed import embed_frame

        name = self._s.name if self._s.name is not None else "input"
        return embed_frame(self._s.to_frame(name=name), name, out, options)


def _complete(df: pd.DataFrame, prompts: list[Any], out: str, options: dict[str, Any]) -> Any:
    import pandas as pd

    from llmnb.batch.results import DryRun
    from llmnb.batch.runner import map as batch_map

    res = batch_map(prompts, **options)
    if isinstance(res, DryRun):
        return res
    result = df.copy()
    result[out] = pd.Series(res.outputs, index=df.index, dtype=object)
    result[f"{out}_error"] = pd.Series(res.errors, index=df.index, dtype=object)
    result.attrs["llm"] = res.summary()
    return result


def _with_system(prompt: Any, system: str | None) -> Any:
    if system is None:
        return prompt
    if not isinstance(prompt, str):
        from llmnb.errors import InvalidOptionError

        raise InvalidOptionError("system= needs a text template; put the system message in it")
    return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]


def _check_fields(template: str, known: list[str], what: str) -> None:
    """Say which ``{field}`` has no column before anything is sent."""
    import string

    from llmnb.errors import InvalidOptionError

    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise InvalidOptionError(f"template {template!r} is not a format string: {exc}") from None
    for name in fields:
        root = name.split(".", 1)[0].split("[", 1)[0]
        if root not in known and not (what == "placeholder" and root.isdigit()):
            listed = ", ".join(repr(k) for k in known if k) or "(none)"
            raise InvalidOptionError(
                f"template field {{{name}}} is not a {what}; available: {listed}. "
                "Escape literal braces as {{ and }}."
            )
