"""transformers `generate` in batches: runs anywhere, CPU included (tests, the demo).

Every sample draws from a random stream of its own, seeded from the run's seed,
its prompt's id and its index (`sample_seed`, as the vllm backend seeds a
prompt): a sample is the same whatever --batch-size, whatever its place in
its batch and whatever a crashed run had finished, so a run resumed with
another batch size writes what one uninterrupted run would have. `generate`
draws one random stream for a whole batch, so sampling is done here, by a
logits processor that picks each row's token with that row's own generator
(greedy decoding needs no randomness and is left to `generate`).

A batch is sampled in rounds of growing length (64 new tokens, then 128, 256 …):
`generate` computes every row of a batch until its longest one ends, so one
sample that runs to the limit would make every finished one cost as much.
After each round only the unfinished rows go on, their prompt and tokens so
far fed back as token ids (never re-tokenized text), which prefills them in
one pass. On the demo's traces (most 50-60 tokens, a few to the 160-token
limit) this samples the same distribution for less than half the compute.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from distill.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    Sample,
    SamplingParams,
    WeightsOptions,
    sample_seed,
)
from distill.chat import (
    channel_marker_ids,
    decode_keeping,
    ensure_chat_template,
    load_error,
    load_tokenizer,
    render_prompt,
)
from distill.config import FREE, require
from distill.errors import ModelError
from distill.shape import fold_channels, generation_prefill, restore_prefill

log = logging.getLogger(__name__)

FIRST_ROUND_TOKENS = 64
"""New tokens in a batch's first sampling round; each later round (unfinished rows only) is twice as long."""


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
        raise load_error("model", name, exc) from None
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
    batch_size: int = field(default=16, metadata=FREE)
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
        self.channel_ids = channel_marker_ids(self.tokenizer)  # a harmony teacher: its channels are read
        # Start from a clean generation config: a checkpoint's own defaults (Qwen ships
        # top_k=20 and repetition_penalty=1.05) would silently change the sampling asked for.
        self.lm.generation_config = GenerationConfig(
            bos_token_id=self.tokenizer.bos_token_id, eos_token_id=self.eos_ids,
            pad_token_id=self.tokenizer.pad_token_id)
        log.info("hf backend: %s on %s (%s)", model, self.device, self.lm.dtype)

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> Iterator[GenerationResult]:
        for _, batch in groupby(requests, key=lambda r: r.index // self.options.batch_size):
            batch = list(batch)
            if any(r.pending for r in batch):
                yield from self._generate_batch(batch, params)

    def _generate_batch(self, batch: list[GenerationRequest], params: SamplingParams) -> Iterator[GenerationResult]:
        texts = [render_prompt(self.tokenizer, r.messages, self.options.template_kwargs) for r in batch]
        prompts = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        seeds = [sample_seed(params.seed, r.key, s) for r in batch for s in range(params.n)]
        rows = self._sample_rows([ids for ids in prompts for _ in range(params.n)], params, seeds)
        for index, (request, text) in enumerate(zip(batch, texts)):
            prefill = generation_prefill(text)
            samples = []
            for tokens, stopped in rows[index * params.n:(index + 1) * params.n]:
                if self.channel_ids:
                    completion = fold_channels(decode_keeping(self.tokenizer, tokens, self.channel_ids),
                                               cut=not stopped)
                else:
                    completion = restore_prefill(prefill, self.tokenizer.decode(tokens, skip_special_tokens=True))
                samples.append(Sample(completion, "stop" if stopped else "length",
                                      len(tokens) + stopped))  # the end-of-turn token counts, as servers count it
            yield GenerationResult(request.key, samples, prompt_tokens=len(prompts[index]))

    def _sample_rows(self, prompts: list[list[int]], params: SamplingParams, seeds: list[int]
                     ) -> list[tuple[list[int], bool]]:
        """(generated tokens without the end-of-turn token, whether it stopped) for each prompt row, sampled from
        the row's own seed in rounds of growing length; after each round only the unfinished rows go on (see
        the module docstring)."""
        import torch
        from transformers import LogitsProcessorList

        sampling = params.temperature > 0
        # a row's generator lives across the rounds: its stream goes on where the last round left it
        generators = [torch.Generator(self.device).manual_seed(seed) for seed in seeds] if sampling else []
        eos = set(self.eos_ids)
        generated: list[list[int]] = [[] for _ in prompts]
        stopped = [False] * len(prompts)
        active = list(range(len(prompts)))
        produced, length = 0, FIRST_ROUND_TOKENS  # tokens each unfinished row holds so far
        while active and produced < params.max_tokens:
            new_tokens = min(length, params.max_tokens - produced)
            input_ids, attention = self._left_padded([prompts[r] + generated[r] for r in active])
            # sampled: `generate` decodes greedily over what RowSampler leaves, the token it drew for each row
            processors = LogitsProcessorList(
                [RowSampler([generators[r] for r in active], params.temperature, params.top_p)] if sampling else [])
            with torch.inference_mode():
                output = self.lm.generate(
                    input_ids=input_ids, attention_mask=attention, max_new_tokens=new_tokens, do_sample=False,
                    logits_processor=processors, repetition_penalty=1.0)
            going_on = []
            for row, tokens in zip(active, output[:, input_ids.shape[1]:].tolist()):
                stop = next((i for i, token in enumerate(tokens) if token in eos), None)
                generated[row] += tokens[:new_tokens] if stop is None else tokens[:stop]
                stopped[row] = stop is not None
                if stop is None:
                    going_on.append(row)
            active = going_on
            produced += new_tokens
            length *= 2
        return list(zip(generated, stopped))

    def _left_padded(self, rows: list[list[int]]):
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        return left_padded(rows, pad, self.device)


class RowSampler:
    """A logits processor that samples each row's next token with the row's own torch.Generator
    (temperature, then top-p, as vLLM samples) and leaves that token alone at 0, every other at -inf.

    The draw is the exponential race vLLM uses: the argmax of p / E over the tokens, E ~ Exp(1) drawn
    from the row's generator, is a sample of p. Each step draws the same number of values from each
    row's generator whatever the batch holds, so a row's tokens depend on its seed alone.
    """

    def __init__(self, generators: list[Any], temperature: float, top_p: float):
        self.generators, self.temperature, self.top_p = generators, temperature, top_p

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1:
            ordered, order = probs.sort(dim=-1, descending=True)
            # the smallest set of most likely tokens holding top_p of the mass: a token goes when the ones
            # before it already hold it (the first one never does)
            ordered[ordered.cumsum(dim=-1) - ordered >= self.top_p] = 0
            probs = torch.zeros_like(probs).scatter_(-1, order, ordered)
        race = torch.stack([torch.empty(probs.shape[-1], device=probs.device).exponential_(generator=generator)
                            for generator in self.generators])
        chosen = (probs / race).argmax(dim=-1, keepdim=True)
        return torch.full_like(scores, float("-inf")).scatter_(-1, chosen, 0.0)


def left_padded(rows: list[list[int]], pad: int, device: Any = None) -> tuple[Any, Any]:
    """(input_ids, attention_mask) of token-id rows, padded on the left with `pad` as generation needs."""
    import torch

    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        if row:
            input_ids[index, width - len(row):] = torch.tensor(row)
            attention[index, width - len(row):] = 1
    return input_ids.to(device), attention.to(device)
