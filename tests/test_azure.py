"""Azure OpenAI (`type: azure_openai`) against FakeLLMServer: the deployment path, the
api-version query, api-key and Entra ID auth, streaming, structured outputs, usage and
cost priced from the profile's model, typed errors, and the missing extra."""

from __future__ import annotations

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

KEY = "azkey-0123456789abcdefSECRET"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def srv():
    with FakeLLMServer(responses={"hello": "Hi there!"}) as s:
        yield s


def _settings(write_settings, srv, **extra):
    profile = {"type": "azure_openai", "model": "gpt-4o-mini", "deployment": "my-4o", **extra}
    if srv is not None:
        profile.setdefault("base_url", srv.url)
    write_settings({"llm": {"active_provider": "az", "providers": {"az": profile}}})


def test_api_key_chat_sends_the_deployment_path_query_and_header(
    monkeypatch, srv, write_settings, tracker
):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    _settings(write_settings, srv, api_version="2024-10-21")
    c = llmnb.connect("az").complete("hello", max_tokens=50, temperature=0.2)
    assert c.content == "Hi there!"
    sent = srv.last_request
    assert sent.path == "/openai/deployments/my-4o/chat/completions"
    assert sent.query == "api-version=2024-10-21"
    assert sent.headers["api-key"] == KEY
    assert "authorization" not in sent.headers
    assert sent.json == {
        "messages": [{"role": "user", "content": "hello"}],
        "temperature": 0.2,
        "max_tokens": 50,
    }
    row = tracker.to_dataframe().iloc[-1]
    assert (row["provider"], row["model"], row["status"]) == ("azure_openai", "gpt-4o-mini", "ok")
    assert row["prompt_tokens"] == 2 and row["completion_tokens"] == 3
    # Priced from genai-prices' azure table by the profile's model, not the deployment.
    assert row["cost_usd"] == pytest.approx(2 * 0.15e-6 + 3 * 0.6e-6)
    assert KEY not in repr(llmnb.connect("az")) and KEY not in tracker.to_dataframe().to_csv()


def test_endpoint_and_api_version_from_the_sdk_variables(monkeypatch, srv, write_settings):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", srv.url + "/")
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-01-01-preview")
    _settings(write_settings, None)
    assert llmnb.connect("az").complete("hello").content == "Hi there!"
    assert srv.last_request.query == "api-version=2025-01-01-preview"


def test_stream_and_structured_output(monkeypatch, srv, write_settings, tracker):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    _settings(write_settings, srv)
    client = llmnb.connect("az")
    assert "".join(client.stream("hello")) == "Hi there!"
    assert srv.last_request.json["stream"] is True
    assert srv.last_request.json["stream_options"] == {"include_usage": True}
    assert srv.last_request.query == "api-version=2024-10-21"  # the default

    class City(BaseModel):
        name: str

    srv.script(Fault.reply('{"name": "Tokyo"}'))
    assert client.complete("city?", response_model=City).parsed == City(name="Tokyo")
    fmt = srv.last_request.json["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert tracker.to_dataframe()["completion_tokens"].tolist()[0] == 3  # stream usage


def _write_credential_module(tmp_path, monkeypatch, body):
    (tmp_path / "fakecred.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("fakecred", None)


CRED = """
    import time
    from collections import namedtuple
    AccessToken = namedtuple("AccessToken", "token expires_on")
    calls = []

    class Credential:
        lifetime = 3600
        def get_token(self, *scopes):
            calls.append(scopes)
            return AccessToken(f"entra-token-{len(calls):03d}-SECRETVALUE",
                               int(time.time()) + self.lifetime)

    credential = Credential()
"""


def test_entra_token_from_the_profile_credential_is_cached_and_refreshed(
    tmp_path, monkeypatch, srv, write_settings, tracker
):
    _write_credential_module(tmp_path, monkeypatch, CRED)
    _settings(write_settings, srv, credential="fakecred:credential")
    client = llmnb.connect("az")
    client.complete("hello")
    client.complete("hello again")
    import fakecred

    assert fakecred.calls == [("https://cognitiveservices.azure.com/.default",)]
    assert srv.last_request.headers["authorization"] == "Bearer entra-token-001-SECRETVALUE"
    assert "api-key" not in srv.last_request.headers
    # A token about to expire (inside the refresh margin) is replaced before it is sent.
    fakecred.Credential.lifetime = 60
    client2 = llmnb.connect("az")
    client2.complete("one")
    client2.complete("two")
    assert len(fakecred.calls) == 3  # 60 s left < margin: fetched again for each request
    dump = repr(client2) + repr(client2.provider.__dict__) + tracker.to_dataframe().to_csv()
    assert "SECRETVALUE" not in dump


def test_entra_failure_is_an_authentication_error_saying_az_login(
    tmp_path, monkeypatch, srv, write_settings
):
    _write_credential_module(
        tmp_path,
        monkeypatch,
        """
        class Credential:
            def get_token(self, *scopes):
                raise RuntimeError("DefaultAzureCredential failed to retrieve a token")
        """,
    )
    _settings(write_settings, srv, credential="fakecred:Credential")
    with pytest.raises(errors.AuthenticationError, match="az login") as info:
        llmnb.connect("az").complete("hello")
    assert "failed to retrieve a token" in str(info.value)
    assert srv.requests == []


def test_rejected_token_says_az_login(tmp_path, monkeypatch, srv, write_settings):
    _write_credential_module(tmp_path, monkeypatch, CRED)
    _settings(write_settings, srv, credential="fakecred:credential", max_retries=0)
    srv.script(
        Fault.json(
            401,
            {"error": {"code": "401", "message": "Access token is missing, invalid or expired."}},
        )
    )
    with pytest.raises(errors.AuthenticationError, match="az login") as info:
        llmnb.connect("az").complete("hello")
    assert "SECRETVALUE" not in str(info.value)


def test_unknown_deployment_is_a_typed_error_naming_it(monkeypatch, srv, write_settings):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    _settings(write_settings, srv, deployment="nope-4o", max_retries=0)
    body = {
        "error": {
            "code": "DeploymentNotFound",
            "message": "The API deployment for this resource does not exist.",
        }
    }
    srv.script(Fault.json(404, body))
    with pytest.raises(errors.InvalidRequestError, match="'nope-4o'") as info:
        llmnb.connect("az").complete("hello")
    assert info.value.code == "DeploymentNotFound" and "deployment:" in str(info.value)


def test_missing_key_endpoint_and_bad_auth_are_config_errors(monkeypatch, write_settings, srv):
    _settings(write_settings, srv)
    with pytest.raises(errors.ConfigError, match="AZURE_OPENAI_API_KEY"):
        llmnb.connect("az").complete("hello")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    _settings(write_settings, None)
    with pytest.raises(errors.ConfigError, match="AZURE_OPENAI_ENDPOINT"):
        llmnb.connect("az").complete("hello")
    _settings(write_settings, srv, auth="oauth")
    with pytest.raises(errors.ConfigError, match="'key' or 'entra'"):
        llmnb.connect("az")


def test_entra_without_azure_identity_says_which_extra(tmp_path, write_settings):
    _settings(write_settings, None, auth="entra", base_url="http://127.0.0.1:9")
    code = textwrap.dedent(
        """
        import sys
        sys.modules["azure.identity"] = None
        import llmnb
        from llmnb import errors
        try:
            llmnb.connect("az")
        except errors.ConfigError as e:
            print("ERR", e)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert "ERR" in out.stdout and 'pip install "llmnb[azure]"' in out.stdout, out.stderr


def test_async_complete_and_stream(monkeypatch, srv, write_settings, tracker):
    import asyncio

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    _settings(write_settings, srv)
    client = llmnb.connect("az")

    async def go():
        answer = await client.acomplete("hello")
        parts = [part async for part in client.astream("hello")]
        return answer.content, "".join(parts)

    assert asyncio.run(go()) == ("Hi there!", "Hi there!")
    assert srv.last_request.path == "/openai/deployments/my-4o/chat/completions"
    assert tracker.to_dataframe()["status"].tolist() == ["ok", "ok"]
