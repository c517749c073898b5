"""Option groups that several stages share (generate, eval, the filter's judge).

Each group is a config dataclass of its own; a stage's config inherits the
groups it needs, so a field is written (and documented) once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import ClassVar

from distill.config import FREE, MUST_MATCH, Options, flag, one_of, require

R1_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
DEFAULT_TEMPLATE = "{problem}\n" + R1_INSTRUCTION
BACKENDS = ("auto", "vllm", "openai", "hf")


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
class BackendOptions(Options):
    panel: ClassVar[str] = "Engine"
    backend: str = field(default="auto", metadata=FREE)
    """Generation engine: auto (vllm with a CUDA GPU, else hf), vllm, openai or hf."""
    base_url: str | None = field(default=None, metadata=FREE)
    """openai backend: the server's base URL, e.g. http://localhost:8000/v1."""
    api_key_env: str | None = field(default=None, metadata=FREE)
    """openai backend: name of the environment variable holding the API key (the key is never written anywhere)."""
    tokenizer: str | None = field(default=None, metadata=FREE)
    """Tokenizer for exact token counts when the openai server reports one usage for n samples (default: the model's, if loadable)."""
    concurrency: int = field(default=64, metadata=FREE)
    """openai backend: requests in flight at once."""
    max_retries: int = field(default=6, metadata=FREE)
    """openai backend: retries per request on 429, 5xx, timeouts, dropped connections and empty replies."""
    request_timeout: float = field(default=1800.0, metadata=FREE)
    """openai backend: seconds before a request counts as timed out."""
    retry_backoff: float = field(default=1.0, metadata=FREE)
    """openai backend: first retry delay in seconds, doubled per attempt (with jitter, at most 60 s)."""
    batch_size: int = field(default=16, metadata=FREE)
    """hf backend: prompts per generate() call (each yields n sequences)."""
    dtype: str = field(default="auto", metadata=FREE)
    """hf and vllm backends: weights dtype (auto = bf16 on a GPU that has it, else float32)."""
    tensor_parallel_size: int = field(default=1, metadata=FREE)
    """vllm backend: GPUs to shard the model over."""
    gpu_memory_utilization: float = field(default=0.9, metadata=FREE)
    """vllm backend: share of GPU memory vLLM may take."""
    max_model_len: int | None = field(default=None, metadata=FREE)
    """vllm backend: context length to reserve (default: the model's)."""
    max_inflight: int = field(default=4096, metadata=FREE)
    """vllm backend: prompts queued in the engine at once; finished ones are written while the rest run."""
    vllm_args: str | None = field(default=None, metadata=FREE)
    """vllm backend: more vllm.LLM arguments as a JSON object, e.g. '{"enable_prefix_caching": true}'."""

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of(self.backend, "backend", BACKENDS)
        one_of(self.dtype, "dtype", ("auto", "float32", "bfloat16", "float16"))
        require(self.backend != "openai" or bool(self.base_url), "base_url",
                "is required with --backend openai (e.g. http://localhost:8000/v1)")
        # a server address or key with a local backend: the run would silently load a local model instead
        for name in ("base_url", "api_key_env"):
            require(getattr(self, name) is None or self.backend == "openai", name,
                    f"only applies to --backend openai (got --backend {self.backend}); add --backend openai "
                    f"or drop {flag(name)}")
        # the NAME of a variable: a key pasted here by mistake must not be echoed into logs or errors
        require(self.api_key_env is None or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env) is not None,
                "api_key_env", "takes the name of an environment variable that holds the key (e.g. "
                "OPENAI_API_KEY), not the key itself")
        require(self.concurrency >= 1, "concurrency", f"must be at least 1 (got {self.concurrency})")
        require(self.max_retries >= 0, "max_retries", f"must be ≥ 0 (got {self.max_retries})")
        require(self.request_timeout > 0, "request_timeout", "must be positive")
        require(self.retry_backoff >= 0, "retry_backoff", "must be ≥ 0")
        require(self.batch_size >= 1, "batch_size", f"must be at least 1 (got {self.batch_size})")
        require(self.tensor_parallel_size >= 1, "tensor_parallel_size", "must be at least 1")
        require(0 < self.gpu_memory_utilization <= 1, "gpu_memory_utilization", "must be in (0, 1]")
        require(self.max_inflight >= 1, "max_inflight", "must be at least 1")
        require(self.vllm_args is None or isinstance(parse_json_object(self.vllm_args), dict), "vllm_args",
                "must be a JSON object")

    @property
    def vllm_kwargs(self) -> dict:
        return parse_json_object(self.vllm_args) if self.vllm_args else {}


def parse_json_object(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
