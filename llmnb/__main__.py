"""The ``llmnb`` command line.

llmnb demo [--profile demo]                        a completion, a stream, the usage table
llmnb usage [--by model] [--since 7d] [--csv F]    what the usage store holds, summarised
llmnb doctor [--ping]                              settings, profiles, keys ✓/✗, the store

Exit codes: 0 fine, 1 a problem was found (``doctor``) or there is nothing to show,
2 an llmnb error (message on stderr). Keys are never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["main"]

OK, BAD, SKIP = "✓", "✗", "–"


def _footer(c: object) -> str:
    from llmnb.types import Completion
    from llmnb.usage import get_tracker
    from llmnb.usage.format import duration, money, tokens

    assert isinstance(c, Completion)
    rows = [r for r in get_tracker().records if r.call_id == c.call_id]
    # The call's wall time includes llmnb's own work (first imports, the budget, the
    # store); the usage table shows each attempt's time: say both, so they agree.
    took = duration(c.latency_s)
    if rows and duration(rows[-1].latency_s) != took:
        took = f"{took} call, {duration(rows[-1].latency_s)} attempt (as in the table)"
    return (
        f"  [{c.profile} · {c.model} · {tokens(c.usage.prompt_tokens)}→"
        f"{tokens(c.usage.completion_tokens)} tokens · {money(c.cost_usd)} ({c.cost_source})"
        f" · {took}]"
    )


def demo(profile: str) -> int:
    """The main job: one completion, one streamed completion, then the usage table."""
    import llmnb
    from llmnb.usage import get_tracker
    from llmnb.usage.report import summarize
    from llmnb.usage.stores import describe_store

    client = llmnb.create_llm_client_from_profile(profile=profile)
    print(f"llmnb {llmnb.__version__} — profile {profile!r}: {client!r}\n")

    prompt = "Explain SSE in one line"
    print(f">>> {prompt}")
    c = client.complete(prompt, temperature=0.2, max_tokens=100)
    print(c.content)
    print(_footer(c))

    prompt = "Count to five"
    print(f"\n>>> {prompt} (streamed)")
    stream = client.stream(prompt)
    for piece in stream:
        print(piece, end="", flush=True)
    print()
    if stream.completion is not None:
        print(_footer(stream.completion))
    client.close()

    tracker = get_tracker()
    df = tracker.to_dataframe()
    df = df[df["session"] == tracker.session]  # this run's rows; `llmnb usage` shows all
    cols = [
        "time",
        "profile",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "cost_source",
        "latency_s",
        "status",
    ]
    rows = df[cols].assign(time=df["time"].dt.strftime("%H:%M:%S")).set_index("time")
    print("\nUsage (one row per attempt):")
    print(_summary_text(rows))
    print("\nSummary by model:")
    print(_summary_text(summarize(df, "model")))
    print(f"\nUsage store: {describe_store(tracker.store)} — `llmnb usage` shows every session.")
    return 0


# -- llmnb usage ---------------------------------------------------------------------------


def usage(by: str, since: str | None, csv: str | None, store: str | None) -> int:
    """Summarise the usage store (read-only) by ``by``; optionally export the rows."""
    from pathlib import Path

    from llmnb import config
    from llmnb.config import env as _env
    from llmnb.errors import ConfigError
    from llmnb.notebook._dashboard_model import DashboardModel
    from llmnb.usage.report import records_to_dataframe, since_filter, summarize, totals
    from llmnb.usage.sqlite_store import read_usage
    from llmnb.usage.stores import STORE_VAR, store_path

    settings = config.load_settings()
    root = _env.project_root(settings.path) if settings.path is not None else Path.cwd()
    from_env = os.environ.get(STORE_VAR, "").strip()
    spec = store or from_env or settings.usage.store
    from llmnb.usage.postgres_store import is_postgres_url

    if is_postgres_url(spec):  # a team's database: every member's rows
        return _usage_team(spec, by, since, csv)
    if by in ("user", "host", "notebook"):
        raise ConfigError(
            f"--by {by}: only a PostgreSQL usage store records who made each call "
            "(usage.store: postgresql+psycopg://…)."
        )
    try:
        path = store_path(spec, root)
    except ValueError as exc:
        where = (
            "--store" if store else STORE_VAR if from_env else f"usage.store in {settings.source}"
        )
        raise ConfigError(f"{where}: {exc}") from None
    if path is None:
        print(f"The usage store is {spec!r}: rows are not kept between sessions.")
        return 1
    if not path.exists():
        print(f"No usage recorded yet: {path} does not exist.")
        return 1
    df = since_filter(records_to_dataframe(read_usage(path)), since)
    t = totals(df)
    window = f" since {since}" if since else ""
    print(
        f"{path}{window}: {t['requests']:,} calls, {t['attempts']:,} attempts, "
        f"{t['errors']:,} errors, {t['prompt_tokens']:,} → {t['completion_tokens']:,} "
        f"tokens, {_cost(t['cost_usd'])}"
        + (f" (+ {plural(t['unknown_cost'], 'row')} of unknown cost)" if t["unknown_cost"] else "")
    )
    if len(df):
        print()
        print(_summary_text(summarize(df, by)))
    if csv:
        out, rows = DashboardModel.export_csv(df, csv)
        print(f"\nWrote {rows:,} rows to {out}")
    return 0


def _usage_team(spec: str, by: str, since: str | None, csv: str | None) -> int:
    """``llmnb usage`` over a PostgreSQL store (llmnb.usage.postgres_store): the team's rows,
    which ``--by user|host|notebook`` can group."""
    from llmnb.notebook._dashboard_model import DashboardModel
    from llmnb.usage.postgres_store import PostgresStore
    from llmnb.usage.report import totals
    from llmnb.usage.team import summarize_team

    db = PostgresStore(spec, history="none")
    df = db.team_dataframe(since)
    t = totals(df)
    window = f" since {since}" if since else ""
    print(
        f"{db.url}{window}: {t['requests']:,} calls, {t['attempts']:,} attempts, "
        f"{t['errors']:,} errors, {t['prompt_tokens']:,} → {t['completion_tokens']:,} "
        f"tokens, {_cost(t['cost_usd'])}"
        + (f" (+ {plural(t['unknown_cost'], 'row')} of unknown cost)" if t["unknown_cost"] else "")
    )
    if len(df):
        print()
        print(_summary_text(summarize_team(df, by)))
    if csv:
        out, rows = DashboardModel.export_csv(df, csv)
        print(f"\nWrote {rows:,} rows to {out}")
    db.close()
    return 0


def plural(count: int, word: str) -> str:
    from llmnb.usage.format import plural as _plural

    return _plural(count, word)


def _cost(value: float) -> str:
    from llmnb.usage.report import format_cost

    return format_cost(value)


def _summary_text(table: pd.DataFrame) -> str:
    from llmnb.usage.table import text

    return text(table)


# -- llmnb doctor ----------------------------------------------------------------------------


def doctor(ping: bool) -> int:
    """Check settings, profiles, keys and the usage store; ``ping`` each usable profile."""
    from llmnb import __version__, config
    from llmnb.errors import LLMError

    problems = 0
    print(f"llmnb {__version__} doctor\n")
    try:
        settings = config.load_settings()
    except LLMError as exc:
        print(f"{BAD} settings: {exc}")
        return 1
    if settings.path is None:
        print(f"{OK} settings: built-in default (no config/settings.yaml found; create one)")
    else:
        print(f"{OK} settings: {settings.source} ({len(settings.profile_names())} profiles)")
    env = settings.env_path
    print(f"{OK if env else SKIP} .env: {env if env else 'none (keys from the environment only)'}")
    problems += _doctor_active(config)
    problems += _doctor_store()
    problems += _doctor_profiles(settings.profile_names(), ping)
    print(f"\n{'All good.' if not problems else f'{problems} problem(s) found.'}")
    return 1 if problems else 0


def _doctor_active(config: Any) -> int:
    from llmnb.errors import LLMError

    try:
        settings = config.load_settings()
        found = config._active_name(settings, None)
        saved = config.get_saved_default()
        if found is None:
            print(f"{BAD} active profile: none — set llm.active_provider or LLM_ACTIVE_PROVIDER")
            return 1
        config.get_profile(found[0])
        print(f"{OK} active profile: {found[0]} (from {found[1]})")
        if saved[0]:
            print(f"  saved default: {saved[0]}" + (f" / {saved[1]}" if saved[1] else ""))
    except LLMError as exc:
        print(f"{BAD} active profile: {exc}")
        return 1
    return 0


def _doctor_store() -> int:
    from llmnb.errors import LLMError
    from llmnb.usage.sqlite_store import SQLiteStore, read_usage
    from llmnb.usage.stores import configured_store, describe_store

    try:
        store = configured_store()
    except LLMError as exc:
        print(f"{BAD} usage store: {exc}")
        return 1
    if not isinstance(store, SQLiteStore):
        print(f"{OK} usage store: {describe_store(store)}")
        return 0
    try:
        rows = len(read_usage(store.path))
    except LLMError as exc:
        print(f"{BAD} usage store: {exc}")
        return 1
    state = f"{rows:,} rows" if store.path.exists() else "created at the first call"
    print(f"{OK} usage store: SQLite {store.path} ({state})")
    return 0


def _doctor_profiles(names: list[str], ping: bool) -> int:
    from llmnb.notebook import _picker_model as pm

    problems = 0
    print("\nprofiles:")
    width = max((len(n) for n in names), default=0)
    for name in names:
        try:
            info = pm.profile_info(name)
        except Exception as exc:
            print(f"  {BAD} {name:<{width}}  {type(exc).__name__}: {exc}")
            problems += 1
            continue
        if info.problem:
            line, bad = f"{info.type} · {info.problem}", True
        elif info.key == "missing":
            where = (
                f"set {info.key_var} in .env or the environment"
                if info.key_var
                else ("add api_key_env to the profile")
            )
            line, bad = f"{info.type} · {info.model or '(no model)'} · key {BAD} — {where}", True
        else:
            key = f"key {OK}" if info.key == "set" else "no key needed"
            line, bad = f"{info.type} · {info.model or '(no model)'} · {key}", False
        if ping and not bad:
            result = pm.test_call(pm.PickerValue(name, info.model))
            line += f" · ping {result.line}"
            bad = not result.ok
        print(f"  {BAD if bad else OK} {name:<{width}}  {line}")
        problems += bad
    return problems


# -- entry point -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmnb", description="LLMs in Jupyter notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="run a completion and a stream offline, print usage")
    p_demo.add_argument("--profile", default="demo", help="profile to use (default: demo)")
    p_usage = sub.add_parser("usage", help="summarise the usage store (cost, tokens, calls)")
    p_usage.add_argument(
        "--by",
        default="model",
        choices=[
            *("model", "provider", "profile", "agent", "day", "session", "status", "cell"),
            *("user", "host", "notebook"),  # team columns: a PostgreSQL store only
        ],
        help="group rows by this column (default: model)",
    )
    p_usage.add_argument("--since", help="only rows since: 30m, 24h, 7d, today, 2025-01-31")
    p_usage.add_argument("--csv", metavar="FILE", help="also write the rows to a CSV file")
    p_usage.add_argument("--store", help="a store address instead of the settings' usage.store")
    p_doctor = sub.add_parser("doctor", help="check settings, profiles, keys and the store")
    p_doctor.add_argument("--ping", action="store_true", help="send a tiny request per profile")
    args = parser.parse_args(argv)

    from llmnb.errors import LLMError

    try:
        if args.command == "demo":
            return demo(args.profile)
        if args.command == "usage":
            from llmnb.usage.report import parse_since

            try:
                parse_since(args.since)
            except ValueError as exc:
                parser.error(f"--since: {exc}")
            return usage(args.by, args.since, args.csv, args.store)
        if args.command == "doctor":
            return doctor(args.ping)
    except LLMError as exc:
        print(f"llmnb: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
