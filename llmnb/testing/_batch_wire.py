"""The fake server's batch APIs: OpenAI Files + Batches, Anthropic Message Batches.

Each line of a batch is answered as the chat endpoint would answer it — the same
keyword responses, echo and token counts, and the same script and handler, so a test
injects a per-line failure with ``srv.script(Fault.status(500))`` or ``set_handler``
(the handler sees each line as a ``POST /v1/chat/completions`` or ``/v1/messages``
request). Answers are computed when the batch is created and revealed as it is polled:
every ``GET`` of the batch moves it one step on, and it finishes at the
``polls_to_finish``-th poll (default 3), with ``request_counts`` growing on the way.
Results come back in reverse input order: the real APIs promise no order, so clients
must match them by ``custom_id``.

OpenAI (``base_url`` = ``…/v1``)::

    POST /v1/files (multipart: purpose=batch, file=<jsonl>)     → {"id": "file-…"}
    POST /v1/batches {input_file_id, endpoint, completion_window} → batch (validating)
    GET  /v1/batches/{id}    → in_progress … completed (output_file_id, error_file_id)
    GET  /v1/files/{id}/content                                  → the JSONL

Anthropic (``anthropic_base_url``)::

    POST /v1/messages/batches {"requests": [{custom_id, params}]} → batch (in_progress)
    GET  /v1/messages/batches/{id}          → … ended, with results_url
    GET  /v1/messages/batches/{id}/results  → JSONL of {custom_id, result}
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from llmnb.testing._anthropic_wire import AnthropicMessagesWire, anthropic_error
from llmnb.testing._faults import ErrorInfo
from llmnb.testing._http11 import Responder
from llmnb.testing._openai_wire import OpenAIChatWire, openai_error
from llmnb.testing._wire import ChatWire, RecordedRequest

if TYPE_CHECKING:
    from llmnb.testing._faults import Fault
    from llmnb.testing._wire import ChatCall, Reply


class FakeLLMServer(Protocol):
    """What the batch endpoints use of :class:`llmnb.testing.FakeLLMServer` (declared here
    so that this module does not import the server, which imports it)."""

    model: str

    @property
    def url(self) -> str: ...

    def _next_fault(self, request: RecordedRequest) -> Fault | None: ...

    def _plan(self, call: ChatCall, fault: Fault | None) -> Reply: ...


__all__ = ["BatchAPIs", "batch_routes"]

RouteFn = Callable[[Responder, RecordedRequest, "re.Match[str]"], Awaitable[None]]
_ids = itertools.count(1)


@dataclass
class _Batch:
    id: str
    kind: str  # "openai" / "anthropic"
    created: int
    lines: list[dict[str, Any]]  # results, in input order
    failed: set[int]  # indexes of failed lines
    polls: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


class BatchAPIs:
    """The batch endpoints of one :class:`FakeLLMServer` (``srv.batch_apis``)."""

    def __init__(self, server: FakeLLMServer, polls_to_finish: int = 3) -> None:
        self.server = server
        self.polls_to_finish = max(1, int(polls_to_finish))
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, _Batch] = {}

    def routes(self) -> list[tuple[str, re.Pattern[str], RouteFn]]:
        """(method, path pattern, handler) for the server's route table."""
        return [
            ("POST", re.compile(r"(?:/v1)?/files/?"), self._upload),
            ("GET", re.compile(r"(?:/v1)?/files/(?P<id>[^/]+)/content"), self._file_content),
            ("POST", re.compile(r"(?:/v1)?/batches/?"), self._openai_create),
            ("GET", re.compile(r"(?:/v1)?/batches/(?P<id>[^/]+)"), self._openai_get),
            ("POST", re.compile(r"/v1/messages/batches/?"), self._anthropic_create),
            ("GET", re.compile(r"/v1/messages/batches/(?P<id>[^/]+)"), self._anthropic_get),
            (
                "GET",
                re.compile(r"/v1/messages/batches/(?P<id>[^/]+)/results"),
                self._anthropic_results,
            ),
        ]

    # -- answering one line -----------------------------------------------------------

    def _answer(self, wire: ChatWire, path: str, body: Any) -> tuple[int, Any]:
        """(HTTP status, JSON body) the chat endpoint would give this request."""
        srv = self.server
        raw = json.dumps(body).encode()
        request = RecordedRequest.build("POST", path, {}, raw, time.time())
        fault = srv._next_fault(request)
        call = wire.parse(request, _NO_MATCH, srv.model)
        if fault is not None and fault.kind not in ("slow", "reply"):
            status = fault.http_status if fault.kind == "error" else 500
            error = fault.error or ErrorInfo(f"fake batch line failed ({fault!r})", "server_error")
            return status, wire.error_body(status, error)
        if call.problem is not None:
            return 400, wire.error_body(400, ErrorInfo(call.problem, "invalid_request_error"))
        return 200, wire.completion(call, srv._plan(call, fault))

    # -- OpenAI ---------------------------------------------------------------------------

    async def _upload(self, r: Responder, req: RecordedRequest, m: re.Match[str]) -> None:
        fields = _multipart(req)
        data = fields.get("file")
        if data is None or fields.get("purpose") != b"batch":
            error = ErrorInfo("upload needs purpose=batch and a file part", "invalid_request_error")
            await r.send_json(400, openai_error(error))
            return
        file_id = f"file-fake{next(_ids):06d}"
        self.files[file_id] = data
        await r.send_json(200, _file_object(file_id, len(data), "batch"))

    async def _file_content(self, r: Responder, req: RecordedRequest, m: re.Match[str]) -> None:
        data = self.files.get(m["id"])
        if data is None:
            error = ErrorInfo(f"No such File object: {m['id']}", "invalid_request_error")
            await r.send_json(404, openai_error(error))
            return
        await r.send(200, data, "application/octet-stream")

    async def _openai_create(self, r: Responder, req: RecordedRequest, m: re.Match[str]) -> None:
        body = req.json if isinstance(req.json, dict) else {}
        data = self.files.get(str(body.get("input_file_id")))
        endpoint = body.get("endpoint")
        if data is None or endpoint != "/v1/chat/completions":
            message = (
                "input_file_id must name an uploaded file and endpoint be /v1/chat/completions"
            )
            await r.send_json(400, openai_error(ErrorInfo(message, "invalid_request_error")))
            return
        wire = OpenAIChatWire()
        batch = _Batch(f"batch_fake{next(_ids):06d}", "openai", int(time.time()), [], set())
        for n, text in enumerate(data.decode().splitlines()):
            if not text.strip():
                continue
            line = json.loads(text)
            status, answer = self._answer(wire, "/v1/chat/completions", line.get("body"))
            if status != 200:
                batch.failed.add(len(batch.lines))
            batch.lines.append(
                {
                    "id": f"batch_req_{n}",
                    "custom_id": line.get("custom_id"),
                    "response": {"status_code": status, "request_id": f"req_{n}", "body": answer},
                    "error": None,
                }
            )
        batch.meta = {"input_file_id": body["input_file_id"], "endpoint": endpoint}
        self.batches[batch.id] = batch
        await r.send_json(200, self._openai_object(batch))

    async def _openai_get(self, r: Responder, req: RecordedRequest, m: re.Match[str]) -> None:
        batch = self.batches.get(m["id"])
        if batch is None or batch.kind != "openai":
            error = ErrorInfo(f"No such Batch: {m['id']}", "invalid_request_error")
            await r.send_json(404, openai_error(error))
            return
        batch.polls += 1
        if batch.polls >= self.polls_to_finish and "output_file_id" not in batch.meta:
            # Reversed: real batch APIs do not keep the input order (match on custom_id).
            ok = [ln for i, ln in enumerate(batch.lines) if i not in batch.failed][::-1]
            bad = [ln for i, ln in enumerate(batch.lines) if i in batch.failed][::-1]
            batch.meta["output_file_id"] = self._store_jsonl(ok)
            batch.meta["error_file_id"] = self._store_jsonl(bad) if bad else None
        await r.send_json(200, self._openai_object(batch))

    def _store_jsonl(self, lines: list[dict[str, Any]]) -> str:
        file_id = f"file-fake{next(_ids):06d}"
        self.files[file_id] = "".join(json.dumps(ln) + "\n" for ln in lines).encode()
        return file_id

    def _openai_object(self, b: _Batch) -> dict[str, Any]:
        done = self._progress(b)
        finished = "output_file_id" in b.meta
        status = "completed" if finished else ("validating" if b.polls == 0 else "in_progress")
        failed = len([i for i in b.failed if i < done])
        return {
            "id": b.id,
            "object": "batch",
            "endpoint": b.meta.get("endpoint", "/v1/chat/completions"),
            "errors": None,
            "input_file_id": b.meta.get("input_file_id"),
            "completion_window": "24h",
            "status": status,
            "output_file_id": b.meta.get("output_file_id"),
            "error_file_id": b.meta.get("error_file_id"),
            "created_at": b.created,
            "completed_at": int(time.time()) if finished else None,
            "request_counts": {"total": len(b.lines), "completed": done - failed, "failed": failed},
            "metadata": None,
        }

    def _progress(self, b: _Batch) -> int:
        """Lines revealed as done after ``b.polls`` polls."""
        if b.polls >= self.polls_to_finish:
            return len(b.lines)
        return math.floor(len(b.lines) * b.polls / self.polls_to_finish)

    # -- Anthropic ------------------------------------------------------------------------

    async def _anthropic_create(self, r: Responder, req: RecordedRequest, m: re.Match[str]) -> None:
        body = req.json if isinstance(req.json, dict) else {}
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            error = ErrorInfo("requests: a non-empty list is required", "invalid_request_error")
            await r.send_json(400, anthropic_error(400, error))
            return
        wire = AnthropicMessagesWire()
        batch = _Batch(f"msgbatch_fake{next(_ids):06d}", "anthropic", int(time.time()), [], set())
        for item in requests:
            status, answer = self._answer(wire, "/v1/messages", item.get("params"))
            if status == 200:
                result = {"type": "succeeded", "message": answer}
            else:
                batch.failed.add(len(batch.lines))
                result = {"type": "errored", "error": answer}
            batch.lines.append({"custom_id": item.get("custom_id"), "result": result})
        self.batches[batch.id] = batch
        await r.send_json(200, self._anthropic_object(batch))

    async def _anthropic_get(self, r: Responder, req: RecordedRequest, m: re.Match[str]) -> None:
        batch = self.batches.get(m["id"])
        if batch is None or batch.kind != "anthropic":
            await r.send_json(404, anthropic_error(404, ErrorInfo("batch not found", "not_found")))
            return
        batch.polls += 1
        await r.send_json(200, self._anthropic_object(batch))

    async def _anthropic_results(
        self, r: Responder, req: RecordedRequest, m: re.Match[str]
    ) -> None:
        batch = self.batches.get(m["id"])
        if batch is None or batch.polls < self.polls_to_finish:
            error = ErrorInfo("results are not available until the batch has ended", "not_found")
            await r.send_json(404, anthropic_error(404, error))
            return
        data = "".join(json.dumps(ln) + "\n" for ln in reversed(batch.lines)).encode()
        await r.send(200, data, "application/binary")

    def _anthropic_object(self, b: _Batch) -> dict[str, Any]:
        done = self._progress(b)
        ended = b.polls >= self.polls_to_finish
        errored = len([i for i in b.failed if i < done])
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(b.created))
        return {
            "id": b.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": len(b.lines) - done,
                "succeeded": done - errored,
                "errored": errored,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": stamp,
            "ended_at": stamp if ended else None,
            "expires_at": stamp,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.server.url}/v1/messages/batches/{b.id}/results"
            if ended
            else None,
        }


def batch_routes(server: FakeLLMServer) -> list[tuple[str, re.Pattern[str], RouteFn]]:
    """The batch endpoints for ``server``; also reachable as ``server.batch_apis``."""
    apis = BatchAPIs(server)
    server.batch_apis = apis  # type: ignore[attr-defined]
    return apis.routes()


def _empty_match() -> re.Match[str]:
    found = re.compile(r"").fullmatch("")
    assert found is not None
    return found


_NO_MATCH = _empty_match()  # the chat wires read nothing from a batch line's path


def _file_object(file_id: str, size: int, purpose: str) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": "batch.jsonl",
        "purpose": purpose,
    }


def _multipart(req: RecordedRequest) -> dict[str, bytes]:
    """The parts of a ``multipart/form-data`` body, by field name."""
    ctype = req.headers.get("content-type", "")
    head = f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + req.body)
    out: dict[str, bytes] = {}
    if not message.is_multipart():
        return out
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if name and isinstance(payload, bytes):
            out[str(name)] = payload
    return out
