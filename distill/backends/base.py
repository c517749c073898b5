"""The interface every generation engine implements (hf, openai, vllm).

A backend turns requests (a chat, n, a seed) into finished samples. It yields a
result per prompt as soon as the prompt's n samples are done, in any order, so
the caller can write each one to disk at once: a crash then loses only what was
still in flight. Each backend is built from an options class of its own; the
registry in `distill.backends` pairs them.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from distill.chat import ChatTemplateOptions
from distill.config import MUST_MATCH, one_of


@dataclass
class GenerationRequest:
    key: str
    """The prompt id; results carry it back."""
    messages: list[dict[str, str]]
    index: int = 0
    """Position in the run's full prompt list (the hf backend forms its batches by it)."""
    pending: bool = True
    """False when every sample of this prompt is already on disk (kept so batches stay identical on resume)."""


@dataclass
class Sample:
    text: str
    finish_reason: str
    """'stop' (end of turn or EOS) or 'length' (hit max_tokens)."""
    completion_tokens: int | None


@dataclass
class GenerationResult:
    key: str
    samples: list[Sample] = field(default_factory=list)
    prompt_tokens: int | None = None
    error: str | None = None
    """Set when the prompt failed for good (after retries); samples are then empty."""


@dataclass(frozen=True)
class SamplingParams:
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int


def derive_seed(seed: int, *keys: object) -> int:
    """A seed for one prompt (or sample) that depends only on the run's seed and its id, never on batching."""
    digest = hashlib.sha256(":".join(map(str, (seed, *keys))).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def sample_seed(seed: int, prompt_id: str, sample: int) -> int:
    """The seed of one sample of a prompt, drawn as a request of its own (n=1).

    Sample 0 draws from the prompt's own seed (`derive_seed(seed, prompt_id)`), as an n=1 run always
    did; sample i > 0 from `derive_seed(seed, prompt_id, i)`. The vllm backend, its Ray Data stage
    and the openai backend (for a server that ignores n) all seed samples this way.
    """
    return derive_seed(seed, prompt_id, *([sample] if sample else []))


@dataclass(kw_only=True)
class EngineOptions(ChatTemplateOptions):
    """Base of every backend's options class: the fields a backend reads, and their checks (every
    backend renders chats, so every one takes --chat-template-kwargs)."""

    panel: ClassVar[str] = "Engine"

    def check_chosen(self) -> None:
        """Checks that hold only when this backend is the one that runs (a server address, say)."""


@dataclass(kw_only=True)
class WeightsOptions(EngineOptions):
    """Options of the backends that load the weights themselves (hf, vllm)."""

    dtype: str = field(default="auto", metadata=MUST_MATCH)
    """hf and vllm backends: weights dtype (auto = bf16 on a GPU that has it, else float32)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of(self.dtype, "dtype", ("auto", "float32", "bfloat16", "float16"))


class Backend(ABC):
    name: str = "?"

    def __init__(self, model: str, options: Any, *, seed: int = 0):
        """`options` is an instance of the backend's own options class; `seed` is the run's base seed
        (requests carry their own seeds; an engine that wants one at start-up, like vLLM, takes this)."""
        self.model, self.options, self.seed = model, options, seed

    @abstractmethod
    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> Iterator[GenerationResult]:
        """Yield one result for every pending request (results for non-pending ones are allowed)."""

    def check(self, params: SamplingParams) -> None:  # noqa: B027 - optional hook
        """Refuse, before any output is touched, sampling this engine cannot do (raise a DistillError)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the engine (GPU memory, connections)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
