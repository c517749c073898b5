"""The interface every generation engine implements (hf, openai, vllm).

A backend turns requests (a chat, n, a seed) into finished samples. It yields a
result per prompt as soon as the prompt's n samples are done, in any order, so
the caller can write each one to disk at once: a crash then loses only what was
still in flight.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


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


class Backend(ABC):
    name: str = "?"
    model: str = "?"

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
