"""Prompt interpolation: {name}/{expr}/{In[n]}/{Out[n]} filled in, code and JSON left alone."""

from __future__ import annotations

import pytest
from _magics_shell import ip_fixture, run

from llmnb.notebook._interpolate import InterpolationError, interpolate

ip = ip_fixture


class Frame:
    def head(self, n: int = 2) -> str:
        return f"<first {n} rows>"


NS = {"name": "Ada", "df": Frame(), "rows": [3, 1, 2], "d": {"k": "v"}, "n": 4}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi {name}!", "Hi Ada!"),
        ("Table: {df.head()}", "Table: <first 2 rows>"),
        ("Table: {df.head(5)}", "Table: <first 5 rows>"),
        ("{len(rows)} rows, sorted {sorted(rows)}", "3 rows, sorted [1, 2, 3]"),
        ("{d['k']}", "v"),
        ("{[x * n for x in rows]}", "[12, 4, 8]"),  # comprehension sees the namespace
        ("{ name }", "Ada"),
    ],
)
def test_expressions_from_the_namespace_are_filled_in(text, expected):
    assert interpolate(text, dict(NS)).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "{k: v for k, v in d.items()}",  # dict comprehension
        "{x for x in rows}",  # set comprehension
        '{"a": 1, "b": [1, 2]}',  # JSON / dict literal
        '{"a": {"b": {"c": 1}}}',  # nested JSON ending in }}}
        "def f():\n    return {'x': 1}",  # code
        "s = {1, 2}",  # set literal
        "{name, n}",  # a bare tuple reads as a set literal: code
        "{}",
        "{1}",
        "{list}",  # builtins alone are not a reference to the user's data
        "unbalanced { here",
        "and } there",
        "{x := 3}",
        "{lambda: name}",
    ],
)
def test_code_and_json_are_left_as_written(text):
    result = interpolate(text, dict(NS))
    assert result.text == text
    assert result.missing == []


def test_a_lambda_inside_an_expression_binds_its_arguments():
    assert interpolate("{(lambda: name)()}", dict(NS)).text == "Ada"
    assert interpolate("{sorted(rows, key=lambda r: -r)}", dict(NS)).text == "[3, 2, 1]"


def test_missing_names_stay_literal_and_are_reported():
    result = interpolate("Dear {user}, see {report.total} and {name}.", dict(NS))
    assert result.text == "Dear {user}, see {report.total} and Ada."
    assert result.missing == [("user", ["user"]), ("report.total", ["report"])]
    note = result.note()
    assert note is not None
    assert "{user}" in note and "{report.total}" in note and "report, user not defined" in note
    assert interpolate("{name}", dict(NS)).note() is None


def test_double_braces_escape():
    assert interpolate("{{name}} is {name}", dict(NS)).text == "{name} is Ada"
    assert interpolate("{{x: 1}}", dict(NS)).text == "{x: 1}"
    assert interpolate("f'{{name}}'", dict(NS)).text == "f'{name}'"


def test_values_are_not_interpolated_again():
    ns = {"template": "{secret}", "secret": "leaked"}
    assert interpolate("{template}", ns).text == "{secret}"


def test_nested_references_inside_literal_braces_are_filled_in():
    assert interpolate('{"user": "{name}", "n": {n}}', dict(NS)).text == '{"user": "Ada", "n": 4}'


def test_a_failing_expression_raises_naming_it():
    with pytest.raises(InterpolationError, match=r"\{d\['zz'\]\} failed: KeyError: 'zz'"):
        interpolate("value {d['zz']}", dict(NS))


def test_the_callers_namespace_is_not_changed():
    ns = dict(NS)
    interpolate("{name}", ns)
    assert ns == NS


# -- in the shell --------------------------------------------------------------------------


def test_shell_in_out_and_code_in_one_prompt(ip):
    run(ip, "total = 6 * 7", store_history=True)
    ran_out = run(ip, "total + 1", store_history=True)
    number = ran_out.result.execution_count
    prompt = (
        f"Out: {{Out[{number}]}} In: {{In[{number}]}}\n"
        "squares = {k: k**2 for k in range(3)}\n"
        '{"json": true}\n'
        "{{total}} {total}"
    )
    ran = run(ip, "%%llm -f text\n" + prompt)
    assert ran.outputs[0].data["text/plain"] == (
        "[mock-1] You said: Out: 43 In: total + 1\n"
        "squares = {k: k**2 for k in range(3)}\n"
        '{"json": true}\n'
        "{total} 42"
    )
    assert ran.stdout == ""  # nothing was left out: no note


def test_shell_missing_name_prints_a_note_and_sends_the_braces(ip):
    ran = run(ip, "%llm -f text Hello {nobody}")
    assert ran.outputs[0].data["text/plain"] == "[mock-1] You said: Hello {nobody}"
    assert ran.stdout.startswith("note: left as written: {nobody} (nobody not defined)")


def test_shell_bad_reference_to_out_is_a_usage_error(ip):
    ran = run(ip, "%%llm\nsee {Out[999]}")
    assert ran.stderr.startswith("UsageError: the prompt: {Out[999]} failed: KeyError: 999")
    assert ran.outputs == []


def test_shell_system_prompt_is_interpolated_too(ip):
    ip.user_ns["tone"] = "terse"
    ran = run(ip, "%%llm --dry-run -s 'Be {tone}.'\nhi")
    assert "Be terse." in ran.outputs[0].data["text/plain"]


def test_ipython_does_not_expand_the_line_first(ip):
    # IPython expands {x} and $x in magic lines; %llm opts out and does its own.
    ip.user_ns["price"] = 5
    ran = run(ip, "%llm -f text costs $price or {price} or {{price}}")
    assert ran.outputs[0].data["text/plain"] == "[mock-1] You said: costs $price or 5 or {price}"


# -- only the user's own names are evaluated ------------------------------------------------


def _payloads(path):
    """Prompts quoting code that would create ``path`` if evaluated."""
    p = str(path)
    return [
        f"{{get_ipython().system('touch {p}')}}",
        f"{{open({p!r}, 'w')}}",
        f"{{__import__('os').system('touch {p}')}}",
        f"{{x if __import__('os').system('touch {p}') else x}}",
        f"{{[x, open({p!r}, 'w')]}}",
        f"{{(lambda: open({p!r}, 'w'))()}}",
        f"{{os.system('touch {p}')}}",  # a module the user imported is not data
        f"{{getattr(os, 'system')('touch {p}')}}",
        "{x.__class__.__base__.__subclasses__()}",
        f"{{get_ipython().run_cell(\"open('{p}', 'w')\")}}",
        f"{{exec(\"open('{p}', 'w')\")}}",
        f"{{eval(\"open('{p}', 'w')\", {{}})}}",
        f"{{_ih and open({p!r}, 'w')}}",
    ]


@pytest.mark.parametrize("dry_run", [False, True], ids=["cell", "dry-run"])
@pytest.mark.parametrize("index", range(13))
def test_shell_code_in_a_prompt_is_sent_not_run(ip, tmp_path, dry_run, index):
    target = tmp_path / "created"
    payload = _payloads(target)[index]
    run(ip, "import os\nx = 1")
    ran = run(ip, ("%%llm --dry-run\n" if dry_run else "%%llm -f text\n") + payload)
    assert not target.exists(), f"{payload} ran"
    assert ran.result.error_in_exec is None, ran.text
    assert payload in ran.text  # sent (or shown) as written
    notes = [line for line in ran.stdout.splitlines() if line.startswith("note: left as written")]
    assert len(notes) == 1, ran.stdout


def test_shell_hidden_names_are_not_evaluated(ip):
    run(ip, "x = 2")
    for expr in ("exit", "quit", "get_ipython", "_ih", "_oh", "_dh", "open", "__builtins__"):
        result = run(ip, f"%llm -f text see {{{expr}}} and {{x}}")
        assert result.outputs[0].data["text/plain"] == f"[mock-1] You said: see {{{expr}}} and 2"
        assert f"{expr} not evaluated in a prompt" in result.stdout


def test_shell_history_aliases_are_not_evaluated_but_in_and_out_are(ip):
    run(ip, "6 * 7", store_history=True)
    number = ip.execution_count - 1
    ran = run(ip, f"%llm -f text {{_i{number}}} {{_{number}}} {{Out[{number}]}} {{In[{number}]}}")
    assert ran.outputs[0].data["text/plain"] == (
        f"[mock-1] You said: {{_i{number}}} {{_{number}}} 42 6 * 7"
    )
    assert "not evaluated" in ran.stdout


def test_shell_a_hidden_name_the_user_rebound_is_theirs(ip):
    ip.user_ns["exit"] = "the door"  # (a cell `exit = …` is IPython's autocall)
    ran = run(ip, "%llm -f text find {exit}")
    assert ran.outputs[0].data["text/plain"] == "[mock-1] You said: find the door"
    assert ran.stdout == ""


def test_safe_builtins_work_on_the_users_data():
    ns = {"rows": [3, 1, 2], "price": 2.345, "names": ["b", "a"]}
    text = (
        "{len(rows)} {sorted(rows)} {min(rows)} {max(rows)} {sum(rows)} {abs(-price)} "
        "{round(price, 1)} {int(price)} {str(price)} {list(zip(names, rows))} "
        "{dict(enumerate(names))} {any(rows)} {all(rows)} {list(range(len(rows)))}"
    )
    assert interpolate(text, ns).text == (
        "3 [1, 2, 3] 1 3 6 2.345 2.3 2 2.345 [('b', 3), ('a', 1)] {0: 'b', 1: 'a'} "
        "True True [0, 1, 2]"
    )


@pytest.mark.parametrize(
    "text",
    [
        "{x.__class__}",
        "{x.__dict__}",
        "{type(x)}",
        "{vars(x)}",
        "{globals()}",
        "{getattr(x, 'real')}",
        "{[x, __import__('os')]}",
        "{x and print('side effect')}",
        "{x if breakpoint() else x}",
        "{math.pi}",
        "{x or __builtins__}",
    ],
)
def test_names_that_are_not_the_users_data_are_left_as_written(text):
    import math

    result = interpolate(text, {"x": 1, "math": math})
    assert result.text == text
    assert result.missing == []
    assert result.refused and "not evaluated in a prompt" in (result.note() or "")


def test_hidden_names_of_a_namespace_are_refused_unless_rebound():
    def tool() -> str:
        return "ran"

    ns = {"tool": tool, "x": 1}
    assert interpolate("{tool()}", ns, {"tool": tool}).text == "{tool()}"
    assert interpolate("{tool()}", ns, {"tool": print}).text == "ran"
