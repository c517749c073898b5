"""`TrainConfig`, the options of `distill train` (at once Python API, CLI flags and recipe schema),
and `TrainResult`, what a run returns."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from distill.chat import ChatTemplateOptions
from distill.config import FREE, MUST_MATCH, one_of, require
from distill.training.options import TrainingOptions

SCHEDULERS = ("cosine", "linear", "constant")
# lr when --lr is not given: the published full-SFT runs of R1 students use 1e-5..5e-5; LoRA
# needs roughly ten times the full-finetuning rate (QLoRA paper; "LoRA Without Regret", 2025).
DEFAULT_LR = {"full": 1e-5, "lora": 1e-4, "qlora": 1e-4}
# Above this many tokens per sequence, activations dominate memory and checkpointing pays for itself.
CHECKPOINTING_FROM_SEQ_LEN = 2048


@dataclass(kw_only=True)
class TrainConfig(TrainingOptions, ChatTemplateOptions):
    DEFAULT_LR: ClassVar[dict[str, float]] = DEFAULT_LR

    kept: str = field(metadata=FREE)
    """Kept traces (.jsonl, the output of distill filter); each record needs messages and a completion with <think>…</think> then the answer."""
    max_seq_len: int = field(default=16384, metadata=MUST_MATCH)
    """Longest example in tokens (prompt + reasoning + answer); longer ones are dropped and counted, never truncated."""
    lr_scheduler: str = field(default="cosine", metadata=MUST_MATCH)
    """Learning-rate schedule after warmup: cosine, linear or constant."""
    min_lr_ratio: float = field(default=0.0, metadata=MUST_MATCH)
    """cosine only: the floor the rate decays to, as a share of --lr (open-r1 uses 0.1)."""
    warmup_ratio: float = field(default=0.03, metadata=MUST_MATCH)
    """Share of the optimizer steps spent warming the learning rate up from 0."""
    weight_decay: float = field(default=0.0, metadata=MUST_MATCH)
    """AdamW weight decay."""
    max_grad_norm: float = field(default=1.0, metadata=MUST_MATCH)
    """Gradient clipping norm (0 = no clipping)."""
    batch_tokens: int | None = field(default=None, metadata=MUST_MATCH)
    """Token budget of one packed micro-batch per device (default: --max-seq-len); examples are packed up to it without padding."""
    grad_accum: int = field(default=1, metadata=MUST_MATCH)
    """Micro-batches per optimizer step (a step sees about batch-tokens × grad-accum × processes tokens)."""
    optimizer: str = field(default="auto", metadata=MUST_MATCH)
    """A transformers optimizer name (adamw_torch, adamw_torch_fused, paged_adamw_8bit …); auto = paged_adamw_8bit for qlora on a GPU, adamw_torch_fused on a GPU, adamw_torch on CPU."""
    liger: bool = field(default=False, metadata=FREE)
    """Use Liger kernels (fused RMSNorm, RoPE, SwiGLU, linear+cross-entropy); needs a CUDA GPU and pip install 'distill[liger]'."""
    chunked_loss: bool | None = field(default=None, metadata=FREE)
    """Compute the output head and cross-entropy over trained tokens in chunks, never holding a micro-batch's full logits (default: on when they would exceed 1 GiB)."""
    loss_chunk_tokens: int = field(default=4096, metadata=FREE)
    """Tokens per chunk of the chunked loss."""
    preflight: bool = field(default=False, metadata=FREE)
    """Render one example with the trained span marked, print token counts and the checks, then stop without training."""
    chat_template: str | None = field(default=None, metadata=MUST_MATCH)
    """A Jinja chat template file to use instead of the student's own (base models without one get distill's default)."""
    tokenizer: str | None = field(default=None, metadata=MUST_MATCH)
    """Load the tokenizer from here instead of --student."""
    limit: int | None = field(default=None, metadata=MUST_MATCH)
    """Train on the first N kept records only (quick trials)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of(self.lr_scheduler, "lr_scheduler", SCHEDULERS)
        require(bool(self.kept), "kept", "is required (the kept traces .jsonl)")
        require(self.max_seq_len >= 16, "max_seq_len", f"must be at least 16 (got {self.max_seq_len})")
        require(0 <= self.min_lr_ratio < 1, "min_lr_ratio", f"must be in [0, 1) (got {self.min_lr_ratio})")
        require(self.min_lr_ratio == 0 or self.lr_scheduler == "cosine", "min_lr_ratio",
                "only applies to --lr-scheduler cosine")
        require(0 <= self.warmup_ratio < 1, "warmup_ratio", f"must be in [0, 1) (got {self.warmup_ratio})")
        require(self.weight_decay >= 0, "weight_decay", "must be ≥ 0")
        require(self.max_grad_norm >= 0, "max_grad_norm", "must be ≥ 0")
        require(self.batch_tokens is None or self.batch_tokens >= self.max_seq_len, "batch_tokens",
                f"must be at least --max-seq-len {self.max_seq_len} so that every kept example fits in a "
                f"micro-batch (got {self.batch_tokens})")
        require(self.grad_accum >= 1, "grad_accum", f"must be at least 1 (got {self.grad_accum})")
        require(self.loss_chunk_tokens >= 64, "loss_chunk_tokens", "must be at least 64")
        require(self.limit is None or self.limit > 0, "limit", f"must be a positive number (got {self.limit})")
        require(not (self.liger and self.chunked_loss), "chunked_loss",
                "and --liger both replace the loss; Liger's fused linear cross-entropy already avoids the full "
                "logits, so drop --chunked-loss")

    @property
    def micro_batch_tokens(self) -> int:
        return self.batch_tokens or self.max_seq_len

    @property
    def use_gradient_checkpointing(self) -> bool:
        if self.gradient_checkpointing is not None:
            return self.gradient_checkpointing
        return self.max_seq_len > CHECKPOINTING_FROM_SEQ_LEN


@dataclass
class DataStats:
    """What the kept file turned into: examples kept, dropped for length, tokens."""
    records: int
    examples: int
    dropped_too_long: int
    tokens: int
    """tokens of the kept examples (prompt + target), one epoch"""
    trained_tokens: int
    """target tokens of the kept examples (reasoning + answer + end of turn), one epoch"""
    dropped_tokens: int
    longest: int
    shortest: int
    teachers: dict[str, int] = field(default_factory=dict)

    @property
    def dropped_token_share(self) -> float:
        total = self.tokens + self.dropped_tokens
        return self.dropped_tokens / total if total else 0.0

    def line(self, max_seq_len: int) -> str:
        return (f"{self.examples:,} of {self.records:,} examples kept, {self.dropped_too_long:,} dropped as longer than "
                f"--max-seq-len {max_seq_len:,} ({self.dropped_token_share:.1%} of all tokens); "
                f"{self.tokens:,} tokens per epoch, {self.trained_tokens:,} of them trained")


@dataclass
class TrainResult:
    out: str
    student: str
    method: str
    data: DataStats
    preflight: str = ""
    """the preflight report: one rendered example with the trained span marked, counts and checks"""
    steps: int = 0
    epochs: float = 0.0
    final_loss: float | None = None
    elapsed_s: float = 0.0
    tokens_per_s: float = 0.0
    resumed_from: str | None = None
    merged: str | None = None
    files: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["data"] = dict(self.data.__dict__)
        return data

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> TrainResult:
        """The result a finished run recorded in its train_summary.json (`to_dict` and more)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in summary.items() if k in names}
        return cls(**{**values, "data": DataStats(**values["data"])})

    def format(self) -> str:
        if self.preflight and not self.steps:
            return self.preflight
        lines = [
            f"student           {self.out} ({self.method} of {self.student})",
            f"data              {self.data.line(self.config.get('max_seq_len', 0))}",
            f"training          {self.steps:,} steps, {self.epochs:.2f} epochs, final loss "
            f"{self.final_loss:.4f}" if self.final_loss is not None else
            f"training          {self.steps:,} steps, {self.epochs:.2f} epochs",
            f"throughput        {self.tokens_per_s:,.0f} tok/s over {self.elapsed_s:,.1f} s"
            + (f" (resumed from {self.resumed_from})" if self.resumed_from else ""),
        ]
        if self.merged:
            lines.append(f"merged model      {self.merged}")
        return "\n".join(lines)
