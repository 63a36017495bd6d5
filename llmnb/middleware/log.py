"""Logging middleware: one log line per attempt, with keys redacted.

Lines name the call, attempt, profile, model, key fingerprint (``k-1a2b3c4d``, never
the key), status, tokens, latency and cost. Error texts are scrubbed of the attempt's
key. Prompt and answer text are logged only with ``include_content=True`` (they may
hold private data), cut to ``content_chars``.

Example::

    import logging
    logging.basicConfig(level=logging.INFO)
    client.add_middleware(LoggingMiddleware())      # logger "llmnb.calls"
"""

from __future__ import annotations

import logging
import math

from llmnb._http import scrub
from llmnb.middleware.base import Call, Middleware
from llmnb.types import Completion, Secret

__all__ = ["LoggingMiddleware"]


class LoggingMiddleware(Middleware):
    """Logs attempts, cache hits and failed calls to ``logger`` at ``level``."""

    def __init__(
        self,
        logger: logging.Logger | str | None = None,
        level: int = logging.INFO,
        *,
        include_content: bool = False,
        content_chars: int = 200,
    ) -> None:
        if logger is None or isinstance(logger, str):
            logger = logging.getLogger(logger or "llmnb.calls")
        self.logger = logger
        self.level = level
        self.include_content = include_content
        self.content_chars = content_chars

    def _secrets(self, call: Call) -> tuple[str | Secret, ...]:
        key = call.request.api_key
        return (key,) if key else ()

    def _head(self, call: Call) -> str:
        return (
            f"llm call={call.call_id} attempt={call.attempt} profile={call.profile} "
            f"model={call.request.model} key={call.key_id or '-'}"
        )

    def _content(self, text: str) -> str:
        text = " ".join(text.split())
        return repr(text[: self.content_chars] + ("…" if len(text) > self.content_chars else ""))

    def after_attempt(
        self, call: Call, completion: Completion | None, error: BaseException | None
    ) -> None:
        if not self.logger.isEnabledFor(self.level):
            return
        head = self._head(call)
        if completion is not None:
            u = completion.usage
            cost = "n/a" if math.isnan(call.cost) else f"${call.cost:.6f}"
            line = (
                f"{head} status=ok tokens={u.prompt_tokens}+{u.completion_tokens} "
                f"latency={call.latency:.3f}s cost={cost}"
            )
            if self.include_content:
                prompt = call.request.messages[-1].content
                line += (
                    f" prompt={self._content(prompt)} answer={self._content(completion.content)}"
                )
        else:
            text = scrub(str(error), self._secrets(call))
            line = (
                f"{head} status={type(error).__name__} latency={call.latency:.3f}s error={text!r}"
            )
        self.logger.log(self.level, "%s", line)

    def after_call(self, call: Call, completion: Completion) -> Completion:
        if completion.cached and self.logger.isEnabledFor(self.level):
            self.logger.log(
                self.level,
                "llm call=%s profile=%s model=%s status=ok cached=True",
                call.call_id,
                call.profile,
                call.request.model,
            )
        return completion

    def call_failed(self, call: Call, error: BaseException) -> None:
        if getattr(error, "reask", False):
            if self.logger.isEnabledFor(self.level):
                self.logger.log(
                    self.level,
                    "llm call=%s profile=%s answer did not validate; asking again",
                    call.call_id,
                    call.profile,
                )
            return
        if self.logger.isEnabledFor(self.level):
            text = scrub(str(error), self._secrets(call))
            self.logger.log(
                self.level,
                "llm call=%s profile=%s failed after %d attempt(s): %s: %s",
                call.call_id,
                call.profile,
                call.attempt,
                type(error).__name__,
                text,
            )

    def __repr__(self) -> str:
        return f"LoggingMiddleware(logger={self.logger.name!r}, level={self.level})"
