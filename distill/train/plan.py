"""`TrainPlan`: what a `TrainConfig` resolves to on this machine, for this student and kept file.

Everything "auto" (attention kernel, optimizer, dtypes, checkpointing, the chunked loss) and the
identities of the inputs are decided here once, before anything is written; the run then logs the
plan, records it in run.json, train_summary.json and the model card, and every step reads it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from distill.errors import ConfigError
from distill.train.config import TrainConfig
from distill.train.render import ChatFormat
from distill.training.modeling import Hardware, attention_kernel, launcher, student_identity, weights_dtype


def optimizer_name(cfg: TrainConfig, hw: Hardware) -> str:
    if cfg.optimizer != "auto":
        from transformers.training_args import OptimizerNames

        names = [o.value for o in OptimizerNames]
        if cfg.optimizer not in names:
            raise ConfigError(f"--optimizer {cfg.optimizer!r} is not a transformers optimizer; pick one of "
                              f"{', '.join(names[:12])} …")
        return cfg.optimizer
    if hw.device != "cuda":
        return "adamw_torch"
    # QLoRA's paged optimizer: optimizer states move to CPU when a long sequence spikes GPU memory
    return "paged_adamw_8bit" if cfg.method == "qlora" else "adamw_torch_fused"

@dataclass(frozen=True)
class TrainPlan:
    hardware: Hardware
    processes: int
    """data-parallel processes (ranks) of the job, as the launcher set WORLD_SIZE (accelerate's state must
    not be created before TrainingArguments sets up the process group)"""
    learning_rate: float
    optimizer: str
    """a transformers optimizer name"""
    weights_dtype: str
    """dtype the weights are loaded in (float32 master weights for full training)"""
    mixed_precision: str
    """bf16, fp16 or none (autocast)"""
    attention: str
    gradient_checkpointing: bool
    chunked_loss: bool
    liger: bool
    chat_format: ChatFormat
    template_source: str
    """where the chat template comes from, in words"""
    kept_sha256: str
    student_identity: str
    """sha256 over the student directory's files, or a Hub id with its commit"""

    @property
    def flash_attention(self) -> bool:
        return self.attention.startswith("flash")

    def rows(self) -> list[list[str]]:
        """What 'auto' resolved to, as (setting, value) rows for the log and the model card."""
        def on(value: bool) -> str:
            return "on" if value else "off"

        return [["processes", str(self.processes)], ["optimizer", self.optimizer],
                ["weights dtype", self.weights_dtype], ["mixed precision", self.mixed_precision],
                ["attention", self.attention], ["gradient checkpointing", on(self.gradient_checkpointing)],
                ["chunked loss", on(self.chunked_loss)], ["Liger kernels", on(self.liger)]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_plan(cfg: TrainConfig, hw: Hardware, *, chat_format: ChatFormat, template_source: str,
                 vocab_size: int, kept_sha256: str) -> TrainPlan:
    from distill.train.loss import full_logits_bytes

    checkpointing = cfg.use_gradient_checkpointing
    # With FSDP's own activation checkpointing switched on in the accelerate config, checkpointing
    # the model as well would all-gather every layer's weights a second time.
    if launcher() == "fsdp" and os.environ.get("FSDP_ACTIVATION_CHECKPOINTING", "").lower() == "true":
        checkpointing = False
    chunked = cfg.chunked_loss
    if chunked is None:
        chunked = not cfg.liger and full_logits_bytes(cfg.micro_batch_tokens, vocab_size) > 2**30
    bf16 = hw.bf16 and cfg.dtype != "float16"
    fp16 = hw.device == "cuda" and not hw.bf16 and cfg.dtype == "float16"
    return TrainPlan(
        hardware=hw, processes=int(os.environ.get("WORLD_SIZE", "1")), learning_rate=cfg.learning_rate,
        optimizer=optimizer_name(cfg, hw),
        weights_dtype=str(weights_dtype(cfg.dtype, cfg.method, hw, full_in_float32=True)).replace("torch.", ""),
        mixed_precision="bf16" if bf16 else "fp16" if fp16 else "none",
        attention=attention_kernel(cfg.attn_implementation, hw),
        gradient_checkpointing=checkpointing, chunked_loss=chunked, liger=cfg.liger, chat_format=chat_format,
        template_source=template_source, kept_sha256=kept_sha256, student_identity=student_identity(cfg.student))
