"""The ``llmnb`` command line.

llmnb demo [--profile demo]     a completion, a streamed completion, the usage table
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _footer(c: object) -> str:
    from llmnb.types import Completion

    assert isinstance(c, Completion)
    cost = "n/a" if c.cost_usd != c.cost_usd else f"${c.cost_usd:.6f}"  # NaN → n/a
    return (
        f"  [{c.profile} · {c.model} · {c.usage.prompt_tokens}→{c.usage.completion_tokens} tokens"
        f" · {cost} ({c.cost_source}) · {c.latency_s * 1000:.0f} ms]"
    )


def demo(profile: str) -> int:
    """The main job: one completion, one streamed completion, then the usage table."""
    import llmnb
    from llmnb.usage import get_tracker

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

    import pandas as pd

    df = get_tracker().to_dataframe()
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
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print("\nUsage (one row per attempt):")
        print(df[cols].to_string(index=False))
        print("\nSummary by model:")
        print(get_tracker().summary(by="model").to_string())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmnb", description="LLMs in Jupyter notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="run a completion and a stream offline, print usage")
    p_demo.add_argument("--profile", default="demo", help="profile to use (default: demo)")
    args = parser.parse_args(argv)

    from llmnb.errors import LLMError

    try:
        if args.command == "demo":
            return demo(args.profile)
    except LLMError as exc:
        print(f"llmnb: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
