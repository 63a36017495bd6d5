"""``%%llm --tools`` and ``--approve`` in a real IPython shell against FakeLLMServer."""

from __future__ import annotations

import pytest
from _magics_shell import ip_fixture, mock_settings, run

from llmnb.testing import FakeLLMServer, Fault

ip = ip_fixture

DEFINE = '''
def get_weather(city: str) -> dict:
    """Current weather for a city."""
    calls.append(city)
    return {"city": city, "rain": True}
calls = []
'''


@pytest.fixture
def fake(ip, write_settings):
    with FakeLLMServer() as srv:
        profile = {"type": "openai_compatible", "model": "fake-model", "base_url": srv.base_url}
        write_settings(mock_settings(fake=profile))
        run(ip, DEFINE)
        yield srv


def test_tools_run_and_are_shown(ip, fake, tracker) -> None:
    fake.script(Fault.tool_call("get_weather", {"city": "Paris"}), Fault.reply("Take an umbrella."))
    ran = run(ip, "%%llm --tools get_weather\nUmbrella in Paris?")
    assert ran.result.success, ran.text
    assert "Take an umbrella." in str(ran.data("text/markdown"))
    assert "get_weather(city='Paris') → {'city': 'Paris', 'rain': True}" in ran.text
    assert ip.user_ns["calls"] == ["Paris"]
    assert [r.round for r in tracker.records] == [1, 2]
    assert fake.requests[0].json["tools"][0]["function"]["name"] == "get_weather"


def test_unknown_or_not_callable_names_are_usage_errors(ip, fake) -> None:
    ran = run(ip, "%%llm --tools nope\nhi")
    assert "'nope' is not defined in the notebook" in ran.text
    run(ip, "x = 3")
    ran = run(ip, "%%llm --tools x\nhi")
    assert "'x' is a int, not a function" in ran.text
    assert fake.requests == []


@pytest.mark.parametrize(("answer", "ran_it"), [("y", True), ("n", False)])
def test_approve_asks_before_each_call(ip, fake, monkeypatch, answer, ran_it) -> None:
    asked: list[str] = []

    def fake_input(prompt: str) -> str:
        asked.append(prompt)
        return answer

    monkeypatch.setattr("builtins.input", fake_input)
    fake.script(Fault.tool_call("get_weather", {"city": "Oslo"}), Fault.reply("done"))
    ran = run(ip, "%%llm --tools get_weather --approve\nOslo?")
    assert ran.result.success, ran.text
    assert asked == ['run get_weather({"city": "Oslo"})? [y/N] ']
    assert (ip.user_ns["calls"] == ["Oslo"]) is ran_it
    sent = fake.requests[1].json["messages"][-1]["content"]
    assert ("did not allow" in sent) is not ran_it
