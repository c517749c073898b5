"""Option groups that several stages share (generate, eval, the filter's judge).

Each group is a config dataclass of its own; a stage's config inherits the
groups it needs, so a field is written (and documented) once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from distill.backends import AUTO, BACKENDS, owners, unused_options
from distill.backends.hf import HFOptions
from distill.backends.openai_compat import OpenAIOptions
from distill.backends.vllm_engine import VLLMOptions
from distill.config import FREE, MUST_MATCH, Options, flag, one_of, project, require
from distill.errors import ConfigError

R1_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
DEFAULT_TEMPLATE = "{problem}\n" + R1_INSTRUCTION


@dataclass(kw_only=True)
class PromptOptions(Options):
    panel: ClassVar[str] = "Prompts"
    prompt_column: str = field(default="problem", metadata=MUST_MATCH)
    """Column holding the problem text."""
    answer_column: str = field(default="answer", metadata=MUST_MATCH)
    """Column holding the reference answer (GSM8K-style '#### 42' is reduced to '42'); may be absent."""
    id_column: str = field(default="id", metadata=FREE)
    """Column holding a stable prompt id; without it the id is a hash of the problem text."""
    system: str | None = field(default=None, metadata=MUST_MATCH)
    """Optional system prompt (DeepSeek recommends none for R1 models)."""
    template: str = field(default=DEFAULT_TEMPLATE, metadata=MUST_MATCH)
    """User-turn template; '{problem}' is replaced by the problem text."""
    limit: int | None = field(default=None, metadata=FREE)
    """Use only the first N prompts."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require("{problem}" in self.template, "template", "must contain '{problem}'")
        require(self.limit is None or self.limit > 0, "limit", f"must be a positive number (got {self.limit})")


@dataclass(kw_only=True)
class SamplingOptions(Options):
    panel: ClassVar[str] = "Sampling"
    n: int = field(default=4, metadata=FREE)
    """Samples per prompt."""
    temperature: float = field(default=0.6, metadata=MUST_MATCH)
    """Sampling temperature (0 = greedy); 0.6 as in the DeepSeek-R1 paper."""
    top_p: float = field(default=0.95, metadata=MUST_MATCH)
    """Nucleus sampling mass; 0.95 as in the DeepSeek-R1 paper."""
    max_tokens: int = field(default=32768, metadata=MUST_MATCH)
    """Most new tokens per sample; a sample that hits it gets finish_reason 'length'."""
    seed: int = field(default=0, metadata=MUST_MATCH)
    """Base seed; every prompt draws from a seed derived from it and its id, so reruns reproduce."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.n >= 1, "n", f"must be at least 1 (got {self.n})")
        require(self.temperature >= 0, "temperature", f"must be ≥ 0 (got {self.temperature})")
        require(0 < self.top_p <= 1, "top_p", f"must be in (0, 1] (got {self.top_p})")
        require(self.max_tokens >= 1, "max_tokens", f"must be at least 1 (got {self.max_tokens})")


@dataclass(kw_only=True)
class BackendOptions(OpenAIOptions, HFOptions, VLLMOptions):
    """The engine choice, with every backend's options as flat flags; each backend reads only its own."""

    backend: str = field(default="auto", metadata=FREE)
    """Generation engine: auto (vllm with a CUDA GPU, else hf), vllm, openai or hf."""

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of(self.backend, "backend", ("auto", *BACKENDS))
        chosen = AUTO if self.backend == "auto" else (self.backend,)
        # an option of another backend would be silently ignored: a server address with a local
        # backend, say, and the run would load a local model instead
        unused = unused_options(self, chosen)
        if unused:
            name, users = unused[0], owners(unused[0])
            raise ConfigError(f"{flag(name)} only applies to --backend {' or '.join(users)} (got --backend "
                              f"{self.backend}); add --backend {users[0]} or drop {flag(name)}")
        if self.backend != "auto":
            project(BACKENDS[self.backend][1], self).check_chosen()


LOCAL_RAY = "local"
"""--ray's value for a Ray started on this machine for the run (what a bare --ray means)."""


@dataclass(kw_only=True)
class RayOptions(Options):
    """Where a stage runs as a Ray Data pipeline (distill.raydata); None runs it in this process."""

    panel: ClassVar[str] = "Ray"
    ray: str | None = field(default=None, metadata=FREE)
    """Run on a Ray cluster as a Ray Data pipeline: 'auto' (the cluster this machine is a node of), ray://HOST:PORT or HOST:PORT (its head), or 'local' (a Ray started for this run; a bare --ray means local)."""
    ray_replicas: int = field(default=1, metadata=FREE)
    """--ray: engine replicas in the actor pool (each a vLLM engine on --tensor-parallel-size GPUs); Ray scales between 1 and this."""
    ray_batch_size: int = field(default=16, metadata=FREE)
    """--ray: rows (one sample each) per Ray Data batch: what a dead engine actor's retry redoes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.ray is None or self.ray in (LOCAL_RAY, "auto") or re.fullmatch(
            r"(ray://)?[A-Za-z0-9.\-\[\]:]+:\d+", self.ray) is not None, "ray",
            f"takes 'local', 'auto', ray://HOST:PORT or HOST:PORT (got {self.ray!r}); a bare --ray (last, or "
            "before another flag) means local")
        require(self.ray_replicas >= 1, "ray_replicas", f"must be at least 1 (got {self.ray_replicas})")
        require(self.ray_batch_size >= 1, "ray_batch_size", f"must be at least 1 (got {self.ray_batch_size})")
