"""Secret canaries, continued: keys that no header can carry, servers that echo every
request header back, exception chains, verbose tracebacks and key pool objects.

The world (servers, profiles, canary keys, the usage tracker) is the one of
``test_secrets.py``; so is the rule — a hit is the whole key or 16 characters of it.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _magics_shell import run
from test_secrets import PROFILES, World, _own_keys, _sent_secrets, hits, ip, world

import llmnb
from llmnb import errors
from llmnb.middleware import KeyPool, RetryPolicy
from llmnb.testing import Fault, RecordedRequest

__all__ = ["ip", "world"]  # fixtures, used by name

_LIBRARIES = ("httpx", "httpx2", "httpcore", "httpcore2", "h11", "h2", "anyio")
HTTP_PROFILES = ("oa", "alpha", "pool", "claude", "gem")


def chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [x for x in (e.__cause__, e.__context__) if x is not None]


_LLMNB = str(Path(llmnb.__file__).parent)


def _frame_locals(exc: BaseException) -> Iterator[tuple[str, str, Any]]:
    """The locals of the traceback's frames that are not the test's own (whose ``world``
    holds every key): llmnb's and any library's, as a verbose traceback prints them."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        filename = frame.f_code.co_filename
        if filename.startswith(_LLMNB) or "site-packages" in filename:
            for name, value in frame.f_locals.items():
                yield filename, name, value
        tb = tb.tb_next


def _library_objects(exc: BaseException) -> list[str]:
    """What of an HTTP library an exception chain still holds: its exceptions' requests,
    headers or any object of theirs, and frames of their code (whose locals hold headers)."""
    found = []
    for e in chain(exc):
        try:
            request = e.request  # type: ignore[attr-defined]
        except (AttributeError, RuntimeError):  # httpx raises RuntimeError when unset
            request = None
        if request is not None:
            found.append(f"{type(e).__name__}.request = {request!r}")
        for name, value in vars(e).items():
            if type(value).__module__.split(".")[0] in _LIBRARIES:
                found.append(f"{type(e).__name__}.{name} is a {type(value).__module__} object")
        for filename, _, _ in _frame_locals(e):
            if any(f"/{lib}/" in filename for lib in _LIBRARIES):
                found.append(f"{type(e).__name__} has a frame of {filename}")
                break
    return found


def see_chain(world: World, name: str, exc: BaseException, *, echoed: bool = False) -> None:
    """Everything an exception chain can show: reprs, attributes, the traceback IPython
    prints for it and, unless the server ``echoed`` a key, the raw verbose traceback and
    every local of llmnb's frames (as a debugger shows them). When a server quoted a
    key, the parser's locals hold its text as received; IPython shows an llmnb error
    through ``_render_traceback_``, which scrubs it (held to that in a real shell by
    ``test_verbose_tracebacks_with_debug_on_show_no_key``)."""
    from IPython.core.ultratb import VerboseTB

    world.see(name, exc)
    if isinstance(exc, errors.LLMError):
        world.see(f"{name}: as IPython shows it", "\n".join(exc._render_traceback_()))
    if not echoed:
        verbose = VerboseTB(theme_name="nocolor").text(type(exc), exc, exc.__traceback__)
        world.see(f"{name}: verbose", verbose)
    for e in chain(exc):
        world.see(f"{name}: {type(e).__name__} repr", repr(e))
        world.see(f"{name}: {type(e).__name__} vars", repr(vars(e)))
        world.see(f"{name}: {type(e).__name__} args", repr(e.args))
        if not echoed:
            world.see(
                f"{name}: {type(e).__name__} frame locals",
                "\n".join(f"{fn} {n} = {v!r}" for fn, n, v in _frame_locals(e)),
            )


def _echo_headers(status: int = 401) -> Any:
    """A handler answering every chat request with all the request headers quoted back."""

    def handle(request: RecordedRequest) -> Fault:
        said = f"request headers were {json.dumps(request.headers)}"
        return Fault.status(status, body={"error": {"message": said}})

    return handle


# ------------------------------------------------------------------- echoed headers


@pytest.mark.parametrize("profile", HTTP_PROFILES)
@pytest.mark.parametrize("how", ["401", "500 retried", "stream", "async"])
def test_a_server_that_echoes_every_request_header_leaks_nothing(
    world: World, profile: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A gateway key in ``headers:`` (Helicone-Auth, x-portkey-api-key from ${VAR}), an
    ``x-api-key`` or ``x-goog-api-key``: quoted back by the server, it is in no error,
    row or log line."""
    from llmnb.middleware.log import LoggingMiddleware

    caplog.set_level(logging.DEBUG)
    srv = world.servers[profile]
    srv.set_handler(_echo_headers(500 if how == "500 retried" else 401))
    client = llmnb.create_llm_client_from_profile(profile=profile)
    client.retry = RetryPolicy(max_retries=2 if how == "500 retried" else 0, base_delay=0.0)
    client.add_middleware(LoggingMiddleware(level=logging.DEBUG))
    with pytest.raises(errors.APIError) as info:
        if how == "stream":
            "".join(client.stream("hello"))
        elif how == "async":
            import asyncio

            asyncio.run(client.acomplete("hello", cache=False))
        else:
            client.complete("hello", cache=False)
    client.close()
    # The server really got (and quoted) the secrets.
    assert hits(json.dumps(srv.requests[-1].headers), _sent_secrets(world, profile))
    if how == "500 retried":
        assert len(srv.requests) == 3
    see_chain(world, "error", info.value, echoed=True)
    world.see("usage rows", world.tracker.to_dataframe().to_csv())
    world.see("log", caplog.text)
    assert not world.leaks(), "\n".join(world.leaks())


# ------------------------------------------------------------- keys no header carries

_BAD = {
    "newline": "\n",
    "carriage return": "\r",
    "NUL": "\x00",
    "tab": "\t",
    "DEL": "\x7f",
    "zero-width space": "\u200b",
    "no-break space": "\u00a0",
    "e acute": "é",
}


def _holds(text: str | bytes, pieces: list[str]) -> bool:
    return any((p.encode() if isinstance(text, bytes) else p) in text for p in pieces)


def _bad_key(char: str) -> tuple[str, list[str]]:
    """A canary key with ``char`` in the middle, and the two halves to look for."""
    left, right = uuid.uuid4().hex, uuid.uuid4().hex
    return f"sk-canary-bad-{left}{char}{right}", [left, right]


def _settings(world: World) -> dict[str, Any]:
    path = world.root / "config" / "settings.yaml"
    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]


def _write_settings(world: World, data: dict[str, Any]) -> None:
    (world.root / "config" / "settings.yaml").write_text(yaml.safe_dump(data))


def _dotenv_quoted(value: str) -> str:
    """``value`` for a double-quoted ``.env`` value: python-dotenv decodes ``\\n``,
    ``\\r`` and ``\\t`` there; any other character is written as it is."""
    return value.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _plant(world: World, where: str, key: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Put ``key`` where a user may paste it; (profile to call, what the error must name)."""
    env = world.root / ".env"
    if where == ".env":
        escaped = _dotenv_quoted(key)
        lines = [ln for ln in env.read_text().splitlines() if not ln.startswith("ALPHA_API_KEY")]
        env.write_text("\n".join([*lines, f'ALPHA_API_KEY="{escaped}"']) + "\n")
        return "alpha", "ALPHA_API_KEY"
    if where == "environment":
        monkeypatch.setenv("OPENAI_API_KEY", key)
        return "oa", "OPENAI_API_KEY"
    if where == "pool variable":
        monkeypatch.setenv("POOL_API_KEYS", f"{world.keys.pool1},{key}")
        return "pool", "POOL_API_KEYS"
    data = _settings(world)
    data["llm"]["providers"]["inline"]["api_key"] = key
    _write_settings(world, data)
    return "inline", "api_key"


@pytest.mark.parametrize(
    ("char", "where"),
    [
        (c, w)
        for w in (".env", "environment", "pool variable", "settings file")
        for c in _BAD
        # an environment variable cannot hold NUL: that case exists only in files
        if not (w in ("environment", "pool variable") and _BAD[c] == "\x00")
    ],
)
def test_a_key_with_a_control_or_non_ascii_character_is_refused_by_name(
    world: World, char: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Today a newline from ``.env`` travels whole in the NetworkError and each retry's
    row, and a zero-width space raises a bare UnicodeEncodeError holding the key. A key
    no HTTP header can carry is a ConfigError naming where it is — never the value —
    and nothing is sent."""
    key, halves = _bad_key(_BAD[char])
    profile, named = _plant(world, where, key, monkeypatch)
    before = len(world.servers[profile].requests)

    def client() -> llmnb.LLMClient:
        made = llmnb.create_llm_client_from_profile(profile=profile)
        made.retry = RetryPolicy(max_retries=2, base_delay=0.0)
        return made

    calls = [
        lambda: client().complete("hello", cache=False),
        lambda: "".join(client().stream("hello")),
        lambda: llmnb.LLMManager.from_settings().get_client(profile).complete("hello"),
    ]
    for call in calls:
        with pytest.raises(errors.ConfigError) as info:
            call()
        message = str(info.value)
        assert named in message and f"U+{ord(_BAD[char]):04X}" in message, message
        see_chain(world, f"{where}: error", info.value)
    # Nothing with that key was sent (a pool still answers with its good key).
    bad_sent = [
        r for r in world.servers[profile].requests[before:] if _holds(str(r.headers), halves)
    ]
    assert not bad_sent
    world.see("usage rows", world.tracker.to_dataframe().to_csv())
    leaks = [name for name, text in world.surfaces if _holds(text, halves)]
    assert not leaks and not world.leaks(), (leaks, world.leaks())


@pytest.mark.parametrize("char", ["\n", "\u200b"])
def test_a_header_value_read_through_a_variable_is_checked_by_name(world: World, char: str) -> None:
    key, halves = _bad_key(char)
    env = world.root / ".env"
    env.write_text(
        env.read_text().replace(f"PORTKEY_API_KEY={world.keys.portkey}", "")
        + f'PORTKEY_API_KEY="{_dotenv_quoted(key)}"\n'
    )
    client = llmnb.create_llm_client_from_profile(profile="alpha")
    with pytest.raises(errors.ConfigError) as info:
        client.complete("hello", cache=False)
    assert "x-portkey-api-key" in str(info.value) and "PORTKEY_API_KEY" in str(info.value)
    see_chain(world, "error", info.value)
    assert not [name for name, text in world.surfaces if _holds(text, halves)]
    assert not world.servers["alpha"].requests


def test_a_header_variable_that_is_not_set_is_named(world: World) -> None:
    env = world.root / ".env"
    env.write_text(env.read_text().replace(f"PORTKEY_API_KEY={world.keys.portkey}", ""))
    with pytest.raises(errors.MissingAPIKeyError, match=r"x-portkey-api-key.*PORTKEY_API_KEY"):
        llmnb.create_llm_client_from_profile(profile="alpha").complete("hello", cache=False)


# ---------------------------------------------------------------- exception chains


@pytest.mark.parametrize("profile", HTTP_PROFILES)
@pytest.mark.parametrize("fault", ["reset", "refused", "timeout", "malformed", "bad event"])
def test_no_error_chain_holds_the_http_library_request_or_its_frames(
    world: World, profile: str, fault: str
) -> None:
    """``repr(err.__cause__.request.headers)`` showed Anthropic's ``x-api-key`` and
    Gemini's ``x-goog-api-key``; the chain's frames held headers as locals."""
    srv = world.servers[profile]
    client = llmnb.create_llm_client_from_profile(profile=profile)
    client.retry = RetryPolicy(max_retries=0)
    key = _own_keys(world, profile)[0]
    if fault == "reset":
        srv.script(Fault.reset(), Fault.reset())
    elif fault == "timeout":
        srv.script(Fault.slow(1.0), Fault.slow(1.0))
    elif fault == "malformed":
        srv.script(*[Fault.status(200, f"not json {key}")] * 2)
    elif fault == "bad event":
        srv.script(*[Fault.sse(f"data: {{'key': '{key}'}}\n\n")] * 2)
    elif fault == "refused":
        srv.stop()
    with pytest.raises(errors.APIError) as info:
        if fault == "bad event":
            "".join(client.stream("hello"))
        else:
            client.complete("hello", cache=False, timeout=0.3)
    client.close()
    err = info.value
    assert err.__cause__ is not None  # the library's exception is kept, stripped
    assert _library_objects(err) == []
    see_chain(world, f"{fault} error", err, echoed=fault in ("malformed", "bad event"))
    assert not world.leaks(), "\n".join(world.leaks())


# -------------------------------------------------------------- verbose tracebacks


def test_verbose_tracebacks_with_debug_on_show_no_key(world: World, ip: Any) -> None:
    """``%xmode Verbose`` prints every local of every frame by repr; with ``%llm debug
    on`` llmnb's frames are among them. Locals holding keys show ``Secret('sk-…')``."""
    shown: list[str] = []
    run(ip, "%xmode Verbose")
    try:
        assert "debug on" in run(ip, "%llm debug on").text
        for name in HTTP_PROFILES:
            srv = world.servers[name]
            srv.set_handler(_echo_headers())
            ran = run(ip, f"%%llm -p {name} --no-cache\nhello")
            assert ran.result.error_in_exec is not None
            shown.append(ran.text)
            srv.set_handler(None)
            srv.script(Fault.reset(), Fault.reset(), Fault.reset())
            cell = (
                "import llmnb\n"
                f"c = llmnb.create_llm_client_from_profile(profile={name!r})\n"
                "c.retry = llmnb.middleware.RetryPolicy(max_retries=0)\n"
                "c.complete('hello', cache=False)\n"
            )
            ran = run(ip, cell)
            assert isinstance(ran.result.error_in_exec, errors.NetworkError)
            shown.append(ran.text)
            # The server quotes a key in a body that is not JSON, and in a stream event
            # that is not: the parser's arguments (body, event) hold that text.
            key = _own_keys(world, name)[0]
            srv.script(*[Fault.status(200, f"not json {key}")] * 2)
            shown.append(run(ip, f"%%llm -p {name} --no-cache\nhello").text)
            srv.script(*[Fault.sse(f"data: {{'key': '{key}'}}\n\n")] * 2)
            ran = run(ip, f"%%llm -p {name} --no-cache --stream\nhello")
            assert isinstance(ran.result.error_in_exec, errors.ResponseFormatError)
            shown.append(ran.text)
        ran = run(ip, "%%llm -p gone --no-cache\nhello")
        shown.append(ran.text)
    finally:
        run(ip, "%xmode Context")
    text = "\n".join(shown)
    # The tracebacks were verbose: llmnb's frames with their locals.
    assert "call = HTTPCall(" in text and "self = <" in text, text[-3000:]
    assert "event = SSEEvent(" in text and "body = b" in text, text[-3000:]
    world.see("verbose tracebacks", text)
    assert not world.leaks(), "\n".join(world.leaks())


# ---------------------------------------------------------------------- key pools


def test_a_key_pool_holds_its_keys_wrapped(world: World) -> None:
    """``vars(pool)`` held the raw keys (as the keys of its fingerprint table)."""
    keys = [world.keys.pool1, world.keys.pool2]
    pool = KeyPool(keys, profile="by-hand", max_connections_per_key=1)
    client = llmnb.create_llm_client_from_profile(profile="inline")
    client.add_middleware(pool)
    for _ in range(3):
        client.complete("hello", cache=False)
    client.close()
    sent = [r.headers.get("authorization", "") for r in world.servers["inline"].requests]
    assert {hits(h, keys)[0] for h in sent if hits(h, keys)} == set(keys)  # both were used
    world.see("vars(pool)", repr(vars(pool)))
    world.see("pool values", [repr(v) for v in vars(pool).values()])
    cells = [c.cell_contents for c in pool._source.__closure__ or ()]
    world.see("pool source", repr(cells) + repr(pool._source()))
    world.see("pool status", json.dumps(pool.status()))
    assert "Secret('sk-…" in repr(vars(pool))
    assert not world.leaks(), "\n".join(world.leaks())


def test_a_key_pool_given_a_key_no_header_carries_says_so(world: World) -> None:
    key, halves = _bad_key("\u200b")
    pool = KeyPool([key])
    client = llmnb.create_llm_client_from_profile(profile="inline")
    client.add_middleware(pool)
    with pytest.raises(errors.ConfigError, match="U\\+200B") as info:
        client.complete("hello", cache=False)
    text = "".join(traceback.format_exception(info.value)) + repr(vars(pool))
    assert not _holds(text, halves)
    assert not world.servers["inline"].requests


def test_settings_repr_and_dumps_hide_gateway_keys_and_url_passwords(world: World) -> None:
    from llmnb import config

    settings = config.load_settings()
    for shown in (repr(settings), settings.model_dump_json(), str(settings.model_dump())):
        assert "Helicone-Auth" in shown and "llmnb:…@" in shown  # the fields are there
        world.see("settings", shown)
    world.see("profiles", [config.get_profile(n) for n in (*PROFILES, "gone")])
    assert not world.leaks(), "\n".join(world.leaks())


def test_the_profile_still_sends_what_the_file_says(world: World) -> None:
    """Hiding is for display: the wire gets the real values."""
    llmnb.create_llm_client_from_profile(profile="oa").complete("hello", cache=False)
    llmnb.create_llm_client_from_profile(profile="alpha").complete("hello", cache=False)
    oa = world.servers["oa"].requests[-1].headers
    alpha = world.servers["alpha"].requests[-1].headers
    assert oa["helicone-auth"] == f"Bearer {world.keys.gateway}"
    assert oa["x-client"] == "llmnb"
    assert alpha["x-portkey-api-key"] == world.keys.portkey
    assert alpha["authorization"] == f"Bearer {world.keys.dotenv}"


def test_listing_profiles_names_an_unusable_key_and_lists_the_rest(world: World, ip: Any) -> None:
    from llmnb.notebook import _picker_model

    key, halves = _bad_key("\u200b")
    env = world.root / ".env"
    lines = [ln for ln in env.read_text().splitlines() if not ln.startswith("ALPHA_API_KEY")]
    env.write_text("\n".join([*lines, f'ALPHA_API_KEY="{key}"']) + "\n")
    shown = run(ip, "%llm list").text
    assert "✗ ALPHA_API_KEY: unusable" in shown and "claude" in shown, shown
    info = _picker_model.profile_info("alpha")
    assert "ALPHA_API_KEY" in str(info.problem) and "U+200B" in str(info.problem)
    assert not _holds(shown + repr(info), halves)
