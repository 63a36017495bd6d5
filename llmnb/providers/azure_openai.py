"""Azure OpenAI: the OpenAI chat-completions wire on a deployment's path.

``POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...``
with an ``api-key`` header (``AZURE_OPENAI_API_KEY``) or a Microsoft Entra ID bearer
token from a credential object (``get_token(scope)``: ``azure-identity``'s
``DefaultAzureCredential`` unless the profile names one in ``credential:``). The body,
the answer and the stream are OpenAI's; the profile's ``model`` prices the usage while
the wire names the deployment.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar

from llmnb import errors
from llmnb.providers._cloud import TokenCache, load_hook, require_extra
from llmnb.providers.base import HTTPCall, key_fingerprint
from llmnb.providers.openai_compat import OpenAICompatibleProvider
from llmnb.types import Request, Secret

__all__ = ["AzureOpenAIProvider"]

DEFAULT_API_VERSION = "2024-10-21"
SCOPE = "https://cognitiveservices.azure.com/.default"
_ENTRA_ADVICE = (
    "Run `az login` (or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET), "
    "or use an api-key: set AZURE_OPENAI_API_KEY and `auth: key`."
)


class AzureOpenAIProvider(OpenAICompatibleProvider):
    """An Azure OpenAI resource's deployment."""

    type_name: ClassVar[str] = "azure_openai"
    needs_key: ClassVar[bool] = True
    key_env_var: ClassVar[str | None] = "AZURE_OPENAI_API_KEY"
    base_url_env: ClassVar[str | None] = "AZURE_OPENAI_ENDPOINT"
    developer_role: ClassVar[bool] = True

    def __init__(self, profile_name: str, profile: Mapping[str, Any], model: str) -> None:
        super().__init__(profile_name, profile, model)
        auth = str(profile.get("auth") or ("entra" if profile.get("credential") else "key"))
        if auth not in ("key", "entra"):
            raise errors.ConfigError(
                f"profile {profile_name!r}, field auth: {auth!r} is not 'key' or 'entra'."
            )
        self._tokens: TokenCache | None = None
        if auth == "entra":
            self._tokens = TokenCache(
                self._entra_token,
                provider=self.type_name,
                profile=profile_name,
                model=model,
                advice=_ENTRA_ADVICE,
            )
            self._credential = self._load_credential()

    def _load_credential(self) -> Any:
        spec = self.profile.get("credential")
        if spec:
            credential = load_hook(str(spec), self.profile_name, "credential")
        else:
            identity = require_extra("azure.identity", "azure", self.profile_name, self.type_name)
            credential = identity.DefaultAzureCredential()
        if not callable(getattr(credential, "get_token", None)):
            raise errors.ConfigError(
                f"profile {self.profile_name!r}, field credential: {type(credential).__name__} "
                "has no get_token(scope); give an azure-identity credential."
            )
        return credential

    def _entra_token(self) -> tuple[str, float | None]:
        token = self._credential.get_token(SCOPE)
        return str(token.token), getattr(token, "expires_on", None)

    @property
    def deployment(self) -> str:
        return str(self.profile.get("deployment") or self.model)

    def _require_base_url(self) -> str:
        url = self.base_url
        if not url:
            raise errors.ConfigError(
                f"profile {self.profile_name!r} (type azure_openai) needs the resource "
                "endpoint: `base_url: https://NAME.openai.azure.com` in config/settings.yaml "
                "or AZURE_OPENAI_ENDPOINT in .env."
            )
        return url

    def body(self, request: Request) -> dict[str, Any]:
        body = super().body(request)
        body.pop("model", None)  # the deployment (in the path) names the model
        return body

    def key_for(self, request: Request) -> Secret | None:
        if self._tokens is not None:
            return None
        return super().key_for(request)

    def build(self, request: Request) -> HTTPCall:
        from llmnb import config

        # As the openai SDK's AzureOpenAI: OPENAI_API_VERSION when the profile names none.
        version = str(
            self.profile.get("api_version")
            or (config.get_env("OPENAI_API_VERSION") or "").strip()
            or DEFAULT_API_VERSION
        )
        query = urllib.parse.urlencode({"api-version": version})
        deployment = urllib.parse.quote(self.deployment, safe="")
        url = f"{self._require_base_url()}/openai/deployments/{deployment}/chat/completions"
        headers: dict[str, str | Secret] = {}
        if self._tokens is not None:
            token = self._tokens.get()
            bearer = Secret(f"Bearer {token.reveal()}")
            headers["authorization"] = bearer
            secrets: tuple[Secret, ...] = (token, bearer)
            self.last_key_id = key_fingerprint(self.profile_name + ":entra")
        else:
            key = self.key_for(request)
            if key is None:  # needs_key: key_for raised already; for mypy
                raise errors.ConfigError(f"profile {self.profile_name!r} has no key.")
            headers["api-key"] = key
            secrets = (key,)
            self.last_key_id = key_fingerprint(key)
        return HTTPCall(
            url=f"{url}?{query}", json=self.body(request), headers=headers, secrets=secrets
        )

    def secrets_for(self, request: Request) -> tuple[Secret, ...]:
        if self._tokens is not None:
            return ()  # the token is a registered Secret: scrubbed everywhere anyway
        return super().secrets_for(request)

    def _error(
        self, status: int, headers: Mapping[str, str], body: bytes, call: HTTPCall
    ) -> errors.APIError:
        err = super()._error(status, headers, body, call)
        if status == 404 and _code(body) == "DeploymentNotFound":
            err = errors.InvalidRequestError(
                f"Azure OpenAI has no deployment {self.deployment!r} at "
                f"{self.base_url!r} (HTTP 404 DeploymentNotFound). Check `deployment:` in "
                f"profile {self.profile_name!r} against the deployments of the resource "
                "(Azure AI Foundry → Deployments); a new deployment takes a few minutes.",
                status=404,
                body=err.body,
                provider=self.type_name,
                profile=self.profile_name,
                model=self.model,
                code="DeploymentNotFound",
            )
            err.headers = headers
        elif status in (401, 403) and self._tokens is not None:
            err.message = err.message.split(". Check ")[0] + ". " + _ENTRA_ADVICE
            err.args = (err.message,)
        return err


def _code(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if code else None
