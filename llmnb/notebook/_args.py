"""The options of ``%%llm`` (declared with IPython's magic_arguments) and their parsing.

``%%llm`` options live on the magic line; the prompt is the cell. ``%llm`` one-liners put
the options first and the prompt after them, so :func:`split_line` reads options only
until the first word that is not one — the rest of the line, quotes and all, is the prompt.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from typing import Any, TypeVar

from IPython.core import magic_arguments as _ma
from IPython.core.error import UsageError

__all__ = ["FORMATS", "llm_arguments", "parse_cell_line", "split_line"]

F = TypeVar("F", bound=Callable[..., Any])

# IPython's decorators are untyped; typed names keep mypy strict about the rest.
argument: Callable[..., Callable[[F], F]] = _ma.argument
magic_arguments: Callable[[], Callable[[F], F]] = _ma.magic_arguments

FORMATS = ("markdown", "text", "code", "json", "html", "math")

_ARGUMENTS = [
    argument(
        "target",
        nargs="?",
        metavar="PROFILE[:MODEL]",
        help="profile to use, optionally with a model (same as -p PROFILE -m MODEL)",
    ),
    argument("-p", "--profile", help="profile name from config/settings.yaml"),
    argument("-m", "--model", help="model name (overrides the profile's model)"),
    argument("-t", "--temperature", type=float, metavar="T", help="sampling temperature"),
    argument("--max-tokens", type=int, metavar="N", help="maximum tokens in the answer"),
    argument("-s", "--system", metavar="TEXT", help="system prompt ({…} interpolated too)"),
    argument(
        "-f",
        "--format",
        choices=FORMATS,
        help="how to render the answer (default: LLMMagics.default_format, markdown)",
    ),
    argument("--stream", action="store_true", help="show the answer while it arrives"),
    argument(
        "-o",
        "--out",
        metavar="VAR",
        help="store the answer in VAR: the text, the code (-f code) or parsed JSON (-f json)",
    ),
    argument(
        "--chat",
        nargs="?",
        const="default",
        metavar="NAME",
        help="keep a conversation: earlier turns of NAME (default 'default') are sent too; "
        "forget it with %%llm reset NAME. In a one-liner write --chat=NAME",
    ),
    argument("--agent", help="use the agent's profile and parameters (llm.agents.AGENT)"),
    argument("--step", help="with --agent: that step's parameters (llm.agents.AGENT.steps.STEP)"),
    argument("--no-cache", action="store_true", help="do not answer from the response cache"),
    argument(
        "--dry-run",
        action="store_true",
        help="show the final prompt, profile, model, parameters and estimated cost; send nothing",
    ),
    argument(
        "--compare",
        metavar="P1,P2,…",
        help="send the same prompt to several profiles (PROFILE[:MODEL], comma-separated) "
        "at once and show one table: answer, tokens, cost, latency",
    ),
    argument("--insert", action="store_true", help="with -f code: put the code in a new cell"),
    argument(
        "--params",
        metavar="JSON",
        help='more call parameters as a JSON object: --params \'{"top_p": 0.9, "seed": 7}\'',
    ),
    argument(
        "-P",
        dest="param",
        action="append",
        metavar="KEY=VALUE",
        help="one call parameter (repeatable); VALUE is read as JSON if it parses, else text",
    ),
    argument(
        "-a",
        "--attach",
        metavar="NAME_OR_PATH[,…]",
        help="attach images, documents or audio: notebook variables (a Figure, Axes, PIL "
        "image, bytes) or paths/URLs, comma-separated. {fig} in the prompt attaches too",
    ),
    argument(
        "--tools",
        metavar="F1,F2,…",
        help="functions (or pydantic models) of the notebook the model may call; each "
        "call is shown with its arguments and result",
    ),
    argument("--approve", action="store_true", help="with --tools: ask before each call"),
]


def llm_arguments(func: F) -> F:
    """Declare the ``%%llm`` options on ``func`` (its docstring becomes the help)."""
    # construct_parser reads the decorators in reverse: apply them last-first.
    for deco in reversed(_ARGUMENTS):
        func = deco(func)
    decorated: F = magic_arguments()(func)
    return decorated


def _parser(func: Callable[..., Any]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = getattr(func, "parser")  # noqa: B009 - set by IPython
    return parser


def parse_cell_line(func: Callable[..., Any], line: str) -> argparse.Namespace:
    """Parse the ``%%llm`` line (POSIX quoting: ``-s "Be brief"``)."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:  # an unclosed quote
        raise UsageError(f"cannot read the options {line.strip()!r}: {exc}") from None
    return _parser(func).parse_args(argv)


def _token(line: str, i: int) -> tuple[str, int]:
    """The shell-like word starting at ``line[i]`` (quotes removed) and where it ends."""
    out: list[str] = []
    n = len(line)
    while i < n and not line[i].isspace():
        ch = line[i]
        if ch in "'\"":
            close = line.find(ch, i + 1)
            if close < 0:
                raise ValueError(f"no closing {ch}")
            out.append(line[i + 1 : close])
            i = close + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out), i


def _skip_space(line: str, i: int) -> int:
    while i < len(line) and line[i].isspace():
        i += 1
    return i


def split_line(func: Callable[..., Any], line: str) -> tuple[argparse.Namespace, str]:
    """Split ``%llm [options] prompt`` into parsed options and the prompt text."""
    parser = _parser(func)
    actions: dict[str, argparse.Action] = parser._option_string_actions
    argv: list[str] = []
    i = _skip_space(line, 0)
    while i < len(line):
        try:
            word, end = _token(line, i)
        except ValueError:
            break  # "What's up": an apostrophe starts the prompt, not an option
        if word == "--":
            i = _skip_space(line, end)
            break
        name = word.split("=", 1)[0] if word.startswith("--") else word
        action = actions.get(name)
        attached = False
        if action is None and len(word) > 2 and word[:2] in actions and word[1] != "-":
            action, attached = actions[word[:2]], True  # -t0.2
        if action is None:
            break  # the first word that is not an option starts the prompt
        argv.append(word)
        i = _skip_space(line, end)
        takes_value = action.nargs is None
        if takes_value and "=" not in word and not attached:
            if i >= len(line):
                break  # argparse reports the missing value
            try:
                value, end = _token(line, i)
            except ValueError as exc:
                raise UsageError(f"cannot read the value of {word}: {exc}") from None
            argv.append(value)
            i = _skip_space(line, end)
    return parser.parse_args(argv), line[i:].strip()
