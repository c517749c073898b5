"""TRL's GRPO and distillation trainers with distill's atomic checkpoints and one progress line per step."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from distill.progress import format_duration
from distill.report import save_curves
from distill.train.checkpoints import save_staged

log = logging.getLogger("distill.rl")


class AtomicCheckpoints:
    """Checkpoints written into a staging directory and renamed into place once complete, as
    `distill train` writes them (see distill.train.checkpoints): a kill never leaves a torn one."""

    def __init__(self, *args: Any, checkpoint_meta: dict[str, Any], keep_checkpoints: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.checkpoint_meta = checkpoint_meta
        self.keep_checkpoints = keep_checkpoints
        self.remove_callback(PrinterCallback)
        self.remove_callback(ProgressCallback)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        save = super()._save_checkpoint
        save_staged(self, lambda: save(model, trial), self.checkpoint_meta, self.keep_checkpoints)


def grpo_trainer(**kwargs: Any) -> Any:
    from trl import GRPOTrainer

    class DistillGRPOTrainer(AtomicCheckpoints, GRPOTrainer):
        pass

    return DistillGRPOTrainer(**kwargs)


def distill_trainer(**kwargs: Any) -> Any:
    from trl import DistillationTrainer

    class OnPolicyDistillationTrainer(AtomicCheckpoints, DistillationTrainer):
        pass

    return OnPolicyDistillationTrainer(**kwargs)


class Progress(TrainerCallback):
    """`step 12/300  reward 1.812  accuracy 0.500  format 1.000  language 0.991  length 412  kl 0.0012  elapsed 02:10  ETA 51:50`"""

    def __init__(self, shown: dict[str, str]) -> None:
        self.shown = shown
        self.started = time.perf_counter()
        self.first_step = 0

    def pick(self, logs: dict[str, float]) -> dict[str, float]:
        return {label: float(logs[key]) for key, label in self.shown.items() if logs.get(key) is not None}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.perf_counter()
        self.first_step = state.global_step

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        values = self.pick(logs or {})
        if not state.is_world_process_zero or not values:
            return
        elapsed = time.perf_counter() - self.started
        done = state.global_step - self.first_step
        eta = (state.max_steps - state.global_step) * elapsed / done if done else None
        parts = [f"step {state.global_step}/{state.max_steps}"]
        parts += [f"{label} {value:.0f}" if label == "length" else f"{label} {value:.4g}"
                  for label, value in values.items()]
        parts += [f"elapsed {format_duration(elapsed)}", f"ETA {format_duration(eta) if eta is not None else '?'}"]
        log.info("  ".join(parts))


def save_reward_curves(path: Path, history: list[dict[str, Any]], shown: dict[str, str], *, title: str) -> Path | None:
    """One curve per logged reward (and the KL or divergence) against the step; None before any step was logged."""
    series = {}
    for key, label in shown.items():
        if label == "length":  # tokens, on another scale than the rewards
            continue
        points = [(entry["step"], entry[key]) for entry in history if entry.get(key) is not None and "step" in entry]
        if points:
            series[label] = ([s for s, _ in points], [v for _, v in points])
    if not series:
        return None
    return save_curves(path, series, title=title, xlabel="step", ylabel="mean per completion")
