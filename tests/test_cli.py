"""The ``llmnb`` command: demo, usage (reads the store) and doctor (checks the setup)."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmnb.__main__ import main
from llmnb.testing import FakeLLMServer
from llmnb.usage import reset_default_tracker

CANARY = "sk-canary-cli-0123456789abcdef"
LLMNB = Path(sys.executable).parent / "llmnb"


@pytest.fixture(autouse=True)
def _fresh_default_tracker() -> Iterator[None]:
    reset_default_tracker()
    yield
    reset_default_tracker()


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LLMNB), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


# -- demo ------------------------------------------------------------------------------------


def test_demo_shows_this_runs_usage_and_keeps_it_in_the_store(tmp_path: Path) -> None:
    first = cli("demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Usage (one row per attempt):" in first.stdout and "Summary by model:" in first.stdout
    assert "Usage store: SQLite .llmnb/usage.db" in first.stdout
    second = cli("demo", cwd=tmp_path)
    table = second.stdout.split("Usage (one row per attempt):")[1].split("Summary by model:")[0]
    assert table.count(" demo ") == 2  # this run's two calls, not the earlier run's too
    assert "rows from earlier sessions" in second.stdout
    usage = cli("usage", cwd=tmp_path)
    assert usage.returncode == 0 and ": 4 calls, 4 attempts" in usage.stdout


# -- usage -----------------------------------------------------------------------------------


@pytest.fixture
def recorded(tmp_path: Path, write_settings: Callable[[dict[str, Any]], Path]) -> Path:
    """A store with calls of two profiles (one without a price), written by a 'kernel'."""
    write_settings(
        {
            "llm": {
                "providers": {
                    "demo": {
                        "type": "mock",
                        "model": "mock-1",
                        "pricing": {"input_per_mtok": 1, "output_per_mtok": 2},
                    },
                    "free": {"type": "mock", "model": "mock-2"},
                }
            }
        }
    )
    code = (
        "import llmnb\n"
        "for p in ('demo', 'demo', 'free'):\n"
        "    llmnb.create_llm_client_from_profile(profile=p).complete('hello', tags={'k': p})\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=120)
    return tmp_path / ".llmnb" / "usage.db"


def test_usage_summarises_the_store_by_model(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["usage"]) == 0
    out = capsys.readouterr().out
    head, table = out.split("\n\n", 1)
    assert str(recorded) in head and ": 3 calls, 3 attempts, 0 errors" in head
    assert "(+ 1 row of unknown cost)" in head
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["model", "calls", "attempts", "errors"]
    mock1 = next(line for line in lines if line.startswith("mock-1"))
    mock2 = next(line for line in lines if line.startswith("mock-2"))
    assert mock1.split()[1] == "2" and re.search(r"\$0\.0+[1-9]", mock1)
    assert " n/a " in mock2 and "$0.00 " not in mock2


def test_usage_by_profile_since_a_window_and_to_csv(
    recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["usage", "--by", "profile", "--since", "1h", "--csv", "rows.csv"]) == 0
    out = capsys.readouterr().out
    assert "since 1h: 3 calls" in out
    assert [line.split()[0] for line in out.splitlines() if line[:4] in ("demo", "free")] == [
        "demo",
        "free",
    ]
    rows = list(csv.DictReader((tmp_path / "rows.csv").read_text().splitlines()))
    assert [r["profile"] for r in rows] == ["demo", "demo", "free"]
    assert "Wrote 3 rows" in out
    assert main(["usage", "--since", "2099-01-01"]) == 0
    assert ": 0 calls" in capsys.readouterr().out


def test_usage_without_a_store_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["usage"]) == 1
    assert "No usage recorded yet" in capsys.readouterr().out


def test_usage_with_a_memory_store_says_nothing_is_kept(
    write_settings: Callable[[dict[str, Any]], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    write_settings({"usage": {"store": "memory"}})
    assert main(["usage"]) == 1
    assert "rows are not kept between sessions" in capsys.readouterr().out


def test_usage_of_a_damaged_file_is_an_error_saying_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".llmnb").mkdir()
    (tmp_path / ".llmnb" / "usage.db").write_text("rubbish" * 100)
    assert main(["usage"]) == 2
    err = capsys.readouterr().err
    assert "UsageStoreError" in err and "usage.db" in err and "move it away" in err


def test_usage_rejects_a_bad_window_or_store_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["usage", "--since", "fortnight"])
    assert info.value.code == 2
    assert "--since: 'fortnight' is not a time window" in capsys.readouterr().err
    assert main(["usage", "--store", "mysql://x"]) == 2
    assert "--store: 'mysql://x' is not a usage store" in capsys.readouterr().err


# -- doctor ----------------------------------------------------------------------------------


@pytest.fixture
def doctor_settings(
    write_settings: Callable[[dict[str, Any]], Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeLLMServer]:
    monkeypatch.setenv("SRV_API_KEY", CANARY)
    with FakeLLMServer(default_response="pong") as srv:
        write_settings(
            {
                "llm": {
                    "active_provider": "demo",
                    "providers": {
                        "demo": {"type": "mock", "model": "mock-1"},
                        "srv": {
                            "type": "openai_compatible",
                            "model": "m",
                            "base_url": srv.base_url,
                            "api_key_env": "SRV_API_KEY",
                            "max_retries": 0,
                        },
                        # api.openai.com is out of reach of tests: the fake stands in
                        "oa": {"type": "openai", "model": "gpt-4o", "base_url": srv.base_url},
                    },
                }
            }
        )
        yield srv


def test_doctor_lists_profiles_with_key_status_and_finds_the_missing_key(
    doctor_settings: FakeLLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "✓ settings: config/settings.yaml (3 profiles)" in out
    assert "✓ active profile: demo (from llm.active_provider)" in out
    assert "✓ usage store: SQLite" in out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("  ")}
    assert lines["demo"].startswith("  ✓") and "no key needed" in lines["demo"]
    assert lines["srv"].startswith("  ✓") and "key ✓" in lines["srv"]
    assert lines["oa"].startswith("  ✗") and "set OPENAI_API_KEY in .env" in lines["oa"]
    assert "1 problem(s) found." in out
    assert CANARY not in out and CANARY[-6:] not in out
    assert doctor_settings.requests == []  # no --ping: nothing sent


def test_doctor_ping_sends_one_request_per_usable_profile(
    doctor_settings: FakeLLMServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tracker: Any,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    assert main(["doctor", "--ping"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("  ")}
    assert "ping ✓ ok" in lines["srv"] and "pong" in lines["srv"]
    assert "ping ✓ ok" in lines["demo"]
    assert len(doctor_settings.requests) == 2  # srv and oa went to the fake server
    assert "All good." in out and CANARY not in out


def test_doctor_ping_reports_a_failing_profile(
    doctor_settings: FakeLLMServer, capsys: pytest.CaptureFixture[str], tracker: Any
) -> None:
    from llmnb.testing import Fault

    doctor_settings.script(Fault.status(500))
    assert main(["doctor", "--ping"]) == 1
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("  ✗ srv"))
    assert "ping ✗ ProviderError" in line


def test_doctor_with_a_broken_settings_file_shows_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings.yaml").write_text("llm:\n  active_provider: [\n")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "✗ settings: config/settings.yaml, line" in out


def test_doctor_without_settings_uses_the_builtin_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "built-in default" in out and "All good." in out
