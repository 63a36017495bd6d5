"""FakeLLMServer speaks the OpenAI wire format over real HTTP and plays scripted faults."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import llmnb.testing
from llmnb.testing import FakeLLMServer, Fault, RecordedRequest, count_tokens

USER = [{"role": "user", "content": "hello there"}]
# Plain HTTP on loopback: skip loading the CA bundle (~30 ms per client).
NO_TLS = False


@pytest.fixture(autouse=True)
def no_asyncio_complaints(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The server thread never logs tracebacks, whatever the clients do."""
    yield
    assert [r.getMessage() for r in caplog.records if r.name.startswith("asyncio")] == []


def wait_until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


@pytest.fixture
def srv() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(responses={"hello": "Hi there!"}) as server:
        yield server


@pytest.fixture
def client(srv: FakeLLMServer) -> Iterator[httpx.Client]:
    with httpx.Client(verify=NO_TLS, base_url=srv.base_url, timeout=5) as c:
        yield c


def chat(client: httpx.Client, content: str = "hello", **body: Any) -> httpx.Response:
    payload = {"model": "m", "messages": [{"role": "user", "content": content}], **body}
    return client.post("/chat/completions", json=payload)


def sse_data(text: str) -> list[str]:
    """The ``data:`` payloads of an event stream, in order."""
    out = []
    for block in text.split("\n\n"):
        lines = [ln[len("data: ") :] for ln in block.split("\n") if ln.startswith("data: ")]
        if lines:
            out.append("\n".join(lines))
    return out


def stream_chat(client: httpx.Client, content: str = "hello", **body: Any) -> str:
    payload = {"messages": [{"role": "user", "content": content}], "stream": True, **body}
    with client.stream("POST", "/chat/completions", json=payload) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return r.read().decode()


def streamed_content(events: list[str]) -> str:
    parts = []
    for data in events:
        if data == "[DONE]":
            continue
        for choice in json.loads(data)["choices"]:
            parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


# -- normal answers -----------------------------------------------------------------------


def test_non_stream_answer_has_the_openai_shape(client: httpx.Client) -> None:
    r = chat(client, "Hello, who are you?")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    data = r.json()
    assert data["id"].startswith("chatcmpl-")
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == "m"
    assert data["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi there!"},
            "finish_reason": "stop",
        }
    ]
    prompt = count_tokens("Hello, who are you?")
    assert data["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": count_tokens("Hi there!"),
        "total_tokens": prompt + count_tokens("Hi there!"),
    }


def test_model_defaults_to_the_server_model_when_the_request_has_none() -> None:
    with FakeLLMServer(model="srv-model") as s:
        r = httpx.post(f"{s.base_url}/chat/completions", json={"messages": USER}, verify=NO_TLS)
    assert r.json()["model"] == "srv-model"


def test_first_keyword_found_in_the_last_user_message_wins() -> None:
    responses = {"weather": "Sunny.", "HELLO": "Hi!", "bye": "Bye!"}
    with (
        FakeLLMServer(responses=responses) as s,
        httpx.Client(verify=NO_TLS, base_url=s.base_url) as c,
    ):
        assert chat(c, "hello, BYE").json()["choices"][0]["message"]["content"] == "Hi!"


def test_keyword_lookup_ignores_earlier_messages(client: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hi there!"},
        {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
    ]
    r = client.post("/chat/completions", json={"messages": messages})
    assert r.json()["choices"][0]["message"]["content"] == "Hello from FakeLLMServer."


def test_echo_answers_with_the_last_user_message_when_no_keyword_matches() -> None:
    with (
        FakeLLMServer(responses={"ping": "pong"}, echo=True) as s,
        httpx.Client(verify=NO_TLS, base_url=s.base_url) as c,
    ):
        assert chat(c, "What is 2+2?").json()["choices"][0]["message"]["content"] == (
            "Echo: What is 2+2?"
        )
        assert chat(c, "PING").json()["choices"][0]["message"]["content"] == "pong"


def test_default_response_without_echo() -> None:
    with (
        FakeLLMServer(default_response="Default!") as s,
        httpx.Client(verify=NO_TLS, base_url=s.base_url) as c,
    ):
        assert chat(c, "anything").json()["choices"][0]["message"]["content"] == "Default!"


def test_max_tokens_truncates_the_reply_with_finish_reason_length(client: httpx.Client) -> None:
    data = chat(client, "hello", max_tokens=1).json()
    assert data["choices"][0]["message"]["content"] == "Hi t"
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 1
    data = chat(client, "hello", max_completion_tokens=100).json()
    assert data["choices"][0]["finish_reason"] == "stop"


def test_report_cost_adds_openrouter_usage_cost() -> None:
    with (
        FakeLLMServer(report_cost=0.0042) as s,
        httpx.Client(verify=NO_TLS, base_url=s.base_url) as c,
    ):
        assert chat(c).json()["usage"]["cost"] == 0.0042


# -- streaming ----------------------------------------------------------------------------


def test_stream_chunks_concatenate_to_the_reply_and_end_with_done(client: httpx.Client) -> None:
    events = sse_data(stream_chat(client, "hello"))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    contents = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert contents == ["Hi t", "here", "!"]  # chunk_size=4 characters
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)
    assert streamed_content(events) == "Hi there!"


def test_stream_include_usage_sends_a_usage_chunk_before_done(client: httpx.Client) -> None:
    events = sse_data(stream_chat(client, "hello", stream_options={"include_usage": True}))
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == count_tokens("Hi there!")
    assert streamed_content(events) == "Hi there!"


def test_chunk_size_sets_characters_per_content_chunk() -> None:
    with (
        FakeLLMServer(default_response="abcdefg", chunk_size=3) as s,
        httpx.Client(verify=NO_TLS, base_url=s.base_url) as c,
    ):
        chunks = [json.loads(e) for e in sse_data(stream_chat(c))[1:-2]]
    assert [ch["choices"][0]["delta"]["content"] for ch in chunks] == ["abc", "def", "g"]


def test_sse_comments_come_before_the_first_chunk() -> None:
    with (
        FakeLLMServer(sse_comments=True) as s,
        httpx.Client(verify=NO_TLS, base_url=s.base_url) as c,
    ):
        text = stream_chat(c)
    assert text.startswith(": OPENROUTER PROCESSING\n\n")
    assert sse_data(text)[-1] == "[DONE]"


# -- faults -------------------------------------------------------------------------------


def test_rate_limit_sends_429_with_retry_after_headers(
    srv: FakeLLMServer, client: httpx.Client
) -> None:
    srv.script(
        Fault.rate_limit(retry_after=1.5), Fault.rate_limit(retry_after=2, retry_after_ms=250)
    )
    r = chat(client)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1.5"
    assert "retry-after-ms" not in r.headers
    error = r.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["message"].startswith("Rate limit reached")
    r = chat(client)
    assert (r.headers["retry-after"], r.headers["retry-after-ms"]) == ("2", "250")


def test_faults_answer_stream_requests_with_plain_json_errors(
    srv: FakeLLMServer, client: httpx.Client
) -> None:
    srv.script(Fault.rate_limit())
    r = chat(client, stream=True)
    assert r.status_code == 429
    assert r.json()["error"]["type"] in ("requests", "rate_limit_error")


def test_insufficient_quota_is_a_429_with_its_own_type(
    srv: FakeLLMServer, client: httpx.Client
) -> None:
    srv.script(Fault.insufficient_quota())
    r = chat(client)
    assert r.status_code == 429
    error = r.json()["error"]
    assert error["type"] == error["code"] == "insufficient_quota"
    assert "quota" in error["message"]


@pytest.mark.parametrize("status", [400, 401, 500, 502, 503, 529, 418])
def test_status_sends_an_openai_error_body(
    srv: FakeLLMServer, client: httpx.Client, status: int
) -> None:
    srv.script(Fault.status(status))
    r = chat(client)
    assert r.status_code == status
    assert set(r.json()["error"]) >= {"message", "type", "code"}


def test_status_with_a_custom_body_and_headers(srv: FakeLLMServer, client: httpx.Client) -> None:
    srv.script(
        Fault.status(503, {"error": "overloaded"}, headers={"X-Why": "busy"}),
        Fault.status(500, "Internal Server Error"),
    )
    r = chat(client)
    assert (r.status_code, r.json(), r.headers["x-why"]) == (503, {"error": "overloaded"}, "busy")
    r = chat(client)
    assert (r.status_code, r.text) == (500, "Internal Server Error")


def test_reset_closes_the_connection_without_a_response(
    srv: FakeLLMServer, client: httpx.Client
) -> None:
    srv.script(Fault.reset(), Fault.reset())
    with pytest.raises(httpx.TransportError):
        chat(client)
    with (
        pytest.raises(httpx.TransportError),
        client.stream("POST", "/chat/completions", json={"messages": USER, "stream": True}) as r,
    ):
        r.read()
    assert chat(client).status_code == 200  # the next request gets a fresh connection
    assert srv.connections_opened == 3


def test_slow_makes_a_short_client_timeout_fire(srv: FakeLLMServer) -> None:
    srv.script(Fault.slow(2.0))
    with (
        httpx.Client(verify=NO_TLS, base_url=srv.base_url, timeout=0.2) as c,
        pytest.raises(httpx.ReadTimeout),
    ):
        chat(c)
    with httpx.Client(verify=NO_TLS, base_url=srv.base_url, timeout=5) as c:
        assert chat(c).status_code == 200


def test_slow_then_answers_normally_without_blocking_other_connections(srv: FakeLLMServer) -> None:
    srv.script(Fault.slow(0.8))
    results: list[str] = []

    def slow_call() -> None:
        with httpx.Client(verify=NO_TLS, base_url=srv.base_url, timeout=10) as c:
            results.append(chat(c).json()["choices"][0]["message"]["content"])

    t = threading.Thread(target=slow_call)
    t.start()
    with httpx.Client(verify=NO_TLS, base_url=srv.base_url, timeout=5) as c:
        wait_until(lambda: srv.requests)
        assert chat(c, "second").status_code == 200
        assert t.is_alive()  # the slow answer is still pending: 0.8 s is ages here
    t.join(5)
    assert results == ["Hi there!"]


def test_cut_stream_ends_without_done(srv: FakeLLMServer, client: httpx.Client) -> None:
    srv.script(Fault.cut_stream(after_chunks=2))
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/chat/completions", json={"messages": USER, "stream": True}) as r,
    ):
        assert r.status_code == 200
        for piece in r.iter_bytes():
            received += piece
    events = sse_data(received.decode())
    assert len(events) == 2
    assert "[DONE]" not in events


def test_a_client_hanging_up_mid_stream_is_not_an_error() -> None:
    with FakeLLMServer(default_response="x" * 50_000, chunk_size=1) as s:
        with httpx.Client(verify=NO_TLS, base_url=s.base_url) as c:
            payload = {"messages": USER, "stream": True}
            with c.stream("POST", "/chat/completions", json=payload) as r:
                next(r.iter_bytes())
            assert chat(c).status_code == 200
        assert s.errors == []


def test_cut_stream_on_a_non_stream_request_sends_a_short_body(
    srv: FakeLLMServer, client: httpx.Client
) -> None:
    srv.script(Fault.cut_stream())
    with pytest.raises(httpx.RemoteProtocolError):
        chat(client)


def test_stream_error_sends_an_error_event_mid_stream(
    srv: FakeLLMServer, client: httpx.Client
) -> None:
    srv.script(Fault.stream_error(after_chunks=2, message="upstream died", type="server_error"))
    events = sse_data(stream_chat(client))
    assert len(events) == 3
    assert "[DONE]" not in events
    assert json.loads(events[-1]) == {
        "error": {"message": "upstream died", "type": "server_error", "param": None, "code": None}
    }


def test_stream_error_on_a_non_stream_request_is_a_200_error_body(
    srv: FakeLLMServer, client: httpx.Client
) -> None:
    srv.script(Fault.stream_error(message="boom"))
    r = chat(client)
    assert (r.status_code, r.json()["error"]["message"]) == (200, "boom")


def test_malformed_json(srv: FakeLLMServer, client: httpx.Client) -> None:
    srv.script(Fault.malformed_json(), Fault.malformed_json())
    r = chat(client)
    assert (r.status_code, r.headers["content-type"]) == (200, "application/json")
    with pytest.raises(json.JSONDecodeError):
        r.json()
    events = sse_data(stream_chat(client))
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[0])
    assert events[-1] == "[DONE]"


def test_html_sends_a_proxy_error_page(srv: FakeLLMServer, client: httpx.Client) -> None:
    srv.script(Fault.html(), Fault.html(504))
    r = chat(client)
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("text/html")
    assert r.text.lstrip().lower().startswith("<html")
    assert "502 Bad Gateway" in r.text
    assert chat(client).status_code == 504


def test_empty_body(srv: FakeLLMServer, client: httpx.Client) -> None:
    srv.script(Fault.empty_body(), Fault.empty_body(503))
    r = chat(client)
    assert (r.status_code, r.content) == (200, b"")
    assert (chat(client).status_code, chat(client).status_code) == (503, 200)


def test_reply_sends_given_content_usage_and_cost(srv: FakeLLMServer, client: httpx.Client) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
    srv.script(
        Fault.reply("Scripted!", cost=0.5),
        Fault.reply("Exact", usage=usage, finish_reason="content_filter"),
        Fault.reply("Streamed", cost=0.25),
    )
    data = chat(client).json()
    assert data["choices"][0]["message"]["content"] == "Scripted!"
    assert data["usage"]["cost"] == 0.5
    data = chat(client).json()
    assert data["usage"] == usage
    assert data["choices"][0]["finish_reason"] == "content_filter"
    events = sse_data(stream_chat(client, stream_options={"include_usage": True}))
    assert streamed_content(events) == "Streamed"
    assert json.loads(events[-2])["usage"]["cost"] == 0.25


def test_json_sends_any_body_verbatim(srv: FakeLLMServer, client: httpx.Client) -> None:
    srv.script(Fault.json(200, {"id": "x", "object": "chat.completion"}, headers={"X-A": "1"}))
    r = chat(client, stream=True)
    assert (r.status_code, r.json(), r.headers["x-a"]) == (
        200,
        {"id": "x", "object": "chat.completion"},
        "1",
    )


def test_fault_repr_names_the_constructor() -> None:
    assert repr(Fault.status(500)) == "Fault.status(500)"
    assert repr(Fault.reset()) == "Fault.reset()"


# -- scripting ----------------------------------------------------------------------------


def test_script_is_played_in_order_then_normal_answers(
    srv: FakeLLMServer, client: httpx.Client
) -> None:
    srv.script(Fault.status(500))
    srv.script(Fault.rate_limit(), Fault.status(401))  # appends
    assert len(srv.pending_faults) == 3
    assert client.get("/models").status_code == 200  # not a chat request: consumes nothing
    assert [chat(client).status_code for _ in range(5)] == [500, 429, 401, 200, 200]
    assert srv.pending_faults == []


def test_script_rejects_non_faults(srv: FakeLLMServer) -> None:
    with pytest.raises(TypeError):
        srv.script(500)  # type: ignore[arg-type]


def test_handler_decides_per_request_after_the_script(
    srv: FakeLLMServer, client: httpx.Client
) -> None:
    seen: list[RecordedRequest] = []

    def handler(request: RecordedRequest) -> Fault | None:
        seen.append(request)
        return Fault.status(503) if "fail" in json.dumps(request.json) else None

    srv.set_handler(handler)
    srv.script(Fault.status(400))
    assert chat(client, "fail please").status_code == 400  # script first
    assert chat(client, "fail please").status_code == 503
    assert chat(client, "hello").status_code == 200
    assert len(seen) == 2
    srv.set_handler(None)
    assert chat(client, "fail please").status_code == 200


def test_an_error_in_the_handler_is_a_500_and_is_recorded(
    srv: FakeLLMServer, client: httpx.Client
) -> None:
    def handler(request: RecordedRequest) -> Fault | None:
        raise ValueError("handler bug")

    srv.set_handler(handler)
    r = chat(client)
    assert r.status_code == 500
    assert "handler bug" in r.json()["error"]["message"]
    assert [type(e) for e in srv.errors] == [ValueError]
    assert len(srv.requests) == 1
    srv.set_handler(lambda request: "not a fault")  # type: ignore[arg-type,return-value]
    assert chat(client).status_code == 500
    assert chat(client).status_code == 500  # the connection survives handler errors


# -- recording ----------------------------------------------------------------------------


def test_requests_are_recorded_with_headers_and_json(
    srv: FakeLLMServer, client: httpx.Client
) -> None:
    srv.script(Fault.reset())
    with pytest.raises(httpx.TransportError):
        client.post(
            "/chat/completions?x=1",
            json={"model": "m", "messages": USER},
            headers={"Authorization": "Bearer sk-test-123"},
        )
    req = srv.last_request
    assert req is not None
    assert (req.method, req.path, req.query) == ("POST", "/v1/chat/completions", "x=1")
    assert req.headers["authorization"] == "Bearer sk-test-123"
    assert req.headers["content-type"] == "application/json"
    assert req.json == {"model": "m", "messages": USER}
    assert json.loads(req.body) == req.json
    assert req.time > 0
    client.get("/nope")
    assert [r.path for r in srv.requests] == ["/v1/chat/completions", "/v1/nope"]
    assert srv.requests[-1].json is None


def test_reset_forgets_requests_script_and_handler(
    srv: FakeLLMServer, client: httpx.Client
) -> None:
    chat(client)
    srv.script(Fault.status(500))
    srv.set_handler(lambda request: Fault.status(502))
    srv.reset()
    assert (srv.requests, srv.last_request, srv.pending_faults) == ([], None, [])
    assert chat(client).status_code == 200


def test_chunked_request_bodies_are_read(srv: FakeLLMServer, client: httpx.Client) -> None:
    body = json.dumps({"messages": USER}).encode()
    r = client.post("/chat/completions", content=iter([body[:10], body[10:]]))
    assert r.status_code == 200
    assert srv.last_request is not None
    assert srv.last_request.json == {"messages": USER}


def test_invalid_request_body_is_a_400(client: httpx.Client) -> None:
    r = client.post("/chat/completions", content=b"not json")
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert client.post("/chat/completions", json={"messages": "hi"}).status_code == 400


# -- HTTP ---------------------------------------------------------------------------------


def test_garbage_on_the_wire_gets_a_400_and_a_closed_connection(srv: FakeLLMServer) -> None:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in answer
    assert srv.errors == []


def test_keep_alive_reuses_one_connection(srv: FakeLLMServer, client: httpx.Client) -> None:
    assert chat(client).status_code == 200
    stream_chat(client)
    assert chat(client).status_code == 200
    assert srv.connections_opened == 1
    with httpx.Client(verify=NO_TLS, base_url=srv.base_url) as other:
        chat(other)
    assert srv.connections_opened == 2


def test_64_concurrent_connections_are_all_answered() -> None:
    async def run(base_url: str) -> list[int]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(
            verify=NO_TLS, base_url=base_url, limits=limits, timeout=10
        ) as c:
            payload = {"messages": USER}
            calls = [c.post("/chat/completions", json=payload) for _ in range(128)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    with FakeLLMServer(latency=0.01) as s:
        assert asyncio.run(run(s.base_url)) == [200] * 128
        assert len(s.requests) == 128
        assert 1 < s.connections_opened <= 64


def test_models_list(srv: FakeLLMServer, client: httpx.Client) -> None:
    assert client.get("/models").json() == {
        "object": "list",
        "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "llmnb"}],
    }
    with FakeLLMServer(models=["a", "b"]) as s:
        data = httpx.get(f"{s.base_url}/models", verify=NO_TLS).json()["data"]
    assert [m["id"] for m in data] == ["a", "b"]


def test_chat_path_without_v1_prefix(srv: FakeLLMServer) -> None:
    r = httpx.post(f"{srv.url}/chat/completions", json={"messages": USER}, verify=NO_TLS)
    assert r.json()["choices"][0]["message"]["content"] == "Hi there!"


def test_unknown_path_is_a_404_with_an_openai_error(client: httpx.Client) -> None:
    r = client.get("/does/not/exist")
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "invalid_request_error"
    r = client.get("/chat/completions")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"


# -- lifecycle ----------------------------------------------------------------------------


def test_start_and_stop_twice() -> None:
    srv = FakeLLMServer()
    with pytest.raises(RuntimeError):
        _ = srv.base_url
    assert srv.start() is srv
    assert srv.start() is srv  # already running: no-op
    url = srv.base_url
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    assert httpx.get(f"{url}/models", verify=NO_TLS).status_code == 200
    srv.stop()
    srv.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models", verify=NO_TLS)
    srv.start()
    try:
        assert httpx.get(f"{srv.base_url}/models", verify=NO_TLS).status_code == 200
    finally:
        srv.stop()


def test_stop_drops_open_and_pending_connections() -> None:
    srv = FakeLLMServer().start()
    srv.script(Fault.slow(30))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(
                f"{srv.base_url}/chat/completions",
                json={"messages": USER},
                timeout=30,
                verify=NO_TLS,
            )
        except httpx.TransportError as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    wait_until(lambda: srv.requests)
    srv.stop()
    t.join(5)
    assert not t.is_alive()
    assert len(errors) == 1


def test_port_in_use_raises_oserror() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            FakeLLMServer(port=taken.getsockname()[1]).start()


def test_command_line_serves_until_ctrl_c() -> None:
    root = str(Path(llmnb.testing.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "llmnb.testing", "--port", "0", "--response", "From the CLI"]
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
            r = httpx.post(
                f"{base_url}/chat/completions", json={"messages": USER}, timeout=5, verify=NO_TLS
            )
            assert r.json()["choices"][0]["message"]["content"] == "From the CLI"
        finally:
            proc.send_signal(signal.SIGINT if sys.platform != "win32" else signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
    if sys.platform != "win32":
        assert proc.returncode == 0
        assert "Traceback" not in err


def test_import_is_light_and_exports_the_public_api() -> None:
    heavy = "('httpx', 'httpx2', 'pandas')"
    code = f"import sys, llmnb.testing; print([m for m in {heavy} if m in sys.modules])"
    root = str(Path(llmnb.testing.__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert out.stdout.strip() == "[]"
    assert llmnb.testing.__all__ == [
        "ErrorInfo",
        "FakeLLMServer",
        "Fault",
        "Handler",
        "RecordedRequest",
        "count_tokens",
    ]
