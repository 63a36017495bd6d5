"""The wire side of provider batch APIs: OpenAI Files + Batches, Anthropic Message Batches.

:class:`BatchAPI` is what :mod:`llmnb.batch.api` needs from a provider — ``submit``
(requests → batch id), ``poll`` (→ a state dict: ``status``, ``done``, ``total``,
``finished``, ``failed``) and ``results`` (→ ``{custom_id: (answer JSON, error)}``). The
request bodies come from the profile's own provider (``provider.build``), so a batch
line is exactly what a direct call would send; auth headers too.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from llmnb import config, errors
from llmnb._http import detach, http_library
from llmnb.providers.base import wire_headers
from llmnb.types import Request, normalize_messages

if TYPE_CHECKING:
    import httpx

    from llmnb.client.client import LLMClient
    from llmnb.providers.base import HTTPProvider

__all__ = ["BatchAPI", "api_for"]


class BatchAPI(ABC):
    name = ""

    def __init__(self, provider: HTTPProvider, first: Request) -> None:
        self.provider = provider
        call = provider.build(first)  # auth and version headers, as a direct call sends
        self.secrets = call.secrets
        # Revealed here, as a direct call does at the last moment: httpx needs the values.
        self.headers = wire_headers(
            {"user-agent": _user_agent()},
            config.resolve_headers(provider.profile_name, provider.profile),
            call.headers,
        )

    def http(self) -> httpx.AsyncClient:
        lib = http_library(self.provider.async_transport)
        return lib.AsyncClient(  # type: ignore[no-any-return]
            headers=self.headers,
            timeout=lib.Timeout(120.0, connect=10.0),
            transport=self.provider.async_transport,
        )

    async def send(self, http: httpx.AsyncClient, method: str, url: str, **kw: Any) -> Any:
        lib = http_library(self.provider.async_transport)
        try:
            r = await http.request(method, url, **kw)
        except lib.HTTPError as exc:
            detach(exc, self.secrets)  # raised from: no request (headers) in the chain
            raise errors.NetworkError(
                f"batch API request {method} {url} failed ({type(exc).__name__}: {exc})",
                provider=self.provider.type_name,
                profile=self.provider.profile_name,
            ) from exc
        if r.status_code >= 400:
            from llmnb._http import map_http_error

            raise map_http_error(
                r.status_code,
                r.headers,
                r.content,
                provider=self.provider.type_name,
                profile=self.provider.profile_name,
                model=self.provider.model,
                base_url=self.provider.base_url,
                secrets=self.secrets,
            )
        return r

    # The three steps each provider's batch API implements (see the module docstring).
    @abstractmethod
    async def submit(self, http: httpx.AsyncClient, requests: list[Request]) -> str: ...

    @abstractmethod
    async def poll(self, http: httpx.AsyncClient, batch_id: str) -> dict[str, Any]: ...

    @abstractmethod
    async def results(
        self, http: httpx.AsyncClient, state: dict[str, Any]
    ) -> dict[str, tuple[Any, str | None]]: ...


class _OpenAIBatch(BatchAPI):
    name = "openai"
    _ENDPOINT = "/v1/chat/completions"

    def _url(self, path: str) -> str:
        return f"{self.provider.base_url}{path}"

    async def submit(self, http: httpx.AsyncClient, requests: list[Request]) -> str:
        lines = [
            {
                "custom_id": f"row-{i}",
                "method": "POST",
                "url": self._ENDPOINT,
                "body": self.provider.build(req).json,
            }
            for i, req in enumerate(requests)
        ]
        data = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        name = f"llmnb-{uuid.uuid4().hex[:8]}.jsonl"
        uploaded = await self.send(
            http,
            "POST",
            self._url("/files"),
            data={"purpose": "batch"},
            files={"file": (name, data.encode(), "application/jsonl")},
        )
        created = await self.send(
            http,
            "POST",
            self._url("/batches"),
            json={
                "input_file_id": uploaded.json()["id"],
                "endpoint": self._ENDPOINT,
                "completion_window": "24h",
                "metadata": {"created_by": "llmnb"},
            },
        )
        return str(created.json()["id"])

    async def poll(self, http: httpx.AsyncClient, batch_id: str) -> dict[str, Any]:
        batch = (await self.send(http, "GET", self._url(f"/batches/{batch_id}"))).json()
        counts = batch.get("request_counts") or {}
        status = batch.get("status")
        return {
            "id": batch_id,
            "status": status,
            "done": status in ("completed", "failed", "expired", "cancelled"),
            "total": int(counts.get("total") or 0),
            "finished": int(counts.get("completed") or 0) + int(counts.get("failed") or 0),
            "failed": int(counts.get("failed") or 0),
            "files": [batch.get("output_file_id"), batch.get("error_file_id")],
            "errors": batch.get("errors"),
        }

    async def results(
        self, http: httpx.AsyncClient, state: dict[str, Any]
    ) -> dict[str, tuple[Any, str | None]]:
        out: dict[str, tuple[Any, str | None]] = {}
        for file_id in state["files"]:
            if not file_id:
                continue
            text = (await self.send(http, "GET", self._url(f"/files/{file_id}/content"))).text
            for raw in text.splitlines():
                if not raw.strip():
                    continue
                line = json.loads(raw)
                response = line.get("response") or {}
                body = response.get("body")
                if response.get("status_code") == 200 and body is not None:
                    out[str(line.get("custom_id"))] = (body, None)
                else:
                    out[str(line.get("custom_id"))] = (None, _openai_error(line, response))
        return out


class _AnthropicBatch(BatchAPI):
    name = "anthropic"

    def _url(self, path: str) -> str:
        base = self.provider.base_url or ""
        return base + (path if base.endswith("/v1") else "/v1" + path)

    async def submit(self, http: httpx.AsyncClient, requests: list[Request]) -> str:
        body = {
            "requests": [
                {"custom_id": f"row-{i}", "params": self.provider.build(req).json}
                for i, req in enumerate(requests)
            ]
        }
        created = await self.send(http, "POST", self._url("/messages/batches"), json=body)
        return str(created.json()["id"])

    async def poll(self, http: httpx.AsyncClient, batch_id: str) -> dict[str, Any]:
        url = self._url(f"/messages/batches/{batch_id}")
        batch = (await self.send(http, "GET", url)).json()
        counts = batch.get("request_counts") or {}
        failed = sum(int(counts.get(k) or 0) for k in ("errored", "canceled", "expired"))
        finished = int(counts.get("succeeded") or 0) + failed
        return {
            "id": batch_id,
            "status": batch.get("processing_status"),
            "done": batch.get("processing_status") == "ended",
            "total": finished + int(counts.get("processing") or 0),
            "finished": finished,
            "failed": failed,
            "results_url": batch.get("results_url"),
        }

    async def results(
        self, http: httpx.AsyncClient, state: dict[str, Any]
    ) -> dict[str, tuple[Any, str | None]]:
        url = state.get("results_url")
        if not url:
            return {}
        text = (await self.send(http, "GET", url)).text
        out: dict[str, tuple[Any, str | None]] = {}
        for raw in text.splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)
            result = line.get("result") or {}
            kind = result.get("type")
            if kind == "succeeded":
                out[str(line.get("custom_id"))] = (result.get("message"), None)
            else:
                error = (result.get("error") or {}).get("error") or {}
                message = error.get("message") or kind or "no result"
                out[str(line.get("custom_id"))] = (None, f"{error.get('type', kind)}: {message}")
        return out


def api_for(client: LLMClient) -> BatchAPI:
    from llmnb.providers.anthropic import AnthropicProvider
    from llmnb.providers.openai_compat import OpenAICompatibleProvider

    provider = client.provider
    probe = Request(messages=normalize_messages("probe"), model=client.model)
    if isinstance(provider, AnthropicProvider):
        return _AnthropicBatch(provider, probe)
    if isinstance(provider, OpenAICompatibleProvider):
        return _OpenAIBatch(provider, probe)
    raise errors.InvalidOptionError(
        f"mode='batch_api' needs an OpenAI or Anthropic profile; profile {client.profile!r} "
        f"is {client.provider_type!r}. Use the default mode='direct' for it."
    )


def _openai_error(line: dict[str, Any], response: dict[str, Any]) -> str:
    body = response.get("body") or {}
    err = body.get("error") if isinstance(body, dict) else None
    err = err or line.get("error") or {}
    code = err.get("type") or err.get("code") or f"HTTP {response.get('status_code')}"
    return f"{code}: {err.get('message') or 'the request failed'}"


def _user_agent() -> str:
    from llmnb._http import USER_AGENT

    return USER_AGENT
