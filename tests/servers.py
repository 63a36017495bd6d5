"""Real Redis and PostgreSQL servers on 127.0.0.1, started once per test session.

Not a conftest: test modules that need a server import this module and create the
fixtures they use::

    import servers

    redis_url = servers.redis_url_fixture()     # function-scoped, FLUSHDB first
    pg_url = servers.postgres_url_fixture()     # function-scoped, a fresh schema

Each server starts the first time a test asks for it and stops at the end of the
session (and, as a safety net, at interpreter exit). Where the binaries are missing the
tests skip with the apt line that installs them — except under ``CI=true``, where a
missing server fails the run instead of silently testing less.

Redis runs with ``--save '' --appendonly no --bind 127.0.0.1``; PostgreSQL is a
throwaway cluster (``initdb --auth=trust`` into a temporary folder, ``fsync=off``),
run as the ``postgres`` user when the tests run as root (PostgreSQL refuses root).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REDIS_APT = "apt-get install -y redis-server"
POSTGRES_APT = "apt-get install -y postgresql"
_START_TIMEOUT = 30.0  # a bound on start-up, not an assertion on speed


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> None:
    """Skip the test (fail it under CI=true): a missing server must not pass silently."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: missing servers fail instead of skipping)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port() -> int:
    """A loopback port nothing listens on (for "server unreachable" tests)."""
    return free_port()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not accept connections on port {port}")


class RedisServer:
    """``redis-server`` on a free loopback port, no persistence."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = 0
        self.dir = tempfile.mkdtemp(prefix="llmnb-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        for _ in range(3):  # a free port can be taken between probing and binding
            self.port = free_port()
            args = [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--dir", self.dir,
                "--loglevel", "warning",
            ]  # fmt: skip
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                _wait_for_port(self.port, self.proc, "redis-server")
                return self
            except RuntimeError:
                self._kill()
        raise RuntimeError("redis-server could not be started on a free port")

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _postgres_bin_dir() -> Path | None:
    initdb = shutil.which("initdb")
    if initdb:
        # /usr/local/bin/initdb may be a link into the versioned folder: keep them together
        return Path(os.path.realpath(initdb)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """A throwaway PostgreSQL cluster on a free loopback port (trust auth, fsync off)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = 0
        # /tmp, not $TMPDIR: the `postgres` user must reach it, and the socket path (-k)
        # must stay under the 107-byte limit of a Unix socket.
        base = "/tmp" if os.path.isdir("/tmp") else None
        self.dir = Path(tempfile.mkdtemp(prefix="llmnb-pg-", dir=base))
        self.data = self.dir / "data"
        self.started = False
        self._as_postgres = os.geteuid() == 0 if hasattr(os, "geteuid") else False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        cmd = list(args)
        if self._as_postgres:
            # PostgreSQL will not run as root; the cluster belongs to `postgres`.
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, timeout=120, check=False)

    def start(self) -> PostgresServer:
        if self._as_postgres:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        done = self._run(
            str(self.bin / "initdb"),
            "-D", str(self.data),
            "--auth=trust",
            "-U", "postgres",
            "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-800:]}")
        for _ in range(3):
            self.port = free_port()
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
            )
            done = self._run(
                str(self.bin / "pg_ctl"),
                "-D", str(self.data),
                "-l", str(self.dir / "server.log"),
                "-w", "-t", str(int(_START_TIMEOUT)),
                "-o", options,
                "start",
            )  # fmt: skip
            if done.returncode == 0:
                self.started = True
                return self
        log = (self.dir / "server.log").read_text(errors="replace")[-800:]
        raise RuntimeError(f"pg_ctl start failed: {log}")

    def create_schema(self) -> str:
        """A new empty schema; returns a SQLAlchemy URL whose connections use it.

        A schema (``search_path`` through libpq's ``options``) costs milliseconds where
        a new database costs half a second, and keeps tests apart just as well.
        """
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url()}?options=-csearch_path%3D{name}"

    def stop(self) -> None:
        if self.started:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


# -- one server of each kind per session ----------------------------------------------

_servers: dict[str, Any] = {}
_lock = threading.Lock()
_cleanup_registered = False


def _shared(kind: str, make: Callable[[], Any]) -> Any:
    with _lock:
        if kind not in _servers:
            _servers[kind] = make()
        return _servers[kind]


def stop_all() -> None:
    """Stop every server started so far (idempotent)."""
    with _lock:
        started = list(_servers.values())
        _servers.clear()
    for server in started:
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(stop_all)  # a safety net; the session's cleanup stops them first


def _stop_at_session_end(request: pytest.FixtureRequest) -> None:
    global _cleanup_registered
    if not _cleanup_registered:
        _cleanup_registered = True
        request.config.add_cleanup(stop_all)


def redis_server() -> RedisServer:
    """The session's Redis server (started on first use), or skip/fail if not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable(f"redis-server is not installed; install it with `{REDIS_APT}`")
    assert binary is not None
    return _shared("redis", lambda: RedisServer(binary).start())  # type: ignore[no-any-return]


def postgres_server() -> PostgresServer:
    """The session's PostgreSQL cluster (started on first use), or skip/fail."""
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        unavailable(
            "PostgreSQL (initdb, pg_ctl) is not installed; install it with "
            f"`{POSTGRES_APT}` (Debian puts the binaries in /usr/lib/postgresql/*/bin)"
        )
    assert bin_dir is not None
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unavailable("running as root needs `runuser` (util-linux) to start PostgreSQL")
    return _shared("postgres", lambda: PostgresServer(bin_dir).start())  # type: ignore[no-any-return]


# -- fixtures (each test module creates the ones it uses) -------------------------------


def redis_url_fixture() -> Any:
    """A function-scoped fixture: the session Redis server's URL, database flushed."""

    @pytest.fixture
    def redis_url(request: pytest.FixtureRequest) -> str:
        import redis

        _stop_at_session_end(request)
        server = redis_server()
        client = redis.Redis.from_url(server.url)
        try:
            client.flushdb()
        finally:
            client.close()
        return server.url

    return redis_url


def postgres_url_fixture() -> Any:
    """A function-scoped fixture: a URL on the session cluster whose tables land in a
    new, empty schema."""

    @pytest.fixture
    def pg_url(request: pytest.FixtureRequest) -> str:
        _stop_at_session_end(request)
        return postgres_server().create_schema()

    return pg_url
