"""``type: local_hf`` on a tiny, randomly initialised GPT-2 the test builds (no download)."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import llmnb
from llmnb import errors
from llmnb.usage import UsageTracker

CHARS = [chr(c) for c in range(32, 127)] + ["\n"]
TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


def _have_local_extra() -> bool:
    # find_spec, not import: collecting the suite must not pay for importing torch.
    return all(importlib.util.find_spec(name) for name in ("torch", "transformers"))


needs_local = pytest.mark.skipif(
    not _have_local_extra(),
    reason='torch/transformers are not installed: pip install -e ".[local]"',
)


def build_model(folder: Path, chat_template: str | None) -> Path:
    """A 2-layer GPT-2 with a character-level tokenizer, saved to ``folder``."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<|endoftext|>": 1, **{c: i + 2 for i, c in enumerate(CHARS)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", eos_token="<|endoftext|>"
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(folder)
    config = GPT2Config(
        vocab_size=len(vocab),
        n_positions=512,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=1,
        eos_token_id=1,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not _have_local_extra():
        pytest.skip('torch/transformers are not installed: pip install -e ".[local]"')
    base = tmp_path_factory.mktemp("tiny-models")
    return {
        "chat": build_model(base / "tiny-chat", TEMPLATE),
        "plain": build_model(base / "tiny-plain", None),
    }


@pytest.fixture
def make_client(
    write_settings: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
    tracker: UsageTracker,
    model_dirs: dict[str, Path],
) -> Callable[..., llmnb.LLMClient]:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def make(kind: str = "chat", profile_name: str = "local", **profile: Any) -> llmnb.LLMClient:
        prof = {"type": "local_hf", "model": str(model_dirs[kind]), "options": {"device": "cpu"}}
        prof.update(profile)
        write_settings(
            {"llm": {"active_provider": profile_name, "providers": {profile_name: prof}}}
        )
        return llmnb.create_llm_client_from_profile()

    return make


def expected_prompt_tokens(folder: Path, messages: list[dict[str, str]], chat: bool) -> int:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    if chat:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        text = "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"
    return len(tok(text, add_special_tokens=False)["input_ids"])


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]


@needs_local
def test_complete_uses_the_chat_template_and_reports_real_token_counts(
    make_client, model_dirs, tracker
):
    c = make_client().complete(MESSAGES, max_tokens=6, min_new_tokens=6)
    assert c.usage.prompt_tokens == expected_prompt_tokens(model_dirs["chat"], MESSAGES, True)
    assert c.usage.completion_tokens == 6 and not c.usage.estimated
    assert c.finish_reason == "length" and isinstance(c.content, str)
    row = tracker.to_dataframe().iloc[0]
    assert row["provider"] == "local_hf" and row["completion_tokens"] == 6
    assert row["prompt_tokens"] == c.usage.prompt_tokens


@needs_local
def test_without_a_chat_template_a_plain_transcript_is_used(make_client, model_dirs):
    c = make_client("plain").complete(MESSAGES, max_tokens=3, min_new_tokens=3)
    assert c.usage.prompt_tokens == expected_prompt_tokens(model_dirs["plain"], MESSAGES, False)


@needs_local
def test_the_model_is_loaded_once_and_shared_between_profiles(make_client):
    first = make_client(profile_name="a")
    second = make_client(profile_name="b")
    assert first.provider is not second.provider
    assert first.provider.loaded() is second.provider.loaded()
    assert first.provider.loaded().model is second.provider.loaded().model


@needs_local
def test_greedy_stream_matches_complete_and_has_real_usage(make_client):
    client = make_client()
    whole = client.complete("Hello", max_tokens=8, min_new_tokens=8)
    stream = client.stream("Hello", max_tokens=8, min_new_tokens=8)
    assert "".join(stream) == whole.content
    assert stream.completion is not None
    assert stream.completion.usage.completion_tokens == 8
    assert stream.completion.usage.prompt_tokens == whole.usage.prompt_tokens
    assert not stream.completion.usage.estimated


@needs_local
def test_async_calls_run_generation_off_the_event_loop(make_client):
    client = make_client()
    expected = client.complete("Hello", max_tokens=5, min_new_tokens=5).content

    async def run() -> tuple[str, str]:
        text = await client.agenerate("Hello", max_tokens=5, min_new_tokens=5)
        streamed = "".join(
            [p async for p in client.astream("Hello", max_tokens=5, min_new_tokens=5)]
        )
        return text, streamed

    assert asyncio.run(run()) == (expected, expected)


@needs_local
def test_stopping_a_stream_early_is_recorded_as_cancelled(make_client, tracker):
    stream = make_client().stream("Hello", max_tokens=50, min_new_tokens=50)
    next(stream)
    stream.close()
    assert tracker.to_dataframe().iloc[0]["status"] == "cancelled"


@needs_local
def test_a_bad_generate_parameter_is_an_invalid_request(make_client):
    with pytest.raises(errors.InvalidRequestError, match="generate"):
        make_client(max_retries=0).complete("Hello", max_tokens=2, not_a_generate_option=1)


@needs_local
def test_a_missing_model_folder_is_a_config_error(make_client, tmp_path):
    client = make_client(model=str(tmp_path / "no-such-model"))
    with pytest.raises(errors.ConfigError, match="cannot load model"):
        client.complete("Hello")


def test_without_the_extra_the_error_says_how_to_install_it(write_settings, monkeypatch, tracker):
    # Simulates an environment without the extra: importing transformers fails.
    monkeypatch.setitem(sys.modules, "transformers", None)
    prof = {"type": "local_hf", "model": "some/model"}
    write_settings({"llm": {"active_provider": "l", "providers": {"l": prof}}})
    with pytest.raises(errors.ConfigError, match=r'pip install "llmnb\[local\]"'):
        llmnb.create_llm_client_from_profile().complete("hi")


def test_choosing_local_hf_does_not_import_torch_until_used():
    code = (
        "import sys, llmnb\n"
        "from llmnb.client.registry import lookup_type\n"
        "lookup_type('local_hf', 'x')\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
