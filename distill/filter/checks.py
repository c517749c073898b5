"""The filter's checks: each a small function, record in, verdict out.

True = passes, False = fails (the record is rejected), None = cannot tell (kept,
except that `--drop-unverified` rejects a None correctness verdict). The
functions are pure; `evaluate_cheap` runs the cheap ones on one record inside a
worker and returns their verdicts with what they measured.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from distill.completion import THINK_CLOSE, THINK_OPEN, join_reasoning, split_reasoning
from distill.filter.config import LEFTOVER_TOKENS, FilterConfig
from distill.filter.language import (
    LATIN_CANDIDATES,
    LATIN_LANGUAGES,
    LanguageMeasure,
    detect_language,
    language_verdict,
    measure_language,
)
from distill.grading import DEFAULT_ANSWER_PATTERNS, Grade, quick_grade, reference_kind

TokenCounter = Callable[[str], int]

# ---------------------------------------------------------------- the shape of a trace


def split_trace(record: dict[str, Any], *, think_open: str = THINK_OPEN, think_close: str = THINK_CLOSE,
                reasoning_field: str | None = None) -> tuple[str, str] | None:
    """(reasoning, answer) of a well-formed trace, else None.

    With `reasoning_field` the reasoning comes from that field (APIs that return
    `reasoning_content` apart) and the completion is the answer alone.
    """
    completion = record.get("completion") or ""
    if reasoning_field:
        reasoning = record.get(reasoning_field)
        if not isinstance(reasoning, str) or think_open in completion or think_close in completion:
            return None
        return reasoning.strip(), completion.strip()
    return split_reasoning(completion, open_tag=think_open, close_tag=think_close)


def full_text(record: dict[str, Any], *, think_open: str = THINK_OPEN, think_close: str = THINK_CLOSE,
              reasoning_field: str | None = None) -> str:
    """The whole completion as the student will learn it (the reasoning field folded in)."""
    completion = record.get("completion") or ""
    reasoning = record.get(reasoning_field) if reasoning_field else None
    if isinstance(reasoning, str) and reasoning.strip():
        return join_reasoning(reasoning, completion, open_tag=think_open, close_tag=think_close)
    return completion


def answer_text(record: dict[str, Any], *, think_open: str = THINK_OPEN, think_close: str = THINK_CLOSE,
                reasoning_field: str | None = None) -> str:
    """The part of the completion after the reasoning (the whole completion when there is no close marker)."""
    completion = record.get("completion") or ""
    if reasoning_field:
        return completion
    return completion.rpartition(think_close)[2] if think_close in completion else completion


def prompt_text(record: dict[str, Any]) -> str:
    """The user turns of the prompt, joined."""
    messages = record.get("messages") or []
    return "\n".join(m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user")


# ---------------------------------------------------------------- format, finish


def check_format(record: dict[str, Any], *, think_open: str = THINK_OPEN, think_close: str = THINK_CLOSE,
                 reasoning_field: str | None = None, leftover_tokens: Sequence[str] = LEFTOVER_TOKENS) -> bool:
    """Exactly one well-formed reasoning block, non-empty reasoning, a non-empty answer after it,
    and no chat-template token left in the text."""
    parts = split_trace(record, think_open=think_open, think_close=think_close, reasoning_field=reasoning_field)
    if parts is None or not parts[0] or not parts[1]:
        return False
    text = full_text(record, think_open=think_open, think_close=think_close, reasoning_field=reasoning_field)
    return not any(token in text for token in leftover_tokens)


def format_problem(record: dict[str, Any], *, think_open: str = THINK_OPEN, think_close: str = THINK_CLOSE,
                   reasoning_field: str | None = None, leftover_tokens: Sequence[str] = LEFTOVER_TOKENS) -> str:
    """What is wrong with the format, in a few words ('' when nothing is)."""
    text = full_text(record, think_open=think_open, think_close=think_close, reasoning_field=reasoning_field)
    leftover = next((token for token in leftover_tokens if token in text), None)
    parts = split_trace(record, think_open=think_open, think_close=think_close, reasoning_field=reasoning_field)
    if parts is None:
        completion = record.get("completion") or ""
        if reasoning_field:
            return f"no string field '{reasoning_field}'" if not isinstance(record.get(reasoning_field), str) \
                else "think markers in the answer"
        opens, closes = completion.count(think_open), completion.count(think_close)
        if opens == 1 and closes == 1:
            return f"text before {think_open}"
        return f"{opens}× {think_open}, {closes}× {think_close}"
    if not parts[0]:
        return "empty reasoning"
    if not parts[1]:
        return "no answer after the reasoning"
    return f"leftover {leftover}" if leftover else ""


def check_finish(record: dict[str, Any]) -> bool | None:
    """The teacher stopped by itself; a trace cut at the length limit is rejected, never repaired."""
    reason = record.get("finish_reason")
    if reason is None:
        return None
    return reason == "stop"


# ---------------------------------------------------------------- length


def measure_tokens(record: dict[str, Any], count_tokens: TokenCounter | None = None, *,
                   think_open: str = THINK_OPEN, think_close: str = THINK_CLOSE,
                   reasoning_field: str | None = None) -> int | None:
    """Completion length in the student's tokens, else the teacher's `completion_tokens`, else None."""
    if count_tokens is not None:
        return count_tokens(full_text(record, think_open=think_open, think_close=think_close,
                                      reasoning_field=reasoning_field))
    tokens = record.get("completion_tokens")
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None


def length_verdict(tokens: int | None, max_tokens: int | None) -> bool | None:
    if tokens is None:
        return None
    return max_tokens is None or tokens <= max_tokens


def check_length(record: dict[str, Any], *, max_tokens: int | None,
                 count_tokens: TokenCounter | None = None) -> bool | None:
    """At most `max_tokens` tokens (the student's when `count_tokens` is given); None when unmeasurable."""
    return length_verdict(measure_tokens(record, count_tokens), max_tokens)


# ---------------------------------------------------------------- language


def target_language(record: dict[str, Any], language: str = "auto",
                    latin_candidates: tuple[str, ...] = LATIN_CANDIDATES) -> str | None:
    """The language the trace must be written in: `language`, or for 'auto' the prompt's."""
    return detect_language(prompt_text(record), latin_candidates) if language == "auto" else language


def measure_trace_language(record: dict[str, Any], language: str = "auto", *,
                           latin_candidates: tuple[str, ...] = LATIN_CANDIDATES, think_open: str = THINK_OPEN,
                           think_close: str = THINK_CLOSE,
                           reasoning_field: str | None = None) -> tuple[str | None, LanguageMeasure | None]:
    """(target language, measure of reasoning + answer); (None, None) when the target is unknown.

    `latin_candidates=()` is the script-only detector (no py3langid)."""
    target = target_language(record, language, latin_candidates)
    if target is None:
        return None, None
    if latin_candidates and target in LATIN_LANGUAGES and target not in latin_candidates:
        latin_candidates = (*latin_candidates, target)
    text = full_text(record, think_open=think_open, think_close=think_close, reasoning_field=reasoning_field)
    text = text.replace(think_open, " ").replace(think_close, " ")
    return target, measure_language(text, target, prompt_text(record), latin_candidates)


def check_language(record: dict[str, Any], *, language: str = "auto", threshold: float = 0.95,
                   max_foreign_run: int = 4, latin_candidates: tuple[str, ...] = LATIN_CANDIDATES,
                   think_open: str = THINK_OPEN, think_close: str = THINK_CLOSE,
                   reasoning_field: str | None = None) -> bool | None:
    """Reasoning and answer written in the target language (see distill.filter.language)."""
    _, measure = measure_trace_language(record, language, latin_candidates=latin_candidates,
                                        think_open=think_open, think_close=think_close,
                                        reasoning_field=reasoning_field)
    if measure is None:
        return None
    return language_verdict(measure, min_score=threshold, max_foreign_run=max_foreign_run)


# ---------------------------------------------------------------- repetition

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


def check_repetition(record: dict[str, Any], *, ngram: int = 20, max_count: int = 4) -> bool:
    """False for a degenerate loop: one span of `ngram` words occurring `max_count` times or more.

    A loop of any period shows up this way (the same sentence, the same paragraph,
    a phrase stuck on repeat), while the phrases R1 really repeats ("Wait, let me
    check") are far shorter than 20 words.
    """
    return longest_loop(record.get("completion") or "", ngram) < max_count


# ---------------------------------------------------------------- correctness (cheap part)


def check_correctness(record: dict[str, Any], *, patterns: Sequence[str] = DEFAULT_ANSWER_PATTERNS,
                      timeout: float | None = 5.0, think_close: str = THINK_CLOSE) -> bool | None:
    """The final answer matches `reference` (math-verify, letter or sandbox), in this process.

    The filter itself runs the slow part in a GradingPool; this is the same
    verdict for one record.
    """
    from distill.grading import grade

    return grade(answer_text(record, think_close=think_close), record.get("reference"), patterns=patterns,
                 timeout=timeout)


# ---------------------------------------------------------------- all cheap checks of one record


@dataclass
class CheapOutcome:
    """What the cheap checks found for one record (sent back from a worker)."""

    verdicts: dict[str, bool | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    tokens: int | None = None
    language_score: float | None = None
    grade: Grade | None = None
    """The correctness grade when no worker is needed (no reference, no answer, equal, letter)."""
    pending_answer: str | None = None
    """The extracted answer math-verify / the sandbox must grade (when `grade` is None)."""


def evaluate_cheap(record: dict[str, Any], cfg: FilterConfig, count_tokens: TokenCounter | None) -> CheapOutcome:
    """Run every selected cheap check on `record`, plus the fast part of correctness."""
    checks = set(cfg.checks)
    shape = {"think_open": cfg.think_open, "think_close": cfg.think_close, "reasoning_field": cfg.reasoning_field}
    outcome = CheapOutcome()
    if "format" in checks:
        outcome.verdicts["format"] = check_format(record, leftover_tokens=cfg.leftover_tokens, **shape)
        if not outcome.verdicts["format"]:
            outcome.details["format"] = format_problem(record, leftover_tokens=cfg.leftover_tokens, **shape)
    if "finish" in checks:
        outcome.verdicts["finish"] = check_finish(record)
    if "length" in checks:
        outcome.tokens = measure_tokens(record, count_tokens, **shape)
        outcome.verdicts["length"] = length_verdict(outcome.tokens, cfg.max_tokens)
        outcome.details["tokens"] = outcome.tokens
    if "language" in checks:
        target, measure = measure_trace_language(record, cfg.language, latin_candidates=cfg.latin_candidates,
                                                 **shape)
        outcome.details["language"] = target
        if measure is None:
            outcome.verdicts["language"] = None
        else:
            outcome.verdicts["language"] = language_verdict(measure, min_score=cfg.language_threshold,
                                                            max_foreign_run=cfg.language_max_foreign_run)
            outcome.language_score = measure.score
            outcome.details["language_score"] = measure.score
            if measure.foreign_run:
                outcome.details["foreign_run"] = measure.foreign_run
                if outcome.verdicts["language"] is False:
                    outcome.details["foreign_text"] = measure.foreign_example
    if "repetition" in checks:
        repeats = longest_loop(full_text(record, **shape), cfg.repetition_ngram)
        outcome.verdicts["repetition"] = repeats < cfg.repetition_max_count
        outcome.details["repeats"] = repeats
    if "correctness" in checks:
        decided, answer = quick_grade(answer_text(record, **shape), record.get("reference"), cfg.answer_patterns)
        outcome.details["reference_kind"] = reference_kind(record.get("reference"))
        if answer is not None and outcome.details["reference_kind"] != "code":
            outcome.details["answer"] = answer[:200]
        if decided is not None:
            outcome.grade = decided
            outcome.verdicts["correctness"] = decided.verdict
            outcome.details["correctness"] = decided.reason
        else:
            outcome.pending_answer = answer
    return outcome
