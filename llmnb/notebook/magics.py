"""``%%llm`` / ``%llm`` (alias ``%%llmnb`` / ``%llmnb``): ask a model from a notebook.

Example::

    %load_ext llmnb

    %%llm openrouter:anthropic/claude-sonnet-4.5 -t 0.2 -f code -o snippet
    Write a pandas one-liner that drops duplicate rows of df.

    %llm use claude          # switch this session's profile
    %llm usage --by model    # this session's usage as a DataFrame

Settings are traitlets: ``%config LLMMagics.default_format = "text"``. Loading imports
IPython and traitlets only; everything else is imported by the cell that needs it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.core import magic as _magic
from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class
from traitlets import Bool, Enum, Float, Int

from llmnb.errors import LLMError
from llmnb.notebook._args import FORMATS, llm_arguments, parse_cell_line, split_line
from llmnb.notebook._clients import ClientCache

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from llmnb.conversation import SessionManager

__all__ = ["MAGIC_NAMES", "LLMMagics", "load", "question_mark_transformer", "unload"]

MAGIC_NAMES = ("llm", "llmnb")
_RED, _RESET = "\x1b[31m", "\x1b[0m"
_warned_conflict = False
F = TypeVar("F", bound=Callable[..., Any])


# IPython's decorators are loosely typed; these typed twins keep mypy strict on `llm`.
def _line_cell_magic(name: str) -> Callable[[F], F]:
    deco: Any = _magic.line_cell_magic(name)  # records `name` for @magics_class
    return deco  # type: ignore[no-any-return]


def _no_var_expand(func: F) -> F:
    # IPython fills {x} and $x into magic lines by default; llmnb interpolates itself.
    _magic.no_var_expand(func)  # type: ignore[no-untyped-call]
    return func


def _one_line(exc: LLMError) -> None:
    """Make IPython show ``exc`` as one red line (it calls ``_render_traceback_``)."""
    text = f"{_RED}{type(exc).__name__}{_RESET}: {exc}"
    exc._render_traceback_ = lambda: [text]  # type: ignore[method-assign]


@magics_class
class LLMMagics(Magics):
    """The llmnb magics. One instance per shell, made by ``%load_ext llmnb``."""

    default_format = Enum(
        FORMATS,
        default_value="markdown",
        help="How answers are rendered when -f is not given.",
    ).tag(config=True)
    show_footer = Bool(
        True, help="End each answer with profile · model · tokens · cost · latency."
    ).tag(config=True)
    max_chat_history = Int(
        20, help="Turns of a --chat conversation sent with each prompt (0: all of them)."
    ).tag(config=True)
    max_chat_tokens = Int(
        0, help="Estimated token limit of a --chat conversation's history (0: no limit)."
    ).tag(config=True)
    stream_throttle = Float(
        0.1, help="Seconds between display updates while --stream text arrives."
    ).tag(config=True)

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.debug = False
        self.clients = ClientCache()
        self.chats: dict[str, SessionManager] = {}
        # set by load(): keeps `%llm Why?` a prompt (removed again by unload())
        self.transformer: Callable[[list[str]], list[str]] | None = None

    def conversation(self, name: str) -> SessionManager:
        """A working copy of the conversation ``name`` (kept by the caller on success)."""
        from llmnb.conversation import SessionManager

        current = self.chats.get(name)
        chat = SessionManager.from_dict(current.to_dict()) if current else SessionManager(name)
        chat.max_turns = self.max_chat_history if self.max_chat_history > 0 else None
        chat.max_tokens = self.max_chat_tokens if self.max_chat_tokens > 0 else None
        return chat

    @property
    def ip(self) -> InteractiveShell:
        """The shell these magics belong to."""
        if self.shell is None:
            raise RuntimeError("LLMMagics needs a shell: LLMMagics(shell=get_ipython())")
        return self.shell

    @_no_var_expand
    @llm_arguments
    @_line_cell_magic("llmnb")
    @_line_cell_magic("llm")
    def llm(self, line: str, cell: str | None = None) -> Any:
        """Ask a model, or run an llmnb command.

        %%llm [PROFILE[:MODEL]] [options]  -- the cell is the prompt.
        %llm [options] PROMPT              -- a one-line prompt.
        %llm COMMAND                       -- use PROFILE [MODEL], list, providers, config,
            usage [--by COL], error, reset [NAME], budget USD|off, picker, dashboard,
            debug on|off, help. `%llm ask PROMPT` sends a prompt that starts with one
            of those words.

        {name}, {df.head()}, {In[3]}, {Out[3]} in a prompt are replaced by their values;
        braces that are not such a reference (code, JSON, dict comprehensions) stay as
        written, and {{x}} keeps {x}. llmnb errors show as one red line; `%llm debug on`
        shows full tracebacks. Also available as %%llmnb / %llmnb.
        """
        try:
            if cell is None:
                return self._line(line)
            self._cell(line, cell)
            return None
        except LLMError as exc:
            if not self.debug:
                _one_line(exc)
            raise

    def _cell(self, line: str, cell: str) -> None:
        from llmnb.notebook._ask import ask

        opts = parse_cell_line(self.llm, line)
        if not cell.strip():
            raise UsageError("the cell is empty: write the prompt below the %%llm line")
        ask(self, opts, cell.strip("\n"))

    def _line(self, line: str) -> Any:
        from llmnb.notebook._ask import ask
        from llmnb.notebook._commands import COMMANDS, HELP, run_command

        text = line.strip()
        if not text:
            print(HELP)
            return None
        word, _, rest = text.partition(" ")
        if word in COMMANDS:
            return run_command(self, word, rest)
        if word == "ask":
            text = rest.strip()
        opts, prompt = split_line(self.llm, text)
        if not prompt:
            raise UsageError(
                "no prompt: write it after the options (%llm -t 0 What is SSE?), "
                "or use %%llm with the prompt in the cell"
            )
        ask(self, opts, prompt)
        return None


# -- loading ---------------------------------------------------------------------------


def question_mark_transformer(names: tuple[str, ...]) -> Callable[[list[str]], list[str]]:
    """An input transformer: ``%llm Why is the sky blue?`` is a prompt, not a help request.

    IPython reads a line ending in ``?`` as ``obj?`` help; this rewrites such a one-line
    magic (of ``names``) into the explicit call IPython itself makes for a line magic.
    """
    pattern = re.compile(rf"^%({'|'.join(map(re.escape, names))})[ \t]+(\S.*?\?)[ \t]*$")

    def keep_question_marks(lines: list[str]) -> list[str]:
        if not lines or lines[0].startswith("%%"):
            return lines  # a cell magic's body is its own business
        out = []
        for line in lines:
            match = pattern.match(line.rstrip("\n"))
            if match is None:
                out.append(line)
            else:
                name, rest = match.groups()
                out.append(f"get_ipython().run_line_magic({name!r}, {rest!r})\n")
        return out

    return keep_question_marks


def _owner(fn: Any) -> str | None:
    """Who registered the magic ``fn``; None when it is llmnb's own."""
    if isinstance(getattr(fn, "__self__", None), LLMMagics):
        return None
    spec = getattr(fn, "spec", None)  # IPython's lazily loaded magics name their extension
    if isinstance(spec, str):
        return spec
    owner = getattr(fn, "__self__", None)
    module = getattr(fn, "__module__", None) or type(owner).__module__
    return str(module)


def load(shell: InteractiveShell) -> LLMMagics:
    """Register the magics on ``shell``; ``%llm``/``%%llm`` only where no one else has."""
    global _warned_conflict
    if shell.magics_manager.registry.get("LLMMagics") is not None:
        unload(shell)
    magics = LLMMagics(shell=shell)
    taken: list[str] = []
    for kind, prefix in (("line", "%"), ("cell", "%%")):
        existing = shell.magics_manager.magics[kind].get("llm")
        owner = _owner(existing) if existing is not None else None
        if owner is not None:
            del magics.magics[kind]["llm"]
            taken.append(f"{prefix}llm ({owner})")
    shell.register_magics(magics)
    magics.transformer = question_mark_transformer(tuple(magics.magics["line"]))
    shell.input_transformers_cleanup.append(magics.transformer)
    if taken and not _warned_conflict:
        _warned_conflict = True
        print(
            f"llmnb: {' and '.join(taken)} already belong to another extension; "
            "llmnb's magics are %llmnb and %%llmnb here.",
            file=sys.stderr,
        )
    return magics


def unload(shell: InteractiveShell) -> None:
    """Remove llmnb's magics from ``shell`` and close its clients."""
    manager = shell.magics_manager
    for kind in ("line", "cell"):
        table = manager.magics[kind]
        for name in MAGIC_NAMES:
            if isinstance(getattr(table.get(name), "__self__", None), LLMMagics):
                del table[name]
    magics = manager.registry.pop("LLMMagics", None)
    if magics is not None:
        if magics in shell.configurables:
            shell.configurables.remove(magics)
        if magics.transformer in shell.input_transformers_cleanup:
            shell.input_transformers_cleanup.remove(magics.transformer)
        magics.clients.clear()
