"""Secret canaries: unique fake keys, planted everywhere a key can come from, looked for
everywhere a key could leak to.

Keys come from the environment (``OPENAI_API_KEY``, ``GEMINI_API_KEY``), ``.env``
(``ALPHA_API_KEY``, ``ANTHROPIC_API_KEY``), a profile (``api_key:``) and a pool
(``POOL_API_KEYS=k1,k2``); gateway keys from a profile's ``headers:`` (``Helicone-Auth``
written in the file, ``x-portkey-api-key: ${PORTKEY_API_KEY}`` read from ``.env``); and a
password from a ``base_url``. Each profile talks to its own ``FakeLLMServer``, and each
server echoes the key it received back in error bodies, as real providers do. Then a
busy session — plain, streamed and async calls, retries, errors, cache hits, a key pool,
a manager, logging at DEBUG (llmnb, httpx2/httpx, httpcore2/httpcore), widgets, the
magic, a CLI agent with tracing — is searched for every key: zero hits allowed. A hit is
the whole key or 16 characters from its middle (what ``sk-…a1b2`` never shows).

httpx2 (llmnb's HTTP library; httpx when a test hands it an httpx transport) logs each
request line at INFO and httpcore2 its steps at DEBUG; neither logs headers (only the
method and URL, and llmnb never puts a key in a URL — Gemini's key travels in
``x-goog-api-key``), so llmnb does not need to silence them. The test keeps them at
DEBUG to hold that true.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sys
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from _magics_shell import ip_fixture, run

import llmnb
from llmnb import config, errors
from llmnb.middleware import RetryPolicy
from llmnb.testing import FakeLLMServer, Fault
from llmnb.usage import UsageTracker, set_tracker

ip = ip_fixture

FAKE_AGENT = Path(__file__).parent / "fake_bin" / "fake_agent.py"


def _key(label: str) -> str:
    return f"sk-canary-{label}-{uuid.uuid4().hex}"


@dataclass
class Keys:
    env: str = field(default_factory=lambda: _key("env"))  # OPENAI_API_KEY
    dotenv: str = field(default_factory=lambda: _key("dotenv"))  # ALPHA_API_KEY in .env
    profile: str = field(default_factory=lambda: _key("profile"))  # api_key: in settings
    pool1: str = field(default_factory=lambda: _key("pool1"))  # POOL_API_KEYS
    pool2: str = field(default_factory=lambda: _key("pool2"))
    anthropic: str = field(default_factory=lambda: _key("ant"))  # ANTHROPIC_API_KEY in .env
    gemini: str = field(default_factory=lambda: _key("gem"))  # GEMINI_API_KEY
    gateway: str = field(default_factory=lambda: _key("helicone"))  # headers: Helicone-Auth
    portkey: str = field(default_factory=lambda: _key("portkey"))  # ${PORTKEY_API_KEY} in .env
    url_password: str = field(default_factory=lambda: _key("urlpw"))  # base_url user:pw@

    def all(self) -> list[str]:
        return list(vars(self).values())


def _needles(key: str) -> list[str]:
    core = key.rsplit("-", 1)[1]
    return [key, core[4:20]]


def hits(text: str | bytes, keys: list[str]) -> list[str]:
    """The keys (whole, or 16 characters of their middle) found in ``text``."""
    found = []
    for key in keys:
        for needle in _needles(key):
            if (needle.encode() if isinstance(text, bytes) else needle) in text:
                found.append(key)
                break
    return found


@dataclass
class World:
    root: Path
    keys: Keys
    servers: dict[str, FakeLLMServer]
    tracker: UsageTracker
    surfaces: list[tuple[str, str | bytes]] = field(default_factory=list)

    def see(self, name: str, value: Any) -> None:
        """Remember what a surface showed, to be searched at the end."""
        if isinstance(value, BaseException):
            value = "".join(traceback.format_exception(value)) + repr(value)
        elif not isinstance(value, (str, bytes)):
            value = f"{value!r}\n{value}"
        self.surfaces.append((name, value))

    def leaks(self) -> list[str]:
        out = []
        for name, text in self.surfaces:
            for key in hits(text, self.keys.all()):
                out.append(f"{name}: {key}")
        return out


# profile name -> (the server's wire, the keys that profile may send)
PROFILES = ("oa", "alpha", "inline", "pool", "claude", "gem")


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    keys = Keys()
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(FakeLLMServer(default_response=f"answer from {name}"))
            for name in PROFILES
        }
        s = servers
        providers = {
            "oa": {
                "type": "openai",
                "model": "gpt-4o",
                "base_url": s["oa"].base_url,
                "headers": {"Helicone-Auth": f"Bearer {keys.gateway}", "X-Client": "llmnb"},
            },
            "alpha": {
                "type": "openai_compatible",
                "model": "a-1",
                "base_url": s["alpha"].base_url,
                "api_key_env": "ALPHA_API_KEY",
                "headers": {"x-portkey-api-key": "${PORTKEY_API_KEY}"},
            },
            "inline": {
                "type": "openai_compatible",
                "model": "i-1",
                "base_url": s["inline"].base_url,
                "api_key": keys.profile,
                "pricing": {"input_per_mtok": 1, "output_per_mtok": 2},
            },
            "pool": {
                "type": "openai_compatible",
                "model": "p-1",
                "base_url": s["pool"].base_url,
                "api_key_env": "POOL_API_KEY",
                "cooldown": 0.01,
            },
            "claude": {
                "type": "anthropic",
                "model": "claude-sonnet-4-5",
                "base_url": s["claude"].anthropic_base_url,
            },
            "gem": {
                "type": "gemini",
                "model": "gemini-2.5-flash",
                "base_url": s["gem"].gemini_base_url,
            },
            "agent": {
                "type": "claude_code",
                "model": "default",
                "command": str(tmp_path / "bin" / "claude"),
                "env": {"ANTHROPIC_API_KEY": "${ANTHROPIC_API_KEY}"},
                "trace": True,
                "trace_dir": ".llmnb/traces",
                "max_retries": 0,
            },
            "demo": {"type": "mock", "model": "mock-1"},
        }
        with FakeLLMServer() as gone:  # a port nobody listens on any more
            providers["gone"] = {
                "type": "openai",
                "model": "gpt-4o",
                "base_url": gone.base_url.replace("://", f"://llmnb:{keys.url_password}@"),
                "max_retries": 0,
            }
        settings = {
            "llm": {"active_provider": "inline", "providers": providers},
            "usage": {"store": "sqlite:///.llmnb/usage.db"},
            "cache": {"backend": "sqlite:///.llmnb/cache.db"},
        }
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "settings.yaml").write_text(yaml.safe_dump(settings))
        (tmp_path / ".env").write_text(
            f"ALPHA_API_KEY={keys.dotenv}\nANTHROPIC_API_KEY={keys.anthropic}\n"
            f"PORTKEY_API_KEY={keys.portkey}\n"
        )
        monkeypatch.setenv("OPENAI_API_KEY", keys.env)
        monkeypatch.setenv("GEMINI_API_KEY", keys.gemini)
        monkeypatch.setenv("POOL_API_KEYS", f"{keys.pool1},{keys.pool2}")
        _install_leaky_agent(tmp_path, monkeypatch)
        from llmnb.usage.sqlite_store import SQLiteStore

        tracker = UsageTracker(store=SQLiteStore(tmp_path / ".llmnb" / "usage.db"))
        token = set_tracker(tracker)
        try:
            yield World(tmp_path, keys, servers, tracker)
        finally:
            token.var.reset(token)
            tracker.store.close()  # type: ignore[attr-defined]


def _install_leaky_agent(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``claude`` on a private path: the fake agent, except that with ``LEAKY_FAIL`` set
    it fails printing its key to stderr, as a CLI complaining about a key may do."""
    bin_dir = root / "bin"
    bin_dir.mkdir()
    script = bin_dir / "claude"
    agent = FAKE_AGENT.read_text().replace("from __future__ import annotations\n", "")
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "if os.environ.get('LEAKY_FAIL'):\n"
        "    key = os.environ.get('ANTHROPIC_API_KEY', '')\n"
        "    print(f'Error: Invalid API key {key} (check ANTHROPIC_API_KEY)', file=sys.stderr)\n"
        "    sys.exit(1)\n" + agent
    )
    script.chmod(0o755)
    monkeypatch.setenv("FAKE_CLI_LOG", str(root.parent / f"{root.name}-cli-calls.jsonl"))


def _own_keys(world: World, name: str) -> list[str]:
    k = world.keys
    return {
        "oa": [k.env],
        "alpha": [k.dotenv],
        "inline": [k.profile],
        "pool": [k.pool1, k.pool2],
        "claude": [k.anthropic],
        "gem": [k.gemini],
    }[name]


def _sent_secrets(world: World, name: str) -> list[str]:
    """Everything secret the profile sends: its keys and its gateway headers."""
    extra = {"oa": [world.keys.gateway], "alpha": [world.keys.portkey]}.get(name, [])
    return _own_keys(world, name) + extra


def _echo_key(world: World, name: str, key: str | None = None) -> Fault:
    """A 401 whose body quotes the key, as OpenAI's "Incorrect API key provided: sk-…"."""
    key = key or _own_keys(world, name)[0]
    return Fault.status(401, body={"error": {"message": f"Incorrect API key provided: {key}"}})


def _scan_files(world: World) -> None:
    """Every file llmnb may have written (databases, WAL, traces, state) — not the two
    files the user wrote the keys into."""
    written_by_user = {world.root / ".env", world.root / "config" / "settings.yaml"}
    for path in sorted(world.root.rglob("*")):
        if path.is_file() and path not in written_by_user and path.parent.name != "bin":
            world.see(f"file {path.relative_to(world.root)}", path.read_bytes())


@contextlib.contextmanager
def debug_logs(world: World) -> Iterator[None]:
    """Everything llmnb and both HTTP stacks log, at DEBUG, with tracebacks."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.DEBUG)
    names = ["llmnb", "httpx2", "httpcore2", "httpx", "httpcore"]
    loggers = [logging.getLogger(n) for n in names]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)
    try:
        yield
    finally:
        for lg, level in zip(loggers, old, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
        fmt = logging.Formatter("%(name)s %(levelname)s %(message)s")
        text = "\n".join(fmt.format(r) for r in records)
        world.see("DEBUG logs", text)
        # The logs were really captured: httpx2's request lines and llmnb's own lines.
        assert any(r.name == "httpx2" for r in records), "httpx2 logged nothing"
        assert any(r.name.startswith("httpcore2") for r in records), "httpcore2 logged nothing"
        assert any(r.name.startswith("llmnb") for r in records), "llmnb logged nothing"


def _exercise_http_profile(world: World, name: str) -> None:
    from llmnb.middleware.log import LoggingMiddleware

    srv = world.servers[name]
    client = llmnb.create_llm_client_from_profile(profile=name)
    client.add_middleware(LoggingMiddleware(level=logging.DEBUG, include_content=True))
    world.see(f"{name}: client", client)
    world.see(f"{name}: provider", client.provider)
    world.see(f"{name}: middleware", client.middleware)
    world.see(f"{name}: profile", config.get_profile(name))
    completion = client.complete("hello", cache=False)
    world.see(f"{name}: completion", completion)
    world.see(
        f"{name}: completion fields",
        {f.name: getattr(completion, f.name) for f in dataclasses.fields(completion)},
    )
    stream = client.stream("hello")
    world.see(f"{name}: stream text", stream.text())
    world.see(f"{name}: stream completion", stream.completion)
    world.see(f"{name}: async", asyncio.run(_async_twice(client)))
    # Errors: the server quotes the key (a pool tries each of its keys: each is quoted);
    # a 500 that quotes it too; a stream that fails after text with the key in its
    # error event; a timeout.
    client.retry = RetryPolicy(max_retries=0)
    srv.script(*[_echo_key(world, name, k) for k in _own_keys(world, name)])
    with pytest.raises(errors.LLMError) as info:
        client.complete("hello", cache=False)
    world.see(f"{name}: 401 error", info.value)
    world.see(f"{name}: 401 error attributes", vars(info.value))
    srv.reset()
    key = _own_keys(world, name)[0]
    srv.script(Fault.status(500, body={"error": {"message": f"key {key} broke us"}}))
    with pytest.raises(errors.ProviderError) as info5:
        client.complete("hello", cache=False)
    world.see(f"{name}: 500 error", info5.value)
    srv.script(Fault.stream_error(after_chunks=2, message="upstream failed"))
    with pytest.raises(errors.APIError) as info_s:
        "".join(client.stream("hello"))
    world.see(f"{name}: stream error", info_s.value)
    srv.script(Fault.slow(1.0))
    with pytest.raises(errors.LLMTimeoutError) as info_t:
        client.complete("hello", cache=False, timeout=0.2)
    world.see(f"{name}: timeout", info_t.value)
    client.close()


async def _async_twice(client: llmnb.LLMClient) -> list[Any]:
    out = [await client.acomplete("hello", cache=False)]
    out += [p async for p in client.astream("hello")]
    await client.aclose()
    return out


def test_a_busy_session_shows_no_key_anywhere(world: World, monkeypatch) -> None:
    with debug_logs(world):
        for name in ("oa", "alpha", "inline", "pool", "claude", "gem"):
            _exercise_http_profile(world, name)
        # Cache: a miss then a hit, stored in the SQLite cache file.
        client = llmnb.create_llm_client_from_profile()
        first, second = client.complete("cache me"), client.complete("cache me")
        assert second.cached and not first.cached
        world.see("cached completion", second)
        # A profile whose server is gone: connection refused.
        with pytest.raises(errors.NetworkError) as info:
            llmnb.create_llm_client_from_profile(profile="gone").complete("hello")
        world.see("connection refused", info.value)
        # The manager and its status (key pool fingerprints, health).
        manager = llmnb.LLMManager.from_settings()
        manager.get_client("pool").complete("hello", cache=False)
        world.see("manager", manager)
        world.see("manager status", json.dumps(manager.get_status("pool"), default=str))
        world.see("manager providers", manager.get_available_providers())
        manager.close()
        # Settings objects.
        world.see("settings", config.load_settings())
        world.see("settings dump", str(config.load_settings().model_dump()))
        world.see("settings json", config.load_settings().model_dump_json())
        world.see("get_env", config.get_env("NOT_A_KEY"))

    rows = world.tracker.to_dataframe()
    assert len(rows) > 40 and set(rows["status"]) >= {"ok", "AuthenticationError"}
    world.see("usage rows", rows.to_csv())
    world.see("usage rows repr", world.tracker.records)
    world.see("tracker", world.tracker)
    world.see("tracker html", world.tracker._repr_html_())
    world.see("summary", world.tracker.summary(by="profile").to_string())
    assert world.tracker.store.flush()  # type: ignore[attr-defined]
    _scan_files(world)
    assert (world.root / ".llmnb" / "cache.db").is_file()
    assert (world.root / ".llmnb" / "usage.db").is_file()
    assert not world.leaks(), "\n".join(world.leaks())


QUOTED = {
    "401 body": lambda key: Fault.status(
        401, body={"error": {"message": f"Incorrect API key provided: {key}"}}
    ),
    "500 body": lambda key: Fault.status(500, body={"error": {"message": f"{key} broke us"}}),
    "429 text body": lambda key: Fault.status(429, f"slow down, {key}", {"Retry-After": "0"}),
    "200 error envelope": lambda key: Fault.json(
        200, {"error": {"message": f"gateway refused key {key}", "code": 502}}
    ),
    "stream error event": lambda key: Fault.stream_error(
        after_chunks=2, message=f"upstream rejected {key}"
    ),
    "malformed stream event": lambda key: Fault.sse(f"data: {{'key': '{key}'}}\n\n"),
}


@pytest.mark.parametrize("profile", ["oa", "pool", "claude", "gem"])
@pytest.mark.parametrize("where", list(QUOTED))
def test_a_key_the_server_quotes_back_is_scrubbed_from_errors_rows_and_logs(
    world: World, profile: str, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Servers quote keys back (OpenAI's "Incorrect API key provided: sk-…"); wherever
    in the answer they do, the typed error, its traceback, the usage row and the log
    line must not carry it."""
    from llmnb.middleware.log import LoggingMiddleware

    caplog.set_level(logging.DEBUG)
    srv = world.servers[profile]
    client = llmnb.create_llm_client_from_profile(profile=profile)
    client.retry = RetryPolicy(max_retries=0)
    client.add_middleware(LoggingMiddleware(level=logging.DEBUG))
    keys = _own_keys(world, profile)
    srv.script(*[QUOTED[where](k) for k in keys])  # a pool tries each of its keys
    stream = "stream" in where
    with pytest.raises(errors.LLMError) as info:
        if stream:
            "".join(client.stream("hello"))
        else:
            client.complete("hello", cache=False)
    client.close()
    assert len(srv.requests) >= 1
    world.see("error", info.value)
    world.see("error attributes", vars(info.value))
    world.see("usage rows", world.tracker.to_dataframe().to_csv())
    world.see("log", caplog.text)
    assert not world.leaks(), "\n".join(world.leaks())


def test_each_server_only_ever_sees_its_own_key(world: World) -> None:
    for name in PROFILES:
        client = llmnb.create_llm_client_from_profile(profile=name)
        for _ in range(3):  # the pool alternates its two keys
            client.complete(f"hello {name}", cache=False)
        "".join(client.stream("hello"))
        client.close()
    for name, srv in world.servers.items():
        own = _sent_secrets(world, name)
        seen = "\n".join(
            f"{r.method} {r.path}?{r.query}\n{json.dumps(r.headers)}\n{r.body!r}"
            for r in srv.requests
        )
        assert len(srv.requests) == 4
        assert set(hits(seen, world.keys.all())) == set(own), name  # its own, nothing else
        others = [k for k in world.keys.all() if k not in own]
        assert not hits(seen, others)


def test_a_cli_agent_keeps_its_key_out_of_errors_and_trace_files(world: World, monkeypatch) -> None:
    client = llmnb.create_llm_client_from_profile(profile="agent")
    answer = client.complete("hello agent")
    world.see("agent completion", answer)
    monkeypatch.setenv("LEAKY_FAIL", "1")
    with pytest.raises(errors.LLMError) as info:
        client.complete("hello agent", cache=False)
    world.see("agent error", info.value)
    world.see("agent error attributes", vars(info.value))
    traces = list((world.root / ".llmnb" / "traces").rglob("*"))
    assert any(p.suffix == ".jsonl" for p in traces), traces
    _scan_files(world)
    assert not world.leaks(), "\n".join(world.leaks())


def _all_state(widget: Any) -> str:
    from ipywidgets.embed import embed_data

    return json.dumps(embed_data(views=[widget])["manager_state"], default=str)


def test_widgets_state_and_html_show_no_key(world: World) -> None:
    from llmnb.widgets import ProviderPicker, UsageDashboard

    picker = ProviderPicker()
    for name in ("oa", "alpha", "inline", "pool", "claude", "gem"):
        picker.profile.value = name
        picker.fetch.click()
        picker.test.click()
        world.see(f"picker status after {name}", picker.status.value)
        world.see(f"picker state on {name}", _all_state(picker))
    world.servers["oa"].script(_echo_key(world, "oa"), _echo_key(world, "oa"))
    picker.profile.value = "oa"
    picker.test.click()  # fails: the server quotes the key
    picker.fetch.click()
    world.see("picker after a failing test", _all_state(picker))
    world.see("picker get_state", picker.get_state())
    world.see("picker children state", [c.get_state() for c in picker.children])
    dashboard = UsageDashboard(world.tracker, scheduler=lambda delay, fn: fn())
    dashboard.refresh_button.click()
    world.see("dashboard state", _all_state(dashboard))
    assert len(world.tracker) > 0
    assert not world.leaks(), "\n".join(world.leaks())


def test_magic_commands_and_answers_show_no_key(world: World, ip) -> None:
    shown: list[str] = []
    for source in [
        "%llm config",
        "%llm list",
        "%llm providers",
        "%%llm -p alpha\nhello",
        "%%llm -p pool --stream\nhello",
        "%%llm -p claude -f json\nhello",
        "%llm use gem",
        "%%llm\nhello from gem",
        "%llm usage",
        "%%llm -p inline --dry-run\nhello",
    ]:
        ran = run(ip, source)
        shown.append(source + "\n" + ran.text + json.dumps([o.data for o in ran.outputs]))
        shown.append(json.dumps([o.metadata for o in ran.outputs], default=str))
    # A failing cell whose error quotes the key, then %llm error sends it to a model.
    world.servers["alpha"].script(_echo_key(world, "alpha"))
    ran = run(ip, "%%llm -p alpha --no-cache\nhello")
    assert ran.result.error_in_exec is not None
    shown.append(ran.text)
    ran = run(ip, "%llm error -p inline")
    shown.append(ran.text + json.dumps([o.data for o in ran.outputs]))
    # The answer to %llm error was asked of `inline`: what reached it is the traceback.
    world.see("traceback sent by %llm error", world.servers["inline"].requests[-1].body)
    world.see("magic outputs", "\n".join(shown))
    world.see("user namespace", {k: v for k, v in ip.user_ns.items() if not k.startswith("_")})
    assert "alpha" in "\n".join(shown)  # the commands really showed the profiles
    assert not world.leaks(), "\n".join(world.leaks())


@pytest.mark.slow
def test_a_notebook_run_by_nbclient_saves_no_key(world: World) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    world.servers["inline"].script(_echo_key(world, "inline"))
    cells = [
        "%load_ext llmnb",
        "%%llm -p inline\nhello",  # 401 quoting the key
        "%%llm -p alpha\nhello",
        "%llm config",
        "%llm list",
        "import llmnb\nc = llmnb.create_llm_client_from_profile(profile='oa')\nc",
        "c.complete('hello')",
        "llmnb.config.get_profile('inline')",
        "llmnb.usage.get_tracker().to_dataframe()[['profile', 'status', 'key_id']]",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(world.root)}},
    )
    client.execute()
    path = world.root / "run.ipynb"
    nbformat.write(nb, path)
    text = path.read_text()
    outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
    assert len(outputs) >= 6 and "answer from alpha" in text
    assert "AuthenticationError" in text
    world.see("executed notebook", text)
    assert not world.leaks(), "\n".join(world.leaks())


def test_the_llmnb_command_shows_no_key(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """``llmnb doctor --ping`` (every server quotes the key back in a 401) and
    ``llmnb usage --csv`` over the rows that left."""
    from llmnb.__main__ import main

    for name in PROFILES:
        world.servers[name].script(*[_echo_key(world, name, k) for k in _own_keys(world, name)])
    assert main(["doctor", "--ping"]) == 1  # the 401s are problems
    doctor = capsys.readouterr()
    assert doctor.out.count("AuthenticationError") >= 5, doctor.out  # the pings were sent
    world.see("llmnb doctor --ping", doctor)
    assert world.tracker.store.flush()  # type: ignore[attr-defined]
    csv = world.root / "usage.csv"
    main(["usage", "--by", "profile", "--csv", str(csv)])
    shown = capsys.readouterr()
    assert "inline" in shown.out or "profile" in shown.out
    world.see("llmnb usage", shown)
    _scan_files(world)
    assert not world.leaks(), "\n".join(world.leaks())
