"""The provider seam: turn a :class:`Request` into an answer.

A provider knows its wire protocol and nothing else: no retries, pools or usage (the
client does those). ``HTTPProvider`` holds the I/O for every HTTP protocol — one HTTP
client per provider object, sync and async, on httpx2 (or on httpx when a test sets an
httpx transport; see :func:`llmnb._http.http_library`) — so a protocol module only writes
``build`` (request → JSON), ``parse`` (JSON → Completion) and ``parse_event``
(SSE event → Chunk).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import llmnb.providers._deadline as _deadline
from llmnb import errors
from llmnb._http import (
    USER_AGENT,
    SSEDecoder,
    SSEEvent,
    body_excerpt,
    detach,
    http_library,
    map_http_error,
    scrub,
)
from llmnb.types import Chunk, Completion, Request, Secret

if TYPE_CHECKING:
    from types import ModuleType

    import httpx

__all__ = ["EMBEDDING", "HTTPCall", "HTTPProvider", "Provider", "key_fingerprint"]

#: The ``Request.extra`` key that makes a request an embedding request (its options).
EMBEDDING = "llmnb_embedding"

DEFAULT_TIMEOUT = 60.0
_BASE_HEADERS = {"user-agent": USER_AGENT, "content-type": "application/json"}
# One immutable Timeout per (library, seconds): not one per call.
_timeouts: dict[tuple[str, float], httpx.Timeout] = {}


_ssl_context: Any = None


def _verify() -> Any:
    """One SSL context for every client: building one costs ~30 ms, sharing it is safe."""
    global _ssl_context
    if _ssl_context is None:
        import ssl

        _ssl_context = ssl.create_default_context()
    return _ssl_context


def _ends(timeout: httpx.Timeout) -> float:
    """When an attempt with this ``timeout`` must be over (``time.monotonic()``)."""
    return time.monotonic() + (timeout.read or DEFAULT_TIMEOUT)


def key_fingerprint(key: str | Secret | None) -> str | None:
    """A short, irreversible id for a key, for status and usage rows."""
    if not key:
        return None
    value = key.reveal() if isinstance(key, Secret) else key
    return "k-" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def wire_headers(*layers: Mapping[str, str | Secret]) -> dict[str, str]:
    """Header layers merged (later ones win), secrets revealed: what goes on the wire."""
    out: dict[str, str] = {}
    for layer in layers:
        for name, value in layer.items():
            out[name] = value.reveal() if isinstance(value, Secret) else value
    return out


class Provider:
    """Base class of every provider. Subclass it and ``register_provider`` the class.

    Declarative attributes tell the client what the provider needs; the four I/O
    methods do the work. ``profile`` is the profile's settings (a dict).
    """

    type_name: ClassVar[str] = "provider"
    needs_key: ClassVar[bool] = False
    key_env_var: ClassVar[str | None] = None
    can_stream: ClassVar[bool] = True
    # How ``Request.response_schema`` reaches the model: "json_schema" (the wire's own
    # schema option), "tool" (a forced tool call) or "prompt" (llmnb.client.structured adds
    # JSON instructions to the prompt and extracts fenced JSON from the answer).
    # In the first two modes the provider returns the JSON text as ``Completion.content``.
    structured_mode: ClassVar[str] = "prompt"
    #: Whether record/replay cassettes take this provider's answers (offline ones need none).
    replayable: ClassVar[bool] = True

    def __init__(self, profile_name: str, profile: Mapping[str, Any], model: str) -> None:
        self.profile_name = profile_name
        self.profile = profile
        self.model = model
        self.last_key_id: str | None = None

    @property
    def base_url(self) -> str | None:
        return None

    def complete(self, request: Request) -> Completion:
        raise NotImplementedError(f"{type(self).__name__} must implement complete()")

    async def acomplete(self, request: Request) -> Completion:
        # A subclass that wrote only complete() is usable from async code (and df.llm):
        # its blocking call runs in a worker thread, keeping the event loop free.
        if type(self).complete is not Provider.complete:
            return await asyncio.to_thread(self.complete, request)
        raise NotImplementedError(f"{type(self).__name__} must implement acomplete()")

    def stream(self, request: Request) -> Iterator[Chunk]:
        yield Chunk(content=self.complete(request).content, finish_reason="stop")

    async def astream(self, request: Request) -> AsyncIterator[Chunk]:
        completion = await self.acomplete(request)
        yield Chunk(content=completion.content, finish_reason="stop")

    def close(self) -> None:
        """Release connections; the provider stays usable and reconnects on demand."""

    async def aclose(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} profile={self.profile_name!r} model={self.model!r}>"

    # --- embeddings (llmnb.client.embeddings) ------------------------------------------
    #: Whether ``embed`` works, and the most texts one embedding request may carry.
    supports_embeddings: ClassVar[bool] = False
    embed_batch_limit: ClassVar[int] = 2048

    def embed(self, request: Request) -> Completion:
        """Embed each message of ``request`` (one text each; options in
        ``request.extra[EMBEDDING]``): ``Completion.parsed`` is the list of vectors."""
        raise errors.InvalidRequestError(
            f"profile {self.profile_name!r} (type {self.type_name}) cannot embed texts: "
            "use a profile of type openai, openai_compatible, openrouter, mistral, ollama, "
            "vllm, gemini or mock for client.embed().",
            provider=self.type_name,
            profile=self.profile_name,
            model=self.model,
        )

    async def aembed(self, request: Request) -> Completion:
        if type(self).embed is not Provider.embed:
            return await asyncio.to_thread(self.embed, request)
        return self.embed(request)


@dataclass(slots=True)
class HTTPCall:
    """What a protocol module wants sent."""

    url: str
    json: Any
    # Auth headers hold a Secret, revealed only by wire_headers() as the request leaves.
    headers: dict[str, str | Secret] = field(default_factory=dict)
    method: str = "POST"
    secrets: tuple[str | Secret, ...] = ()
    # The exact body bytes, sent instead of ``json`` (a signed request: SigV4).
    content: bytes | None = None

    def __repr__(self) -> str:
        # Shown as a local in verbose tracebacks: the URL may hold a password, the
        # body a key the user pasted into a prompt.
        return scrub(
            f"HTTPCall(method={self.method!r}, url={self.url!r}, headers={self.headers!r}, "
            f"json={self.json!r})"
        )


class HTTPProvider(Provider):
    """Shared sync/async HTTP I/O; subclasses implement the wire format only."""

    default_base_url: ClassVar[str | None] = None
    # A stream of binary frames (AWS event-stream) instead of SSE text: the body's bytes
    # go to ``stream_decoder()``, whose events reach ``parse_event`` as SSE events do.
    binary_stream: ClassVar[bool] = False

    def __init__(self, profile_name: str, profile: Mapping[str, Any], model: str) -> None:
        super().__init__(profile_name, profile, model)
        # Clients and the library (httpx2 or httpx) each was built with; its exceptions
        # and Timeout are the ones to use with it.
        self._client: httpx.Client | None = None
        self._lib: ModuleType | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._alib: ModuleType | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        # The network seam (as in httpx): tests may set an httpx2 or httpx MockTransport.
        self.transport: httpx.BaseTransport | None = None
        self.async_transport: httpx.AsyncBaseTransport | None = None

    # --- to implement -------------------------------------------------------------
    def build(self, request: Request) -> HTTPCall:
        raise NotImplementedError(f"{type(self).__name__} must implement build()")

    def parse(self, data: Any, request: Request) -> Completion:
        raise NotImplementedError(f"{type(self).__name__} must implement parse()")

    def parse_event(self, event: SSEEvent, request: Request) -> Chunk | None:
        """One SSE event → a chunk; ``None`` to skip it; raise ``StopIteration`` at the end."""
        raise NotImplementedError(f"{type(self).__name__} must implement parse_event()")

    def stream_decoder(self) -> Any:
        """A fresh decoder for one stream: ``feed(text_or_bytes)`` and ``flush()`` give
        :class:`SSEEvent` lists."""
        return SSEDecoder()

    # --- shared core --------------------------------------------------------------
    def key_for(self, request: Request) -> Secret | None:
        """The key for this attempt: the pool's choice, else the profile's, read now.

        Read at call time so that ``%env`` and ``.env`` edits apply to live clients.
        A :class:`~llmnb.types.Secret`; ConfigError when no HTTP header can carry it.
        """
        if request.api_key:
            return self._sendable(Secret(request.api_key))
        from llmnb import config

        keys = config.resolve_secrets(self.profile_name, self.profile, self.key_env_var)
        if keys:
            return keys[0]
        if not (self.needs_key or self.profile.get("api_key_env")):
            return None
        return Secret(config.require_api_key(self.profile_name, self.profile, self.key_env_var))

    def _sendable(self, key: Secret) -> Secret:
        """A key handed over by a key pool, checked as settings keys are when loaded."""
        problem = key.problem()
        if problem is not None:
            raise errors.ConfigError(
                f"A key of the key pool of profile {self.profile_name!r} "
                f"({key_fingerprint(key)}) has {problem}: a key is printable ASCII, so it "
                "cannot be sent. Fix that key where the pool reads it from."
            )
        return key

    @property
    def base_url(self) -> str | None:
        url = self.profile.get("base_url") or self.default_base_url
        return str(url).rstrip("/") if url else None

    def _timeout(self, request: Request, lib: ModuleType) -> httpx.Timeout:
        t = float(request.timeout or self.profile.get("timeout") or DEFAULT_TIMEOUT)
        found = _timeouts.get((lib.__name__, t))
        if found is None:
            found = _timeouts[lib.__name__, t] = lib.Timeout(t, connect=min(t, 10.0))
        return found

    def _headers(self, call: HTTPCall) -> dict[str, str]:
        if not self.profile.get("headers"):  # the common case: no per-profile headers
            return wire_headers(_BASE_HEADERS, call.headers)
        from llmnb import config

        extra = config.resolve_headers(self.profile_name, self.profile)
        return wire_headers(_BASE_HEADERS, extra, call.headers)

    def _error(
        self, status: int, headers: Mapping[str, str], body: bytes, call: HTTPCall
    ) -> errors.APIError:
        err = map_http_error(
            status,
            headers,
            body,
            provider=self.type_name,
            profile=self.profile_name,
            model=self.model,
            key_env=self.profile.get("api_key_env") or self.key_env_var,
            base_url=self.base_url,
            secrets=call.secrets,
        )
        # Response headers carry the rate-limit state the limiter and key pool read.
        err.headers = headers
        return err

    def _decode_json(self, status: int, body: bytes, call: HTTPCall) -> Any:
        if not body.strip():
            raise errors.ResponseFormatError(
                f"the server answered HTTP {status} with an empty body; "
                f"check base_url {self.base_url!r} points at an OpenAI-style API.",
                status=status,
                provider=self.type_name,
                profile=self.profile_name,
                model=self.model,
            )
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            detach(exc, call.secrets)
            excerpt = body_excerpt(body, call.secrets)
            kind = "an HTML page" if excerpt.lstrip().startswith("<") else "a body that is not JSON"
            raise errors.ResponseFormatError(
                f"the server answered HTTP {status} with {kind} ({excerpt[:80]!r}); "
                f"check base_url {self.base_url!r}.",
                status=status,
                body=excerpt,
                provider=self.type_name,
                profile=self.profile_name,
                model=self.model,
            ) from exc

    def _parse_checked(
        self, data: Any, request: Request, status: int, call: HTTPCall, embedding: bool = False
    ) -> Completion:
        try:
            if embedding:
                return self.parse_embedding(data, request)
            return self.parse(data, request)
        except errors.LLMError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            detach(exc, call.secrets)
            raise errors.ResponseFormatError(
                f"the answer does not have the expected shape ({type(exc).__name__}: {exc}); "
                "the server may not speak this provider's protocol.",
                status=status,
                body=body_excerpt(json.dumps(data), call.secrets),
                provider=self.type_name,
                profile=self.profile_name,
                model=self.model,
            ) from exc

    def secrets_for(self, request: Request) -> tuple[Secret, ...]:
        """The key this request is sent with: what to scrub from anything shown.

        For parsers, which see an answer after the call was built (servers quote keys
        back in error envelopes and stream events too).
        """
        try:
            key = self.key_for(request)
        except errors.LLMError:
            return ()
        return (key,) if key else ()

    def _answer_call(self, request: Request) -> HTTPCall:
        """An HTTPCall carrying this request's key, so error text quoting it is scrubbed."""
        return HTTPCall(url="", json=None, secrets=self.secrets_for(request))

    def _load_event(self, event: SSEEvent, request: Request) -> Any:
        """An event's JSON; unreadable data is reported without the key it may quote."""
        try:
            return json.loads(event.data)
        except ValueError as exc:
            detach(exc)
            excerpt = body_excerpt(event.data, self.secrets_for(request))
            raise errors.ResponseFormatError(
                f"a stream event could not be read ({type(exc).__name__}: {exc}): "
                f"{excerpt[:120]!r}",
                provider=self.type_name,
                profile=self.profile_name,
                model=self.model,
            ) from exc

    def _event_checked(self, event: SSEEvent, request: Request) -> Chunk | None:
        try:
            return self.parse_event(event, request)
        except (errors.LLMError, StopIteration):
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            secrets = self.secrets_for(request)
            detach(exc, secrets)
            raise errors.ResponseFormatError(
                scrub(f"a stream event could not be read ({type(exc).__name__}: {exc}): ", secrets)
                + f"{body_excerpt(event.data, secrets)[:120]!r}",
                provider=self.type_name,
                profile=self.profile_name,
                model=self.model,
            ) from exc

    def _transport_error(
        self, exc: Exception, timeout: httpx.Timeout, httpx: ModuleType
    ) -> errors.APIError:
        kw: dict[str, Any] = {
            "provider": self.type_name,
            "profile": self.profile_name,
            "model": self.model,
        }
        # The error is raised from ``exc``: strip it of the request (headers and all),
        # its traceback and inner exceptions, and scrub its text.
        detach(exc)
        where = scrub(str(self.base_url))
        if isinstance(exc, httpx.TimeoutException):
            return errors.LLMTimeoutError(
                f"no answer within {timeout.read}s from {where}; raise `timeout` "
                "in the profile or the call if the model is slow.",
                **kw,
            )
        if isinstance(exc, httpx.ConnectError):
            return errors.NetworkError(
                f"cannot connect to {where} ({exc}); check base_url and the network.",
                **kw,
            )
        return errors.NetworkError(
            f"the connection to {where} failed ({type(exc).__name__}: {exc}).", **kw
        )

    # --- sync I/O -----------------------------------------------------------------
    def _sync(self) -> tuple[httpx.Client, ModuleType]:
        if self._client is None or self._lib is None:
            lib = http_library(self.transport)
            transport = self.transport
            if transport is None:  # ours: with the attempt's total deadline on its sockets
                transport = lib.HTTPTransport(verify=_verify())
                _deadline.install(transport, lib, is_async=False)
            self._client = lib.Client(follow_redirects=False, transport=transport, verify=_verify())
            self._lib = lib
        return self._client, self._lib

    def complete(self, request: Request) -> Completion:
        return self._exchange(self.build(request), request, False)

    def _exchange(self, call: HTTPCall, request: Request, embedding: bool) -> Completion:
        """One request and its parsed answer (a chat completion, or an embedding)."""
        http, lib = self._sync()
        timeout = self._timeout(request, lib)
        try:
            with _deadline.deadline(_ends(timeout)):
                r = http.request(
                    call.method,
                    call.url,
                    json=call.json if call.content is None else None,
                    content=call.content,
                    headers=self._headers(call),
                    timeout=timeout,
                )
                body = r.content
        except lib.HTTPError as exc:
            raise self._transport_error(exc, timeout, lib) from exc
        if r.status_code >= 400:  # r.content, not body: a verbose traceback shows `body`
            raise self._error(r.status_code, r.headers, r.content, call)
        return self._answer(r.status_code, r.headers, body, call, request, embedding)

    def _answer(
        self,
        status: int,
        headers: Any,
        body: bytes,
        call: HTTPCall,
        request: Request,
        embedding: bool,
    ) -> Completion:
        """A successful exchange's body parsed; its headers kept (rate-limit state)."""
        data = self._decode_json(status, body, call)
        completion = self._parse_checked(data, request, status, call, embedding)
        completion.headers = headers
        return completion

    # A stream's deadline: ``timeout`` bounds the whole wait for the first chunk, then
    # each wait between reads (a long answer that keeps coming is not cut).
    def stream(self, request: Request) -> Iterator[Chunk]:
        call = self.build(request)
        http, lib = self._sync()
        timeout = self._timeout(request, lib)
        at: float | None = _ends(timeout)
        done = False
        try:
            req = http.build_request(
                call.method,
                call.url,
                json=call.json if call.content is None else None,
                content=call.content,
                headers=self._headers(call),
                timeout=timeout,
            )
            with _deadline.deadline(at):
                r = http.send(req, stream=True)
            try:
                if r.status_code >= 400:
                    with _deadline.deadline(at):
                        body = r.read()
                    raise self._error(r.status_code, r.headers, body, call)
                self._check_stream_type(r.headers, call)
                decoder = self.stream_decoder()
                texts = r.iter_bytes() if self.binary_stream else r.iter_text()
                while not done:
                    with _deadline.deadline(at):
                        text = next(texts, None)
                    events = decoder.flush() if text is None else decoder.feed(text)
                    chunks, done = self._drain(events, request)
                    if chunks:
                        at = None
                    yield from chunks
                    if text is None:
                        break
            finally:
                r.close()
        except lib.HTTPError as exc:
            raise self._transport_error(exc, timeout, lib) from exc
        if not done:
            self.stream_ended_early(request)

    # --- async I/O ----------------------------------------------------------------
    def _async(self) -> tuple[httpx.AsyncClient, ModuleType]:
        # An AsyncClient's pooled connections belong to the event loop that opened them:
        # `asyncio.run(client.acomplete(...))` twice needs a fresh one for the new loop.
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._alib is None or self._aloop is not loop:
            lib = http_library(self.async_transport)
            transport = self.async_transport
            if transport is None:
                transport = lib.AsyncHTTPTransport(verify=_verify())
                _deadline.install(transport, lib, is_async=True)
            self._aclient = lib.AsyncClient(
                follow_redirects=False, transport=transport, verify=_verify()
            )
            self._alib = lib
            self._aloop = loop
        return self._aclient, self._alib

    async def acomplete(self, request: Request) -> Completion:
        return await self._aexchange(self.build(request), request, False)

    async def _aexchange(self, call: HTTPCall, request: Request, embedding: bool) -> Completion:
        http, lib = self._async()
        timeout = self._timeout(request, lib)
        try:
            with _deadline.deadline(_ends(timeout)):
                r = await http.request(
                    call.method,
                    call.url,
                    json=call.json if call.content is None else None,
                    content=call.content,
                    headers=self._headers(call),
                    timeout=timeout,
                )
                body = r.content
        except lib.HTTPError as exc:
            raise self._transport_error(exc, timeout, lib) from exc
        if r.status_code >= 400:  # r.content, not body: a verbose traceback shows `body`
            raise self._error(r.status_code, r.headers, r.content, call)
        return self._answer(r.status_code, r.headers, body, call, request, embedding)

    async def astream(self, request: Request) -> AsyncIterator[Chunk]:
        call = self.build(request)
        http, lib = self._async()
        timeout = self._timeout(request, lib)
        at: float | None = _ends(timeout)
        done = False
        try:
            req = http.build_request(
                call.method,
                call.url,
                json=call.json if call.content is None else None,
                content=call.content,
                headers=self._headers(call),
                timeout=timeout,
            )
            with _deadline.deadline(at):
                r = await http.send(req, stream=True)
            try:
                if r.status_code >= 400:
                    with _deadline.deadline(at):
                        body = await r.aread()
                    raise self._error(r.status_code, r.headers, body, call)
                self._check_stream_type(r.headers, call)
                decoder = self.stream_decoder()
                texts = r.aiter_bytes() if self.binary_stream else r.aiter_text()
                while not done:
                    with _deadline.deadline(at):
                        text = await anext(texts, None)
                    events = decoder.flush() if text is None else decoder.feed(text)
                    chunks, done = self._drain(events, request)
                    if chunks:
                        at = None
                    for chunk in chunks:
                        yield chunk
                    if text is None:
                        break
            finally:
                await r.aclose()
        except lib.HTTPError as exc:
            raise self._transport_error(exc, timeout, lib) from exc
        if not done:
            self.stream_ended_early(request)

    def _check_stream_type(self, headers: Mapping[str, str], call: HTTPCall) -> None:
        """A 200 HTML page instead of an event stream is a wrong base_url or a proxy's
        login page; reading it as SSE would end as a misleading "connection cut"."""
        if "text/html" in headers.get("content-type", "").lower():
            raise errors.ResponseFormatError(
                "the server answered the stream with an HTML page instead of events; "
                f"check base_url {self.base_url!r} (a proxy or login page answered).",
                status=200,
                provider=self.type_name,
                profile=self.profile_name,
                model=self.model,
            )

    def _drain(self, events: list[SSEEvent], request: Request) -> tuple[list[Chunk], bool]:
        """Events → chunks, and whether the protocol's end marker was among them."""
        chunks: list[Chunk] = []
        for event in events:
            try:
                chunk = self._event_checked(event, request)
            except StopIteration:
                return chunks, True
            if chunk is not None:
                chunks.append(chunk)
        return chunks, False

    def stream_ended_early(self, request: Request) -> None:
        """The body ended without the protocol's end marker: a cut stream."""
        raise errors.NetworkError(
            "the stream ended before the server said it was done (connection cut?); "
            "the answer is incomplete.",
            provider=self.type_name,
            profile=self.profile_name,
            model=self.model,
        )

    # --- lifecycle ----------------------------------------------------------------
    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        self.close()
        if self._aclient is not None:
            client, self._aclient, self._aloop = self._aclient, None, None
            await client.aclose()

    # --- embeddings: a protocol writes build_embedding and parse_embedding ---------------
    def build_embedding(self, request: Request) -> HTTPCall:
        raise NotImplementedError(f"{type(self).__name__} must implement build_embedding()")

    def parse_embedding(self, data: Any, request: Request) -> Completion:
        raise NotImplementedError(f"{type(self).__name__} must implement parse_embedding()")

    def embed(self, request: Request) -> Completion:
        if not self.supports_embeddings:
            return super().embed(request)
        return self._exchange(self.build_embedding(request), request, True)

    async def aembed(self, request: Request) -> Completion:
        if not self.supports_embeddings:
            return await super().aembed(request)
        return await self._aexchange(self.build_embedding(request), request, True)
