"""The ``%llm`` line commands: use, list, providers, config, usage, error, reset, budget,
picker, dashboard, debug, help. ``%llm ask …`` and plain prompts go to ``_ask``.

Each command imports what it needs when it runs, so ``%load_ext llmnb`` stays light.
"""

from __future__ import annotations

import argparse
import importlib
import linecache
import math
import sys
import traceback
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from IPython.core import magic_arguments as _ma
from IPython.core.error import UsageError

from llmnb.notebook import _display as d
from llmnb.notebook._args import split_line
from llmnb.notebook._clients import parse_target
from llmnb.notebook._replay_cmd import cmd_replay

if TYPE_CHECKING:
    from llmnb.notebook._host import MagicsHost as LLMMagics

__all__ = ["COMMANDS", "HELP", "run_command"]

HELP = """\
%%llm [PROFILE[:MODEL]] [options]      the cell is the prompt (%%llm? lists the options)
%llm [options] PROMPT                  a one-line prompt
%llm ask PROMPT                        a prompt that starts with one of the words below
%llm use PROFILE [MODEL]               switch this session's profile (%llm use --clear undoes it)
%llm list                              profiles: type, model, key set ✓/✗ (never the key)
%llm providers                         provider types you can use in a profile
%llm models [PROFILE|TYPE] [--refresh] the models each endpoint serves, with prices
%llm config                            resolved settings, secrets redacted
%llm usage [--by COL[,COL]] [--rows]   this session's usage as a DataFrame
%llm error [options]                   explain the last error and its cell
%llm reset [NAME]                      forget the --chat conversation NAME (no NAME: all)
%llm budget [USD|off]                  show (limit, window, spent, reserved) or set the budget
%llm replay [record|on|auto PATH | off] record calls into a cassette, or answer from one
%llm picker | dashboard                provider picker / usage dashboard widgets
%llm debug on|off                      show full tracebacks of llmnb errors
Prompts fill in {name}, {expr}, {In[3]}, {Out[3]} from your variables; {{x}} keeps braces.
Settings: %config LLMMagics.default_format / show_footer / max_chat_history /
max_chat_tokens / stream_throttle."""


def _no_args(command: str, rest: str) -> None:
    if rest:
        raise UsageError(
            f"%llm {command} takes no arguments. To send a prompt that starts with "
            f"{command!r}, write: %llm ask {command} {rest}"
        )


def cmd_help(magics: LLMMagics, rest: str) -> None:
    print(HELP)


def cmd_use(magics: LLMMagics, rest: str) -> None:
    from llmnb import config
    from llmnb.client import adhoc

    adhoc.install()  # `%llm use openai:gpt-4o-mini` needs no profile

    args = rest.split()
    if args == ["--clear"]:
        config.set_session_provider(None)
        print("Session choice cleared: the profile comes from LLM_ACTIVE_PROVIDER or the settings.")
        return
    if len(args) > 2:
        raise UsageError("usage: %llm use PROFILE [MODEL] (or PROFILE:MODEL)")
    if args:
        target = parse_target(args[0])
        model = target.model
        if len(args) == 2:
            if model:
                raise UsageError(f"model given twice ({args[0]!r} and {args[1]!r}): keep one")
            model = args[1]
        config.set_session_provider(target.profile, model)
    active = config.get_active_profile()
    if active is None:
        print("No active profile: %llm use PROFILE picks one (%llm list shows them).")
        return
    name, _ = active
    chosen = config.get_session_provider()[0] == name
    where = "this session's choice" if chosen else "from the settings / environment"
    print(f"Active: {name} · {config.get_model_name()} ({where})")


def _key_status(name: str, profile: dict[str, Any]) -> str:
    """✓ a key is set, ✗ VAR: one is needed and missing (or unusable), — none needed,
    ? cannot tell."""
    from llmnb.errors import ConfigError

    try:
        return _find_key_status(name, profile)
    except ConfigError as exc:  # a key with a control character: the message names it
        return f"✗ {str(exc).split(' has ', 1)[0].removeprefix('The API key in ')}: unusable"


def _find_key_status(name: str, profile: dict[str, Any]) -> str:
    from llmnb import config
    from llmnb.client import registry as _registry

    if profile.get("api_key") or profile.get("api_keys") or profile.get("api_key_env"):
        found = config.resolve_api_keys(name, profile, None)
        return "✓" if found else f"✗ {profile.get('api_key_env') or 'api_key'}"
    if profile.get("provider_factory"):
        return "?"
    try:
        # The class says which variable it reads by default; nothing is built or sent.
        cls = _registry.lookup_type(str(profile.get("type") or ""), name)
    except Exception:
        return "?"
    if not isinstance(cls, type):
        return "?"  # a registered factory function: what it needs is its own business
    var = getattr(cls, "key_env_var", None)
    if not var and not getattr(cls, "needs_key", False):
        return "—"
    found = config.resolve_api_keys(name, profile, var)
    return "✓" if found else f"✗ {var}"


def cmd_list(magics: LLMMagics, rest: str) -> None:
    from llmnb import config
    from llmnb.errors import LLMError

    _no_args("list", rest)
    settings = config.load_settings()
    try:
        active = config.get_active_profile()
        active_name = active[0] if active else None
        active_model = config.get_model_name() if active else None
    except LLMError:
        active_name = active_model = None
    rows = []
    for name in settings.profile_names():
        profile = dict(config.get_profile(name))
        kind = profile.get("type") or f"factory {profile.get('provider_factory')}"
        model = active_model if name == active_name else profile.get("model")
        mark = "▶" if name == active_name else ""
        rows.append([mark, name, str(kind), str(model or "—"), _key_status(name, profile)])
    d.show(d.table_bundle(["", "profile", "type", "model", "key"], rows))
    print(f"Settings: {settings.source}. Switch with %llm use PROFILE [MODEL].")


def cmd_providers(magics: LLMMagics, rest: str) -> None:
    from llmnb import config
    from llmnb.client.registry import list_providers

    _no_args("providers", rest)
    settings = config.load_settings()
    used: dict[str, list[str]] = {}
    for name in settings.profile_names():
        kind = str(config.get_profile(name).get("type") or "").lower()
        used.setdefault(kind, []).append(name)
    rows = [[t, ", ".join(used.get(t, [])) or "—"] for t in list_providers()]
    d.show(d.table_bundle(["type", "your profiles"], rows))


def cmd_config(magics: LLMMagics, rest: str) -> None:
    import yaml

    from llmnb import config
    from llmnb.config.schema import display_path, redact_mapping
    from llmnb.errors import LLMError

    _no_args("config", rest)
    settings = config.load_settings()
    env = display_path(settings.env_path) if settings.env_path else "none found"
    lines = [f"settings: {settings.source}", f".env: {env}"]
    session = config.get_session_provider()
    if session[0]:
        lines.append(f"session choice: {session[0]}" + (f" · {session[1]}" if session[1] else ""))
    try:
        active = config.get_active_profile()
        if active:
            lines.append(f"active profile: {active[0]} · model {config.get_model_name()}")
            lines.append(f"parameters: {redact_mapping(config.get_llm_params(None)) or '{}'}")
    except LLMError as exc:
        lines.append(f"active profile: cannot resolve ({exc})")
    data = redact_mapping(settings.model_dump(exclude_unset=True, exclude_none=True))
    text = "\n".join(lines) + "\n\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    d.show({"text/markdown": d._fenced(text.rstrip(), "yaml"), "text/plain": text.rstrip()})


def cmd_usage(magics: LLMMagics, rest: str) -> Any:
    from llmnb.usage import get_tracker, store_status
    from llmnb.usage.report import summarize
    from llmnb.usage.table import UsageFrame

    # MagicArgumentParser: its errors are UsageErrors (one line), not SystemExit.
    parser: argparse.ArgumentParser = _ma.MagicArgumentParser(prog="%llm usage")  # type: ignore[no-untyped-call]
    parser.add_argument("--by", default="model", help="column(s), comma-separated")
    parser.add_argument("--rows", action="store_true", help="one row per attempt")
    parser.add_argument("--all", action="store_true", help="every session in the store")
    opts = parser.parse_args(rest.split())
    tracker = get_tracker()
    health = store_status(tracker)
    if not health.healthy:
        print(health.line(), file=sys.stderr)  # rows are not (all) reaching the store
    df = tracker.to_dataframe()
    if not opts.all:
        df = df[df["session"] == tracker.session]
    if opts.rows:
        return df.reset_index(drop=True)
    keys = [k.strip() for k in opts.by.split(",") if k.strip()]
    try:
        summary = summarize(df, keys[0] if len(keys) == 1 else keys)
    except ValueError as exc:
        raise UsageError(f"%llm usage --by: {exc}") from None
    return UsageFrame(summary)  # shown formatted (n/a, units); the numbers stay exact


def cmd_reset(magics: LLMMagics, rest: str) -> None:
    names = rest.split()
    if len(names) > 1:
        raise UsageError("usage: %llm reset [NAME]")
    if not names:
        count = len(magics.chats)
        magics.chats.clear()
        print(f"Forgot {count} conversation(s).")
        return
    if magics.chats.pop(names[0], None) is None:
        known = ", ".join(sorted(magics.chats)) or "none"
        print(f"No conversation named {names[0]!r} (conversations: {known}).")
        return
    print(f"Forgot conversation {names[0]!r}.")


def _session_cost(rows: Iterable[Any], session: str) -> float | None:
    """USD of the known-cost rows of ``session``; None when it has no such row."""
    costs = [r.cost_usd for r in rows if r.session == session and r.cost_usd == r.cost_usd]
    return math.fsum(costs) if costs else None


def cmd_budget(magics: LLMMagics, rest: str) -> None:
    from llmnb.middleware import budget as b
    from llmnb.usage import get_tracker

    arg = rest.strip().lstrip("$")
    if arg.lower() in ("off", "none"):
        b.set_session_budget(None)
    elif arg:
        try:
            usd = float(arg)
        except ValueError:
            raise UsageError(
                f"%llm budget {rest.strip()!r}: give dollars (e.g. 2.5) or off"
            ) from None
        if not usd > 0 or usd == float("inf"):
            raise UsageError(f"%llm budget: the limit must be a positive number, got {arg}")
        b.set_session_budget(usd)
    tracker = get_tracker()
    states = b.budget_status(tracker)
    lines = []
    if not any(s.scope == "session" for s in states):
        # The budget's own count: only priced calls count, so saying so keeps "$0" honest.
        lines.append(
            f"Session budget: none · spent so far: {d.format_cost(b.get_session_spend())} "
            "(calls with a known price in this kernel — the number the budget checks) · "
            f"reserved: {d.format_cost(b.get_session_reserved())} (calls in flight)"
        )
    lines.extend(_budget_line(state) for state in states)
    tracked = _session_cost(tracker.records, tracker.session)
    spent = b.get_session_spend()
    if tracked is not None and abs(tracked - spent) > 1e-9:
        # e.g. after reset_spend(), set_tracker(), or clients with a tracker of their own.
        lines.append(
            f"Usage table, this session: {d.format_cost(tracked)} (the active tracker's "
            "rows; the budget does not check this number)"
        )
    print("\n".join(lines))


def _budget_line(state: Any) -> str:
    """``Session budget: $2 · spent so far: … · window: day since … · reserved: …``."""
    where, window = "in this kernel", state.window
    if state.since is not None:
        import datetime as dt

        when = dt.datetime.fromtimestamp(state.since).strftime("%Y-%m-%d %H:%M")
        where = "in the window"
        window = f"{state.window} since {when} (every kernel using this usage store)"
    spent = d.format_cost(state.spent_usd)
    if state.scope == "session":
        head = f"Session budget: {d.format_cost(state.limit_usd)} · spent so far: {spent} "
        head += f"(calls with a known price {where} — the number the budget checks)"
    else:
        head = f"Profile {state.scope[8:]} budget: {d.format_cost(state.limit_usd)} · "
        head += f"spent: {spent}"
    line = f"{head} · window: {window} · reserved: {d.format_cost(state.reserved_usd)}"
    if state.warn_at is not None:
        line += f" · warns at {state.warn_at:.0%}"
    return line


def cmd_debug(magics: LLMMagics, rest: str) -> None:
    arg = rest.strip().lower()
    if arg not in ("on", "off", ""):
        raise UsageError("usage: %llm debug on|off")
    if arg:
        magics.debug = arg == "on"
    state = "on: llmnb errors show full tracebacks" if magics.debug else "off"
    print(f"debug {state}")


def cmd_picker(magics: LLMMagics, rest: str) -> None:
    _no_args("picker", rest)
    d.display(importlib.import_module("llmnb.notebook.widgets").ProviderPicker())


def cmd_dashboard(magics: LLMMagics, rest: str) -> None:
    _no_args("dashboard", rest)
    d.display(importlib.import_module("llmnb.notebook.widgets").UsageDashboard())


# -- %llm error ------------------------------------------------------------------------

_EXPLAIN_SYSTEM = (
    "You are a concise Python and Jupyter expert. Explain why the error happened in plain "
    "words, then show the corrected code. Use Markdown."
)


def _cell_of(
    magics: LLMMagics, tb: TracebackType | None
) -> tuple[int | None, str, TracebackType | None]:
    """(In number, source, traceback from that cell on) of the cell that raised."""
    shell = magics.ip
    cells: dict[str, int] = getattr(getattr(shell, "compile", None), "_filename_map", {}) or {}
    t = tb
    while t is not None:
        filename = t.tb_frame.f_code.co_filename
        if filename in cells:
            return cells[filename], "".join(linecache.getlines(filename)), t
        t = t.tb_next
    history = shell.user_ns.get("In", [])
    previous = history[-2] if len(history) >= 2 else ""  # [-1] is this %llm error cell
    return None, str(previous), tb


def cmd_error(magics: LLMMagics, rest: str) -> None:
    from llmnb.notebook._ask import ask

    value = getattr(sys, "last_value", None)
    if value is None:
        raise UsageError("no error to explain yet: run a cell that fails, then %llm error")
    opts, extra = split_line(magics.llm, rest)
    if extra:
        raise UsageError(f"%llm error takes options only, not {extra!r}")
    number, source, tb = _cell_of(magics, getattr(sys, "last_traceback", None))
    error = "".join(traceback.format_exception(type(value), value, tb))
    if len(error) > 4000:  # keep the end: the innermost frames and the message matter most
        error = "…\n" + error[-4000:]
    where = f"In[{number}]" if number is not None else "the cell"
    prompt = (
        f"This Jupyter cell ({where}) failed.\n\nCell:\n```python\n{source.strip()}\n```\n\n"
        f"Error:\n```\n{error.strip()}\n```\n\nExplain the error and how to fix it."
    )
    if opts.system is None:
        opts.system = _EXPLAIN_SYSTEM
    # The braces of code and tracebacks are not references to fill in: send them as-is.
    ask(magics, opts, prompt, interpolated=False)


def cmd_models(magics: LLMMagics, rest: str) -> Any:
    from llmnb.client.models import models

    words = rest.split()
    refresh = "--refresh" in words
    words = [w for w in words if w != "--refresh"]
    if len(words) > 1:
        raise UsageError(f"%llm models takes one PROFILE or provider type, not {rest!r}")
    return models(words[0] if words else None, refresh=refresh)


COMMANDS: dict[str, Callable[[LLMMagics, str], Any]] = {
    "budget": cmd_budget,
    "config": cmd_config,
    "dashboard": cmd_dashboard,
    "debug": cmd_debug,
    "error": cmd_error,
    "help": cmd_help,
    "list": cmd_list,
    "models": cmd_models,
    "picker": cmd_picker,
    "providers": cmd_providers,
    "replay": cmd_replay,
    "reset": cmd_reset,
    "usage": cmd_usage,
    "use": cmd_use,
}


def run_command(magics: LLMMagics, name: str, rest: str) -> Any:
    """Run the line command ``name`` with the text after it."""
    return COMMANDS[name](magics, rest.strip())
