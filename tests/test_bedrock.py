"""AWS Bedrock (`type: bedrock`) against FakeLLMServer: Converse and ConverseStream,
SigV4 signatures checked against botocore's own signer on a fixed clock, credentials
from the standard chain, usage and cost, Bedrock's exceptions mapped, the missing extra."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import llmnb
from llmnb import errors
from llmnb.testing import FakeLLMServer, Fault

ROOT = Path(__file__).resolve().parents[1]
AK = "AKIAFAKEEXAMPLE12345"
SK = "fake/secret+key0123456789SECRETSECRETxyz"
TOKEN = "FwoGZXIvYXdzSESSIONTOKEN0123456789"
MODEL = "amazon.nova-micro-v1:0"


@pytest.fixture
def srv():
    with FakeLLMServer(responses={"hello": "Hi there!"}) as s:
        yield s


@pytest.fixture
def aws(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    # No shared files of the developer's: the chain must find the environment's keys.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SK)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)


def _settings(write_settings, srv, **extra):
    profile = {"type": "bedrock", "model": MODEL, "region": "eu-west-1", **extra}
    if srv is not None:
        profile.setdefault("base_url", srv.url)
    write_settings({"llm": {"active_provider": "br", "providers": {"br": profile}}})


def _botocore_signature(srv, sent, region="eu-west-1", token=TOKEN):
    """The Authorization botocore computes for the request the server received, with
    the clock frozen at the request's own X-Amz-Date."""
    date = sent.headers["x-amz-date"]
    headers = {"Content-Type": sent.headers["content-type"], "X-Amz-Date": date}
    if token:
        headers["X-Amz-Security-Token"] = sent.headers["x-amz-security-token"]
    req = AWSRequest(method="POST", url=srv.url + sent.path, data=sent.body, headers=headers)
    req.context["timestamp"] = date
    signer = SigV4Auth(Credentials(AK, SK, token), "bedrock", region)
    signature = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    signed = signer.signed_headers(signer.headers_to_sign(req))
    scope = signer.scope(req)
    return f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={signed}, Signature={signature}"


def test_converse_body_signature_usage_and_cost(aws, srv, write_settings, tracker):
    _settings(write_settings, srv)
    client = llmnb.connect("br")
    c = client.complete(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}],
        max_tokens=64,
        temperature=0.3,
    )
    assert c.content == "Hi there!" and c.finish_reason == "stop"
    sent = srv.last_request
    assert sent.path in ("/model/amazon.nova-micro-v1%3A0/converse", f"/model/{MODEL}/converse")
    assert sent.json == {
        "messages": [{"role": "user", "content": [{"text": "hello"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.3},
    }
    assert sent.headers["x-amz-security-token"] == TOKEN
    assert sent.headers["authorization"] == _botocore_signature(srv, sent)
    assert "/eu-west-1/bedrock/aws4_request" in sent.headers["authorization"]
    row = tracker.to_dataframe().iloc[-1]
    assert (row["provider"], row["model"], row["status"]) == ("bedrock", MODEL, "ok")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (4, 3)
    # genai-prices' aws table: nova-micro $0.035 in / $0.14 out per million tokens.
    assert row["cost_usd"] == pytest.approx(4 * 0.035e-6 + 3 * 0.14e-6)
    dump = tracker.to_dataframe().to_csv() + repr(client) + repr(client.provider.__dict__)
    assert SK not in dump and TOKEN not in dump


def test_a_tampered_body_does_not_match_the_signature(aws, srv, write_settings):
    # The check above can fail: botocore's signature over other bytes is different.
    _settings(write_settings, srv)
    llmnb.connect("br").complete("hello")
    sent = srv.last_request
    forged = type(sent)(sent.method, sent.path, sent.headers, sent.body + b" ", sent.time)
    assert sent.headers["authorization"] != _botocore_signature(srv, forged)


def test_converse_stream_decodes_event_stream_frames(aws, srv, write_settings, tracker):
    _settings(write_settings, srv, region=None)
    os.environ["AWS_REGION"] = "ap-south-1"
    try:
        client = llmnb.connect("br")
        assert "".join(client.stream("hello")) == "Hi there!"
    finally:
        del os.environ["AWS_REGION"]
    sent = srv.last_request
    assert sent.path.endswith("/converse-stream")
    assert sent.headers["accept"] == "application/vnd.amazon.eventstream"
    assert sent.headers["authorization"] == _botocore_signature(srv, sent, "ap-south-1")
    row = tracker.to_dataframe().iloc[-1]
    assert (row["status"], row["prompt_tokens"], row["completion_tokens"]) == ("ok", 2, 3)


def test_cache_tokens_are_read(aws, srv, write_settings, tracker):
    _settings(write_settings, srv)
    usage = {"inputTokens": 10, "outputTokens": 4, "cacheReadInputTokens": 90}
    srv.script(Fault.reply("ok", usage=usage))
    llmnb.connect("br").complete("hello")
    row = tracker.to_dataframe().iloc[-1]
    assert (row["prompt_tokens"], row["cached_tokens"], row["completion_tokens"]) == (100, 90, 4)


@pytest.mark.parametrize(
    ("status", "kind", "error", "words"),
    [
        (429, "ThrottlingException", errors.RateLimitError, "Too many requests"),
        (400, "ValidationException", errors.InvalidRequestError, "bad input"),
        (403, "ExpiredTokenException", errors.AuthenticationError, "aws sso login"),
        (403, "UnrecognizedClientException", errors.AuthenticationError, "aws sso login"),
        (403, "AccessDeniedException", errors.AuthenticationError, "AWS credentials"),
        (429, "ModelNotReadyException", errors.OverloadedError, "not ready"),
        (503, "ServiceUnavailableException", errors.OverloadedError, "unavailable"),
    ],
)
def test_bedrock_exceptions_are_typed(aws, srv, write_settings, status, kind, error, words):
    _settings(write_settings, srv, max_retries=0)
    message = {"ThrottlingException": "Too many requests", "ValidationException": "bad input"}
    body = {"message": message.get(kind, "model not ready / unavailable")}
    srv.script(Fault.json(status, body, headers={"x-amzn-ErrorType": f"{kind}:http://x/"}))
    with pytest.raises(error) as info:
        llmnb.connect("br").complete("hello")
    assert info.value.code == kind and words in str(info.value)
    assert info.value.retryable is (error in (errors.RateLimitError, errors.OverloadedError))


def test_throttling_is_retried_then_answers(aws, srv, write_settings, tracker):
    _settings(write_settings, srv, max_retries=1)
    srv.script(Fault.json(429, {"message": "slow down"}, headers={"retry-after": "0"}))
    assert llmnb.connect("br").complete("hello").content == "Hi there!"
    assert tracker.to_dataframe()["status"].tolist()[-1] == "ok"
    assert len(srv.requests) == 2


def test_stream_exception_frame_is_typed(aws, srv, write_settings):
    _settings(write_settings, srv, max_retries=0)
    srv.script(Fault.stream_error(after_chunks=2))
    with pytest.raises(errors.ProviderError, match="middle of the stream"):
        "".join(llmnb.connect("br").stream("hello"))


def test_absent_credentials_say_aws_sso_login(aws, monkeypatch, srv, write_settings):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    _settings(write_settings, srv)
    with pytest.raises(errors.AuthenticationError, match="aws sso login"):
        llmnb.connect("br").complete("hello")
    assert srv.requests == []


def test_credentials_from_a_shared_profile(aws, monkeypatch, tmp_path, srv, write_settings):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    (tmp_path / "aws-credentials").write_text(
        f"[team]\naws_access_key_id = {AK}\naws_secret_access_key = {SK}\n"
    )
    _settings(write_settings, srv, aws_profile="team")
    llmnb.connect("br").complete("hello")
    sent = srv.last_request
    assert "x-amz-security-token" not in sent.headers
    assert sent.headers["authorization"] == _botocore_signature(srv, sent, token=None)


def test_missing_region_is_a_config_error(aws, write_settings, srv):
    _settings(write_settings, None, region=None)
    with pytest.raises(errors.ConfigError, match="AWS_REGION"):
        llmnb.connect("br").complete("hello")


def test_missing_botocore_says_which_extra(tmp_path, write_settings):
    _settings(write_settings, None)
    code = textwrap.dedent(
        """
        import sys
        sys.modules["botocore"] = None
        import llmnb
        from llmnb import errors
        try:
            llmnb.connect("br")
        except errors.ConfigError as e:
            print("ERR", e)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert "ERR" in out.stdout and 'pip install "llmnb[bedrock]"' in out.stdout, out.stderr


RECORDED = ROOT / "tests" / "recordings" / "cloud"


def _recorded(name):
    import yaml

    return yaml.safe_load((RECORDED / name).read_text())["interactions"][0]


def test_a_recorded_converse_stream_replays(aws, srv, write_settings, tracker):
    # Real ConverseStream bytes (pydantic-ai's cassette), cut into 7-byte pieces so frames
    # straddle reads: botocore's parser must reassemble them.
    raw = _recorded("bedrock_converse_stream.yaml")["response"]["body"]["string"]
    _settings(write_settings, srv, model="us.amazon.nova-micro-v1:0")
    srv.script(Fault.sse(*(raw[i : i + 7] for i in range(0, len(raw), 7))))
    text = "".join(llmnb.connect("br").stream("What is the capital of France?"))
    assert text.startswith("The capital of France is Paris. Paris is not only")
    assert text.endswith('"The City of Love."')
    row = tracker.to_dataframe().iloc[-1]
    assert (row["status"], row["prompt_tokens"], row["completion_tokens"]) == ("ok", 13, 82)
    assert row["cost_usd"] == pytest.approx(13 * 0.035e-6 + 82 * 0.14e-6)


def test_a_recorded_converse_answer_replays_and_the_request_matches(
    aws, srv, write_settings, tracker
):
    recorded = _recorded("bedrock_converse.yaml")
    _settings(write_settings, srv, model="us.amazon.nova-micro-v1:0")
    srv.script(Fault.json(200, recorded["response"]["parsed_body"]))
    question = recorded["request"]["body"]
    import json

    prompt = json.loads(question)["messages"][0]["content"][0]["text"]
    c = llmnb.connect("br").complete(prompt)
    assert c.content == "The city of Paris" and c.finish_reason == "stop"
    # The same path form as boto3's (the model id's ':' percent-encoded).
    assert recorded["request"]["uri"].endswith(srv.last_request.path)
    assert srv.last_request.json["messages"] == json.loads(question)["messages"]
    row = tracker.to_dataframe().iloc[-1]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (25, 4)


def test_async_complete_and_stream(aws, srv, write_settings, tracker):
    import asyncio

    _settings(write_settings, srv)
    client = llmnb.connect("br")

    async def go():
        answer = await client.acomplete("hello")
        parts = [part async for part in client.astream("hello")]
        return answer.content, "".join(parts)

    assert asyncio.run(go()) == ("Hi there!", "Hi there!")
    assert srv.last_request.headers["authorization"] == _botocore_signature(srv, srv.last_request)
    assert tracker.to_dataframe()["status"].tolist() == ["ok", "ok"]


def test_a_cut_stream_is_a_network_error_not_a_short_answer(aws, srv, write_settings):
    _settings(write_settings, srv, max_retries=0)
    srv.script(Fault.cut_stream(after_chunks=3))
    with pytest.raises(errors.NetworkError, match="incomplete"):
        "".join(llmnb.connect("br").stream("hello"))


def test_a_server_quoting_the_secret_key_is_scrubbed(aws, srv, write_settings, tracker):
    _settings(write_settings, srv, max_retries=0)
    quoted = {"message": f"The request signature we calculated does not match ({SK}, {TOKEN})"}
    srv.script(Fault.json(403, quoted, headers={"x-amzn-ErrorType": "InvalidSignatureException"}))
    with pytest.raises(errors.AuthenticationError) as info:
        llmnb.connect("br").complete("hello")
    shown = str(info.value) + repr(info.value) + str(info.value.body)
    assert "does not match" in shown and SK not in shown and TOKEN not in shown
    assert SK not in tracker.to_dataframe().to_csv()
