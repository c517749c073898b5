"""The repetition check: a degenerate loop, one long span of words repeated over and over."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from distill.checks.base import Check, Verdict
from distill.config import MUST_MATCH, Options, require
from distill.shape import CANONICAL, TraceShape

# A word, or two characters of a script written without spaces (about one word: Chinese loops are
# measured on the same scale as English ones).
_REPETITION_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]{1,2}|"
                               r"[^\s\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+")


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_SPAN_WEIGHTS = None


def longest_loop(text: str, ngram: int) -> int:
    """How many times the most repeated span of `ngram` words (CJK: pairs of characters) occurs in `text`."""
    import numpy as np

    global _SPAN_WEIGHTS
    tokens = _REPETITION_TOKEN.findall(text) if _CJK.search(text) else text.split()
    if len(tokens) < ngram:
        return 1 if tokens else 0
    if _SPAN_WEIGHTS is None or len(_SPAN_WEIGHTS) < ngram:
        _SPAN_WEIGHTS = np.random.default_rng(0).integers(1, 2**63, size=max(64, ngram), dtype=np.uint64)
    # Each span hashes to a random linear combination of its tokens' hashes (mod 2^64): the same
    # span always gets the same number, different spans collide with probability ~2^-64. Three
    # times faster than counting tuples of strings, which mattered on 5k-character traces.
    ids = np.fromiter(map(hash, tokens), dtype=np.int64, count=len(tokens)).view(np.uint64)
    spans = np.lib.stride_tricks.sliding_window_view(ids, ngram)
    hashes = (spans * _SPAN_WEIGHTS[:ngram]).sum(axis=1)
    return int(np.unique(hashes, return_counts=True)[1].max())


@dataclass(kw_only=True)
class RepetitionOptions(Options):
    repetition_ngram: int = field(default=20, metadata=MUST_MATCH)
    """repetition: length in words (Chinese: pairs of characters) of the repeated span looked for."""
    repetition_max_count: int = field(default=4, metadata=MUST_MATCH)
    """repetition: reject when one span of --repetition-ngram words occurs this many times (a loop)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.repetition_ngram >= 2, "repetition_ngram", "must be at least 2")
        require(self.repetition_max_count >= 2, "repetition_max_count", "must be at least 2")


@dataclass(frozen=True)
class RepetitionCheck(Check):
    """False for a degenerate loop: one span of `repetition_ngram` words occurring `repetition_max_count`
    times or more.

    A loop of any period shows up this way (the same sentence, the same paragraph,
    a phrase stuck on repeat), while the phrases R1 really repeats ("Wait, let me
    check") are far shorter than 20 words.
    """

    name: ClassVar[str] = "repetition"
    option_group: ClassVar[type[Options]] = RepetitionOptions
    options: RepetitionOptions = field(default_factory=RepetitionOptions)
    shape: TraceShape = CANONICAL

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        repeats = longest_loop(self.shape.full_text(record), self.options.repetition_ngram)
        if details is not None:
            details["repeats"] = repeats
        return repeats < self.options.repetition_max_count
