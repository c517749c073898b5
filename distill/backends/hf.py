"""transformers `generate` in batches: runs anywhere, CPU included (tests, the demo).

Batches are fixed slices of the run's prompt list (prompt index // batch_size)
and each batch samples from a seed derived from its number. A resumed run
therefore regenerates a half-written batch whole and gets exactly the samples
the first run would have written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby

from distill.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    Sample,
    SamplingParams,
    WeightsOptions,
    derive_seed,
)
from distill.chat import ensure_chat_template, first_line, load_tokenizer, render_prompt
from distill.config import require
from distill.errors import ModelError
from distill.shape import generation_prefill, restore_prefill

log = logging.getLogger(__name__)


def pick_dtype(name: str, device: str):
    import torch

    if name != "auto":
        return getattr(torch, name)
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_causal_lm(name: str, dtype: str = "auto", device: str | None = None):
    """(model, device) with a one-line error when the path or id is wrong."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=pick_dtype(dtype, device))
    except Exception as exc:
        raise ModelError(f"cannot load model {name!r}: {first_line(exc)}; "
                         "give a local model directory or a reachable Hub id") from None
    return model.to(device).eval(), device


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every token that ends a turn: the generation config's EOS ids and the tokenizer's."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ModelError("the model defines no EOS token, so generation could never stop; "
                         "set eos_token_id in its generation_config.json")
    return ids


@dataclass(kw_only=True)
class HFOptions(WeightsOptions):
    batch_size: int = field(default=16, metadata={"resume": "free"})
    """hf backend: prompts per generate() call (each yields n sequences)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.batch_size >= 1, "batch_size", f"must be at least 1 (got {self.batch_size})")


class HFBackend(Backend):
    name = "hf"
    options: HFOptions

    def __init__(self, model: str, options: HFOptions, *, seed: int = 0):
        from transformers import GenerationConfig

        super().__init__(model, options, seed=seed)
        self.tokenizer = load_tokenizer(model, padding_side="left")
        ensure_chat_template(self.tokenizer, model)
        self.lm, self.device = load_causal_lm(model, options.dtype)
        self.eos_ids = eos_token_ids(self.lm, self.tokenizer)
        # Start from a clean generation config: a checkpoint's own defaults (Qwen ships
        # top_k=20 and repetition_penalty=1.05) would silently change the sampling asked for.
        self.lm.generation_config = GenerationConfig(
            bos_token_id=self.tokenizer.bos_token_id, eos_token_id=self.eos_ids,
            pad_token_id=self.tokenizer.pad_token_id)
        log.info("hf backend: %s on %s (%s)", model, self.device, self.lm.dtype)

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> Iterator[GenerationResult]:
        for number, batch in groupby(requests, key=lambda r: r.index // self.options.batch_size):
            batch = list(batch)
            if any(r.pending for r in batch):
                yield from self._generate_batch(batch, params, derive_seed(params.seed, "batch", number))

    def _generate_batch(self, batch: list[GenerationRequest], params: SamplingParams,
                        seed: int) -> Iterator[GenerationResult]:
        import torch

        texts = [render_prompt(self.tokenizer, r.messages) for r in batch]
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        torch.manual_seed(seed)
        sampling = params.temperature > 0
        with torch.inference_mode():
            output = self.lm.generate(
                **encoded, max_new_tokens=params.max_tokens, num_return_sequences=params.n,
                do_sample=sampling, temperature=params.temperature if sampling else None,
                top_p=params.top_p if sampling else None, top_k=0 if sampling else None,
                repetition_penalty=1.0)
        generated = output[:, encoded["input_ids"].shape[1]:].tolist()
        prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        eos = set(self.eos_ids)
        for row, (request, text) in enumerate(zip(batch, texts)):
            prefill = generation_prefill(text)
            samples = []
            for tokens in generated[row * params.n:(row + 1) * params.n]:
                stop = next((i for i, token in enumerate(tokens) if token in eos), None)
                kept = tokens if stop is None else tokens[:stop]
                completion = self.tokenizer.decode(kept, skip_special_tokens=True)
                samples.append(Sample(restore_prefill(prefill, completion),
                                      "length" if stop is None else "stop",
                                      len(tokens) if stop is None else stop + 1))
            yield GenerationResult(request.key, samples, prompt_tokens=int(prompt_lengths[row]))
