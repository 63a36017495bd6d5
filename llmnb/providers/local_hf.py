"""``type: local_hf`` — a Hugging Face transformers text-generation model in this process.

Needs the ``local`` extra (``pip install "llmnb[local]"``: transformers and torch),
imported only when a ``local_hf`` profile is first used. Profile::

    local:
      type: local_hf
      model: Qwen/Qwen2.5-0.5B-Instruct     # a Hub id (downloaded once) or a local folder
      max_tokens: 256                       # new tokens per answer (default 256)
      options: {device: auto, dtype: auto, trust_remote_code: false}

The prompt uses the tokenizer's chat template when it has one, else a plain
``role: content`` transcript. Token counts are the real ones: the prompt's tokens and
the generated tokens (an end-of-sequence token included). A model is loaded once per
``(model, device, dtype)`` and shared by every profile and client that names it.
Generation runs in a worker thread, so async calls and streams do not block the event
loop; ``temperature`` > 0 samples, otherwise decoding is greedy. Other call parameters
go to ``model.generate`` (``top_p``, ``repetition_penalty``, ``min_new_tokens``…).
A local model has no price: set ``pricing: {input_per_mtok: 0, output_per_mtok: 0}`` to
show $0 instead of "unknown".
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Generator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from llmnb import errors
from llmnb.providers.base import Provider
from llmnb.types import Chunk, Completion, Request

__all__ = ["INSTALL_HINT", "LoadedModel", "LocalHFProvider", "clear_model_cache"]

INSTALL_HINT = 'pip install "llmnb[local]"  (transformers and torch)'
DEFAULT_MAX_NEW_TOKENS = 256

_cache: dict[tuple[str, str, str], LoadedModel] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A tokenizer and model pair, loaded once and shared."""

    tokenizer: Any
    model: Any
    device: str


def clear_model_cache() -> None:
    """Forget every loaded model (frees the memory once no client holds one)."""
    with _cache_lock:
        _cache.clear()


def _imports() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise errors.ConfigError(
            f"type local_hf needs transformers and torch, which are not installed "
            f"({exc.name or exc}). Install them with {INSTALL_HINT}."
        ) from exc
    return torch, transformers


class _Stop:
    """A stopping criterion that ends generation when the reader went away."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
        return self.event.is_set()


class LocalHFProvider(Provider):
    """A transformers causal language model, run locally."""

    type_name: ClassVar[str] = "local_hf"

    @property
    def _options(self) -> Mapping[str, Any]:
        return self.profile.get("options") or {}

    # --- loading ----------------------------------------------------------------------
    def loaded(self) -> LoadedModel:
        """The shared tokenizer and model of this profile's ``model`` (loaded on first use)."""
        torch, transformers = _imports()
        device = str(self._options.get("device") or "auto")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = str(self._options.get("dtype") or "auto")
        key = (self.model, device, dtype)
        with _cache_lock:
            if key not in _cache:
                _cache[key] = self._load(transformers, device, dtype)
            return _cache[key]

    def _load(self, transformers: Any, device: str, dtype: str) -> LoadedModel:
        trust = bool(self._options.get("trust_remote_code", False))
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                self.model, trust_remote_code=trust
            )
            kwargs: dict[str, Any] = {"trust_remote_code": trust}
            if dtype != "auto":
                kwargs["dtype"] = dtype
            model = transformers.AutoModelForCausalLM.from_pretrained(self.model, **kwargs)
        except (OSError, ValueError) as exc:
            raise errors.ConfigError(
                f"profile {self.profile_name!r}: cannot load model {self.model!r} "
                f"({type(exc).__name__}: {str(exc)[:300]}). `model:` is a local folder or a "
                "Hugging Face id; offline (HF_HUB_OFFLINE=1) it must already be downloaded."
            ) from exc
        model.to(device)
        model.eval()
        return LoadedModel(tokenizer, model, device)

    # --- one generation ---------------------------------------------------------------
    def _prompt(self, tokenizer: Any, request: Request) -> str:
        messages = [m.to_dict() for m in request.messages]
        if getattr(tokenizer, "chat_template", None):
            text: str = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return text
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nassistant:"

    def _generate_kwargs(self, lm: LoadedModel, request: Request) -> dict[str, Any]:
        configured = self._options.get("max_new_tokens") or self.profile.get("max_tokens")
        limit = int(request.max_tokens or configured or DEFAULT_MAX_NEW_TOKENS)
        kwargs: dict[str, Any] = {"max_new_tokens": limit}
        if request.temperature:
            kwargs.update(do_sample=True, temperature=float(request.temperature))
        else:
            kwargs["do_sample"] = False
        pad = lm.tokenizer.pad_token_id
        kwargs["pad_token_id"] = pad if pad is not None else lm.tokenizer.eos_token_id
        kwargs.update(request.extra)
        return kwargs

    def _inputs(self, lm: LoadedModel, request: Request) -> Any:
        text = self._prompt(lm.tokenizer, request)
        # The template already wrote any special tokens the model expects.
        encoded = lm.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        return encoded.to(lm.device)

    def _finish(self, lm: LoadedModel, new_ids: list[int], limit: int) -> str:
        eos = lm.tokenizer.eos_token_id
        if new_ids and eos is not None and new_ids[-1] == eos:
            return "stop"
        return "length" if len(new_ids) >= limit else "stop"

    def _run(self, request: Request) -> Completion:
        from llmnb.types import Usage

        torch, _ = _imports()
        lm = self.loaded()
        inputs = self._inputs(lm, request)
        kwargs = self._generate_kwargs(lm, request)
        try:
            with torch.no_grad():
                output = lm.model.generate(**inputs, **kwargs)
        except (TypeError, ValueError) as exc:
            raise self._generation_error(exc) from exc
        prompt_len = int(inputs["input_ids"].shape[-1])
        new_ids = [int(i) for i in output[0][prompt_len:]]
        text = lm.tokenizer.decode(new_ids, skip_special_tokens=True)
        return Completion(
            content=text,
            model=request.model,
            usage=Usage(prompt_len, len(new_ids)),
            finish_reason=self._finish(lm, new_ids, kwargs["max_new_tokens"]),
        )

    def _generation_error(self, exc: BaseException) -> errors.APIError:
        kw: dict[str, Any] = {
            "provider": self.type_name,
            "profile": self.profile_name,
            "model": self.model,
        }
        if isinstance(exc, (TypeError, ValueError)):
            # generate() rejects unknown or impossible parameters with these.
            return errors.InvalidRequestError(
                f"model.generate() rejected the call ({type(exc).__name__}: {exc}); check "
                "the call parameters.",
                **kw,
            )
        return errors.ProviderError(f"local generation failed ({type(exc).__name__}: {exc}).", **kw)

    def complete(self, request: Request) -> Completion:
        return self._run(request)

    async def acomplete(self, request: Request) -> Completion:
        return await asyncio.to_thread(self._run, request)

    # --- streaming ----------------------------------------------------------------------
    def stream(self, request: Request) -> Generator[Chunk, None, None]:
        from llmnb.types import Usage

        torch, transformers = _imports()
        lm = self.loaded()
        inputs = self._inputs(lm, request)
        kwargs = self._generate_kwargs(lm, request)
        streamer = transformers.TextIteratorStreamer(
            lm.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        stop = _Stop()
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                with torch.no_grad():
                    result["output"] = lm.model.generate(
                        **inputs,
                        **kwargs,
                        streamer=streamer,
                        stopping_criteria=transformers.StoppingCriteriaList([stop]),
                    )
            except BaseException as exc:  # reported to the reader below
                result["error"] = exc
                streamer.end()

        worker = threading.Thread(target=work, name="llmnb-local-hf", daemon=True)
        worker.start()
        try:
            for text in streamer:
                if text:
                    yield Chunk(content=text, model=request.model)
        finally:
            stop.event.set()  # the reader stopped early: stop generating too
            worker.join()
        if "error" in result:
            raise self._generation_error(result["error"]) from result["error"]
        prompt_len = int(inputs["input_ids"].shape[-1])
        new_ids = [int(i) for i in result["output"][0][prompt_len:]]
        yield Chunk(
            finish_reason=self._finish(lm, new_ids, kwargs["max_new_tokens"]),
            usage=Usage(prompt_len, len(new_ids)),
        )

    async def astream(self, request: Request) -> AsyncIterator[Chunk]:
        chunks = self.stream(request)
        done = object()
        try:
            while True:
                chunk = await asyncio.to_thread(next, chunks, done)
                if chunk is done:
                    break
                assert isinstance(chunk, Chunk)
                yield chunk
        finally:
            await asyncio.to_thread(chunks.close)
