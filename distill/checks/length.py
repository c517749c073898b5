"""The length check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from distill.checks.base import Verdict
from distill.shape import CANONICAL, TraceShape

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class LengthCheck:
    """At most `max_tokens` tokens of the student's tokenizer (the full text as it is trained), else
    of the teacher's `completion_tokens`; None when neither can measure it."""

    name: ClassVar[str] = "length"
    pooled: ClassVar[bool] = False
    fields: ClassVar[tuple[str, ...]] = ()
    reject_unknown: ClassVar[bool] = False
    max_tokens: int | None = None
    tokenizer: str | None = None
    """the student's tokenizer (model directory or Hub id), loaded on first use in the process that runs the check"""
    shape: TraceShape = CANONICAL

    @classmethod
    def from_config(cls, cfg: Any) -> LengthCheck:
        return cls(max_tokens=cfg.max_tokens, tokenizer=cfg.tokenizer, shape=cfg.shape)

    @cached_property
    def count_tokens(self) -> TokenCounter | None:
        if self.tokenizer is None:
            return None
        from distill.chat import load_tokenizer

        tokenizer = load_tokenizer(self.tokenizer)
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
        return self.max_tokens is None or tokens <= self.max_tokens
