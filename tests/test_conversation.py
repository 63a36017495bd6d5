"""SessionManager: conversation memory with history limits, saved and loaded as JSON."""

from __future__ import annotations

import json

import pytest

from llmnb.conversation import SessionManager, estimate_message_tokens


def _chat(turns: int, **kw: object) -> SessionManager:
    chat = SessionManager("t", system="Be terse.", **kw)  # type: ignore[arg-type]
    for i in range(1, turns + 1):
        chat.add_user(f"q{i}")
        chat.add_assistant(f"a{i}")
    return chat


def test_messages_in_order_with_the_system_prompt_first():
    chat = _chat(2)
    assert chat.get_messages() == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
    ]
    assert chat.turns == 2 and len(chat) == 5


def test_turn_limit_keeps_the_newest_turns_and_the_system_prompt():
    chat = _chat(5, max_turns=2)
    contents = [m["content"] for m in chat.get_messages()]
    assert contents == ["Be terse.", "q4", "a4", "q5", "a5"]
    assert len(chat.messages) == 11  # the full history is still there
    assert [m["content"] for m in chat.get_messages(max_turns=1)] == ["Be terse.", "q5", "a5"]


def test_token_limit_drops_the_oldest_turns_but_keeps_the_newest():
    chat = SessionManager("t", system="S")
    for i in range(4):
        chat.add_user("x" * 40)  # 10 tokens + 4 per message
        chat.add_assistant(f"a{i}")  # 1 token + 4
    per_turn = estimate_message_tokens({"content": "x" * 40}) + estimate_message_tokens(
        {"content": "a0"}
    )
    system = estimate_message_tokens({"content": "S"})
    window = chat.get_messages(max_tokens=system + 2 * per_turn)
    assert [m["content"] for m in window] == ["S", "x" * 40, "a2", "x" * 40, "a3"]
    tiny = chat.get_messages(max_tokens=1)  # less than one turn: the newest turn still goes
    assert [m["content"] for m in tiny] == ["S", "x" * 40, "a3"]


def test_both_limits_apply_together():
    chat = _chat(6, max_turns=4, max_tokens=200)
    assert chat.get_messages()[1]["content"] == "q3"
    small = estimate_message_tokens({"content": "Be terse."}) + 2 * 2 * (1 + 4)
    assert [m["content"] for m in chat.get_messages(max_tokens=small)][1:] == [
        "q5",
        "a5",
        "q6",
        "a6",
    ]


def test_set_system_replaces_and_pop_removes_the_newest():
    chat = _chat(1)
    chat.set_system("Be kind.")
    chat.add_user("q2")
    assert chat.pop() == {"role": "user", "content": "q2"}
    assert chat.get_messages()[0] == {"role": "system", "content": "Be kind."}
    assert sum(m["role"] == "system" for m in chat.messages) == 1
    chat.set_system(None)
    assert all(m["role"] != "system" for m in chat.messages)


def test_clear_forgets_everything():
    chat = _chat(3)
    chat.clear()
    assert chat.get_messages() == [] and chat.turns == 0
    with pytest.raises(IndexError):
        chat.pop()


def test_save_and_load_round_trip_without_anything_else(tmp_path):
    chat = _chat(2, max_turns=3, max_tokens=500)
    path = chat.save(tmp_path / "chat.json")
    data = json.loads(path.read_text())
    assert set(data) == {"llmnb_conversation", "name", "max_turns", "max_tokens", "messages"}
    again = SessionManager.load(path)
    assert again.messages == chat.messages
    assert (again.name, again.max_turns, again.max_tokens) == ("t", 3, 500)


def test_load_rejects_what_is_not_a_conversation(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"messages": [{"role": "user"}]}')
    with pytest.raises(ValueError, match="message 0 needs 'role' and 'content'"):
        SessionManager.load(bad)
    bad.write_text("not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        SessionManager.load(bad)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.add_message("wizard", "x"), ValueError),
        (lambda c: c.add_message("user", 3), TypeError),
        (lambda c: SessionManager(max_turns=-1), ValueError),
        (lambda c: c.get_messages(max_tokens=1.5), ValueError),
    ],
)
def test_mistakes_are_clear_errors(call, error):
    with pytest.raises(error):
        call(SessionManager())


def test_repr_shows_size_not_content():
    chat = _chat(2, max_turns=5)
    assert repr(chat) == "<SessionManager 't': 5 messages, 2 turns, max_turns=5, max_tokens=None>"
