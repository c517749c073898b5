"""The demo's models: a tokenizer trained on the task's text, random Qwen2 weights, and the
loop that teaches the tiny teacher its (faulty) habits.

The teacher is the demo's stand-in for downloading DeepSeek-R1, so it is trained here by a
plain loop rather than by `distill train` (a stage of the pipeline proper, which the students
go through): padded batches of similar lengths are about twice as fast on a CPU as packed
rows, whose attention grows with the square of the row.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.tiny import build_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shape:
    """The size of a tiny Qwen2 model."""
    hidden: int
    layers: int
    intermediate: int
    heads: int = 4
    kv_heads: int = 2

    def describe(self, parameters: int) -> str:
        return f"{parameters / 1e6:.2f}M-parameter Qwen2 (hidden {self.hidden}, {self.layers} layers)"


# ChatML as Qwen2.5 writes it, less the default system message ("You are a helpful assistant.")
# Qwen2.5's template adds to a conversation without one, as Qwen3's template does: 20 more
# tokens in every example would be a third of what the demo's students train on.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def save_initial_model(path: Path, tokenizer: Any, family: str, shape: Shape, *, seed: int,
                       max_positions: int = 512) -> int:
    """Random weights of `shape` and the tokenizer in `path` (a student for `distill train`); the parameter count."""
    model = build_model(tokenizer, family, hidden_size=shape.hidden, layers=shape.layers, heads=shape.heads,
                        kv_heads=shape.kv_heads, intermediate_size=shape.intermediate,
                        max_positions=max_positions, seed=seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, *,
                   min_size: int = 1) -> list[list[int]]:
    """One epoch of batches, in random order. Examples longer than 1.5 × the median (the loops,
    up to four times longer than the rest) are batched among themselves, so a batch pads little;
    within each group a batch is a random sample. (Sorting by length instead would put problems
    with small digits, whose sums are short, into the same batches.) A group's last batch, when
    smaller than `min_size`, joins the one before it (every process of a parallel run needs one
    example or more)."""
    median = sorted(lengths)[len(lengths) // 2]
    batches = []
    for long in (False, True):
        group = [i for i, length in enumerate(lengths) if (length > 1.5 * median) == long]
        rng.shuffle(group)
        chunks = [group[i:i + batch_size] for i in range(0, len(group), batch_size)]
        if len(chunks) > 1 and len(chunks[-1]) < min_size:
            chunks[-2] += chunks.pop()
        batches += chunks
    rng.shuffle(batches)
    return batches


def train_teacher(path: Path, records: list[dict[str, Any]], *, steps: int, batch_size: int, lr: float,
                  seed: int, log_every: int = 50, rank: int = 0, world_size: int = 1) -> list[tuple[int, float]]:
    """Train the model saved in `path` on `records` (trace format) and save it back; the loss per step.

    Examples are rendered exactly as `distill train` renders them (prompt masked, the reasoning,
    the answer and the end-of-turn token trained), then trained with AdamW, linear warmup and
    cosine decay, on padded batches of similar lengths.

    With `world_size` > 1 this is one of that many processes (torch.distributed initialised by the
    caller) training the model together: every process draws the same batches, computes the
    gradient of its share of each (every world_size-th example), and DistributedDataParallel
    averages the gradients, so all take the same steps; process 0 logs and saves.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.train import probe_chat_format, render_example
    from distill.train.outputs import generation_config

    tokenizer = AutoTokenizer.from_pretrained(path)
    fmt = probe_chat_format(tokenizer)
    examples = [render_example(record, tokenizer, chat_format=fmt) for record in records]
    lengths = [len(e["input_ids"]) for e in examples]
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(path)
    model.train()
    trained = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    warmup = max(1, steps // 20)

    def schedule(step: int) -> float:
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    rng = random.Random(f"{seed}:teacher-order")
    batches: list[list[int]] = []
    losses: list[tuple[int, float]] = []
    pad = tokenizer.pad_token_id
    for step in range(1, steps + 1):
        if not batches:
            batches = length_batches(lengths, batch_size, rng, min_size=world_size)
        batch = [examples[i] for i in batches.pop()[rank::world_size]]
        width = max(len(e["input_ids"]) for e in batch)
        input_ids = torch.full((len(batch), width), pad)
        labels = torch.full((len(batch), width), -100)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, example in enumerate(batch):
            size = len(example["input_ids"])
            input_ids[row, :size] = torch.tensor(example["input_ids"])
            labels[row, :size] = torch.tensor(example["labels"])
            attention[row, :size] = 1
        loss = trained(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        value = loss.detach()
        if world_size > 1:
            torch.distributed.all_reduce(value)
            value /= world_size
        losses.append((step, round(value.item(), 5)))
        if rank == 0 and (step % log_every == 0 or step == steps):
            log.info("teacher step %d/%d  loss %.4f  lr %.2e", step, steps, value.item(), scheduler.get_last_lr()[0])
    if rank == 0:
        model.eval()
        model.config.use_cache = True
        # stop at the end-of-turn token and sample as R1 checkpoints ship (what `distill train` writes too)
        model.generation_config = generation_config(model, tokenizer, fmt)
        model.save_pretrained(path)
    return losses
