"""``python -m llmnb.testing``: run a FakeLLMServer in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence

from llmnb.testing._server import FakeLLMServer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llmnb.testing",
        description=(
            "Serve fake OpenAI chat-completions, Anthropic Messages and Gemini APIs on "
            "loopback with canned answers."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="port to bind, 0 for a free one (default %(default)s)",
    )
    parser.add_argument("--response", default=None, help="the answer to every chat request")
    parser.add_argument("--model", default="fake-model", help="model name (default %(default)s)")
    parser.add_argument("--echo", action="store_true", help='answer "Echo: <last user message>"')
    args = parser.parse_args(argv)
    kwargs = {} if args.response is None else {"default_response": args.response}
    server = FakeLLMServer(
        host=args.host, port=args.port, model=args.model, echo=args.echo, **kwargs
    )
    try:
        server.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        # The first stdout line is the base_url alone, so scripts can read it.
        print(server.base_url, flush=True)
        print("FakeLLMServer running; press Ctrl-C to stop.", file=sys.stderr, flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
