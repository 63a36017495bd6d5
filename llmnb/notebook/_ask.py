"""One ``%%llm`` prompt: options → messages → client(s) → call → rendered answer.

The magic class holds the state (settings, clients, conversations); this module is the
path of one prompt through it: a plain call, a stream, a ``--compare`` fan-out, or a
``--dry-run`` that sends nothing.
"""

from __future__ import annotations

import argparse
import collections
import contextvars
import html
import keyword
import math
import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from llmnb.errors import ResponseFormatError
from llmnb.notebook import _attach
from llmnb.notebook import _display as d
from llmnb.notebook._clients import Target, parse_target, parse_targets
from llmnb.notebook._interpolate import InterpolationError, interpolate
from llmnb.usage import format as _fmt

if TYPE_CHECKING:
    from llmnb.client.client import LLMClient
    from llmnb.conversation import SessionManager
    from llmnb.notebook._host import MagicsHost as LLMMagics
    from llmnb.types import Completion

__all__ = ["ask"]

Messages = list[dict[str, Any]]


def ask(
    magics: LLMMagics, opts: argparse.Namespace, prompt: str, *, interpolated: bool = True
) -> None:
    """Send ``prompt`` as the options say and display the answer.

    ``interpolated=False`` sends the prompt and system prompt exactly as given.
    """
    fmt = opts.format or magics.default_format
    targets = _targets(opts)
    _check(opts, fmt)
    if opts.agent:
        _check_agent(opts.agent, opts.step)
    shell = magics.ip if magics.shell is not None else None
    namespace: Mapping[str, Any] = shell.user_ns if shell is not None else {}
    raw = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    if shell is not None and isinstance(raw, list):
        # {In[3]} is what the user wrote (%%llm …), not IPython's translation of it
        # (get_ipython().run_cell_magic(…)) that In itself holds.
        namespace = collections.ChainMap({"In": raw}, shell.user_ns)
    hidden = shell.user_ns_hidden if shell is not None else {}
    system: str | None = opts.system or None
    images: list[Any] = []
    if interpolated:
        prompt, images = _interpolate(prompt, namespace, hidden, "the prompt")
        if system:  # an image in the system prompt stays a mention: parts go to the user
            system = _attach.plain(_interpolate(system, namespace, hidden, "-s/--system")[0])
    if not prompt.strip():
        raise UsageError("the prompt is empty: write it below %%llm (or after %llm)")
    chat = magics.conversation(opts.chat) if opts.chat else None
    messages = _messages(_attach.plain(prompt) if images else prompt, system, chat)
    if images:  # the images go where their {name} was
        messages[-1] = {**messages[-1], "content": _attach.split(prompt, images)}
    params = _params(opts)
    if getattr(opts, "attach", None):
        params["attachments"] = _attach.collect(opts.attach, namespace)
    if getattr(opts, "tools", None):
        from llmnb.notebook._tools import resolve_tools

        params["tools"] = resolve_tools(opts.tools, namespace, opts.approve)
    clients = [magics.clients.get(t, opts.agent, opts.step) for t in targets]
    if opts.dry_run:
        _dry_run(clients, messages, params)
        return
    if opts.compare:
        _compare(magics, clients, messages, params, fmt, opts.out)
        return
    client = clients[0]
    if opts.stream:
        completion, rendered = _stream(client, messages, params, fmt, magics.stream_throttle)
    else:
        completion, rendered = _complete(client, messages, params, fmt)
    extra: list[str] = []
    if completion.tool_calls:
        from llmnb.notebook._tools import show_calls

        extra.append(f"{len(completion.tool_calls)} tool call(s)")
        d.show({"text/plain": show_calls(completion.tool_calls)}, {})
    if chat is not None:
        chat.add_assistant(completion.content)
        magics.chats[chat.name] = chat  # the turn is kept only once it succeeded
        extra.append(f"chat {chat.name!r}: {_fmt.plural(chat.turns, 'turn')}")
    if opts.out:
        magics.ip.user_ns[opts.out] = rendered.value
        extra.append(f"→ {opts.out}")
    attached = _attach.footer_extra(messages, params.get("attachments"))
    if attached:
        extra.append(attached)
    if opts.insert and rendered.code is not None:
        magics.ip.set_next_input(rendered.code, replace=False)
    if magics.show_footer:
        d.show(d.footer_bundle(d.footer_text(completion, extra)), d.output_metadata(completion))


# -- checking the options -------------------------------------------------------------


def _targets(opts: argparse.Namespace) -> list[Target]:
    if opts.compare:
        if opts.target or opts.profile or opts.model:
            raise UsageError("--compare names the profiles itself: drop PROFILE, -p and -m")
        return parse_targets(opts.compare)
    if opts.target and opts.profile:
        raise UsageError(f"profile given twice ({opts.target!r} and -p {opts.profile!r}): keep one")
    if opts.target:
        target = parse_target(opts.target)
        if target.model and opts.model:
            raise UsageError(f"model given twice ({opts.target!r} and -m {opts.model!r}): keep one")
        return [Target(target.profile, target.model or opts.model)]
    return [Target(opts.profile, opts.model)]


def _check(opts: argparse.Namespace, fmt: str) -> None:
    if opts.compare:
        for flag, given in (
            ("--stream", opts.stream),
            ("--chat", opts.chat),
            ("--insert", opts.insert),
        ):
            if given:
                raise UsageError(f"--compare cannot be combined with {flag}")
    if opts.insert and fmt != "code":
        raise UsageError("--insert puts code into the next cell: use it with -f code")
    if opts.step and not opts.agent:
        raise UsageError("--step needs --agent (steps are defined under llm.agents.AGENT.steps)")
    t = opts.temperature
    if t is not None and not (math.isfinite(t) and 0 <= t <= 2):
        # argparse's float() reads "nan" and "inf" too; the range is the settings schema's
        raise UsageError(f"-t/--temperature must be a number from 0 to 2, got {t}")
    if opts.max_tokens is not None and opts.max_tokens <= 0:
        raise UsageError(f"--max-tokens must be a positive number, got {opts.max_tokens}")
    if opts.out and (not opts.out.isidentifier() or keyword.iskeyword(opts.out)):
        raise UsageError(f"-o/--out {opts.out!r} is not a valid Python variable name")


def _check_agent(agent: str, step: str | None) -> None:
    """A typo in --agent or --step would otherwise run with no agent parameters at all."""
    from llmnb import config
    from llmnb.config.models import suggest

    settings = config.load_settings()
    found = settings.llm.agents.get(agent)
    if found is None:
        # An agent may live in the environment only (config's LLM_<AGENT>_* variables).
        prefix = "LLM_" + re.sub(r"[^A-Za-z0-9]", "_", agent).upper()
        if config.get_env(f"{prefix}_ACTIVE_PROVIDER") or config.get_env(f"{prefix}_MODEL"):
            return
        names = sorted(settings.llm.agents)
        near = suggest(agent, names)
        hint = f" Did you mean {near!r}?" if near else ""
        raise UsageError(
            f"--agent {agent!r}: no such agent in {settings.source}.{hint} Agents: "
            f"{', '.join(names) or 'none'}. Define it under llm.agents, or set "
            f"{prefix}_ACTIVE_PROVIDER."
        )
    if step is not None and step not in found.steps:
        steps = ", ".join(sorted(found.steps)) or "none"
        raise UsageError(
            f"--step {step!r}: agent {agent!r} has no such step (steps: {steps}); add it "
            f"under llm.agents.{agent}.steps."
        )


def _interpolate(
    text: str, namespace: Mapping[str, Any], hidden: Mapping[str, Any], where: str
) -> tuple[str, list[Any]]:
    try:
        result = interpolate(text, namespace, hidden)
    except InterpolationError as exc:
        raise UsageError(f"{where}: {exc}") from None
    note = result.note()
    if note:
        print(note)
    return result.text, result.images


def _messages(prompt: str, system: str | None, chat: SessionManager | None) -> Messages:
    if chat is None:
        head = [{"role": "system", "content": system}] if system else []
        return [*head, {"role": "user", "content": prompt}]
    if system:
        chat.set_system(system)
    chat.add_user(prompt)
    return chat.get_messages()


def _params(opts: argparse.Namespace) -> dict[str, Any]:
    from llmnb import config

    # The session's parameters (the picker's sliders) < the agent's < this cell's options.
    # Without an agent only the session's are added: the client has its profile's already.
    if opts.agent:
        params = config.get_llm_params(opts.agent, opts.step)
    else:
        params = config.get_session_params()
    if opts.temperature is not None:
        params["temperature"] = opts.temperature
    if opts.max_tokens is not None:
        params["max_tokens"] = opts.max_tokens
    params.update(_free_params(opts))
    if opts.no_cache:
        params["cache"] = False  # only when asked: a client that knows no cache ignores it
    return params


def _free_params(opts: argparse.Namespace) -> dict[str, Any]:
    """``--params JSON`` then each ``-P key=value`` (later ones win)."""
    import json

    found: dict[str, Any] = {}
    raw = getattr(opts, "params", None)
    if raw is not None:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"--params: not valid JSON ({exc.msg} at column {exc.colno}): {raw!r}; write "
                """an object such as --params '{"top_p": 0.9, "seed": 7}'"""
            ) from None
        if not isinstance(value, dict):
            raise UsageError(
                f"--params: give a JSON object of parameters, not {type(value).__name__} {raw!r}"
            )
        found.update(value)
    for item in getattr(opts, "param", None) or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(f"-P {item!r}: write -P KEY=VALUE, e.g. -P top_p=0.9 or -P stop=END")
        try:
            found[key] = json.loads(text)
        except json.JSONDecodeError:
            found[key] = text  # -P stop=END: not JSON, so the text itself
    for key in found:
        if not isinstance(key, str) or not key.isidentifier():
            raise UsageError(f"--params: {key!r} is not a parameter name")
    return found


# -- calling ----------------------------------------------------------------------------


def _complete(
    client: LLMClient, messages: Messages, params: dict[str, Any], fmt: str
) -> tuple[Completion, d.Rendered]:
    completion = client.complete(messages, **params)
    metadata = d.output_metadata(completion)
    try:
        rendered = d.answer_bundle(completion.content, fmt)
    except ResponseFormatError:
        d.show({"text/plain": completion.content}, metadata)
        raise
    d.show(rendered.bundle, metadata)
    return completion, rendered


def _stream(
    client: LLMClient, messages: Messages, params: dict[str, Any], fmt: str, throttle: float
) -> tuple[Completion, d.Rendered]:
    view = d.LiveView(fmt, throttle)
    stream = client.stream(messages, **params)
    try:
        for piece in stream:
            if isinstance(piece, str):  # with --tools, ToolCall events come too
                view.add(piece)
    except BaseException:
        view.flush()  # keep what arrived in sight; the error follows it
        stream.close()  # an interrupted stream is recorded now, with the tokens so far
        raise
    completion = stream.completion
    assert completion is not None  # set by the client when the stream ends
    metadata = d.output_metadata(completion)
    try:
        rendered = d.answer_bundle(completion.content, fmt)
    except ResponseFormatError:
        view.finish({"text/plain": completion.content}, metadata)
        raise
    view.finish(rendered.bundle, metadata)
    return completion, rendered


def _compare(
    magics: LLMMagics,
    clients: Sequence[LLMClient],
    messages: Messages,
    params: Mapping[str, Any],
    fmt: str,
    out: str | None,
) -> None:
    # Threads, not asyncio: in ipykernel the cell already runs inside an event loop.
    # Each task gets a copy of this context so usage lands in the notebook's tracker.
    started = time.perf_counter()
    with ThreadPoolExecutor(len(clients), thread_name_prefix="llmnb-compare") as pool:
        futures = [
            pool.submit(_complete_in, contextvars.copy_context(), c, messages, params)
            for c in clients
        ]
        results: list[Completion | BaseException] = []
        for f in futures:
            exc = f.exception()
            results.append(exc if exc is not None else f.result())
    wall = time.perf_counter() - started
    labels = _labels(clients)
    rows: list[list[str]] = []
    values: dict[str, Any] = {}
    meta: list[dict[str, Any]] = []
    costs: list[float] = []
    for label, client, result in zip(labels, clients, results, strict=True):
        if isinstance(result, BaseException):
            rows.append(
                [
                    client.profile,
                    client.model,
                    f"{type(result).__name__}: {result}",
                    "—",
                    "n/a",
                    "—",
                ]
            )
            values[label] = None
            continue
        shown, value = _compare_value(result.content, fmt)
        values[label] = value
        meta.append(d.output_metadata(result)["llmnb"])
        costs.append(result.cost_usd)
        rows.append(
            [
                result.profile or client.profile,
                result.model,
                shown,
                d.format_tokens(result),
                d.format_cost(result.cost_usd, result.cost_source),
                _fmt.duration(result.latency_s),
            ]
        )
    headers = ["profile", "model", "answer", "tokens", "cost", "latency"]
    d.show(d.table_bundle(headers, rows), {"llmnb": {"compare": meta}})
    if out:
        magics.ip.user_ns[out] = values
    if magics.show_footer:
        known = [c for c in costs if not math.isnan(c)]
        cost = d.format_cost(math.fsum(known)) if known else "n/a"
        if known and len(known) < len(clients):
            cost += " + n/a"  # some answers have no known price (or failed): not $0
        parts = [f"{len(clients)} profiles", f"total {cost}", f"wall {_fmt.duration(wall)}"]
        if out:
            parts.append(f"→ {out}")
        d.show(d.footer_bundle(" · ".join(parts)), {"llmnb": {"compare": meta}})


def _complete_in(
    context: contextvars.Context, client: LLMClient, messages: Messages, params: Mapping[str, Any]
) -> Completion:
    return context.run(client.complete, messages, **params)


def _labels(clients: Sequence[LLMClient]) -> list[str]:
    names = [c.profile for c in clients]
    # Two models of one profile need their model in the key of the -o dict.
    return [
        f"{c.profile}:{c.model}" if names.count(c.profile) > 1 else str(c.profile) for c in clients
    ]


def _compare_value(text: str, fmt: str) -> tuple[str, Any]:
    try:
        rendered = d.answer_bundle(text, fmt)
    except ResponseFormatError:
        return text, text
    shown = rendered.bundle.get("text/plain", text)
    return str(shown), rendered.value


# -- dry run ----------------------------------------------------------------------------


def _dry_run(clients: Sequence[LLMClient], messages: Messages, params: Mapping[str, Any]) -> None:
    from llmnb.config.schema import redact_mapping
    from llmnb.usage.pricing import price_for

    prompt_tokens = sum(math.ceil(len(_attach.text(m["content"])) / 4) for m in messages)
    loaded = _attach.loaded(messages, params.get("attachments"))
    attached: list[list[str]] = []
    rows: list[list[str]] = []
    for client in clients:
        if loaded:
            found, image_tokens = _attach.summary_rows(client.provider_type, loaded)
            attached += [[client.profile, *row] for row in found]
            prompt_tokens_here = prompt_tokens + image_tokens
        else:
            prompt_tokens_here = prompt_tokens
        merged = {**client.params, **{k: v for k, v in params.items() if v is not None}}
        try:
            price = price_for(
                client.model,
                client.provider_type,
                client.provider.base_url,
                client.provider.profile.get("pricing"),
            )
        except ValueError:
            price = None
        if price is None:
            input_cost, output, total = "n/a", "n/a", "n/a"
        else:
            prompt_usd = prompt_tokens_here * price.input
            input_cost = d.format_cost(prompt_usd)
            output = f"{d.format_cost(price.output * 1000)} per 1k tokens"
            max_tokens = merged.get("max_tokens")
            if max_tokens:
                ceiling = price.output * int(max_tokens)
                output += f" (≤ {d.format_cost(ceiling)})"
                total = f"≤ {d.format_cost(prompt_usd + ceiling)}"
            else:  # no answer limit: only the prompt's part is certain
                total = f"{input_cost} + answer"
        merged.pop("attachments", None)  # listed in their own table
        merged = redact_mapping(merged)  # params may carry headers or keys
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(merged.items())) or "—"
        rows.append(
            [
                client.profile,
                client.provider_type,
                client.model,
                shown,
                f"~{prompt_tokens_here}",
                input_cost,
                output,
                total,
            ]
        )
    headers = [
        "profile",
        "type",
        "model",
        "params",
        "prompt tokens",
        "prompt cost",
        "answer cost",
        "total",
    ]
    table = d.table_bundle(headers, rows)
    if attached:  # one row per attachment and profile: its estimate differs by provider
        extra = d.table_bundle(["profile", "attachment", "type", "size", "tokens (est.)"], attached)
        table = {k: f"{table[k]}\n\n{extra[k]}" for k in ("text/html", "text/plain")}
    transcript = "\n\n".join(f"[{m['role']}]\n{_attach.text(m['content'])}" for m in messages)
    title = "Dry run: nothing was sent."
    d.show(
        {
            "text/html": f"<p><b>{title}</b></p>{table['text/html']}"
            f"<pre style='white-space:pre-wrap'>{html.escape(transcript)}</pre>",
            "text/plain": f"{title}\n\n{table['text/plain']}\n\n{transcript}",
        }
    )
