"""The length check: at most --max-tokens tokens, counted as the student will see them."""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from distill.checks.base import Check, CheckSummary, ThisRun, Verdict
from distill.config import MUST_MATCH, Options, require
from distill.report import percentiles
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


class LengthSummary(CheckSummary):
    """The report's `lengths`: the token counts of kept and rejected records, and their histogram."""

    # every report has it, so that a run without the length check says its lengths are unknown
    always = True

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        # compact arrays (8 bytes a record): a resumed run reads its whole output back into them
        self.kept, self.rejected = array("q"), array("q")
        self.unknown = 0

    def add(self, record: dict[str, Any], details: dict[str, Any], kept: bool) -> None:
        tokens = details.get("tokens")
        if isinstance(tokens, int):
            (self.kept if kept else self.rejected).append(tokens)
        else:
            self.unknown += 1

    def write(self, data: dict[str, Any], this_run: ThisRun) -> None:
        counted_by = (f"tokenizer {self.cfg.tokenizer}" if self.cfg.tokenizer and self.name in self.cfg.checks
                      else "the teacher's completion_tokens")
        everything = array("q", self.kept)
        everything.extend(self.rejected)
        data["lengths"] = {"source": counted_by, "max_tokens": self.cfg.max_tokens, "all": percentiles(everything),
                           "kept": percentiles(self.kept), "rejected": percentiles(self.rejected),
                           "unknown": self.unknown}

    def plots(self, beside: Callable[[str], Path]) -> list[Path]:
        from distill.report import save_histogram

        if not (self.kept or self.rejected):
            return []
        limit = self.cfg.max_tokens
        return [save_histogram(beside("lengths.png"), {"kept": list(self.kept), "rejected": list(self.rejected)},
                               title="Completion length", xlabel="tokens", vline=limit,
                               vline_label=f"--max-tokens {limit:,}" if limit else None)]

    @staticmethod
    def lines(data: dict[str, Any]) -> list[str]:
        lengths = data.get("lengths", {})
        every = lengths.get("all", {})
        if not every.get("count"):
            return []
        limit = lengths["max_tokens"]
        return [f"tokens ({lengths['source']}): p50 {every['p50']:,} p90 {every['p90']:,} "
                f"p99 {every['p99']:,} max {every['max']:,}" + (f", limit {limit:,}" if limit else ", no --max-tokens limit")]


@dataclass(frozen=True)
class LengthCheck(Check):
    """At most `max_tokens` tokens of the student's tokenizer (the full text as it is trained), else
    of the teacher's `completion_tokens`; None when neither can measure it."""

    name: ClassVar[str] = "length"
    option_group: ClassVar[type[Options]] = LengthOptions
    options_that_need_it: ClassVar[tuple[str, ...]] = ("max_tokens", "tokenizer")
    summary: ClassVar[type[CheckSummary]] = LengthSummary
    options: LengthOptions = field(default_factory=LengthOptions)
    shape: TraceShape = CANONICAL

    @cached_property
    def count_tokens(self) -> TokenCounter | None:
        """Tokens of the student's tokenizer, loaded on first use in the process that runs the check."""
        if self.options.tokenizer is None:
            return None
        from distill.chat import load_tokenizer

        tokenizer = load_tokenizer(self.options.tokenizer)
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def warm_up(self) -> None:
        if self.options.tokenizer is not None:
            from distill.chat import load_tokenizer

            load_tokenizer(self.options.tokenizer)

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
