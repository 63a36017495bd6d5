"""The official SDKs' environment conventions: OPENAI_BASE_URL, ANTHROPIC_BASE_URL,
GROQ_BASE_URL, OPENAI_ORG_ID / OPENAI_PROJECT_ID — honoured by profiles that name no
base_url, against FakeLLMServer."""

from __future__ import annotations

import pytest
from _magics_shell import ip_fixture, mock_settings, run

import llmnb
from llmnb.testing import FakeLLMServer

ip = ip_fixture
KEY = "sk-env-0123456789abcdefSECRET"


@pytest.fixture
def srv():
    with FakeLLMServer(responses={"hello": "Hi there!"}) as s:
        yield s


def test_openai_base_url_org_and_project_reach_the_server(monkeypatch, srv, tracker):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url + "/")  # trailing slash as users type
    monkeypatch.setenv("OPENAI_ORG_ID", "org-123")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_456")
    client = llmnb.connect("openai:gpt-4o-mini")
    assert client.complete("hello").content == "Hi there!"
    sent = srv.last_request
    assert sent.path.endswith("/chat/completions")
    assert sent.headers["openai-organization"] == "org-123"
    assert sent.headers["openai-project"] == "proj_456"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert tracker.to_dataframe()["profile"].tolist() == ["openai"]


def test_the_variable_is_read_at_call_time_and_a_profile_base_url_wins(
    monkeypatch, srv, write_settings
):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    client = llmnb.connect("openai")
    assert client.provider.base_url == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    assert client.provider.base_url == srv.base_url  # %env applies to a live client
    write_settings(
        mock_settings(mine={"type": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"})
    )
    assert llmnb.connect("mine").provider.base_url == "http://127.0.0.1:9/v1"


def test_openai_org_is_not_sent_to_other_vendors(monkeypatch, srv):
    monkeypatch.setenv("OPENAI_ORG_ID", "org-123")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_456")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # not for groq either
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    monkeypatch.setenv("GROQ_BASE_URL", srv.url)  # the SDK's meaning: the host
    client = llmnb.connect("groq:llama-3.3-70b-versatile")
    assert client.provider.base_url == srv.url + "/openai/v1"
    with pytest.raises(llmnb.errors.LLMError):
        client.complete("hello")  # FakeLLMServer has no /openai/v1: a 404, after the request
    assert srv.last_request.path == "/openai/v1/chat/completions"
    assert "openai-organization" not in srv.last_request.headers
    assert "openai-project" not in srv.last_request.headers


def test_generic_endpoint_does_not_borrow_openai_base_url(monkeypatch, write_settings):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    write_settings(mock_settings(gw={"type": "openai_compatible", "model": "m"}))
    with pytest.raises(llmnb.errors.ConfigError, match="needs a `base_url`"):
        llmnb.connect("gw").complete("hi")


def test_anthropic_base_url_in_the_magic(ip, monkeypatch, srv, tracker):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.anthropic_base_url)
    out = run(ip, "%%llm anthropic:claude-haiku-4-5\nhello")
    assert out.result.success, out.text
    assert "Hi there!" in out.text
    assert srv.last_request.path == "/v1/messages"
    assert srv.last_request.headers["x-api-key"] == KEY
    assert KEY not in out.text


def test_the_first_minute_openai_key_and_base_url_only(ip, monkeypatch, srv, tracker):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    out = run(ip, "%%llm openai:gpt-4o-mini\nhello")
    assert out.result.success and "Hi there!" in out.text, out.text
    rows = tracker.to_dataframe()
    assert rows["model"].tolist() == ["gpt-4o-mini"] and rows["status"].tolist() == ["ok"]
