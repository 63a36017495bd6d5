"""The server fixtures skip without the binaries — and fail instead under CI=true."""

from __future__ import annotations

from pathlib import Path

import pytest
import servers


def test_a_missing_redis_server_skips_with_the_apt_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server to be found
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y redis-server"):
        servers.redis_server()


def test_under_ci_a_missing_server_fails_instead_of_skipping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y redis-server") as info:
        servers.redis_server()
    assert "CI=true" in str(info.value)
