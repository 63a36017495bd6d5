"""FakeLLMServer: a real HTTP server on loopback that answers like an LLM provider."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from llmnb.testing._answers import ChatAnswer, plan_reply
from llmnb.testing._anthropic_wire import AnthropicMessagesWire
from llmnb.testing._azure_wire import AZURE_PATH, AzureChatWire
from llmnb.testing._batch_wire import batch_routes
from llmnb.testing._bedrock_wire import BEDROCK_PATH, BedrockConverseWire
from llmnb.testing._embeddings_wire import EmbeddingsWire, gemini_models
from llmnb.testing._faults import ErrorInfo, Fault
from llmnb.testing._gemini_wire import GeminiWire
from llmnb.testing._http11 import (
    DISCONNECTED,
    BadRequest,
    Responder,
    WireRequest,
    read_request,
)
from llmnb.testing._openai_wire import OpenAIChatWire, openai_error
from llmnb.testing._responses_wire import ResponsesWire
from llmnb.testing._tools_wire import tool_call_fault
from llmnb.testing._vertex_wire import (
    VERTEX_ANTHROPIC_PATH,
    VERTEX_PATH,
    VertexAnthropicWire,
    VertexGeminiWire,
)
from llmnb.testing._wire import ChatCall, ChatWire, RecordedRequest, Reply

__all__ = ["FakeLLMServer", "Handler"]

Handler = Callable[[RecordedRequest], "Fault | None"]
_RouteFn = Callable[[Responder, RecordedRequest, "re.Match[str]"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handle: _RouteFn


class FakeLLMServer:
    """An LLM HTTP server on 127.0.0.1 with scripted faults, for tests.

    It speaks three wire formats, each on its own path: OpenAI chat completions
    (``base_url``), Anthropic Messages (``POST /v1/messages``; ``anthropic_base_url``)
    and Gemini (``POST /v1beta/models/{model}:generateContent`` and
    ``:streamGenerateContent?alt=sse``; ``gemini_base_url``). Faults, keyword answers
    and token counts work the same in all three.

    Example::

        from llmnb.testing import FakeLLMServer, Fault

        with FakeLLMServer(responses={"hello": "Hi there!"}) as srv:
            srv.script(Fault.rate_limit(retry_after=0.1), Fault.status(500))
            profile = {"type": "openai_compatible", "base_url": srv.base_url, "model": "m"}
            ...                               # 1st call: 429, 2nd: 500, then "Hi there!"
            assert srv.last_request.json["model"] == "m"

    Chat requests take the next scripted fault (``script``), else ask the handler
    (``set_handler``), else get a normal answer: the reply of the first ``responses``
    key found (case-insensitively) in the last user message, else ``"Echo: ..."`` when
    ``echo`` is set, else ``default_response``. Token counts are ``ceil(chars / 4)``;
    ``max_tokens`` cuts the reply (``finish_reason="length"``). ``chunk_size`` is the
    characters per stream chunk, ``latency`` a delay before every chat answer (faults
    included), ``report_cost`` adds OpenRouter's ``usage.cost``, ``sse_comments`` sends
    ``: OPENROUTER PROCESSING`` before the first chunk, ``response_headers`` are sent
    with every normal chat answer (e.g. ``anthropic-ratelimit-*``). Every request is
    recorded (``requests``) before it is answered.
    """

    def __init__(
        self,
        responses: Mapping[str, str] | None = None,
        *,
        default_response: str = "Hello from FakeLLMServer.",
        echo: bool = False,
        model: str = "fake-model",
        host: str = "127.0.0.1",
        port: int = 0,
        chunk_size: int = 4,
        report_cost: float | None = None,
        sse_comments: bool = False,
        latency: float = 0.0,
        models: Sequence[str] | None = None,
        response_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.responses = dict(responses or {})
        self.default_response = default_response
        self.echo = echo
        self.model = model
        self.host = host
        self.chunk_size = max(1, int(chunk_size))
        self.report_cost = report_cost
        self.sse_comments = sse_comments
        self.latency = float(latency)
        self.models = list(models) if models is not None else [model]
        self.response_headers = tuple((str(k), str(v)) for k, v in (response_headers or {}).items())
        self._requested_port = port
        self._port: int | None = None
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._script: collections.deque[Fault] = collections.deque()
        self._handler: Handler | None = None
        self._errors: list[BaseException] = []
        self._connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._start_error: BaseException | None = None
        # (method, path pattern) -> handler. Another wire format is one more line here.
        self._routes = [
            _Route(
                "POST", re.compile(r"(?:/v1)?/chat/completions/?"), self._chat(OpenAIChatWire())
            ),
            _Route("POST", re.compile(r"(?:/v1)?/messages/?"), self._chat(AnthropicMessagesWire())),
            _Route("POST", re.compile(r"(?:/v1)?/responses/?"), self._chat(ResponsesWire())),
            _Route(
                "POST",
                re.compile(
                    r"/v1(?:beta|alpha)?/models/(?P<model>[^/:]+)"
                    r":(?P<method>generateContent|streamGenerateContent)"
                ),
                self._chat(GeminiWire()),
            ),
            _Route("GET", re.compile(r"(?:/v1(?:beta|alpha)?)?/models/?"), self._list_models),
            _Route("POST", AZURE_PATH, self._chat(AzureChatWire())),
            _Route("POST", BEDROCK_PATH, self._chat(BedrockConverseWire())),
            _Route("POST", VERTEX_PATH, self._chat(VertexGeminiWire())),
            _Route("POST", VERTEX_ANTHROPIC_PATH, self._chat(VertexAnthropicWire())),
        ]
        self._routes += [_Route(m, p, h) for m, p, h in batch_routes(self)]  # batch APIs
        # Embeddings (OpenAI /embeddings, Gemini :batchEmbedContents): the same faults.
        self.embeddings = EmbeddingsWire(self._next_fault)
        self._routes += [
            _Route("POST", re.compile(r"(?:/v1)?/embeddings/?"), self.embeddings.openai),
            _Route(
                "POST",
                re.compile(r"/v1(?:beta|alpha)?/models/(?P<model>[^/:]+):batchEmbedContents"),
                self.embeddings.gemini,
            ),
        ]

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        """Start serving on a background thread; returns ``self``. No-op when running."""
        with self._lock:
            if self._thread is not None:
                return self
            ready = threading.Event()
            self._start_error = None
            thread = threading.Thread(
                target=self._run, args=(ready,), name="FakeLLMServer", daemon=True
            )
            self._thread = thread
        thread.start()
        ready.wait()
        if self._start_error is not None:
            thread.join()
            with self._lock:
                self._thread = None
            raise self._start_error
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections. Safe to call more than once."""
        with self._lock:
            loop, thread, stopping = self._loop, self._thread, self._stopping
            self._loop = self._thread = self._stopping = None
        if loop is not None and stopping is not None:
            # RuntimeError: the loop has already finished.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._port is not None and self._thread else "stopped"
        return f"<FakeLLMServer {where} model={self.model!r}>"

    # -- what tests look at ------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeLLMServer is not started: call start() or use `with`")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: what a profile's ``base_url`` is set to."""
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``http://127.0.0.1:PORT``: an ``anthropic`` profile's ``base_url``
        (the provider adds ``/v1/messages``, as for ``https://api.anthropic.com``)."""
        return self.url

    @property
    def gemini_base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1beta``: a ``gemini`` profile's ``base_url``."""
        return f"{self.url}/v1beta"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (a copy), oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    @property
    def pending_faults(self) -> list[Fault]:
        """Scripted faults not consumed yet."""
        with self._lock:
            return list(self._script)

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted so far (keep-alive reuses one)."""
        with self._lock:
            return self._connections

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised inside request handlers (each was answered with a 500)."""
        with self._lock:
            return list(self._errors)

    def script(self, *faults: Fault) -> None:
        """Append faults; each answers one incoming chat request, in order."""
        for f in faults:
            if not isinstance(f, Fault):
                raise TypeError(f"script() takes Fault objects, got {type(f).__name__}")
        with self._lock:
            self._script.extend(faults)

    def set_handler(self, handler: Handler | None) -> None:
        """``handler(request) -> Fault | None`` for chat requests the script leaves over."""
        with self._lock:
            self._handler = handler

    def reset(self) -> None:
        """Forget requests, errors, the connection count, the script and the handler."""
        with self._lock:
            self._requests.clear()
            self._errors.clear()
            self._script.clear()
            self._handler = None
            self._connections = 0

    # -- event loop thread -------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet_exception_handler)
        try:
            loop.run_until_complete(self._serve(loop, ready))
        finally:
            ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        try:
            server = await asyncio.start_server(
                self._on_connection,
                self.host,
                self._requested_port,
                limit=1024 * 1024,
                backlog=1024,
            )
        except OSError as exc:
            self._start_error = exc
            return
        stopping = asyncio.Event()
        with self._lock:
            self._port = server.sockets[0].getsockname()[1]
            self._loop, self._stopping = loop, stopping
        ready.set()
        try:
            await stopping.wait()
        finally:
            server.close()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        with self._lock:
            self._connections += 1
        try:
            while True:
                try:
                    request = await read_request(reader, writer)
                except BadRequest as exc:
                    error = ErrorInfo(exc.message, "invalid_request_error")
                    await Responder(writer, False).send_json(exc.status, openai_error(error))
                    break
                if request is None:
                    break
                responder = Responder(writer, request.keep_alive)
                await self._dispatch(request, responder)
                responder.finish()
                if not responder.keep_alive:
                    break
        except (*DISCONNECTED, asyncio.CancelledError):
            pass  # the client left, or the server is stopping: nothing to report
        except Exception as exc:  # a bug here must not print from the server thread
            with self._lock:
                self._errors.append(exc)
        finally:
            if task is not None:
                self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _dispatch(self, request: WireRequest, responder: Responder) -> None:
        recorded = RecordedRequest.build(
            request.method,
            request.path,
            request.headers,
            request.body,
            time.time(),
            request.query,
        )
        with self._lock:
            self._requests.append(recorded)
        try:
            allowed: list[str] = []
            for route in self._routes:
                match = route.pattern.fullmatch(request.path)
                if match is None:
                    continue
                if route.method == request.method:
                    await route.handle(responder, recorded, match)
                    return
                allowed.append(route.method)
            if allowed:
                message = f"Method {request.method} not allowed on {request.path}."
                await responder.send_json(
                    405,
                    openai_error(ErrorInfo(message, "invalid_request_error")),
                    [("Allow", ", ".join(allowed))],
                )
            else:
                message = f"Unknown request URL: {request.method} {request.path}."
                error = ErrorInfo(message, "invalid_request_error", "unknown_url")
                await responder.send_json(404, openai_error(error))
        except DISCONNECTED:
            raise
        except Exception as exc:
            with self._lock:
                self._errors.append(exc)
            if responder.started:
                responder.close()
            else:
                message = f"FakeLLMServer handler failed: {type(exc).__name__}: {exc}"
                await responder.send_json(500, openai_error(ErrorInfo(message, "server_error")))

    # -- routes ------------------------------------------------------------------------

    async def _list_models(
        self, responder: Responder, request: RecordedRequest, match: re.Match[str]
    ) -> None:
        if request.path.startswith(("/v1beta/", "/v1alpha/")):  # Gemini's listing
            await responder.send_json(200, gemini_models(self.models))
            return
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "llmnb"} for m in self.models
        ]
        await responder.send_json(200, {"object": "list", "data": data})

    def _chat(self, wire: ChatWire) -> _RouteFn:
        async def handle(
            responder: Responder, request: RecordedRequest, match: re.Match[str]
        ) -> None:
            fault = self._next_fault(request)
            call = wire.parse(request, match, self.model)
            answer = ChatAnswer(
                wire, call, responder, self.chunk_size, self.sse_comments, self.response_headers
            )
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if fault is not None and fault.kind == "tool_call":
                fault = tool_call_fault(wire.name, call, fault)
            if fault is not None and fault.kind not in ("slow", "reply"):
                await answer.play(fault, self._plan(call, None))
                return
            if fault is not None and fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if call.problem is not None:
                error = ErrorInfo(call.problem, "invalid_request_error")
                await responder.send_json(400, wire.error_body(400, error))
                return
            await answer.send(self._plan(call, fault))

        return handle

    def _next_fault(self, request: RecordedRequest) -> Fault | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
            handler = self._handler
        if handler is None:
            return None
        fault = handler(request)
        if fault is not None and not isinstance(fault, Fault):
            raise TypeError(f"the handler must return a Fault or None, got {fault!r}")
        return fault

    def _choose(self, last_user: str) -> str:
        lowered = last_user.lower()
        for key, value in self.responses.items():
            if key.lower() in lowered:
                return value
        return f"Echo: {last_user}" if self.echo else self.default_response

    def _plan(self, call: ChatCall, fault: Fault | None) -> Reply:
        return plan_reply(call, fault, self._choose(call.last_user), self.report_cost)


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Client disconnects are routine for a fault-injecting server: no tracebacks."""
    if isinstance(context.get("exception"), (*DISCONNECTED, asyncio.CancelledError)):
        return
    loop.default_exception_handler(context)
