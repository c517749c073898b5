"""`RunTrainer`, what every distill trainer mixes in before its transformers or TRL base."""

from __future__ import annotations

from typing import Any

from transformers.trainer_callback import PrinterCallback, ProgressCallback

from distill.training.checkpoints import AtomicCheckpoints
from distill.training.guards import NonFiniteGuard


class RunTrainer(NonFiniteGuard, AtomicCheckpoints):
    """The non-finite guard (it also checks the weights before a checkpoint is written), atomic
    checkpoints, and the stage's own progress line instead of the Trainer's printer and bar.

    Takes `checkpoint_meta`, `keep_checkpoints` and `max_bad_steps` besides the base trainer's arguments."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.remove_callback(PrinterCallback)
        self.remove_callback(ProgressCallback)
