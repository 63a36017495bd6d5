"""Structured outputs: response_model= → schema on the wire, validation, re-asks."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

import llmnb
from llmnb import errors
from llmnb.client.structured import extract_json, strict_schema
from llmnb.testing import FakeLLMServer, Fault


class City(pydantic.BaseModel):
    name: str
    population: int
    tags: list[str] = []


GOOD = '{"name": "Tokyo", "population": 37000000, "tags": ["capital"]}'


@pytest.fixture
def make(
    server: FakeLLMServer, write_settings: Callable[[dict[str, Any]], Any]
) -> Callable[..., llmnb.LLMClient]:
    def build(**profile: Any) -> llmnb.LLMClient:
        prof = {"type": "openai_compatible", "model": "m", "base_url": server.base_url, **profile}
        write_settings({"llm": {"active_provider": "p", "providers": {"p": prof}}})
        return llmnb.create_llm_client_from_profile()

    return build


def test_valid_on_the_first_try_with_openai_json_schema(make, server, tracker):
    server.script(Fault.reply(GOOD))
    c = make().complete("Largest city of Japan?", response_model=City)
    assert c.parsed == City(name="Tokyo", population=37000000, tags=["capital"])
    fmt = server.last_request.json["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "City"
    assert fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    # OpenAI's strict mode: closed objects, every property required, no defaults.
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "population", "tags"]
    assert "default" not in json.dumps(schema)
    assert server.last_request.json["messages"] == [
        {"role": "user", "content": "Largest city of Japan?"}
    ]
    assert len(tracker) == 1


def test_a_bad_answer_is_re_asked_with_the_errors_and_usage_is_summed(make, server, tracker):
    server.script(
        Fault.reply('{"name": "Tokyo", "population": "many"}'),
        Fault.reply(f"Sure! ```json\n{GOOD}\n```"),
    )
    c = make(pricing={"input_per_mtok": 1, "output_per_mtok": 2}).complete(
        "Largest city of Japan?", response_model=City
    )
    assert c.parsed.population == 37000000
    rows = tracker.to_dataframe()
    assert list(rows["status"]) == ["ok", "ok"] and rows["call_id"].nunique() == 1
    assert list(rows["attempt"]) == [1, 2] and c.attempts == 2
    assert c.usage.prompt_tokens == rows["prompt_tokens"].sum()
    assert c.usage.completion_tokens == rows["completion_tokens"].sum()
    assert c.cost_usd == pytest.approx(rows["cost_usd"].sum()) and c.cost_usd > 0
    reask = server.requests[1].json["messages"]
    assert reask[1] == {"role": "assistant", "content": '{"name": "Tokyo", "population": "many"}'}
    assert reask[2]["role"] == "user" and "population" in reask[2]["content"]


def test_structured_output_error_after_the_re_asks_carries_the_raw_answer(make, server, tracker):
    server.script(Fault.reply("no idea"), Fault.reply("still no"), Fault.reply("[1, 2"))
    with pytest.raises(errors.StructuredOutputError) as info:
        make().complete("city?", response_model=City, max_validation_retries=2)
    err = info.value
    assert err.raw == "[1, 2" and err.attempts == 3 and "max_validation_retries=2" in str(err)
    assert len(server.requests) == 3 and len(tracker) == 3


def test_max_validation_retries_zero_means_no_re_ask(make, server):
    server.script(Fault.reply("no"))
    with pytest.raises(errors.StructuredOutputError):
        make().complete("city?", response_model=City, max_validation_retries=0)
    assert len(server.requests) == 1


def test_prompt_mode_adds_the_schema_to_the_system_prompt(make, server):
    server.script(Fault.reply(f"Here:\n```json\n{GOOD}\n```\nDone."))
    client = make(options={"structured_mode": "prompt"})
    c = client.complete(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "city?"}],
        response_model=City,
    )
    assert c.parsed.name == "Tokyo"
    sent = server.last_request.json
    assert "response_format" not in sent
    system = sent["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Be brief.")
    assert '"population"' in system["content"] and "```json" in system["content"]


def test_the_mock_provider_uses_prompt_mode(write_settings):
    write_settings(
        {
            "llm": {
                "active_provider": "m",
                "providers": {"m": {"type": "mock", "model": "mock-1", "default_response": GOOD}},
            }
        }
    )
    c = llmnb.create_llm_client_from_profile().complete("city?", response_model=City)
    assert c.parsed.tags == ["capital"]


def test_async_structured_matches_sync(make, server):
    server.script(Fault.reply("nope"), Fault.reply(GOOD))
    c = asyncio.run(make().acomplete("city?", response_model=City))
    assert c.parsed.name == "Tokyo" and c.attempts == 2


def test_misuse_is_a_typed_error_naming_the_option(make):
    client = make()
    with pytest.raises(errors.InvalidOptionError, match="stream"):
        client.stream("x", response_model=City)
    with pytest.raises(errors.InvalidOptionError, match="max_validation_retries"):
        client.complete("x", max_validation_retries=1)
    with pytest.raises(errors.InvalidOptionError, match="object"):
        client.complete("x", response_model=list[int])
    with pytest.raises(errors.InvalidOptionError, match="max_validation_retries"):
        client.complete("x", response_model=City, max_validation_retries=-1)


def test_extract_json_finds_the_answer():
    assert extract_json(' {"a": 1} ') == '{"a": 1}'
    assert extract_json('text\n```json\n{"a": 1}\n```\nmore') == '{"a": 1}'
    assert extract_json('``` \n{"a": 2}```') == '{"a": 2}'
    assert extract_json('The answer is {"a": {"b": 1}} I think') == '{"a": {"b": 1}}'
    assert extract_json("no json here") is None


def test_strict_schema_keeps_fields_named_like_keywords():
    class Odd(pydantic.BaseModel):
        default: int = 1
        properties: str = "x"

    schema = strict_schema(Odd.model_json_schema())
    assert set(schema["properties"]) == {"default", "properties"}
    assert schema["required"] == ["default", "properties"]
    assert "default" not in schema["properties"]["default"]


def test_pydantic_is_imported_only_when_response_model_is_used():
    code = (
        "import sys, llmnb, llmnb.client.client, llmnb.client.manager, llmnb.middleware;"
        "heavy = [m for m in ('pandas', 'matplotlib', 'ipywidgets', 'genai_prices') "
        "if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    light = "import sys, llmnb, llmnb.client.structured; print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", light], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
