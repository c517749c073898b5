"""transformers' Trainer with distill's data order and one log line per step (atomic checkpoints and the
non-finite guard come from distill.training)."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback, TrainingArguments

from distill.progress import format_duration
from distill.train.config import TrainConfig
from distill.train.plan import TrainPlan
from distill.training.trainer import RunTrainer

log = logging.getLogger("distill.train")


def training_arguments(cfg: TrainConfig, plan: TrainPlan, run_dir: Path, *, out: Path) -> TrainingArguments:
    scheduler, scheduler_kwargs = cfg.lr_scheduler, {}
    if scheduler == "cosine" and cfg.min_lr_ratio > 0:
        scheduler, scheduler_kwargs = "cosine_with_min_lr", {"min_lr_rate": cfg.min_lr_ratio}
    elif scheduler == "constant":
        scheduler = "constant_with_warmup"
    if "tensorboard" in cfg.report_to:
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(out / "runs"))
    options = dict(
        output_dir=str(run_dir),
        # one packed micro-batch (a token budget, not a number of examples) per device and step
        per_device_train_batch_size=1,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        learning_rate=plan.learning_rate,
        lr_scheduler_type=scheduler,
        lr_scheduler_kwargs=scheduler_kwargs,
        warmup_steps=cfg.warmup_ratio,  # below 1: a share of the total steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        optim=plan.optimizer,
        bf16=plan.mixed_precision == "bf16",
        fp16=plan.mixed_precision == "fp16",
        activation_checkpointing=plan.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        use_liger_kernel=plan.liger,
        use_cache=False,
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 1,
        save_total_limit=None,  # rotation is ours: it must never delete the last complete checkpoint
        report_to=list(cfg.report_to) or "none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=True,
        remove_unused_columns=False,
        include_num_input_tokens_seen="all",  # packed rows have no padding: every token is real
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        # rank 0 tokenizes the whole kept file while the others wait at a barrier
        ddp_timeout=3 * 3600,
        use_cpu=plan.hardware.device == "cpu",
    )
    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "activation_checkpointing" not in known:  # transformers before 5.x names it gradient_checkpointing
        options["gradient_checkpointing"] = options.pop("activation_checkpointing")
        options["gradient_checkpointing_kwargs"] = options.pop("activation_checkpointing_kwargs")
    return TrainingArguments(**{k: v for k, v in options.items() if k in known})


class StepLogger(TrainerCallback):
    """`step 12/300  epoch 0.12  loss 0.8123  lr 1.98e-05  grad-norm 0.412  31,520 tok/s  elapsed 02:10  ETA 51:50`"""

    def __init__(self) -> None:
        self.started = self.last_time = time.perf_counter()
        self.first_step = self.last_tokens = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = self.last_time = time.perf_counter()
        self.first_step = state.global_step
        self.last_tokens = state.num_input_tokens_seen

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
               **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        now = time.perf_counter()
        rate = (state.num_input_tokens_seen - self.last_tokens) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_tokens = now, state.num_input_tokens_seen
        done = state.global_step - self.first_step
        elapsed = now - self.started
        eta = (state.max_steps - state.global_step) * elapsed / done if done else None
        parts = [f"step {state.global_step}/{state.max_steps}", f"epoch {state.epoch or 0:.2f}",
                 f"loss {logs['loss']:.4f}", f"lr {logs.get('learning_rate', 0):.2e}"]
        if logs.get("grad_norm") is not None:
            parts.append(f"grad-norm {logs['grad_norm']:.3f}")
        parts.append(f"{rate:,.0f} tok/s")
        import torch

        if torch.cuda.is_available():
            parts.append(f"mem {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
        parts.append(f"elapsed {format_duration(elapsed)}")
        parts.append(f"ETA {format_duration(eta) if eta is not None else '?'}")
        log.info("  ".join(parts))


class DistillTrainer(RunTrainer, Trainer):
    """Trainer over packed micro-batches in distill's order, with the shared run trainer's atomic
    checkpoints and non-finite guard."""

    def __init__(self, *args: Any, pack_sampler: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pack_sampler = pack_sampler

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        return self.pack_sampler
