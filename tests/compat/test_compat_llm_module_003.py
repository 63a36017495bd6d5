# ruff: noqa: W293 — README blocks are kept verbatim, whitespace included
"""Seed 003 ("LLM Module", ``llm``): every README code block, imports changed only.

``config/llm.yaml`` is the README's, as written; the endpoint is FakeLLMServer through
``ANTHROPIC_BASE_URL``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from llmnb.testing import FakeLLMServer, Fault

IMPORTS = {"from llm": "from llmnb.compat.llm_module"}

# README "## Configuration" (config/llm.yaml), as written
LLM_YAML = """
providers:
  anthropic:
    api_keys: [key1, key2, ...]  # Multiple keys for load balancing
    models: [claude-3-5-haiku-20241022]
    rate_limits:
      - requests_per_minute: 12
        input_tokens_per_minute: 5000
        output_tokens_per_minute: 2000

pool:
  max_size: 4  # Match number of API keys
  acquire_timeout: 30.0
"""

QUICK_START = """
from llm import get_llm_manager, LLMProvider, Message, MessageRole

async def main():
    manager = await get_llm_manager()
    client = manager.get_client(LLMProvider.ANTHROPIC)
    
    messages = [Message(MessageRole.USER, "Hello, world!")]
    response = await client.complete(messages)
    print(response.content)
    
    await manager.close()
"""

SIMPLE = """
messages = [Message(MessageRole.USER, "Explain quantum computing")]
response = await client.complete(messages, max_tokens=200)
"""

STREAMING = """
messages = [Message(MessageRole.USER, "Write a story")]
async for chunk in client.stream_complete(messages):
    print(chunk, end='', flush=True)
"""

HISTORY = """
from llm import SessionManager

session = SessionManager()
session.add_message(MessageRole.USER, "My name is Alice")
response = await client.complete(session.get_messages())
session.add_message(MessageRole.ASSISTANT, response.content)

# Later in conversation
session.add_message(MessageRole.USER, "What's my name?")
response = await client.complete(session.get_messages())
# Response will remember "Alice"
"""

SYSTEM = """
messages = [
    Message(MessageRole.SYSTEM, "You are a helpful coding assistant"),
    Message(MessageRole.USER, "Write a Python function to sort a list")
]
response = await client.complete(messages)
"""

PARALLEL = """
async def process_batch(prompts):
    manager = await get_llm_manager()
    client = manager.get_client(LLMProvider.ANTHROPIC)
    
    tasks = []
    for prompt in prompts:
        messages = [Message(MessageRole.USER, prompt)]
        tasks.append(client.complete(messages))
    
    results = await asyncio.gather(*tasks)
    return [r.content for r in results]

# Process 50 prompts in parallel
prompts = [f"Question {i}" for i in range(50)]
answers = await process_batch(prompts)
"""

STATUS = """
status = manager.get_status(LLMProvider.ANTHROPIC)
print(f"Available clients: {status['available_clients']}/{status['total_clients']}")
print(f"Queue size: {status['queue_size']}")

# Check individual client status
for client_status in status['client_statuses']:
    if client_status['rate_limit_status']:
        print(f"Client {client_status['client_id']}:")
        print(f"  Tokens remaining: {client_status['rate_limit_status']['tokens_remaining']}")
"""

RATE_LIMIT = """
from llm import LLMRateLimitError

try:
    response = await client.complete(messages)
except LLMRateLimitError as e:
    print(f"Rate limited: {e}")
    # The pool automatically queues requests when rate limited
    # No manual retry needed
"""

MIDDLEWARE = """
from llm.middleware.base import Middleware

class CustomMiddleware(Middleware):
    async def process_request(self, request, context):
        # Add custom headers, logging, etc.
        context['custom_data'] = 'value'
        return request
    
    async def process_response(self, response, context):
        # Process response
        response.metadata['custom'] = context.get('custom_data')
        return response

# Add to provider
provider.middleware_chain.add(CustomMiddleware())
"""

LOAD_TEST = """
async def load_test(num_requests=100):
    manager = await get_llm_manager()
    client = manager.get_client(LLMProvider.ANTHROPIC)
    
    start = time.time()
    tasks = []
    
    for i in range(num_requests):
        messages = [Message(MessageRole.USER, f"Test {i}")]
        tasks.append(client.complete(messages, max_tokens=10))
    
    results = await asyncio.gather(*tasks, return_exceptions=True)
    
    success = sum(1 for r in results if not isinstance(r, Exception))
    duration = time.time() - start
    
    print(f"Completed {success}/{num_requests} in {duration:.2f}s")
    print(f"Throughput: {success/duration:.2f} req/s")
"""

METRICS = """
# After running requests
pool = manager._pools[LLMProvider.ANTHROPIC]
for client in pool._clients:
    metrics = client.middleware_chain.get_middleware(MetricsMiddleware).get_metrics()
    print(f"Client metrics:")
    print(f"  Total requests: {metrics['total_requests']}")
    print(f"  Avg latency: {metrics['avg_latency']:.2f}ms")
    print(f"  Success rate: {metrics['success_rate']:.1%}")
"""


@pytest.fixture
def srv(monkeypatch):
    answers = {"hello, world": "Hello! How can I help?", "my name is alice": "Nice to meet you."}
    with FakeLLMServer(responses=answers, echo=True) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
        yield server


@pytest.fixture
def yaml_config(tmp_path: Path) -> Path:
    path = tmp_path / "config" / "llm.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(LLM_YAML)
    return path


def _ns(example, config_file: bool = True):
    """Quick Start's names, and a client (as the use-case blocks assume)."""
    ns = example(QUICK_START, IMPORTS)
    ns["manager"] = asyncio.run(ns["get_llm_manager"]())
    ns["client"] = ns["manager"].get_client(ns["LLMProvider"].ANTHROPIC)
    ns.update(asyncio=asyncio, time=time)
    return ns


def test_quick_start_with_the_readme_llm_yaml(srv, yaml_config, tracker, example, capsys):
    ns = example(QUICK_START, IMPORTS)
    asyncio.run(ns["main"]())
    assert capsys.readouterr().out == "Hello! How can I help?\n"
    assert srv.last_request.headers["x-api-key"] in ("key1", "key2", "...")
    (row,) = tracker.records
    assert row.profile == "anthropic" and row.model == "claude-3-5-haiku-20241022"
    assert row.cost_usd > 0


def test_use_cases_simple_stream_history_system(srv, yaml_config, tracker, example, capsys):
    ns = _ns(example)
    example(SIMPLE, IMPORTS, ns)
    assert srv.last_request.json["max_tokens"] == 200
    example(STREAMING, IMPORTS, ns)
    assert capsys.readouterr().out == "Echo: Write a story"
    assert srv.last_request.json["stream"] is True
    example(HISTORY, IMPORTS, ns)
    sent = [m["content"] for m in srv.last_request.json["messages"]]
    assert sent == ["My name is Alice", "Nice to meet you.", "What's my name?"]
    example(SYSTEM, IMPORTS, ns)
    assert srv.last_request.json["system"] == "You are a helpful coding assistant"
    rows = tracker.records
    assert len(rows) == 5 and all(r.status == "ok" for r in rows)
    # keys rotate over the yaml's pool (three "keys", "..." included, as written)
    assert {r.headers["x-api-key"] for r in srv.requests} == {"key1", "key2", "..."}


def test_monitor_pool_status_shape(srv, yaml_config, tracker, example, capsys):
    ns = _ns(example)
    example(SIMPLE, IMPORTS, ns)
    capsys.readouterr()
    example(STATUS, IMPORTS, ns)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Available clients: 6/6"  # max_size 4 over 3 keys: 2 each
    assert lines[1] == "Queue size: 0"
    used = tracker.records[0].prompt_tokens
    assert lines[3] == f"  Tokens remaining: {5000.0 - used}"


def test_rate_limit_handling(srv, yaml_config, tracker, example, capsys):
    ns = _ns(example)
    ns["messages"] = "hi"
    srv.script(*[Fault.rate_limit(retry_after=0.01)] * 3)
    example(RATE_LIMIT, IMPORTS, ns)
    assert capsys.readouterr().out.startswith("Rate limited: [anthropic] ")
    assert [r.status for r in tracker.records] == ["RateLimitError"] * 3


def test_custom_middleware_and_metrics(srv, yaml_config, tracker, example, capsys):
    from llmnb.compat.llm_module.middleware import MetricsMiddleware

    ns = _ns(example)
    ns["provider"] = ns["client"]
    ns["MetricsMiddleware"] = MetricsMiddleware
    example(MIDDLEWARE, IMPORTS, ns)
    example(SIMPLE, IMPORTS, ns)
    assert ns["response"].metadata == {"custom": "value"}
    capsys.readouterr()
    example(METRICS, IMPORTS, ns)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  Total requests: 1" and out[3] == "  Success rate: 100.0%"
    assert float(out[2].split(":")[1].removesuffix("ms")) > 0


def test_parallel_processing_and_load_test(srv, tracker, example, capsys, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEYS", "k1,k2")  # no llm.yaml: keys from the env
    ns = _ns(example)
    example(PARALLEL, IMPORTS, ns)
    assert ns["answers"] == [f"Echo: Question {i}" for i in range(50)]
    example(LOAD_TEST, IMPORTS, ns)
    asyncio.run(ns["load_test"](20))
    out = capsys.readouterr().out
    assert out.startswith("Completed 20/20 in ")
    rows = tracker.records
    assert (
        len(rows) == 70
        and {r.key_id for r in rows} != {None}
        and len({r.key_id for r in rows}) == 2
    )
