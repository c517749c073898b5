"""Option groups that several stages share (generate, eval, the filter's judge).

Each group is a config dataclass of its own; a stage's config inherits the
groups it needs, so a field is written (and documented) once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import ClassVar

from distill.config import Options, flag, one_of, require

R1_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
DEFAULT_TEMPLATE = "{problem}\n" + R1_INSTRUCTION
BACKENDS = ("auto", "vllm", "openai", "hf")


@dataclass(kw_only=True)
class PromptOptions(Options):
    panel: ClassVar[str] = "Prompts"
    prompt_column: str = "problem"
    """Column holding the problem text."""
    answer_column: str = "answer"
    """Column holding the reference answer (GSM8K-style '#### 42' is reduced to '42'); may be absent."""
    id_column: str = "id"
    """Column holding a stable prompt id; without it the id is a hash of the problem text."""
    system: str | None = None
    """Optional system prompt (DeepSeek recommends none for R1 models)."""
    template: str = DEFAULT_TEMPLATE
    """User-turn template; '{problem}' is replaced by the problem text."""
    limit: int | None = None
    """Use only the first N prompts."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require("{problem}" in self.template, "template", "must contain '{problem}'")
        require(self.limit is None or self.limit > 0, "limit", f"must be a positive number (got {self.limit})")


@dataclass(kw_only=True)
class SamplingOptions(Options):
    panel: ClassVar[str] = "Sampling"
    n: int = 4
    """Samples per prompt."""
    temperature: float = 0.6
    """Sampling temperature (0 = greedy); 0.6 as in the DeepSeek-R1 paper."""
    top_p: float = 0.95
    """Nucleus sampling mass; 0.95 as in the DeepSeek-R1 paper."""
    max_tokens: int = 32768
    """Most new tokens per sample; a sample that hits it gets finish_reason 'length'."""
    seed: int = 0
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
    backend: str = "auto"
    """Generation engine: auto (vllm with a CUDA GPU, else hf), vllm, openai or hf."""
    base_url: str | None = None
    """openai backend: the server's base URL, e.g. http://localhost:8000/v1."""
    api_key_env: str | None = None
    """openai backend: name of the environment variable holding the API key (the key is never written anywhere)."""
    tokenizer: str | None = None
    """Tokenizer for exact token counts when the openai server reports one usage for n samples (default: the model's, if loadable)."""
    concurrency: int = 64
    """openai backend: requests in flight at once."""
    max_retries: int = 6
    """openai backend: retries per request on 429, 5xx, timeouts, dropped connections and empty replies."""
    request_timeout: float = 1800.0
    """openai backend: seconds before a request counts as timed out."""
    retry_backoff: float = 1.0
    """openai backend: first retry delay in seconds, doubled per attempt (with jitter, at most 60 s)."""
    batch_size: int = 16
    """hf backend: prompts per generate() call (each yields n sequences)."""
    dtype: str = "auto"
    """hf and vllm backends: weights dtype (auto = bf16 on a GPU that has it, else float32)."""
    tensor_parallel_size: int = 1
    """vllm backend: GPUs to shard the model over."""
    gpu_memory_utilization: float = 0.9
    """vllm backend: share of GPU memory vLLM may take."""
    max_model_len: int | None = None
    """vllm backend: context length to reserve (default: the model's)."""
    max_inflight: int = 4096
    """vllm backend: prompts queued in the engine at once; finished ones are written while the rest run."""
    vllm_args: str | None = None
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
