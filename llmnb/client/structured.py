"""Structured outputs: ``client.complete(messages, response_model=Model)``.

The model's JSON schema travels with the request (``Request.response_schema``) and
each provider maps it to its own mechanism (``Provider.structured_mode``):
``json_schema`` — OpenAI-compatible ``response_format`` with ``strict: true``;
``tool`` — a forced tool call (Anthropic); ``prompt`` — everywhere else, llmnb adds
the schema to the system prompt and reads the JSON out of the answer (a fenced
```` ```json ```` block, else the outermost ``{...}``).

The answer is validated with pydantic. If it does not validate, the model is asked
again with the validation errors, up to ``max_validation_retries`` times (default 2);
every round is part of the same call (one ``call_id``), usage and cost are summed
over the rounds, and ``completion.parsed`` holds the validated object. When no round
validates, :class:`~llmnb.errors.StructuredOutputError` carries the last raw answer.

pydantic is imported only when ``response_model`` is used.

Example::

    class City(pydantic.BaseModel):
        name: str
        population: int

    c = client.complete("The largest city in Japan?", response_model=City)
    c.parsed.population
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llmnb import errors
from llmnb.types import Completion, Message, Role, Usage

if TYPE_CHECKING:
    from llmnb.middleware.base import Call

__all__ = ["StructuredTask", "extract_json", "strict_schema"]

DEFAULT_VALIDATION_RETRIES = 2
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)
_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_ERROR_TEXT = 2000


class InvalidAnswer(Exception):
    """Internal: one round's answer did not validate (never escapes llmnb).

    Middlewares see it in ``call_failed``; ``reask`` tells them the call goes on.
    """

    reask = True

    def __init__(self, completion: Completion, errors_text: str) -> None:
        super().__init__(errors_text)
        self.completion = completion
        self.errors_text = errors_text


_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_LITERALS = ("enum", "const", "examples")


def strict_schema(schema: Any) -> Any:
    """The schema as OpenAI's strict mode wants it: every object closed
    (``additionalProperties: false``) with all its properties required, no defaults."""
    if isinstance(schema, list):
        return [strict_schema(v) for v in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k == "default":
            continue
        if k in _SCHEMA_MAPS and isinstance(v, Mapping):
            out[k] = {name: strict_schema(sub) for name, sub in v.items()}
        elif k in _LITERALS:
            out[k] = v
        else:
            out[k] = strict_schema(v)
    if out.get("type") == "object":
        out["additionalProperties"] = False
        out["required"] = list(out.get("properties") or {})
    return out


def extract_json(text: str) -> str | None:
    """The JSON text in an answer: all of it, a fenced block, or the outermost
    ``{...}`` / ``[...]``; None when there is none."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            json.loads(stripped)
            return stripped
        except ValueError:
            pass
    for block in _FENCE.findall(text):
        if block.strip():
            return str(block.strip())
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = text.find(opener), text.rfind(closer)
        if start != -1 and end > start:
            return text[start : end + 1]
    return None


def instructions(schema: Mapping[str, Any]) -> str:
    """What a prompt-mode provider is told."""
    return (
        "Answer with a single JSON value that validates against this JSON schema, "
        "inside a ```json fenced block, and nothing else.\n"
        f"JSON schema:\n{json.dumps(schema, indent=1)}"
    )


def with_instructions(
    messages: tuple[Message, ...], schema: Mapping[str, Any]
) -> tuple[Message, ...]:
    """``messages`` with the schema instructions added to (or as) the system message."""
    text = instructions(schema)
    if messages and messages[0].role is Role.SYSTEM:
        first = messages[0]
        return (Message(Role.SYSTEM, f"{first.content}\n\n{text}", first.name), *messages[1:])
    return (Message(Role.SYSTEM, text), *messages)


class StructuredTask:
    """The rounds of one structured call: validate, re-ask, sum usage."""

    def __init__(self, response_model: Any, max_validation_retries: int | None = None) -> None:
        import pydantic

        retries = (
            DEFAULT_VALIDATION_RETRIES if max_validation_retries is None else max_validation_retries
        )
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise errors.InvalidOptionError(
                f"max_validation_retries must be a whole number >= 0, got {retries!r}"
            )
        try:
            self.adapter: Any = pydantic.TypeAdapter(response_model)
            schema = self.adapter.json_schema()
        except (
            pydantic.PydanticUserError,
            pydantic.PydanticSchemaGenerationError,
            TypeError,
        ) as exc:
            raise errors.InvalidOptionError(
                f"response_model={response_model!r} cannot be used: {exc}. Pass a "
                "pydantic.BaseModel subclass (or a dataclass / TypedDict)."
            ) from exc
        if schema.get("type") != "object":
            raise errors.InvalidOptionError(
                f"response_model={response_model!r} has a JSON schema of type "
                f"{schema.get('type')!r}; structured outputs need an object. Wrap it in a "
                "pydantic model, e.g. class Answer(BaseModel): items: list[int]."
            )
        self.model = response_model
        self.schema: dict[str, Any] = strict_schema(schema)
        raw_name = getattr(response_model, "__name__", None) or "answer"
        self.name = _NAME.sub("_", str(raw_name))[:64] or "answer"
        self.max_retries = retries
        self.rounds = 0
        self._usage = Usage()
        self._cost = 0.0

    def attach(self, call: Call) -> None:
        call.schema = self.schema
        call.schema_name = self.name
        call.validate = self.validate

    def validate(self, completion: Completion) -> None:
        """Parse and validate the answer into ``completion.parsed``, or raise InvalidAnswer."""
        import pydantic

        text = extract_json(completion.content)
        if text is None:
            raise InvalidAnswer(completion, "the answer contains no JSON object.")
        try:
            completion.parsed = self.adapter.validate_json(text)
        except pydantic.ValidationError as exc:
            raise InvalidAnswer(completion, str(exc)[:_ERROR_TEXT]) from None

    def _add(self, completion: Completion) -> None:
        self._usage = self._usage + completion.usage
        self._cost += completion.cost_usd  # NaN stays NaN: the total is then unknown

    def reask(self, call: Call, invalid: InvalidAnswer) -> errors.StructuredOutputError | None:
        """Prepare the call to ask again with the errors; when out of rounds, return the
        StructuredOutputError to raise instead."""
        self.rounds += 1
        self._add(invalid.completion)
        raw = invalid.completion.content
        if self.rounds > self.max_retries:
            return errors.StructuredOutputError(
                f"[{call.profile}] the answer did not validate against "
                f"{self.name} after {self.rounds} tries (max_validation_retries="
                f"{self.max_retries}); last errors: {invalid.errors_text[:500]} — raise "
                "max_validation_retries, simplify the model, or use a stronger model. The "
                "last raw answer is in `.raw`.",
                raw=raw,
                errors=invalid.errors_text,
                attempts=self.rounds,
            )
        call.messages = (
            *call.messages,
            Message(Role.ASSISTANT, raw),
            Message(
                Role.USER,
                f"Your answer did not validate:\n{invalid.errors_text}\n"
                "Reply again with only the corrected JSON.",
            ),
        )
        call.request = call.client._build_request(call)
        return None

    def finish(self, completion: Completion) -> Completion:
        """The last round's completion with usage and cost summed over all rounds."""
        if self.rounds:
            self._add(completion)
            completion.usage = self._usage
            completion.cost_usd = self._cost
            if math.isnan(self._cost):
                completion.cost_source = "unknown"
        return completion
