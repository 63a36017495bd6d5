"""Batches over the public client API: fan-out, errors per row, resume, progress, dry run."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import threading
from typing import Any, ClassVar

import pandas as pd
import pydantic
import pytest
import servers

import llmnb.batch
from llmnb import errors
from llmnb.client.client import LLMClient
from llmnb.middleware.base import ManualClock
from llmnb.middleware.cache import MemoryCache
from llmnb.middleware.cache_redis import RedisCache
from llmnb.middleware.ratelimit import RateLimiter
from llmnb.middleware.retry import RetryPolicy
from llmnb.providers.base import Provider
from llmnb.providers.openai_compat import OpenAICompatibleProvider
from llmnb.testing import FakeLLMServer, Fault
from llmnb.types import Completion, Request, Usage
from llmnb.usage import UsageTracker
from llmnb.usage.pricing import cost_of, price_for

redis_url = servers.redis_url_fixture()

PRICE = {"input_per_mtok": 2.0, "output_per_mtok": 8.0}


def _client(
    srv: FakeLLMServer,
    tracker: UsageTracker,
    *,
    retries: int = 2,
    cache: Any = False,
    middleware: tuple[Any, ...] = (),
) -> LLMClient:
    profile = {"type": "openai_compatible", "base_url": srv.base_url, "model": "m"}
    profile["pricing"] = PRICE
    return LLMClient(
        OpenAICompatibleProvider("fake", profile, "m"),
        retry=RetryPolicy(max_retries=retries, base_delay=0.001, max_delay=0.01),
        tracker=tracker,
        cache=cache,
        middleware=list(middleware),
    )


class FirstTryFaults:
    """Fails the first attempt of every 10th prompt (429, 500, connection reset in turn)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.injected = 0

    def __call__(self, request: Any) -> Fault | None:
        text = request.json["messages"][-1]["content"]
        n = int(text.rsplit(" ", 1)[1])
        with self.lock:
            if n % 10 or text in self.seen:
                return None
            self.seen.add(text)
            self.injected += 1
            kinds = (Fault.rate_limit(retry_after=0.001), Fault.status(500), Fault.reset())
            return kinds[(n // 10) % 3]


def test_1000_rows_with_10_percent_faults_all_answered_then_rerun_from_cache(
    tracker: UsageTracker,
) -> None:
    prompts = [f"item {i}" for i in range(1000)]
    faults = FirstTryFaults()
    with FakeLLMServer(echo=True) as srv:
        srv.set_handler(faults)
        client = _client(srv, tracker, cache=MemoryCache(max_entries=5000))
        res = llmnb.batch.map(prompts, client=client, concurrency=16, cache=True, progress=False)
        assert faults.injected == 100
        assert len(res) == 1000 and res.failed == 0
        assert res.outputs == [f"Echo: {p}" for p in prompts]  # in input order
        assert len(srv.requests) == 1100  # each faulted row: one failure, one retry
        rows = tracker.to_dataframe()
        assert len(rows) == 1100 and (rows["status"].astype(str) != "ok").sum() == 100
        assert res.cost_usd == pytest.approx(rows["cost_usd"].sum())

        again = llmnb.batch.map(prompts, client=client, concurrency=16, cache=True, progress=False)
        assert len(srv.requests) == 1100  # not one new request
        assert again.outputs == res.outputs and again.cached == 1000 and again.cost_usd == 0


def test_failed_rows_keep_their_error_and_a_rerun_asks_only_for_them(
    tracker: UsageTracker,
) -> None:
    prompts = [f"item {i}" for i in range(200)]
    with FakeLLMServer(echo=True) as srv:
        srv.set_handler(FirstTryFaults())
        client = _client(srv, tracker, retries=0, cache=MemoryCache())
        res = llmnb.batch.map(prompts, client=client, concurrency=8, cache=True, progress=False)
        assert res.failed == 20 and len(res) == 200
        failed = [it for it in res if not it.ok]
        assert [it.index for it in failed] == list(range(0, 200, 10))
        assert all(it.output is None and it.error for it in failed)
        assert {it.error.split(":")[0] for it in failed} == {
            "RateLimitError",
            "ProviderError",
            "NetworkError",
        }
        assert len(srv.requests) == 200

        again = llmnb.batch.map(prompts, client=client, concurrency=8, cache=True, progress=False)
        assert len(srv.requests) == 220  # only the 20 failed rows were asked again
        assert again.failed == 0 and again.cached == 180


def test_errors_raise_stops_the_batch_with_the_typed_error(tracker: UsageTracker) -> None:
    with FakeLLMServer(echo=True) as srv:
        srv.script(Fault.status(400))
        client = _client(srv, tracker, retries=0)
        with pytest.raises(errors.InvalidRequestError):
            llmnb.batch.map(["item 1", "item 2"], client=client, concurrency=1, errors="raise")


class Counting(Provider):
    """An async provider that counts the calls in flight at once."""

    type_name: ClassVar[str] = "counting"

    def __init__(self) -> None:
        super().__init__("counting", {}, "m")
        self.now = self.peak = self.calls = 0

    async def acomplete(self, request: Request) -> Completion:
        self.now += 1
        self.calls += 1
        self.peak = max(self.peak, self.now)
        await asyncio.sleep(0.001)
        self.now -= 1
        return Completion(content="ok", model="m", usage=Usage(1, 1))


def test_concurrency_bounds_the_calls_in_flight(tracker: UsageTracker) -> None:
    provider = Counting()
    client = LLMClient(provider, tracker=tracker, cache=False)
    res = llmnb.batch.map(["x"] * 100, client=client, concurrency=7, progress=False)
    assert res.failed == 0 and provider.calls == 100
    assert provider.peak == 7


class Admitted(OpenAICompatibleProvider):
    """Notes the (manual) clock time at which each attempt reaches the provider."""

    type_name: ClassVar[str] = "admitted"

    def __init__(self, base_url: str, clock: ManualClock) -> None:
        super().__init__("limited", {"base_url": base_url, "model": "m"}, "m")
        self.clock = clock
        self.times: list[float] = []

    async def acomplete(self, request: Request) -> Completion:
        self.times.append(self.clock.now())
        return await super().acomplete(request)


def test_the_rate_limiter_paces_the_batch(server: FakeLLMServer, tracker: UsageTracker) -> None:
    clock = ManualClock()
    provider = Admitted(server.base_url, clock)
    limiter = RateLimiter(requests_per_minute=10, clock=clock)
    client = LLMClient(provider, tracker=tracker, cache=False, middleware=[limiter])
    res = llmnb.batch.map([f"hello {i}" for i in range(25)], client=client, concurrency=16)
    assert res.failed == 0 and len(server.requests) == 25
    times = sorted(provider.times)
    for t in times:  # no 60-second window ever saw more than the limit
        assert sum(1 for u in times if t - 60 < u <= t) <= 10
    assert times[-1] - times[0] >= 120  # 25 calls at 10/min need three windows


def test_progress_bar_shows_rows_errors_and_running_cost(
    server: FakeLLMServer, tracker: UsageTracker, capsys: pytest.CaptureFixture[str]
) -> None:
    client = _client(server, tracker)
    res = llmnb.batch.map(["hello"] * 5, client=client, concurrency=2, progress=True)
    err = capsys.readouterr().err
    assert "5/5" in err and "0 errors" in err
    assert f"${res.cost_usd:.4f}" in err and res.cost_usd > 0


def test_dry_run_renders_prompts_and_estimates_cost_without_calls(
    server: FakeLLMServer, tracker: UsageTracker
) -> None:
    df = pd.DataFrame({"text": ["alpha", "beta gamma"]}, index=["a", "b"])
    client = _client(server, tracker)
    dry = df.llm.complete("Summarize: {text}", client=client, dry_run=True, max_tokens=100)
    assert isinstance(dry, llmnb.batch.DryRun)
    assert dry.prompts == ["Summarize: alpha", "Summarize: beta gamma"]
    price = price_for("m", "openai_compatible", server.base_url, PRICE)
    assert price is not None
    expected = sum(cost_of(price, n, 100) for n in dry.input_tokens)
    assert dry.cost_usd == pytest.approx(expected) and dry.cost_source == "estimate"
    assert dry.output_tokens == [100, 100]
    half = llmnb.batch.map(
        dry.prompts, client=client, dry_run=True, max_tokens=100, mode="batch_api"
    )
    assert half.cost_usd == pytest.approx(expected / 2)
    assert server.requests == [] and len(tracker) == 0


def test_dry_run_of_an_unknown_price_is_nan_not_zero(tracker: UsageTracker) -> None:
    client = LLMClient(Counting(), tracker=tracker, cache=False)
    dry = llmnb.batch.estimate(["hi"], client=client)
    assert math.isnan(dry.cost_usd) and dry.cost_source == "unknown"


def test_the_accessor_adds_output_and_error_columns(
    server: FakeLLMServer, tracker: UsageTracker
) -> None:
    df = pd.DataFrame({"text": ["hello", "hello there", "boom"]}, index=["a", "b", "c"])
    server.set_handler(
        lambda r: Fault.status(400) if "boom" in r.json["messages"][-1]["content"] else None
    )
    client = _client(server, tracker, retries=0)
    out = df.llm.complete("Say: {text}", client=client, out="summary", progress=False)
    assert list(out.columns) == ["text", "summary", "summary_error"]
    assert list(out.index) == ["a", "b", "c"]
    assert out.loc["a", "summary"] == "Hi there!" and out.loc["a", "summary_error"] is None
    assert out.loc["c", "summary"] is None
    assert out.loc["c", "summary_error"].startswith("InvalidRequestError:")
    assert out.attrs["llm"]["errors"] == 1 and out.attrs["llm"]["answered"] == 2
    assert list(df.columns) == ["text"]  # the caller's frame is not changed


def test_a_system_message_and_a_series_accessor(
    server: FakeLLMServer, tracker: UsageTracker
) -> None:
    client = _client(server, tracker)
    s = pd.Series(["hello", "bye"], name="greeting")
    out = s.llm.complete("{}!", system="Be brief.", client=client, progress=False)
    assert list(out.columns) == ["greeting", "output", "output_error"]
    # the two rows run concurrently: the server may see them in either order
    sent = sorted((r.json["messages"] for r in server.requests), key=lambda m: m[1]["content"])
    assert sent == [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "bye!"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello!"}],
    ]


class City(pydantic.BaseModel):
    name: str
    population: int


def test_response_model_puts_validated_objects_in_the_column(tracker: UsageTracker) -> None:
    answers = {
        "japan": '{"name": "Tokyo", "population": 37}',
        "france": '{"name": "Paris", "population": 11}',
    }
    with FakeLLMServer(responses=answers) as srv:
        client = _client(srv, tracker)
        df = pd.DataFrame({"country": ["Japan", "France"]})
        out = df.llm.complete(
            "Largest city of {country}?", client=client, response_model=City, out="city",
            progress=False,
        )  # fmt: skip
    assert out["city"].tolist() == [
        City(name="Tokyo", population=37),
        City(name="Paris", population=11),
    ]


def test_the_accessor_validates_before_sending(
    server: FakeLLMServer, tracker: UsageTracker
) -> None:
    with pytest.raises(AttributeError, match="unique column names"):
        _ = pd.DataFrame([[1, 2]], columns=["a", "a"]).llm
    with pytest.raises(AttributeError, match="Series of text"):
        _ = pd.Series([1, 2]).llm
    df = pd.DataFrame({"text": ["x"]})
    with pytest.raises(errors.InvalidOptionError, match=r"\{txt\} is not a column.*'text'"):
        df.llm.complete("Summarize: {txt}", client=_client(server, tracker))
    with pytest.raises(errors.InvalidOptionError, match="errors="):
        df.llm.complete("{text}", client=_client(server, tracker), errors="ignore")
    assert server.requests == []


def test_map_runs_inside_a_running_event_loop_like_jupyter(
    server: FakeLLMServer, tracker: UsageTracker
) -> None:
    client = _client(server, tracker)

    async def cell() -> Any:
        # A notebook cell calls the sync API while the kernel's loop is running.
        return llmnb.batch.map(["hello", "hello"], client=client, progress=False)

    res = asyncio.run(cell())
    assert res.outputs == ["Hi there!", "Hi there!"]
    assert len(tracker) == 2  # the rows reached this context's tracker

    async def cell_await() -> Any:
        return await llmnb.batch.amap(["hello"], client=client, progress=False)

    assert asyncio.run(cell_await()).outputs == ["Hi there!"]


def test_a_batch_resumes_in_another_kernel_through_the_redis_cache(
    redis_url: str, tracker: UsageTracker
) -> None:
    prompts = [f"item {i}" for i in range(200)]
    with FakeLLMServer(echo=True) as srv:
        first = _client(srv, tracker, cache=RedisCache(redis_url))
        assert llmnb.batch.map(prompts, client=first, cache=True, progress=False).failed == 0
        assert len(srv.requests) == 200
        later = _client(srv, UsageTracker(), cache=RedisCache(redis_url))  # a new kernel
        res = llmnb.batch.map(prompts, client=later, cache=True, progress=False)
        assert len(srv.requests) == 200 and res.cached == 200
        assert res.outputs == [f"Echo: {p}" for p in prompts]


_IMPORT_ORDER = """
import sys
{first}
assert ("pandas" in sys.modules) == {pandas_first}, "import llmnb must not import pandas"
{second}
df = pandas.DataFrame({{"text": ["x"]}})
print(type(df.llm).__name__)
"""


@pytest.mark.parametrize("pandas_first", [True, False])
def test_df_llm_exists_after_import_llmnb_in_either_order(pandas_first: bool) -> None:
    a, b = "import pandas", "import llmnb"
    first, second = (a, b) if pandas_first else (b, a)
    code = _IMPORT_ORDER.format(first=first, second=second, pandas_first=pandas_first)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "LLMFrameAccessor"


def test_import_llmnb_loads_none_of_the_team_extras() -> None:
    code = (
        "import sys, llmnb, llmnb.usage, llmnb.middleware;"
        "llmnb.create_llm_client_from_profile(profile='demo').complete('hi');"
        "heavy = ('pandas', 'redis', 'sqlalchemy', 'psycopg', 'tqdm', 'llmnb.batch');"
        "print([m for m in heavy if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
