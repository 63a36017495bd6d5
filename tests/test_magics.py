"""%%llm in a real IPython shell: options, rendering, output metadata, --out, streaming,
chat memory, agents, dry runs and --compare — against the mock profile and FakeLLMServer."""

from __future__ import annotations

import json
import math
import time

import pytest
from _magics_shell import ip_fixture, mock_settings, run

from llmnb.testing import FakeLLMServer

ip = ip_fixture


def _server_settings(srv: FakeLLMServer, **extra: object) -> dict[str, object]:
    profile = {"type": "openai_compatible", "model": "fake-model", "base_url": srv.base_url}
    return mock_settings(fake={**profile, **extra})


# -- the answer and its footer ---------------------------------------------------------


def test_cell_prompt_is_answered_as_markdown_with_footer_and_metadata(ip, tracker):
    ran = run(ip, "%%llm\nWhat is SSE?")
    answer, footer = ran.outputs
    assert answer.data["text/markdown"] == "[mock-1] You said: What is SSE?"
    assert footer.data["text/plain"].startswith("demo · mock-1 · ~")
    assert "tokens · n/a · " in footer.data["text/plain"]  # mock-1 has no price: n/a, not $0
    meta = answer.metadata["llmnb"]
    assert meta["profile"] == "demo" and meta["model"] == "mock-1"
    assert meta["usage"]["cost_usd"] is None
    assert meta["usage"]["cost_source"] == "unknown"
    assert meta["usage"]["prompt_tokens"] > 0 and meta["usage"]["completion_tokens"] > 0
    assert len(tracker) == 1


def test_footer_shows_the_cost_when_the_price_is_known(ip, write_settings):
    pricing = {"input_per_mtok": 1000, "output_per_mtok": 2000}
    write_settings(mock_settings(priced={"type": "mock", "model": "m", "pricing": pricing}))
    ran = run(ip, "%%llm\nhello")
    answer, footer = ran.outputs
    # "hello": 2 tokens in; "[m] You said: hello": 5 tokens out (estimated by the mock)
    assert answer.metadata["llmnb"]["usage"]["cost_usd"] == pytest.approx(0.012)
    assert answer.metadata["llmnb"]["usage"]["cost_source"] == "estimate"
    assert "~2→5 tokens · ~$0.012 · " in footer.data["text/plain"]


def test_footer_can_be_switched_off(ip):
    run(ip, "%config LLMMagics.show_footer = False")
    ran = run(ip, "%%llm\nhi")
    assert len(ran.outputs) == 1


def test_one_line_prompt_and_llmnb_alias(ip):
    assert run(ip, "%llm What is 2+2?").data("text/markdown") == ["[mock-1] You said: What is 2+2?"]
    assert run(ip, "%%llmnb\nhello").data("text/markdown") == ["[mock-1] You said: hello"]
    assert run(ip, "%llmnb hi there").data("text/markdown") == ["[mock-1] You said: hi there"]


def test_help_is_the_docstring_with_every_option(ip):
    doc = ip.find_cell_magic("llm").__doc__
    for option in (
        "--profile",
        "--model",
        "--temperature",
        "--max-tokens",
        "--system",
        "--format",
        "--stream",
        "--out",
        "--chat",
        "--agent",
        "--step",
        "--no-cache",
        "--dry-run",
        "--compare",
        "--insert",
        "PROFILE[:MODEL]",
    ):
        assert option in doc
    assert ip.find_cell_magic("llmnb").__doc__ == doc


# -- choosing profile and model ----------------------------------------------------------


def test_profile_and_model_from_the_line(ip, write_settings):
    write_settings(mock_settings(other={"type": "mock", "model": "o-1"}))
    assert run(ip, "%%llm demo\nhi").data("text/markdown") == ["[mock-1] You said: hi"]
    assert run(ip, "%%llm demo:mock-9\nhi").data("text/markdown") == ["[mock-9] You said: hi"]
    assert run(ip, "%%llm -p demo -m mock-7\nhi").data("text/markdown") == ["[mock-7] You said: hi"]
    assert run(ip, "%%llm\nhi").data("text/markdown") == ["[o-1] You said: hi"]  # active
    assert run(ip, "%llm -m o-2 hi").data("text/markdown") == ["[o-2] You said: hi"]


def test_temperature_max_tokens_and_system_reach_the_wire(ip, write_settings):
    with FakeLLMServer(default_response="ok") as srv:
        write_settings(_server_settings(srv))
        ran = run(ip, '%%llm -t 0.2 --max-tokens 50 -s "Be brief."\nExplain SSE')
        body = srv.last_request.json
    assert ran.data("text/markdown") == ["ok"]
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 50
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Explain SSE"},
    ]


def test_one_liner_options_stop_at_the_prompt(ip, write_settings):
    with FakeLLMServer(default_response="ok") as srv:
        write_settings(_server_settings(srv))
        run(ip, "%llm -t0.5 -s 'Be brief.' --max-tokens=9 What's -1 in binary? -t 3")
        body = srv.last_request.json
    assert body["temperature"] == 0.5 and body["max_tokens"] == 9
    assert body["messages"][-1]["content"] == "What's -1 in binary? -t 3"


def test_agent_and_step_parameters(ip, write_settings):
    with FakeLLMServer(default_response="ok") as srv:
        settings = _server_settings(srv)
        settings["llm"]["agents"] = {  # type: ignore[index]
            "planner": {
                "params": {"temperature": 0.2},
                "steps": {"draft": {"temperature": 0.7, "max_tokens": 800}},
            }
        }
        write_settings(settings)
        run(ip, "%%llm --agent planner\nplan")
        assert srv.last_request.json["temperature"] == 0.2
        run(ip, "%%llm --agent planner --step draft\nplan")
        assert srv.last_request.json["temperature"] == 0.7
        assert srv.last_request.json["max_tokens"] == 800
        run(ip, "%%llm --agent planner --step draft -t 0\nplan")
        assert srv.last_request.json["temperature"] == 0


def test_session_parameters_apply_below_the_cell_options(ip, write_settings):
    from llmnb import config

    with FakeLLMServer(default_response="ok") as srv:
        write_settings(_server_settings(srv))
        config.set_session_params(temperature=0.3, max_tokens=70)  # as the picker does
        run(ip, "%%llm\nhi")
        assert (srv.last_request.json["temperature"], srv.last_request.json["max_tokens"]) == (
            0.3,
            70,
        )
        run(ip, "%%llm -t 0.9\nhi")
        assert srv.last_request.json["temperature"] == 0.9


def test_clients_are_reused_across_cells_until_the_settings_change(ip, write_settings):
    with FakeLLMServer(default_response="ok") as srv:
        write_settings(_server_settings(srv))
        run(ip, "%%llm\none")
        run(ip, "%%llm\ntwo")
        assert srv.connections_opened == 1  # one keep-alive connection for both cells
        time.sleep(0.01)  # a new mtime for the rewritten file
        write_settings(_server_settings(srv, model="other-model"))
        run(ip, "%%llm\nthree")
        assert srv.last_request.json["model"] == "other-model"


def test_no_cache_reaches_the_client_not_the_wire(ip, write_settings):
    # What skipping the cache does is the client's business (tested with the cache);
    # here: the option is accepted and is not sent to the provider as a parameter.
    with FakeLLMServer(default_response="fresh") as srv:
        write_settings(_server_settings(srv))
        ran = run(ip, "%%llm --no-cache\nhi")
        body = srv.last_request.json
    assert ran.data("text/markdown") == ["fresh"]
    assert "cache" not in body


# -- formats, --out, --insert ------------------------------------------------------------


def _answering(write_settings, text: str) -> None:
    write_settings(mock_settings(bot={"type": "mock", "model": "b", "default_response": text}))


def test_format_text(ip):
    ran = run(ip, "%%llm -f text -o answer\nhi")
    assert ran.outputs[0].data == {"text/plain": "[mock-1] You said: hi"}
    assert ip.user_ns["answer"] == "[mock-1] You said: hi"


def test_default_format_is_a_setting(ip):
    run(ip, '%config LLMMagics.default_format = "text"')
    assert run(ip, "%%llm\nhi").outputs[0].data == {"text/plain": "[mock-1] You said: hi"}


def test_format_code_strips_fences_stores_and_inserts(ip, write_settings):
    _answering(write_settings, "Here you go:\n```python\ndf = df.drop_duplicates()\n```\nEnjoy.")
    ran = run(ip, "%%llm -f code -o snippet --insert\ndrop duplicates")
    assert ran.outputs[0].data["text/markdown"] == "```python\ndf = df.drop_duplicates()\n```"
    assert ran.outputs[0].data["text/plain"] == "df = df.drop_duplicates()"
    assert ip.user_ns["snippet"] == "df = df.drop_duplicates()"
    assert ip.rl_next_input == "df = df.drop_duplicates()"


def test_format_json_parses_into_out(ip, write_settings):
    _answering(write_settings, '```json\n{"rows": 3, "cols": ["a", "b"]}\n```')
    ran = run(ip, "%%llm -f json -o data\nshape?")
    assert ip.user_ns["data"] == {"rows": 3, "cols": ["a", "b"]}
    assert ran.outputs[0].data["application/json"] == {"rows": 3, "cols": ["a", "b"]}


def test_invalid_json_is_one_clear_line_and_sets_nothing(ip, write_settings):
    _answering(write_settings, "Sure! {rows: 3}")
    ran = run(ip, "%%llm -f json -o data\nshape?")
    assert "data" not in ip.user_ns
    assert ran.outputs[0].data == {"text/plain": "Sure! {rows: 3}"}  # the raw answer stays
    errors = [line for line in ran.error_lines if "Error" in line]
    assert len(errors) == 1
    assert errors[0].startswith("ResponseFormatError: -f json: the answer is not valid JSON")
    assert "Traceback" not in ran.text


def test_format_html_and_math(ip, write_settings):
    _answering(write_settings, "<b>bold</b>")
    assert run(ip, "%%llm -f html\nx").outputs[0].data["text/html"] == "<b>bold</b>"
    _answering(write_settings, r"\frac{a}{b}")
    data = run(ip, "%%llm -f math\nx").outputs[0].data
    assert data["text/latex"] == "$$\n\\frac{a}{b}\n$$"
    assert data["text/plain"] == r"\frac{a}{b}"


def test_out_stores_markdown_text(ip):
    run(ip, "%%llm -o reply\nhello")
    assert ip.user_ns["reply"] == "[mock-1] You said: hello"


# -- streaming ---------------------------------------------------------------------------


def test_stream_updates_the_display_until_the_full_text(ip, write_settings):
    text = "Server-sent events stream text over one HTTP response, chunk by chunk."
    write_settings(
        mock_settings(
            slow={"type": "mock", "model": "s", "default_response": text, "stream_chunk_size": 5}
        )
    )
    run(ip, "%config LLMMagics.stream_throttle = 0")
    ran = run(ip, "%%llm --stream -o streamed\ngo")
    first = ran.outputs[0]
    display_id = first.transient["display_id"]
    updates = [o for o in ran.outputs if o.update and o.transient["display_id"] == display_id]
    assert len(updates) > 2
    partial = [u.data["text/plain"] for u in updates[:-1]]
    assert any(0 < len(p) < len(text) for p in partial)  # text was shown while arriving
    assert updates[-1].data["text/markdown"] == text
    assert updates[-1].metadata["llmnb"]["model"] == "s"
    assert ip.user_ns["streamed"] == text
    assert ran.outputs[-1].data["text/plain"].startswith("slow · s · ")  # the footer


def test_stream_updates_are_throttled(ip, write_settings):
    text = "x" * 200
    write_settings(
        mock_settings(
            slow={"type": "mock", "model": "s", "default_response": text, "stream_chunk_size": 1}
        )
    )
    run(ip, "%config LLMMagics.stream_throttle = 60")
    ran = run(ip, "%%llm --stream\ngo")
    updates = [o for o in ran.outputs if o.update]
    assert len(updates) == 1  # 200 chunks, one final update
    assert updates[0].data["text/markdown"] == text


def test_stream_against_the_fake_server(ip, write_settings):
    with FakeLLMServer(default_response="Hello from the stream!", chunk_size=3) as srv:
        write_settings(_server_settings(srv))
        run(ip, "%config LLMMagics.stream_throttle = 0")
        ran = run(ip, "%%llm --stream\nhi")
        assert srv.last_request.json["stream"] is True
    updates = [o for o in ran.outputs if o.update]
    assert len(updates) > 2
    assert updates[-1].data["text/markdown"] == "Hello from the stream!"


# -- chat memory -------------------------------------------------------------------------


def test_chat_sends_earlier_turns(ip, write_settings):
    with FakeLLMServer(echo=True) as srv:
        write_settings(_server_settings(srv))
        run(ip, "%%llm --chat\nMy name is Ada.")
        run(ip, "%%llm --chat\nWhat is my name?")
        sent = srv.last_request.json["messages"]
        assert sent == [
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Echo: My name is Ada."},
            {"role": "user", "content": "What is my name?"},
        ]
        run(ip, "%%llm\nno memory here")
        assert len(srv.last_request.json["messages"]) == 1
        run(ip, "%%llm --chat other\nseparate")
        assert len(srv.last_request.json["messages"]) == 1
        run(ip, "%llm reset default")
        run(ip, "%%llm --chat\nafter reset")
        assert len(srv.last_request.json["messages"]) == 1


def test_chat_keeps_the_system_prompt_and_limits_history(ip, write_settings):
    with FakeLLMServer(echo=True) as srv:
        write_settings(_server_settings(srv))
        run(ip, "%config LLMMagics.max_chat_history = 2")
        run(ip, "%%llm --chat c -s 'You are terse.'\none")
        for word in ("two", "three", "four"):
            run(ip, f"%%llm --chat c\n{word}")
        sent = srv.last_request.json["messages"]
    assert sent[0] == {"role": "system", "content": "You are terse."}
    assert [m["content"] for m in sent[1:]] == ["three", "Echo: three", "four"]


def test_chat_token_limit_is_a_setting(ip, write_settings):
    with FakeLLMServer(echo=True) as srv:
        write_settings(_server_settings(srv))
        run(ip, "%config LLMMagics.max_chat_tokens = 1")  # less than a turn: the newest only
        run(ip, "%%llm --chat -s 'Short.'\nfirst question")
        run(ip, "%%llm --chat --stream\nsecond question")
        sent = srv.last_request.json["messages"]
    assert [m["content"] for m in sent] == ["Short.", "second question"]


def test_failed_or_dry_turns_are_not_remembered(ip, write_settings):
    with FakeLLMServer(echo=True) as srv:
        write_settings(_server_settings(srv, max_retries=0))
        run(ip, "%%llm --chat\nfirst")
        from llmnb.testing import Fault

        srv.script(Fault.status(500))
        run(ip, "%%llm --chat\nthis one fails")
        run(ip, "%%llm --chat --dry-run\nonly a preview")
        run(ip, "%%llm --chat\nthird")
        contents = [m["content"] for m in srv.last_request.json["messages"]]
    assert contents == ["first", "Echo: first", "third"]


def test_chat_in_a_one_liner(ip):
    run(ip, "%llm --chat=notes remember 42")
    ran = run(ip, "%llm --chat=notes what number?")
    assert "chat 'notes': 2 turns" in ran.outputs[-1].data["text/plain"]


# -- dry run -----------------------------------------------------------------------------


def test_dry_run_shows_everything_and_sends_nothing(ip, write_settings, tracker):
    pricing = {"input_per_mtok": 1000, "output_per_mtok": 2000}
    with FakeLLMServer() as srv:
        write_settings(_server_settings(srv, pricing=pricing))
        ip.user_ns["topic"] = "SSE"
        ran = run(ip, "%%llm --dry-run -t 0.3 --max-tokens 100 -s 'Be brief.'\nExplain {topic}")
        assert srv.requests == []
    assert len(tracker) == 0
    shown = ran.outputs[0].data["text/plain"]
    assert "nothing was sent" in shown
    assert "Explain SSE" in shown and "Be brief." in shown
    assert "fake" in shown and "fake-model" in shown
    assert "max_tokens=100" in shown and "temperature=0.3" in shown
    prompt_tokens = math.ceil(len("Be brief.") / 4) + math.ceil(len("Explain SSE") / 4)
    assert f"${prompt_tokens * 1000 / 1e6:.4f}" in shown  # prompt cost at $1000/Mtok
    assert "(≤ $0.20)" in shown  # at most 100 answer tokens at $2000/Mtok
    # The total a user can expect to pay at most: prompt cost + the answer's ceiling.
    assert f"≤ ${prompt_tokens * 1000 / 1e6 + 0.2:.2f}" in shown


def test_dry_run_with_unknown_price_says_na(ip):
    ran = run(ip, "%%llm --dry-run\nhi")
    shown = ran.outputs[0].data["text/plain"]
    assert "n/a" in shown and "$0 " not in shown


# -- compare -----------------------------------------------------------------------------


def test_compare_runs_concurrently_and_shows_one_table(ip, write_settings, tracker):
    slow = {"type": "mock", "delay": 0.4}
    write_settings(
        mock_settings(
            a={**slow, "model": "a-1"}, b={**slow, "model": "b-1"}, c={**slow, "model": "c-1"}
        )
    )
    run(ip, "%%llm -p demo\nwarm up")  # first-use imports (pricing…) are not what is timed
    tracker.clear()
    started = time.perf_counter()
    ran = run(ip, "%%llm --compare a,b,c:c-2 -o answers\nhi")
    wall = time.perf_counter() - started
    assert wall < 0.9  # closer to the slowest call (0.4 s) than to the sum (1.2 s)
    table = ran.outputs[0].data["text/plain"]
    for line in ("a-1", "b-1", "c-2"):
        assert f"[{line}] You said: hi" in table
    assert ip.user_ns["answers"] == {
        "a": "[a-1] You said: hi",
        "b": "[b-1] You said: hi",
        "c": "[c-2] You said: hi",
    }
    assert sorted(tracker.to_dataframe()["model"]) == ["a-1", "b-1", "c-2"]  # our tracker
    assert [m["model"] for m in ran.outputs[0].metadata["llmnb"]["compare"]] == [
        "a-1",
        "b-1",
        "c-2",
    ]
    assert "3 profiles" in ran.outputs[-1].data["text/plain"]


def test_compare_shows_a_failing_profile_in_its_row(ip, write_settings):
    write_settings(
        mock_settings(
            ok={"type": "mock", "model": "ok-1"},
            bad={"type": "mock", "model": "bad-1", "errors": ["auth"], "max_retries": 0},
        )
    )
    ran = run(ip, "%%llm --compare ok,bad -o got\nhi")
    table = ran.outputs[0].data["text/plain"]
    assert "AuthenticationError" in table and "[ok-1] You said: hi" in table
    assert ip.user_ns["got"] == {"ok": "[ok-1] You said: hi", "bad": None}


def test_compare_with_json_format_parses_each_answer(ip, write_settings):
    write_settings(
        mock_settings(
            j1={"type": "mock", "model": "j", "default_response": '{"n": 1}'},
            j2={"type": "mock", "model": "j", "default_response": '```json\n{"n": 2}\n```'},
        )
    )
    run(ip, "%%llm --compare j1,j2 -f json -o parsed\ncount")
    assert ip.user_ns["parsed"] == {"j1": {"n": 1}, "j2": {"n": 2}}


@pytest.mark.parametrize("extra", ["--stream", "--chat", "-p demo", "--insert -f code"])
def test_compare_rejects_options_it_cannot_honour(ip, extra):
    ran = run(ip, f"%%llm --compare demo,demo {extra}\nhi")
    assert ran.stderr.startswith("UsageError: ")
    assert ran.outputs == []


def test_metadata_is_json_serialisable(ip):
    ran = run(ip, "%%llm\nhi")
    json.dumps(ran.outputs[0].metadata)
