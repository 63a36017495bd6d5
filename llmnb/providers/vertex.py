"""Google Vertex AI, with Application Default Credentials (``llmnb[vertex]``): Gemini
(``type: vertex``) and Anthropic's Claude (``type: vertex_anthropic``).

``POST https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/
{location}/publishers/google/models/{model}:generateContent`` (``:streamGenerateContent
?alt=sse``) with a bearer token: the body, answers and stream are the Gemini API's, so
this reuses :mod:`llmnb.providers.gemini`. Claude is ``publishers/anthropic/models/
{model}:rawPredict`` (``:streamRawPredict``) with Anthropic's Messages body (the model in
the path, ``anthropic_version: vertex-2023-10-16`` in the body). Credentials are
``google.auth.default()``'s unless the profile names a ``credential: "module:attr"`` (a
google-auth Credentials).
"""

from __future__ import annotations

import datetime
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar

from llmnb import errors
from llmnb.providers._cloud import REFRESH_MARGIN, TokenCache, load_hook, require_extra
from llmnb.providers.anthropic import AnthropicProvider
from llmnb.providers.base import HTTPCall, HTTPProvider, key_fingerprint
from llmnb.providers.gemini import GeminiProvider
from llmnb.types import Request, Secret

__all__ = ["VertexAnthropicProvider", "VertexProvider"]

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
DEFAULT_LOCATION = "us-central1"
ANTHROPIC_VERSION = "vertex-2023-10-16"
_ADVICE = (
    "Run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS "
    "to a service-account key file)."
)


def _epoch(expiry: datetime.datetime | None) -> float | None:
    if expiry is None:
        return None
    if expiry.tzinfo is None:  # google-auth keeps naive UTC datetimes
        expiry = expiry.replace(tzinfo=datetime.timezone.utc)
    return expiry.timestamp()


class _GoogleAuth:
    """A profile's Google credentials, bearer token, project, location and endpoint."""

    def __init__(self, provider: HTTPProvider) -> None:
        self.owner = provider
        self.profile = provider.profile
        self.profile_name = provider.profile_name
        require_extra("google.auth", "vertex", provider.profile_name, provider.type_name)
        self._lock = threading.Lock()
        self._credentials: Any = None
        self._adc_project: str | None = None
        self._tokens = TokenCache(
            self._token,
            provider=provider.type_name,
            profile=provider.profile_name,
            model=provider.model,
            advice=_ADVICE,
        )

    @property
    def location(self) -> str:
        from llmnb import config

        found = self.profile.get("location") or (config.get_env("GOOGLE_CLOUD_LOCATION") or "")
        return str(found).strip() or DEFAULT_LOCATION

    @property
    def base_url(self) -> str:
        url = self.profile.get("base_url")
        if url:
            return str(url).rstrip("/")
        if self.location == "global":
            return "https://aiplatform.googleapis.com"
        return f"https://{self.location}-aiplatform.googleapis.com"

    def _load(self) -> Any:
        with self._lock:
            if self._credentials is None:
                spec = self.profile.get("credential")
                if spec:
                    self._credentials = load_hook(str(spec), self.profile_name, "credential")
                else:
                    import google.auth

                    self._credentials, self._adc_project = google.auth.default(scopes=SCOPES)
            return self._credentials

    def _token(self) -> tuple[str, float | None]:
        creds = self._load()
        expiry = _epoch(getattr(creds, "expiry", None))
        stale = expiry is not None and expiry - REFRESH_MARGIN <= time.time()
        if not creds.token or not creds.valid or stale:
            import google.auth.transport.requests

            creds.refresh(google.auth.transport.requests.Request())
        return str(creds.token or ""), _epoch(getattr(creds, "expiry", None))

    @property
    def project(self) -> str:
        from llmnb import config

        found = (
            self.profile.get("project")
            or (config.get_env("GOOGLE_CLOUD_PROJECT") or "").strip()
            or self._adc_project
            or getattr(self._credentials, "project_id", None)
        )
        if not found:
            raise errors.ConfigError(
                f"profile {self.profile_name!r} (type {self.owner.type_name}) needs a Google "
                "Cloud project: `project: my-project` in config/settings.yaml, or "
                "GOOGLE_CLOUD_PROJECT in .env."
            )
        return str(found)

    def call(self, publisher: str, model: str, method: str, body: Any) -> HTTPCall:
        token = self._tokens.get()  # first: ADC may tell the project
        project = urllib.parse.quote(self.project, safe="")
        location = urllib.parse.quote(self.location, safe="")
        url = (
            f"{self.base_url}/v1/projects/{project}/locations/{location}/publishers/"
            f"{publisher}/models/{urllib.parse.quote(model, safe='-._~@')}:{method}"
        )
        bearer = Secret(f"Bearer {token.reveal()}")
        headers: dict[str, str | Secret] = {"authorization": bearer}
        quota = getattr(self._credentials, "quota_project_id", None)
        if quota:
            headers["x-goog-user-project"] = str(quota)
        self.owner.last_key_id = key_fingerprint(self.profile_name + ":adc")
        return HTTPCall(url=url, json=body, headers=headers, secrets=(token, bearer))

    def advise(self, err: errors.APIError, status: int) -> errors.APIError:
        if status in (401, 403):
            err.message = err.message.split(". Check ")[0].rstrip(".") + ". " + _ADVICE
            err.args = (err.message,)
        return err


class VertexProvider(GeminiProvider):
    """Google's Gemini models on a Google Cloud project's Vertex AI."""

    type_name: ClassVar[str] = "vertex"
    needs_key: ClassVar[bool] = False
    key_env_var: ClassVar[str | None] = None
    default_base_url: ClassVar[str | None] = None

    def __init__(self, profile_name: str, profile: Mapping[str, Any], model: str) -> None:
        super().__init__(profile_name, profile, model)
        self.google = _GoogleAuth(self)

    def key_for(self, request: Request) -> Secret | None:
        return None  # a bearer token, not a key

    def secrets_for(self, request: Request) -> tuple[Secret, ...]:
        return ()  # the token is a registered Secret: scrubbed everywhere anyway

    @property
    def base_url(self) -> str | None:
        return self.google.base_url

    def build(self, request: Request) -> HTTPCall:
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        model = request.model.removeprefix("models/")
        return self.google.call("google", model, method, self.body(request))

    def _error(
        self, status: int, headers: Mapping[str, str], body: bytes, call: HTTPCall
    ) -> errors.APIError:
        return self.google.advise(super()._error(status, headers, body, call), status)


class VertexAnthropicProvider(AnthropicProvider):
    """Anthropic's Claude models on a Google Cloud project's Vertex AI."""

    type_name: ClassVar[str] = "vertex_anthropic"
    needs_key: ClassVar[bool] = False
    key_env_var: ClassVar[str | None] = None
    default_base_url: ClassVar[str | None] = None

    def __init__(self, profile_name: str, profile: Mapping[str, Any], model: str) -> None:
        super().__init__(profile_name, profile, model)
        self.google = _GoogleAuth(self)

    def key_for(self, request: Request) -> Secret | None:
        return None

    def secrets_for(self, request: Request) -> tuple[Secret, ...]:
        return ()

    @property
    def base_url(self) -> str | None:
        return self.google.base_url

    def body(self, request: Request) -> dict[str, Any]:
        body = super().body(request)
        body.pop("model", None)  # in the path
        body["anthropic_version"] = str(self.profile.get("anthropic_version") or ANTHROPIC_VERSION)
        return body

    def build(self, request: Request) -> HTTPCall:
        method = "streamRawPredict" if request.stream else "rawPredict"
        return self.google.call("anthropic", request.model, method, self.body(request))

    def _error(
        self, status: int, headers: Mapping[str, str], body: bytes, call: HTTPCall
    ) -> errors.APIError:
        return self.google.advise(super()._error(status, headers, body, call), status)
