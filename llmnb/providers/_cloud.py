"""What the cloud providers (Azure OpenAI, Bedrock, Vertex AI) share: their optional SDK
extras, imported only when such a provider is built, credential hooks named in the
profile (``"module:attr"``), and bearer tokens cached until shortly before they expire.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from llmnb import errors
from llmnb._http import detach, scrub
from llmnb.types import Secret

__all__ = ["TokenCache", "load_hook", "require_extra"]

# A token is renewed this long before it expires: a request signed with it must still be
# valid when the server reads it, after retries and a slow connection.
REFRESH_MARGIN = 300.0


def require_extra(module: str, extra: str, profile_name: str, type_name: str) -> ModuleType:
    """``module`` imported, or a ConfigError saying which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise errors.ConfigError(
            f"profile {profile_name!r} (type {type_name}) needs the {module.split('.')[0]} "
            f'package: pip install "llmnb[{extra}]"'
        ) from exc


def load_hook(spec: str, profile_name: str, field: str) -> Any:
    """The object named by ``"module:attr"`` in a profile field; a callable is called
    with no arguments when it is a class or a factory function, anything else (a
    credential object) is used as it is."""
    where = f"profile {profile_name!r}, field {field}"
    module_name, sep, attr = str(spec).partition(":")
    if not sep or not module_name or not attr:
        raise errors.ConfigError(
            f"{where}: {spec!r} is not of the form 'module:attr' (e.g. 'my_pkg.auth:credential')."
        )
    try:
        module = importlib.import_module(module_name)
        found = getattr(module, attr)
    except Exception as exc:  # any failure of user code
        raise errors.ConfigError(
            f"{where}: cannot load {spec!r} ({type(exc).__name__}: {exc}). "
            "Is the module on sys.path and the name right?"
        ) from exc
    plain = not hasattr(found, "get_token") and not hasattr(found, "refresh")
    if isinstance(found, type) or (callable(found) and plain):
        try:
            return found()
        except Exception as exc:
            raise errors.ConfigError(
                f"{where}: calling {spec!r} failed ({type(exc).__name__}: {exc})."
            ) from exc
    return found


class TokenCache:
    """One bearer token, fetched by ``fetch`` (→ ``(token, expires_at_epoch)``) and kept
    until :data:`REFRESH_MARGIN` seconds before it expires. Thread-safe; the token is a
    :class:`Secret` (registered for scrubbing the moment it is seen)."""

    def __init__(
        self,
        fetch: Callable[[], tuple[str, float | None]],
        *,
        provider: str,
        profile: str,
        model: str,
        advice: str,
    ) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._token: Secret | None = None
        self._expires: float | None = None
        self._kw: Mapping[str, Any] = {"provider": provider, "profile": profile, "model": model}
        self._advice = advice

    def get(self) -> Secret:
        with self._lock:
            if self._token is not None and (
                self._expires is None or self._expires - REFRESH_MARGIN > time.time()
            ):
                return self._token
            try:
                value, expires = self._fetch()
            except errors.LLMError:
                raise
            except Exception as exc:  # any credential library failure
                detach(exc)
                raise errors.AuthenticationError(
                    f"could not get cloud credentials ({type(exc).__name__}: "
                    f"{scrub(str(exc))[:300]}). {self._advice}",
                    **self._kw,
                ) from None
            if not value:
                raise errors.AuthenticationError(
                    f"the credential gave no token. {self._advice}", **self._kw
                )
            self._token = Secret(str(value))
            self._expires = float(expires) if expires is not None else None
            return self._token
