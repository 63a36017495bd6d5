"""Google Vertex AI (`type: vertex`) against FakeLLMServer: the project/location path,
bearer tokens from a google-auth Credentials object (refreshed before expiry), project and
location from the environment, stream, structured output, usage and cost, errors."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

import llmnb
from llmnb import errors
from llmnb.testing import FakeLLMServer, Fault

ROOT = Path(__file__).resolve().parents[1]
MODEL = "gemini-2.0-flash"


@pytest.fixture
def srv():
    with FakeLLMServer(responses={"hello": "Hi there!"}) as s:
        yield s


@pytest.fixture
def gcp(monkeypatch, tmp_path):
    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "fakegcred.py").write_text(
        textwrap.dedent(
            """
            import datetime
            from google.auth import credentials

            class Creds(credentials.Credentials):
                refreshes = []
                lifetime = datetime.timedelta(hours=1)

                def refresh(self, request):
                    type(self).refreshes.append(type(request).__name__)
                    self.token = f"ya29.fake-{len(self.refreshes):03d}-SECRETTOKEN"
                    self.expiry = datetime.datetime.utcnow() + self.lifetime

            creds = Creds()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("fakegcred", None)


def _settings(write_settings, srv, **extra):
    profile = {"type": "vertex", "model": MODEL, "credential": "fakegcred:creds", **extra}
    if srv is not None:
        profile.setdefault("base_url", srv.url)
    write_settings({"llm": {"active_provider": "vx", "providers": {"vx": profile}}})


def test_generate_content_path_token_usage_and_cost(gcp, srv, write_settings, tracker):
    _settings(write_settings, srv, project="my-proj", location="europe-west4")
    client = llmnb.connect("vx")
    c = client.complete("hello", max_tokens=40)
    assert c.content == "Hi there!"
    sent = srv.last_request
    assert sent.path == (
        f"/v1/projects/my-proj/locations/europe-west4/publishers/google/models/{MODEL}"
        ":generateContent"
    )
    assert sent.headers["authorization"] == "Bearer ya29.fake-001-SECRETTOKEN"
    assert "x-goog-api-key" not in sent.headers
    assert sent.json == {
        "contents": [{"role": "user", "parts": [{"text": "hello"}]}],
        "generationConfig": {"maxOutputTokens": 40},
    }
    client.complete("hello again")
    import fakegcred

    assert fakegcred.Creds.refreshes == ["Request"]  # one token for both calls
    row = tracker.to_dataframe().iloc[0]
    assert (row["provider"], row["model"], row["status"]) == ("vertex", MODEL, "ok")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (2, 3)
    assert row["cost_usd"] == pytest.approx(2 * 0.1e-6 + 3 * 0.4e-6)
    dump = repr(client) + repr(client.provider.__dict__) + tracker.to_dataframe().to_csv()
    assert "SECRETTOKEN" not in dump


def test_a_token_near_expiry_is_refreshed_first(gcp, srv, write_settings):
    import fakegcred

    fakegcred.Creds.lifetime = datetime.timedelta(seconds=90)  # inside the 5-minute margin
    _settings(write_settings, srv, project="p")
    client = llmnb.connect("vx")
    client.complete("one")
    client.complete("two")
    assert len(fakegcred.Creds.refreshes) == 2
    assert srv.last_request.headers["authorization"] == "Bearer ya29.fake-002-SECRETTOKEN"


def test_project_and_location_from_the_environment(gcp, monkeypatch, srv, write_settings):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-proj")
    _settings(write_settings, srv)
    llmnb.connect("vx").complete("hello")
    assert srv.last_request.path.startswith("/v1/projects/env-proj/locations/us-central1/")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "asia-northeast1")
    llmnb.connect("vx").complete("hello")
    assert "/locations/asia-northeast1/" in srv.last_request.path


def test_default_endpoint_follows_the_location(gcp, write_settings):
    _settings(write_settings, None, project="p", location="europe-west4")
    assert llmnb.connect("vx").provider.base_url == "https://europe-west4-aiplatform.googleapis.com"
    _settings(write_settings, None, project="p", location="global")
    assert llmnb.connect("vx").provider.base_url == "https://aiplatform.googleapis.com"


def test_stream_and_structured_output(gcp, srv, write_settings, tracker):
    _settings(write_settings, srv, project="p")
    client = llmnb.connect("vx")
    assert "".join(client.stream("hello")) == "Hi there!"
    assert srv.last_request.path.endswith(":streamGenerateContent")
    assert srv.last_request.query == "alt=sse"

    class City(BaseModel):
        name: str

    srv.script(Fault.reply('{"name": "Tokyo"}'))
    assert client.complete("city?", response_model=City).parsed == City(name="Tokyo")
    config = srv.last_request.json["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert tracker.to_dataframe()["status"].tolist() == ["ok", "ok"]


def test_rejected_token_says_gcloud_login(gcp, srv, write_settings):
    _settings(write_settings, srv, project="p", max_retries=0)
    body = {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                      "status": "UNAUTHENTICATED"}}  # fmt: skip
    srv.script(Fault.json(401, body))
    with pytest.raises(errors.AuthenticationError, match="gcloud auth application-default login"):
        llmnb.connect("vx").complete("hello")


def test_absent_adc_is_an_authentication_error(gcp, monkeypatch, tmp_path, srv, write_settings):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    profile = {"type": "vertex", "model": MODEL, "project": "p", "base_url": srv.url}
    write_settings({"llm": {"active_provider": "vx", "providers": {"vx": profile}}})
    with pytest.raises(errors.AuthenticationError, match="gcloud auth application-default login"):
        llmnb.connect("vx").complete("hello")
    assert srv.requests == []


def test_missing_project_is_a_config_error(gcp, srv, write_settings):
    _settings(write_settings, srv)
    with pytest.raises(errors.ConfigError, match="GOOGLE_CLOUD_PROJECT"):
        llmnb.connect("vx").complete("hello")


def test_missing_google_auth_says_which_extra(tmp_path, write_settings):
    _settings(write_settings, None, project="p")
    code = textwrap.dedent(
        """
        import sys
        sys.modules["google.auth"] = None
        import llmnb
        from llmnb import errors
        try:
            llmnb.connect("vx")
        except errors.ConfigError as e:
            print("ERR", e)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert "ERR" in out.stdout and 'pip install "llmnb[vertex]"' in out.stdout, out.stderr


CLAUDE = "claude-haiku-4-5@20251001"


def _claude(write_settings, srv, **extra):
    profile = {
        "type": "vertex_anthropic",
        "model": CLAUDE,
        "credential": "fakegcred:creds",
        "project": "my-proj",
        "location": "us-east5",
        "base_url": srv.url,
        **extra,
    }
    write_settings({"llm": {"active_provider": "cl", "providers": {"cl": profile}}})


def test_claude_on_vertex_raw_predict(gcp, srv, write_settings, tracker):
    _claude(write_settings, srv)
    client = llmnb.connect("cl")
    assert client.complete("hello", max_tokens=100).content == "Hi there!"
    sent = srv.last_request
    assert sent.path == (
        f"/v1/projects/my-proj/locations/us-east5/publishers/anthropic/models/{CLAUDE}:rawPredict"
    )
    assert sent.headers["authorization"] == "Bearer ya29.fake-001-SECRETTOKEN"
    assert "x-api-key" not in sent.headers and "anthropic-version" not in sent.headers
    assert sent.json == {
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 100,
        "anthropic_version": "vertex-2023-10-16",
    }
    assert "".join(client.stream("hello")) == "Hi there!"
    assert srv.last_request.path.endswith(":streamRawPredict")
    assert srv.last_request.json["stream"] is True
    rows = tracker.to_dataframe()
    assert rows["status"].tolist() == ["ok", "ok"] and rows["provider"].tolist()[0] == (
        "vertex_anthropic"
    )
    # Claude Haiku 4.5: $1 in / $5 out per million tokens (genai-prices).
    assert rows["cost_usd"].iloc[0] == pytest.approx(2 * 1e-6 + 3 * 5e-6)
    assert "SECRETTOKEN" not in rows.to_csv()


def test_claude_structured_output_is_a_forced_tool(gcp, srv, write_settings):
    _claude(write_settings, srv)

    class City(BaseModel):
        name: str

    srv.script(Fault.reply('{"name": "Tokyo"}'))
    assert llmnb.connect("cl").complete("city?", response_model=City).parsed == City(name="Tokyo")
    assert srv.last_request.json["tool_choice"]["type"] == "tool"
