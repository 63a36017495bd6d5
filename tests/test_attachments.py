"""Images, documents and audio in prompts: loading, ``attachments=``, each provider's wire
form (the exact JSON sent to FakeLLMServer), refusals before sending, rows, cache keys."""

from __future__ import annotations

import asyncio
import base64
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest

import llmnb
from llmnb import errors
from llmnb.testing import FakeLLMServer
from llmnb.usage import UsageTracker

KEYS = {
    "openai": "OPENAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
}


def png(width: int = 4, height: int = 3) -> bytes:
    """A real (tiny, valid) PNG of ``width`` x ``height`` grey pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


PDF = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n2 0 obj << /Type /Page >> endobj\n%%EOF"
WAV = (
    b"RIFF\x24\x00\x00\x00WAVEfmt "
    + b"\x10\x00\x00\x00\x01\x00\x01\x00"
    + struct.pack("<II", 8000, 16000)
    + b"\x02\x00\x10\x00data"
    + struct.pack("<I", 16000)
    + b"\x00" * 16000
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def make_client(
    server: FakeLLMServer,
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
    tracker: UsageTracker,
) -> Callable[..., llmnb.LLMClient]:
    def make(kind: str = "openai", model: str = "gpt-4o", **profile: Any) -> llmnb.LLMClient:
        if kind in KEYS:
            monkeypatch.setenv(KEYS[kind], "sk-test-0123456789")
        base = {
            "anthropic": server.anthropic_base_url,
            "gemini": server.gemini_base_url,
        }.get(kind, server.base_url)
        prof = {"type": kind, "model": model, "base_url": base, **profile}
        write_settings({"llm": {"active_provider": "p", "providers": {"p": prof}}})
        client = llmnb.create_llm_client_from_profile()
        client.retry.max_retries = 0
        return client

    return make


def sent_messages(server: FakeLLMServer) -> Any:
    req = server.last_request
    assert req is not None
    return req.json


# --- OpenAI family -------------------------------------------------------------------
def test_openai_image_bytes_document_and_audio_exact_json(make_client, server, tmp_path):
    client = make_client("openai")
    img = png(4, 3)
    (tmp_path / "report.pdf").write_bytes(PDF)
    client.complete(
        "hello, what is here?",
        attachments=[img, str(tmp_path / "report.pdf"), llmnb.Audio(WAV)],
    )
    content = sent_messages(server)["messages"][-1]["content"]
    assert content == [
        {"type": "text", "text": "hello, what is here?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(img)}"}},
        {
            "type": "file",
            "file": {
                "filename": "report.pdf",
                "file_data": f"data:application/pdf;base64,{b64(PDF)}",
            },
        },
        {"type": "input_audio", "input_audio": {"data": b64(WAV), "format": "wav"}},
    ]


def test_image_url_and_detail_in_a_message_of_parts(make_client, server):
    client = make_client("openai")
    url = "https://example.com/cat.jpg"
    client.complete(
        [llmnb.Message("user", [llmnb.Text("Compare"), llmnb.Image(url, detail="low")])]
    )
    assert sent_messages(server)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
            ],
        }
    ]


def test_plain_string_prompt_is_sent_as_a_string(make_client, server):
    client = make_client("openai")
    client.complete("hello")
    assert sent_messages(server)["messages"] == [{"role": "user", "content": "hello"}]


def test_openrouter_same_family(make_client, server):
    client = make_client("openrouter", model="openai/gpt-4o")
    img = png()
    client.complete("hello", attachments=img)
    assert sent_messages(server)["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{b64(img)}"},
    }


def test_mistral_takes_image_url_as_a_string_and_documents_by_url(make_client, server):
    client = make_client("mistral", model="mistral-small-latest")
    img = png()
    client.complete("hello", attachments=[img, llmnb.Document("https://x.org/a.pdf")])
    assert sent_messages(server)["messages"][0]["content"][1:] == [
        {"type": "image_url", "image_url": f"data:image/png;base64,{b64(img)}"},
        {"type": "document_url", "document_url": "https://x.org/a.pdf", "document_name": "a.pdf"},
    ]
    n = len(server.requests)
    with pytest.raises(errors.InvalidRequestError, match=r"mistral.*by URL only"):
        client.complete("hello", attachments=[llmnb.Document(PDF)])
    assert len(server.requests) == n


def test_ollama_refuses_image_urls_and_audio_before_sending(make_client, server, tracker):
    client = make_client("ollama", model="llava")
    with pytest.raises(errors.InvalidRequestError, match=r"ollama.*cannot fetch an image by URL"):
        client.complete("hello", attachments=["https://x.org/cat.png"])
    with pytest.raises(errors.InvalidRequestError, match=r"audio attachments.*it takes image"):
        client.complete("hello", attachments=[llmnb.Audio(WAV)])
    assert server.requests == []
    rows = tracker.records
    assert [r.cost_source for r in rows] == ["not_sent", "not_sent"]
    assert all(r.status == "InvalidRequestError" for r in rows)
    client.complete("hello", attachments=[png()])  # an inline image goes
    assert len(server.requests) == 1


# --- Anthropic -----------------------------------------------------------------------
def test_anthropic_image_and_document_blocks(make_client, server):
    client = make_client("anthropic", model="claude-sonnet-4-5")
    img = png()
    client.complete(
        [
            {"role": "system", "content": "Be brief."},
            llmnb.Message("user", ["hello", llmnb.Image(img), llmnb.Document(PDF)]),
        ],
        attachments=[
            llmnb.Image("https://x.org/b.png"),
            llmnb.Document(b"plain notes", name="n.txt"),
        ],
    )
    body = sent_messages(server)
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hello"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": b64(img)},
                },
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": b64(PDF)},
                },
                {"type": "image", "source": {"type": "url", "url": "https://x.org/b.png"}},
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"},
                },
            ],
        }
    ]


def test_anthropic_refuses_audio_naming_provider_and_what_it_takes(make_client, server, tracker):
    client = make_client("anthropic", model="claude-sonnet-4-5")
    with pytest.raises(errors.InvalidRequestError) as info:
        client.complete("hello", attachments=[llmnb.Audio(WAV)])
    msg = str(info.value)
    assert "anthropic" in msg and "audio" in msg and "document, image" in msg
    assert server.requests == []
    assert tracker.records[-1].cost_source == "not_sent"


def test_anthropic_image_over_5_mb_is_refused_locally(make_client, server):
    client = make_client("anthropic", model="claude-sonnet-4-5")
    big = png(2, 2) + b"\x00" * (5 * 1024 * 1024)
    with pytest.raises(errors.InvalidRequestError, match=r"5 MB limit per image.*max_side"):
        client.complete("hello", attachments=[big])
    assert server.requests == []


def test_anthropic_text_turns_merge_around_attachment_turns(make_client, server):
    client = make_client("anthropic", model="claude-sonnet-4-5")
    img = png()
    client.complete(
        [
            {"role": "user", "content": "first"},
            llmnb.Message("user", ["hello", llmnb.Image(img)]),
            {"role": "user", "content": "and then"},
        ]
    )
    assert sent_messages(server)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "first"},
                {"type": "text", "text": "hello"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": b64(img)},
                },
                {"type": "text", "text": "and then"},
            ],
        }
    ]


# --- Gemini --------------------------------------------------------------------------
def test_gemini_inline_data_and_file_data(make_client, server):
    client = make_client("gemini", model="gemini-2.5-flash")
    img = png()
    client.complete("hello", attachments=[img, "https://x.org/doc.pdf", llmnb.Audio(WAV)])
    assert sent_messages(server)["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "hello"},
                {"inline_data": {"mime_type": "image/png", "data": b64(img)}},
                {
                    "file_data": {
                        "mime_type": "application/pdf",
                        "file_uri": "https://x.org/doc.pdf",
                    }
                },
                {"inline_data": {"mime_type": "audio/wav", "data": b64(WAV)}},
            ],
        }
    ]


# --- providers that take no attachments ---------------------------------------------
def test_local_and_cli_providers_refuse_images_before_running(tracker):
    from llmnb.client.attachments import prepare
    from llmnb.providers._parts_wire import check
    from llmnb.types import normalize_messages

    messages, n = prepare(normalize_messages("hi"), [png()])
    assert n == 1
    for kind in ("local_hf", "claude_code", "codex"):
        with pytest.raises(errors.InvalidRequestError, match=f"{kind}.*takes text only"):
            check(kind, "p", messages)


# --- loading ------------------------------------------------------------------------
def test_missing_path_names_the_attachment(make_client, server, tmp_path):
    client = make_client("openai")
    missing = tmp_path / "nope.png"
    with pytest.raises(errors.InvalidRequestError, match=r"image '.*nope\.png': no such file"):
        client.complete("hello", attachments=[missing])
    assert server.requests == []


def test_unsupported_image_format_is_refused(make_client, server, tmp_path):
    client = make_client("openai")
    bmp = tmp_path / "pic.png"
    bmp.write_bytes(b"BM" + b"\x00" * 60)
    with pytest.raises(errors.InvalidRequestError, match="not a PNG, JPEG, GIF or WebP"):
        client.complete("hello", attachments=[bmp])
    with pytest.raises(errors.InvalidRequestError, match="PDF or UTF-8 text"):
        client.complete("hello", attachments=[llmnb.Document(b"\xff\xfe\x00\x81binary")])
    assert server.requests == []


def test_unattachable_object_is_a_typed_error(make_client):
    client = make_client("openai")
    with pytest.raises(errors.InvalidRequestError, match="cannot attach a object"):
        client.complete("hello", attachments=[object()])


def test_provider_style_dicts_are_parts(make_client, server):
    client = make_client("anthropic", model="claude-sonnet-4-5")
    img = png()
    client.complete(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hello"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{b64(img)}"},
                    },
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": b64(img)},
                    },
                ],
            }
        ]
    )
    blocks = sent_messages(server)["messages"][0]["content"]
    want = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": b64(img)},
    }
    assert blocks[1:] == [want, want]


def test_matplotlib_figure_and_axes_render_to_png(make_client, server):
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([1, 2, 3])
    client = make_client("openai")
    client.complete("hello", attachments=[fig, ax])
    parts = sent_messages(server)["messages"][0]["content"]
    for p in parts[1:]:
        data = base64.b64decode(p["image_url"]["url"].split(",", 1)[1])
        assert data.startswith(b"\x89PNG")
    plt.close(fig)


def test_pil_image_and_max_side(make_client, server):
    PIL = pytest.importorskip("PIL.Image")
    client = make_client("openai")
    client.complete("hello", attachments=[llmnb.Image(PIL.new("RGB", (400, 100)), max_side=100)])
    url = sent_messages(server)["messages"][0]["content"][1]["image_url"]["url"]
    data = base64.b64decode(url.split(",", 1)[1])
    assert struct.unpack(">II", data[16:24]) == (100, 25)


# --- rows, cache, estimates ---------------------------------------------------------
def test_rows_count_attachments_and_hold_no_bytes(make_client, server, tracker):
    client = make_client("openai")
    img = png()
    client.complete("hello", attachments=[img, llmnb.Document(PDF)])
    row = tracker.records[-1]
    assert row.attachments == 2
    dumped = repr(row) + repr(getattr(row, "__dict__", ""))
    assert b64(img)[:40] not in dumped and b64(PDF)[:40] not in dumped
    client.complete("hello")
    assert tracker.records[-1].attachments == 0


def test_cache_keys_on_attachment_content(make_client, server):
    client = make_client("openai")
    client.complete("hello", attachments=[png(4, 3)], cache=True)
    second = client.complete("hello", attachments=[png(5, 3)], cache=True)
    assert not second.cached  # another image: another key
    third = client.complete("hello", attachments=[png(4, 3)], cache=True)
    assert third.cached
    assert len(server.requests) == 2


def test_image_token_formulas():
    from llmnb.providers._parts_cost import image_tokens

    # OpenAI: 1024x1024 -> 768x768 -> 4 tiles -> 85 + 680
    assert image_tokens("openai", 1024, 1024) == 765
    assert image_tokens("openai", 2048, 4096) == 85 + 170 * 6  # -> 1024x2048 -> 768x1536
    assert image_tokens("openai", 4000, 4000, "low") == 85
    assert image_tokens("anthropic", 1000, 750) == 1000
    assert image_tokens("anthropic", 3136, 3136) == round(1568 * 1568 / 750 + 0.5)
    assert image_tokens("gemini", 300, 300) == 258
    assert image_tokens("gemini", 1000, 1000) == 4 * 258


def test_dry_run_estimate_counts_image_tokens(make_client):
    from llmnb.client.attachments import prepare
    from llmnb.middleware.ratelimit import estimate_input_tokens
    from llmnb.types import Request, normalize_messages

    plain = Request(messages=normalize_messages("hello"), model="gpt-4o")
    msgs, _ = prepare(normalize_messages("hello"), [png(1024, 1024)])
    with_image = Request(messages=msgs, model="gpt-4o")
    assert estimate_input_tokens(with_image) - estimate_input_tokens(plain) == 765
    assert estimate_input_tokens(with_image, "gemini") - estimate_input_tokens(plain) == 4 * 258


def test_mock_says_what_it_received(write_settings):
    write_settings(
        {
            "llm": {
                "active_provider": "demo",
                "providers": {"demo": {"type": "mock", "model": "mock-1"}},
            }
        }
    )
    client = llmnb.create_llm_client_from_profile()
    c = client.complete("What trend?", attachments=[png(640, 480)])
    assert c.content.startswith("I see 1 image (PNG, 640×480).")
    # 640x480: 2x1 tiles of 512 -> 85 + 2 * 170, plus 3 tokens of text
    assert c.usage.prompt_tokens == 425 + 3


def test_async_and_stream_take_attachments(make_client, server):
    client = make_client("openai")
    img = png()
    asyncio.run(client.acomplete("hello", attachments=[img]))
    assert sent_messages(server)["messages"][0]["content"][1]["type"] == "image_url"
    server.reset()
    text = "".join(client.stream("hello", attachments=[img]))
    assert text
    assert sent_messages(server)["messages"][0]["content"][1]["type"] == "image_url"
    assert client.generate("hello", attachments=[img])


def test_attachments_need_a_user_message(make_client, server):
    client = make_client("openai")
    with pytest.raises(errors.InvalidRequestError, match="needs a user message"):
        client.complete([{"role": "system", "content": "x"}], attachments=[png()])


# --- failover and logs -----------------------------------------------------------------
def test_failover_skips_a_fallback_that_cannot_take_the_attachments(
    server, write_settings, tracker, monkeypatch
):
    from llmnb.client.manager import reset_llm_manager
    from llmnb.testing import Fault

    reset_llm_manager()
    with FakeLLMServer(default_response="from the backup") as second:
        main = {"type": "openai_compatible", "model": "m", "base_url": server.base_url}
        write_settings(
            {
                "llm": {
                    "active_provider": "main",
                    "providers": {
                        "main": {**main, "max_retries": 0},
                        "text_only": {
                            "type": "deepseek",
                            "model": "d",
                            "base_url": second.base_url,
                        },
                        "backup": {**main, "base_url": second.base_url},
                    },
                    "fallbacks": ["text_only", "backup"],
                }
            }
        )
        monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test-0123456789")
        client = llmnb.create_llm_client_from_profile()
        server.script(Fault.status(500))
        c = client.complete("hello", attachments=[png()])
        assert c.content == "from the backup" and c.profile == "backup"
        assert second.last_request.json["messages"][0]["content"][1]["type"] == "image_url"
        assert len(second.requests) == 1  # deepseek (text only) was skipped, not sent
    reset_llm_manager()


def test_logs_never_hold_attachment_bytes(make_client, server, caplog):
    import logging

    from llmnb.middleware.log import LoggingMiddleware

    client = make_client("openai")
    client.add_middleware(LoggingMiddleware(include_content=True))
    img = png(8, 8)
    with caplog.at_level(logging.DEBUG):
        client.complete("hello", attachments=[img, f"data:image/png;base64,{b64(img)}"])
        with pytest.raises(errors.InvalidRequestError) as info:
            client.complete("hello", attachments=[f"data:image/png;base64,{b64(b'GIF')}"])
    assert b64(img)[:24] not in caplog.text
    assert "base64,…" in str(info.value) and b64(b"GIF") not in str(info.value)
