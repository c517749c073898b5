"""The length check: at most --max-tokens tokens, counted as the student will see them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

from distill.checks.base import Check, Verdict
from distill.checks.format import shape_of
from distill.config import MUST_MATCH, Options, project, require
from distill.shape import CANONICAL, TraceShape

TokenCounter = Callable[[str], int]


@dataclass(kw_only=True)
class LengthOptions(Options):
    tokenizer: str | None = field(default=None, metadata=MUST_MATCH)
    """length: the student's tokenizer (model directory or Hub id); without it, the record's completion_tokens."""
    max_tokens: int | None = field(default=None, metadata=MUST_MATCH)
    """length: reject completions longer than this many tokens (default: no limit, lengths are only measured)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.max_tokens is None or self.max_tokens >= 1, "max_tokens",
                f"must be at least 1 (got {self.max_tokens})")


@dataclass(frozen=True)
class LengthCheck(Check):
    """At most `max_tokens` tokens of the student's tokenizer (the full text as it is trained), else
    of the teacher's `completion_tokens`; None when neither can measure it."""

    name: ClassVar[str] = "length"
    option_group: ClassVar[type[Options]] = LengthOptions
    options: LengthOptions = field(default_factory=LengthOptions)
    shape: TraceShape = CANONICAL

    @classmethod
    def from_config(cls, cfg: Any) -> LengthCheck:
        return cls(project(LengthOptions, cfg), shape=shape_of(cfg))

    @cached_property
    def count_tokens(self) -> TokenCounter | None:
        """Tokens of the student's tokenizer, loaded on first use in the process that runs the check."""
        if self.options.tokenizer is None:
            return None
        from distill.chat import load_tokenizer

        tokenizer = load_tokenizer(self.options.tokenizer)
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def measure(self, record: dict[str, Any]) -> int | None:
        if self.count_tokens is not None:
            return self.count_tokens(self.shape.full_text(record))
        tokens = record.get("completion_tokens")
        return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        tokens = self.measure(record)
        if details is not None:
            details["tokens"] = tokens
        if tokens is None:
            return None
        return self.options.max_tokens is None or tokens <= self.options.max_tokens
