"""Seed 001 ("LLM Module", ``src.llm``): every README code block, imports changed only.

Runs against FakeLLMServer's Anthropic wire (``ANTHROPIC_BASE_URL``) and asserts that the
calls went through llmnb: usage rows per attempt, prices, the key pool, retries.
"""

from __future__ import annotations

import json

import pytest

from llmnb.testing import FakeLLMServer, Fault

IMPORTS = {"from src.llm": "from llmnb.compat.llm_module"}

CITY = {"name": "Paris", "country": "France", "population": 2102650, "landmarks": ["Louvre"]}
ANALYSIS = {
    "language": "python",
    "functions": [
        {"name": "add", "parameters": ["a", "b"], "return_type": "int", "docstring": None}
    ],
    "imports": ["math"],
    "complexity": 2,
}

# README "### Basic Usage"
BASIC = """
from src.llm import get_llm_manager, LLMProvider, Message, MessageRole

# Get manager instance
manager = await get_llm_manager()

# Get a client
client = manager.get_client(LLMProvider.ANTHROPIC)

# Make a completion request
messages = [
    Message(MessageRole.SYSTEM, "You are a helpful assistant"),
    Message(MessageRole.USER, "What is the capital of France?")
]

response = await client.complete(messages)
print(response.content)
"""

# README "### Structured Outputs with Instructor"
STRUCTURED = """
from pydantic import BaseModel, Field
from typing import List

# Define your output schema
class CityInfo(BaseModel):
    name: str = Field(description="City name")
    country: str = Field(description="Country name")
    population: int = Field(description="Population count")
    landmarks: List[str] = Field(description="Famous landmarks")

# Request structured output
city_info = await client.complete(
    messages=[
        Message(MessageRole.USER, "Tell me about Paris")
    ],
    response_model=CityInfo  # Auto-detects and uses Instructor
)

print(f"City: {city_info.name}")
print(f"Population: {city_info.population:,}")
print(f"Landmarks: {', '.join(city_info.landmarks)}")
"""

# README "### Connection Pooling"
POOLING = """
# Configure multiple API keys for load balancing
import os

# Set multiple keys (comma-separated)
os.environ['ANTHROPIC_API_KEYS'] = 'key1,key2,key3'

# The pool automatically rotates between keys
manager = await get_llm_manager()
client = manager.get_client(LLMProvider.ANTHROPIC)

# Make many requests - automatically distributed
for i in range(100):
    response = await client.complete(messages)
"""

# README "### Error Handling"
ERRORS = """
from src.llm.core.exceptions import (
    LLMError,
    RateLimitError,
    InvalidRequestError
)

try:
    response = await client.complete(messages)
except RateLimitError as e:
    print(f"Rate limited: {e}. Retry after: {e.retry_after}")
except InvalidRequestError as e:
    print(f"Invalid request: {e}")
except LLMError as e:
    print(f"General LLM error: {e}")
"""

# README "### Advanced Configuration"
ADVANCED = """
from src.llm import LLMConfig

config = LLMConfig(
    temperature=0.7,
    max_tokens=2000,
    max_retries=3,
    retry_delay=1.0,
    timeout=30.0,
    system_prompt="You are a technical assistant"
)

response = await client.complete(
    messages,
    **config.to_dict()
)
"""

# README "### Example: Complex Extraction"
EXTRACTION = """
from pydantic import BaseModel
from typing import List, Optional

class CodeFunction(BaseModel):
    name: str
    parameters: List[str]
    return_type: Optional[str]
    docstring: Optional[str]

class CodeAnalysis(BaseModel):
    language: str
    functions: List[CodeFunction]
    imports: List[str]
    complexity: int = Field(ge=1, le=10)

# Analyze code with structured output
analysis = await client.complete(
    messages=[
        Message(MessageRole.USER, f"Analyze this code:\\n{code_snippet}")
    ],
    response_model=CodeAnalysis
)

# Type-safe access to results
for func in analysis.functions:
    print(f"Function: {func.name}({', '.join(func.parameters)})")
"""

# README "### Pool Configuration" (the block has no import line; the name is imported)
POOL_CONFIG = """
# Default pool configuration
pool = ConnectionPool(
    api_keys=['key1', 'key2'],
    max_connections_per_key=5,  # Concurrent requests per key
    health_check_interval=60,    # Seconds between health checks
)
"""

# README "## Testing"
TESTING = """
# Test with mock client
from src.llm.testing import MockLLMClient

mock_client = MockLLMClient(
    responses=["Response 1", "Response 2"]
)

response = await mock_client.complete(messages)
assert response.content == "Response 1"
"""


@pytest.fixture
def srv(monkeypatch):
    answers = {
        "capital of france": "The capital of France is Paris.",
        "about paris": json.dumps(CITY),
        "analyze this code": json.dumps(ANALYSIS),
    }
    with FakeLLMServer(responses=answers) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
        yield server


def test_basic_usage_goes_through_llmnb_with_rows_and_prices(srv, tracker, example, capsys):
    ns = example(BASIC, IMPORTS)
    assert capsys.readouterr().out == "The capital of France is Paris.\n"
    sent = srv.last_request
    assert sent.path == "/v1/messages" and sent.headers["x-api-key"] == "sk-ant-test-key"
    assert sent.json["system"] == "You are a helpful assistant"
    assert sent.json["model"] == "claude-3-5-haiku-20241022"
    (row,) = tracker.records
    assert (row.profile, row.provider, row.status) == ("anthropic", "anthropic", "ok")
    assert row.prompt_tokens > 0 and row.cost_usd > 0 and row.cost_source == "price_table"
    assert ns["response"].completion.call_id == row.call_id


def test_structured_output_returns_the_model_instance(srv, tracker, example, capsys):
    ns = example(BASIC, IMPORTS)
    capsys.readouterr()
    example(STRUCTURED, IMPORTS, ns)
    out = capsys.readouterr().out
    assert out == "City: Paris\nPopulation: 2,102,650\nLandmarks: Louvre\n"
    assert type(ns["city_info"]).__name__ == "CityInfo"
    # the schema went as a forced tool; the Completion stays on the client
    assert srv.last_request.json["tool_choice"]["type"] == "tool"
    assert ns["client"].last_completion.parsed is ns["city_info"]
    assert len(tracker.records) == 2


def test_connection_pool_rotates_the_keys_of_ANTHROPIC_API_KEYS(srv, tracker, example, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("ANTHROPIC_API_KEYS", "")  # restored after the example sets it
    # The pooling block on its own (the keys are set before the first client is built),
    # with the names it uses from "Basic Usage".
    from llmnb.compat.llm_module import LLMProvider, get_llm_manager

    ns = {"get_llm_manager": get_llm_manager, "LLMProvider": LLMProvider, "messages": "Hi"}
    example(POOLING, {}, ns)
    keys = [r.headers["x-api-key"] for r in srv.requests]
    assert len(keys) == 100 and {keys.count(k) for k in ("key1", "key2", "key3")} == {33, 34}
    rows = tracker.records
    assert len(rows) == 100 and len({r.key_id for r in rows}) == 3
    assert all(r.status == "ok" and r.cost_usd > 0 for r in rows)


def test_error_handling_catches_llmnb_rate_limit_after_retries(srv, tracker, example, capsys):
    ns = example(BASIC, IMPORTS)
    capsys.readouterr()
    srv.script(*[Fault.rate_limit(retry_after=0.01)] * 3)
    example(ERRORS, IMPORTS, ns)
    out = capsys.readouterr().out
    assert out.startswith("Rate limited: [anthropic] ") and "Retry after: 0.01" in out
    statuses = [r.status for r in tracker.records[1:]]
    assert statuses == ["RateLimitError"] * 3  # 1 try + 2 llmnb retries, one row each


def test_advanced_configuration_reaches_the_wire_and_the_retry_policy(srv, tracker, example):
    ns = example(BASIC, IMPORTS)
    srv.script(Fault.status(500), Fault.status(500), Fault.status(500))
    example(ADVANCED, IMPORTS, ns)  # max_retries=3: the 4th attempt answers
    body = srv.last_request.json
    assert body["temperature"] == 0.7 and body["max_tokens"] == 2000
    # the messages carry their own system message: system_prompt does not replace it
    assert body["system"] == "You are a helpful assistant"
    assert [r.status for r in tracker.records[1:]] == ["ProviderError"] * 3 + ["ok"]
    ns["messages"] = [ns["Message"](ns["MessageRole"].USER, "hi")]
    example(ADVANCED, IMPORTS, ns)
    assert srv.last_request.json["system"] == "You are a technical assistant"


def test_complex_extraction(srv, tracker, example, capsys):
    ns = example(BASIC, IMPORTS)
    example(STRUCTURED, IMPORTS, ns)
    capsys.readouterr()
    ns["code_snippet"] = "import math\ndef add(a, b) -> int:\n    return a + b\n"
    example(EXTRACTION, {"from pydantic import BaseModel": "from pydantic import BaseModel"}, ns)
    assert capsys.readouterr().out == "Function: add(a, b)\n"
    assert ns["analysis"].complexity == 2 and len(tracker.records) == 3


def test_pool_configuration_is_llmnb_key_pool(example):
    from llmnb.compat.llm_module.core.pool import ConnectionPool

    ns = example(
        POOL_CONFIG, {"# Default pool": "# Default pool"}, {"ConnectionPool": ConnectionPool}
    )
    status = ns["pool"].status()
    assert status["total_connections"] == 10 and len(status["keys"]) == 2
    assert "key1" not in repr(ns["pool"]) and "key1" not in str(status)


def test_mock_client_answers_in_order_and_is_tracked(tracker, example):
    ns = example(TESTING, IMPORTS, {"messages": "hello"})
    assert asyncio_run(ns["mock_client"].complete("again")).content == "Response 2"
    rows = tracker.records
    assert [r.profile for r in rows] == ["mock", "mock"] and rows[0].prompt_tokens > 0


def asyncio_run(coro):
    import asyncio

    return asyncio.run(coro)


# README "### Configuration" (shell), as written
ENV_BASH = """
# Single key
export ANTHROPIC_API_KEY="your-key"

# Multiple keys for pooling
export ANTHROPIC_API_KEYS="key1,key2,key3"

# Other providers
export OPENAI_API_KEY="your-key"
export GOOGLE_API_KEY="your-key"
export GROQ_API_KEY="your-key"
"""


def test_configuration_shell_block_sets_up_providers_and_the_key_pool(
    srv, tracker, example, monkeypatch, shell, capsys
):
    env = shell(ENV_BASH)
    assert set(env) == {
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_API_KEYS",
        "OPENAI_API_KEY",
        "GOOGLE_API_KEY",
        "GROQ_API_KEY",
    }
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    ns = example(BASIC, IMPORTS)
    assert capsys.readouterr().out == "The capital of France is Paris.\n"
    manager = ns["manager"]
    assert set(manager.list_providers()) >= {"anthropic", "openai", "google", "groq"}
    for _ in range(3):
        example("response = await client.complete(messages)", {}, ns)
    # llmnb pools $ANTHROPIC_API_KEY with $ANTHROPIC_API_KEYS: four calls, four keys
    sent = sorted(r.headers["x-api-key"] for r in srv.requests)
    assert sent == ["key1", "key2", "key3", "your-key"]
    rows = tracker.records
    assert len({r.key_id for r in rows}) == 4 and all(r.status == "ok" for r in rows)
