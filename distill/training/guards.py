"""The non-finite guard of every distill trainer: a step whose loss or gradient norm is nan or inf stops
the run in one line (or, up to --max-bad-steps, has its update skipped), and weights that hold a nan or
inf are never saved, as a checkpoint or as the model."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from distill.errors import TrainingError
from distill.training.checkpoints import last_checkpoint

log = logging.getLogger("distill.training")


def non_finite_parameter(model: Any) -> str | None:
    """The name of the first floating-point parameter holding a nan or inf (this rank's shard), if any."""
    for name, parameter in model.named_parameters():
        local = parameter.to_local() if hasattr(parameter, "to_local") else parameter
        if local.is_floating_point() and not torch.isfinite(local).all():
            return name
    return None


class NonFiniteGuard:
    """Mixed in before a transformers Trainer (TRL's included, whose training loop is the Trainer's)."""

    def __init__(self, *args: Any, max_bad_steps: int = 0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_bad_steps = max_bad_steps
        self.bad_steps = 0
        self.bad_loss: float | None = None

    def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        # the Trainer replaces a nan loss by the running mean in what it logs: look before it does
        if self.bad_loss is None and not torch.isfinite(loss).all():
            self.bad_loss = float(loss.detach().float().mean())
        return loss

    def _get_grad_norm(self, model: Any, grad_norm: Any = None) -> Any:
        # called once per optimizer step, after clipping and right before the update
        norm = super()._get_grad_norm(model, grad_norm)
        value = float(norm) if norm is not None else 0.0
        if self._any_rank(self.bad_loss is not None or not math.isfinite(value)):
            self._skip_or_stop(model, value)
        self.bad_loss = None
        return norm

    def train(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().train(*args, **kwargs)
        except TrainingError:
            raise
        except Exception as exc:
            # non-finite weights break what runs before the next loss is seen (rl's rollouts sample from nan
            # probabilities): say what went wrong, not where it surfaced
            name = non_finite_parameter(self.model)
            if name is None:
                raise
            raise TrainingError(f"after step {self.state.global_step} the weights are no longer finite ({name} holds "
                                f"nan or inf), so training stopped; {self.divergence_advice()}") from exc

    def _any_rank(self, flag: bool) -> bool:
        if self.args.world_size == 1:
            return flag
        total = self.accelerator.reduce(torch.tensor(float(flag), device=self.accelerator.device), "sum")
        return bool(total.item())

    def _skip_or_stop(self, model: Any, grad_norm: float) -> None:
        step = self.state.global_step + 1
        loss = "finite" if self.bad_loss is None else f"{self.bad_loss}"
        what = f"step {step}: the loss is {loss} and the gradient norm {grad_norm}"
        self.bad_steps += 1
        if self.bad_steps > self.max_bad_steps:
            raise TrainingError(f"{what}, so training stopped before that update; {self.divergence_advice()}")
        log.warning("%s: its update is skipped (%d of --max-bad-steps %d)", what, self.bad_steps, self.max_bad_steps)
        for parameter in model.parameters():
            parameter.grad = None  # optimizers leave parameters without a gradient untouched

    def divergence_advice(self) -> str:
        last = last_checkpoint(Path(self.args.output_dir))
        kept = (f"the last finite checkpoint {last} is kept (the same command with --max-bad-steps K continues "
                "from it, skipping up to K such steps; --overwrite starts over)" if last else
                "no checkpoint had been written yet")
        return (f"lower --lr (it is {self.args.learning_rate:g}) or train in bfloat16 or float32 rather than "
                f"float16 (--dtype); no model was saved, and {kept}")

    def check_finite_weights(self) -> None:
        """Raise TrainingError instead of saving weights that hold a nan or inf."""
        name = non_finite_parameter(self.model)
        if self._any_rank(name is not None):
            raise TrainingError(f"after step {self.state.global_step} the weights are no longer finite "
                                f"({name or 'a parameter of another rank'} holds nan or inf), so they are not "
                                f"saved; {self.divergence_advice()}")

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        self.check_finite_weights()
        super()._save_checkpoint(model, trial)
