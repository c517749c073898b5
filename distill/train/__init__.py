"""`distill train`: fine-tune a student on kept traces (full, LoRA or QLoRA).

    from distill.train import TrainConfig, train
    result = train(TrainConfig(kept="kept.jsonl", student="Qwen/Qwen2.5-1.5B", out="student/"))

`render_example(record, tokenizer)` shows exactly what is trained: the prompt
masked with -100, then `<think>\\n{reasoning}\\n</think>\\n\\n{answer}` and the
chat template's end-of-turn token.
"""

from __future__ import annotations

from typing import Any

from distill.train.config import DataStats, TrainConfig, TrainResult
from distill.train.render import ChatFormat, probe_chat_format, render_example

__all__ = ["ChatFormat", "DataStats", "TrainConfig", "TrainResult", "probe_chat_format", "render_example", "train"]


def train(cfg: TrainConfig, **kwargs: Any) -> TrainResult:
    """Fine-tune cfg.student on cfg.kept into cfg.out; see `distill.train.run.train`."""
    # torch, transformers and peft load only when a run starts, so `distill --help` stays fast
    from distill.train.run import train as run

    return run(cfg, **kwargs)
