"""Writing one chat answer — a normal reply or a scripted fault — in any wire format.

Nothing here knows a wire format: bodies, stream events and error envelopes come from
the request's :class:`~llmnb.testing._wire.ChatWire`, so every fault works for every
format the server speaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmnb.testing._faults import Fault
from llmnb.testing._http11 import Responder, json_bytes, reason_phrase
from llmnb.testing._wire import ChatCall, ChatWire, Reply, count_tokens

__all__ = ["ChatAnswer", "plan_reply"]

_HTML = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_BROKEN_JSON = b'{"id": "chatcmpl-broken", "choices": [{"mess'


def plan_reply(
    call: ChatCall, fault: Fault | None, content: str, report_cost: float | None
) -> Reply:
    """The reply to ``call``: ``content`` (or a ``Fault.reply``'s), cut to ``max_tokens``."""
    finish = "stop"
    if fault is not None and fault.kind == "reply":
        content, finish = fault.content or "", fault.finish_reason
    if call.max_tokens is not None and call.max_tokens < count_tokens(content):
        content, finish = content[: max(call.max_tokens, 0) * 4], "length"
    cost = report_cost
    if fault is not None and fault.cost is not None:
        cost = fault.cost
    return Reply(
        content,
        finish,
        count_tokens(call.prompt_text),
        count_tokens(content),
        cost,
        fault.usage if fault is not None else None,
        (fault.reasoning or "") if fault is not None and fault.kind == "reply" else "",
    )


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    """Sends the answer to one chat request through ``wire`` on ``responder``."""

    wire: ChatWire
    call: ChatCall
    responder: Responder
    chunk_size: int = 4
    sse_comments: bool = False
    # Sent with every normal answer (e.g. anthropic-ratelimit-* headers).
    headers: tuple[tuple[str, str], ...] = ()

    async def send(self, reply: Reply) -> None:
        """A normal answer: one JSON body, or a complete event stream."""
        if not self.call.stream:
            body = self.wire.completion(self.call, reply)
            await self.responder.send_json(200, body, self.headers)
            return
        await self._stream(self._events(reply), self.headers)
        await self.responder.end_chunked()

    def _events(self, reply: Reply) -> list[bytes]:
        return self.wire.stream_events(self.call, reply, self.chunk_size)

    async def _stream(
        self, events: Sequence[bytes], headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        kind = getattr(self.wire, "stream_type", "text/event-stream")  # Bedrock: binary
        await self.responder.start_chunked(200, kind, headers)
        if self.sse_comments:
            await self.responder.write_chunk(b": OPENROUTER PROCESSING\n\n")
        for event in events:
            await self.responder.write_chunk(event)

    async def play(self, fault: Fault, normal: Reply) -> None:
        """Answer with ``fault``; ``normal`` is what a normal answer would have been."""
        out, wire, stream, status = self.responder, self.wire, self.call.stream, fault.http_status
        kind = fault.kind
        if kind == "error":
            assert fault.error is not None
            if fault.body is None:
                await out.send_json(status, wire.error_body(status, fault.error), fault.headers)
            elif isinstance(fault.body, str):
                text_type = "text/plain; charset=utf-8"
                await out.send(status, fault.body.encode(), text_type, fault.headers)
            else:
                await out.send_json(status, fault.body, fault.headers)
        elif kind == "json":
            await out.send_json(status, fault.body, fault.headers)
        elif kind == "sse":
            await self._stream(fault.body)
            await out.end_chunked()
        elif kind == "reset":
            out.reset()
        elif kind == "html":
            page = _HTML.format(status=status, phrase=reason_phrase(status))
            await out.send(status, page.encode(), "text/html; charset=utf-8")
        elif kind == "empty_body":
            await out.send(status, b"", "text/event-stream" if stream else "application/json")
        elif kind == "malformed_json":
            if stream:
                await self._stream([wire.malformed_event(), self._events(normal)[-1]])
                await out.end_chunked()
            else:
                await out.send(200, _BROKEN_JSON)
        elif kind == "cut_stream":
            if stream:
                events = self._events(normal)
                await self._stream(events[: min(fault.after_chunks, len(events) - 1)])
            else:
                body = json_bytes(wire.completion(self.call, normal))
                await out.send(200, body[: len(body) // 2], content_length=len(body))
            out.close()
        elif kind == "stream_error":
            assert fault.error is not None
            if stream:
                events = self._events(normal)
                cut = events[: min(fault.after_chunks, len(events) - 1)]
                await self._stream([*cut, wire.stream_error_event(fault.error)])
                await out.end_chunked()
            else:
                await out.send_json(200, wire.error_body(200, fault.error))
        else:  # "slow" and "reply" are normal answers, sent with send()
            raise ValueError(f"fault {fault!r} is not played, it is answered with send()")
