"""`TrainingOptions`, the option group `distill train` and `distill rl` share: the student, the method,
the optimizer's few common settings, LoRA, dtype and attention, and the run directory's life cycle.

Each field is written once, with one resume policy; a stage whose default differs (rl trains adapters
by default, for one epoch) redeclares only the default, with `stage_default`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from distill.config import FREE, MUST_MATCH, Options, one_of, require
from distill.errors import ConfigError

METHODS = ("full", "lora", "qlora")
DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTENTION = ("auto", "sdpa", "eager", "flash_attention_2", "flash_attention_3")
TRACKERS = ("tensorboard", "wandb", "mlflow", "trackio", "none")
TRACKER_PACKAGES = {"tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"), "wandb": (("wandb",), "wandb"),
                    "mlflow": (("mlflow",), "mlflow"), "trackio": (("trackio",), "trackio")}
"""tracker -> (modules transformers' callback imports, any one will do; the package to install)."""


def missing_tracker(tracker: str) -> str | None:
    """The pip package a --report-to tracker needs and this install lacks, else None. Checked with the
    options, so a recipe's tracker fails in one line before a model is loaded or --out is touched
    (transformers raises only when the trainer is built)."""
    import importlib.util

    modules, package = TRACKER_PACKAGES.get(tracker, ((), ""))
    if modules and not any(importlib.util.find_spec(module) for module in modules):
        return package
    return None


@dataclass(kw_only=True)
class TrainingOptions(Options):
    DEFAULT_LR: ClassVar[dict[str, float]]
    """--lr when it is not given, by --method (each stage sets its own)"""

    student: str = field(metadata=MUST_MATCH)
    """The model to train: a local directory or a Hub id (Qwen2/2.5/3, Llama-3 …); distill rl also takes a distill train output, LoRA/QLoRA adapter directories included."""
    out: str = field(metadata=FREE)
    """Output directory: the trained model or adapter, tokenizer, curves, checkpoints; a rerun with the same settings resumes an unfinished run there and does nothing to a finished one."""
    method: str = field(default="full", metadata=MUST_MATCH)
    """full (all weights), lora (adapters on a frozen base) or qlora (adapters on a 4-bit NF4 base)."""
    epochs: float = field(default=3.0, metadata=MUST_MATCH)
    """Passes over the data (fractions allowed)."""
    lr: float | None = field(default=None, metadata=MUST_MATCH)
    """Peak learning rate (default: 1e-5 for full and 1e-4 for lora and qlora in distill train, 1e-6 and 1e-5 in distill rl)."""
    seed: int = field(default=0, metadata=MUST_MATCH)
    """Seed of the data order, dropout, adapter init and rl's rollout sampling (the order is a function of the seed alone, so a resumed run sees the same batches)."""
    lora_r: int = field(default=16, metadata=MUST_MATCH)
    """lora/qlora: adapter rank (a distill train adapter given to distill rl keeps its own)."""
    lora_alpha: int = field(default=32, metadata=MUST_MATCH)
    """lora/qlora: adapter scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = field(default=0.05, metadata=MUST_MATCH)
    """lora/qlora: dropout on the adapter input."""
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"], metadata=MUST_MATCH)
    """lora/qlora: modules that get adapters; all-linear = every linear layer except the output head."""
    dtype: str = field(default="auto", metadata=MUST_MATCH)
    """Weights dtype: auto = bfloat16 on GPUs that have it (distill train keeps float32 master weights for full training, with bf16 autocast), float32 on CPU."""
    attn_implementation: str = field(default="auto", metadata=FREE)
    """Attention kernel: auto (flash_attention_2 when installed on a GPU, else sdpa), sdpa, eager, flash_attention_2, flash_attention_3."""
    gradient_checkpointing: bool | None = field(default=None, metadata=FREE)
    """Recompute activations in the backward pass to save memory (default: distill train turns it on when --max-seq-len > 2048, distill rl leaves it off)."""
    save_steps: int = field(default=100, metadata=FREE)
    """Write a resumable checkpoint every N optimizer steps (a kill loses at most N steps; 0 = none)."""
    keep_checkpoints: int = field(default=1, metadata=FREE)
    """Most recent complete checkpoints kept while training (all are removed once the final model is saved)."""
    max_bad_steps: int = field(default=0, metadata=FREE)
    """Optimizer steps with a non-finite loss or gradient norm whose update is skipped before the run stops (0 = stop at the first); a non-finite model is never saved."""
    resume: bool = field(default=False, metadata=FREE)
    """Optional: resuming is automatic (a rerun with the settings of an unfinished run in --out continues it from its last intact checkpoint, with the same data order)."""
    overwrite: bool = field(default=False, metadata=FREE)
    """Replace a finished or unfinished run in --out."""
    merge: bool = field(default=False, metadata=FREE)
    """lora/qlora: also write the adapter merged into the full-precision base, as a full model in <out>/merged (for vLLM)."""
    logging_steps: int = field(default=1, metadata=FREE)
    """One progress line every N optimizer steps."""
    report_to: list[str] = field(default_factory=list, metadata=FREE)
    """Experiment trackers to log to as well, e.g. tensorboard,wandb (the curves PNG is always written)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of(self.method, "method", METHODS)
        one_of(self.dtype, "dtype", DTYPES)
        one_of(self.attn_implementation, "attn_implementation", ATTENTION)
        require(bool(self.student), "student", "is required")
        require(bool(self.out), "out", "is required")
        require(self.epochs > 0, "epochs", f"must be positive (got {self.epochs})")
        require(self.lr is None or self.lr > 0, "lr", f"must be positive (got {self.lr})")
        require(self.lora_r >= 1, "lora_r", f"must be at least 1 (got {self.lora_r})")
        require(self.lora_alpha >= 1, "lora_alpha", f"must be at least 1 (got {self.lora_alpha})")
        require(0 <= self.lora_dropout < 1, "lora_dropout", f"must be in [0, 1) (got {self.lora_dropout})")
        require(bool(self.lora_target_modules), "lora_target_modules", "must name at least one module")
        require(self.save_steps >= 0, "save_steps", "must be ≥ 0")
        require(self.keep_checkpoints >= 1, "keep_checkpoints", "must be at least 1 (the one to resume from)")
        require(self.max_bad_steps >= 0, "max_bad_steps", f"must be ≥ 0 (got {self.max_bad_steps})")
        require(self.logging_steps >= 1, "logging_steps", "must be at least 1")
        require(not (self.resume and self.overwrite), "resume", "and --overwrite exclude each other")
        require(not (self.merge and self.method == "full"), "merge",
                "needs --method lora or qlora (a full fine-tune is already a merged model)")
        for tracker in self.report_to:
            one_of(tracker, "report_to", TRACKERS)
            package = missing_tracker(tracker)
            if package:
                raise ConfigError(f"--report-to {tracker} needs the {package} package, which is not installed: "
                                  f"pip install {package} (or pip install -e '.[trackers]'), or log to no tracker "
                                  "with --report-to none")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else self.DEFAULT_LR[self.method]


def stage_default(name: str, default: Any) -> Any:
    """The TrainingOptions field `name` with a stage's own default; its docstring and resume policy stay
    the group's (write it as `method: str = stage_default("method", "lora")`)."""
    return field(default=default, metadata=TrainingOptions.__dataclass_fields__[name].metadata)
