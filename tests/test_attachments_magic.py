"""Attachments in ``%%llm``: ``-a``, ``{fig}`` images in place, ``--dry-run`` and the
footer — in a real IPython shell, on the mock profile and against FakeLLMServer."""

from __future__ import annotations

import base64

import pytest
from _magics_shell import ip_fixture, mock_settings, run
from test_attachments import png

from llmnb.testing import FakeLLMServer

ip = ip_fixture


def _server_settings(srv: FakeLLMServer) -> dict[str, object]:
    profile = {"type": "openai", "model": "gpt-4o", "base_url": srv.base_url}
    return mock_settings(fake=profile)


def test_attach_a_variable_on_the_mock(ip, write_settings):
    write_settings(mock_settings())
    ip.user_ns["pic"] = png(640, 480)
    ran = run(ip, "%%llm -a pic\nWhat trend?")
    answer, footer = ran.outputs
    assert answer.data["text/markdown"].startswith("I see 1 image (PNG, 640×480).")
    assert footer.data["text/plain"].endswith("+1 image")


def test_attach_paths_and_variables_reach_the_wire(ip, write_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    (tmp_path / "notes.txt").write_text("the notes")
    with FakeLLMServer() as srv:
        write_settings(_server_settings(srv))
        ip.user_ns["a"] = png(4, 3)
        ran = run(ip, f"%%llm --attach a,{tmp_path / 'notes.txt'}\nhello")
        content = srv.last_request.json["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "hello"}
    assert (
        content[1]["image_url"]["url"]
        == "data:image/png;base64," + base64.b64encode(png(4, 3)).decode()
    )
    assert content[2]["text"].endswith("the notes\n</document>")
    assert "+1 image, 1 document" in ran.outputs[-1].data["text/plain"]


def test_attach_unknown_name_is_a_usage_error(ip, write_settings):
    write_settings(mock_settings())
    ran = run(ip, "%%llm -a nothere\nhello")
    assert ran.outputs == []
    assert any("-a/--attach 'nothere': no such variable or file" in x for x in ran.error_lines)


def test_figures_interpolate_as_images_in_place(ip, write_settings, monkeypatch):
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    fig_a, ax = plt.subplots(figsize=(2, 1), dpi=40)
    fig_b, _ = plt.subplots(figsize=(1, 1), dpi=40)
    ip.user_ns.update(fig_a=fig_a, ax=ax, fig_b=fig_b, n=3)
    with FakeLLMServer() as srv:
        write_settings(_server_settings(srv))
        ran = run(ip, "%%llm\nWhich looks healthier? {fig_a} or {fig_b}, n={n}")
        content = srv.last_request.json["messages"][-1]["content"]
    assert [p["type"] for p in content] == ["text", "image_url", "text", "image_url", "text"]
    assert content[0]["text"] == "Which looks healthier? "
    assert content[2]["text"] == " or "
    assert content[4]["text"] == ", n=3"
    assert "+2 images" in ran.outputs[-1].data["text/plain"]
    plt.close(fig_a)
    plt.close(fig_b)


def test_dry_run_lists_attachments_and_their_tokens(ip, write_settings, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    with FakeLLMServer() as srv:
        write_settings(_server_settings(srv))
        ip.user_ns["pic"] = png(1024, 1024)
        ran = run(ip, "%%llm fake --dry-run -a pic\nhello")
        assert srv.requests == []
    shown = ran.outputs[0].data["text/plain"]
    assert "image" in shown and "image/png" in shown and "1024×1024" in shown
    assert "~765" in shown  # OpenAI: 4 tiles
    assert "~767" in shown  # the prompt total: 2 text tokens + the image
    assert "attachments=" not in shown
