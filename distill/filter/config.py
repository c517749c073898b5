"""`FilterConfig`: the options of `distill filter` (API, CLI flags and YAML recipe keys at once)."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field

from distill.config import FREE, MUST_MATCH, flag, one_of, require
from distill.decontam import DecontaminationOptions
from distill.errors import ConfigError
from distill.filter.checks import CHECKS, LEFTOVER_TOKENS
from distill.filter.language import LATIN_CANDIDATES, LATIN_LANGUAGES, known_language
from distill.grading import DEFAULT_ANSWER_PATTERNS
from distill.judge import JudgeOptions
from distill.sandbox.limits import SandboxLimits
from distill.shape import TraceShape

SELECTION = "selection"


def check_names() -> tuple[str, ...]:
    """Every name --checks accepts, in the order they run: the checks of one record (the registry in
    distill.filter.checks, read now, so a check registered there is selectable at once; correctness's
    math-verify / sandbox part runs only on records every cheap check passed), then selection, which
    picks among the records of a prompt that passed everything."""
    return (*CHECKS, SELECTION)


def default_checks() -> tuple[str, ...]:
    """The checks that run when --checks is not given: all but the opt-in ones (contamination needs
    benchmarks to compare with)."""
    return tuple(name for name in check_names() if getattr(CHECKS.get(name), "default_on", True))

SELECT_POLICIES = ("random", "shortest", "first")
LANGUAGE_DETECTORS = ("script", "script+langid")


def default_workers() -> int:
    """Every core this process may use (the CPU affinity mask, e.g. a Slurm allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@dataclass(kw_only=True)
class FilterConfig(SandboxLimits, JudgeOptions, DecontaminationOptions):
    traces: str = field(metadata=FREE)
    """Input traces (.jsonl) written by `distill generate` (or anything in the trace format)."""
    out: str = field(metadata=MUST_MATCH)
    """Kept traces (.jsonl), in the canonical shape train reads; every record gets `verdicts` and `filter_details`."""
    rejects: str | None = field(default=None, metadata=MUST_MATCH)
    """Rejected traces with `rejected_by` (default: <out>.rejects.jsonl beside --out)."""
    report: str | None = field(default=None, metadata=FREE)
    """JSON report; the PNG plots go beside it (default: <out>.report.json)."""
    checks: list[str] = field(default_factory=lambda: list(default_checks()), metadata=MUST_MATCH)
    """Checks to run, comma-separated: format, finish, length, language, repetition, correctness, selection (the default), and contamination, judge."""
    workers: int | None = field(default=None, metadata=FREE)
    """Worker processes for the checks and for math-verify (default: every core)."""
    overwrite: bool = field(default=False, metadata=FREE)
    """Replace finished outputs instead of refusing (an interrupted run resumes without it)."""

    # format
    think_open: str = field(default="<think>", metadata=MUST_MATCH)
    """format: the marker that opens the reasoning."""
    think_close: str = field(default="</think>", metadata=MUST_MATCH)
    """format: the marker that closes the reasoning."""
    reasoning_field: str | None = field(default=None, metadata=MUST_MATCH)
    """format: read the reasoning from this record field (e.g. reasoning_content) instead of a think block in the completion; kept records get it folded into a <think> block."""
    leftover_tokens: list[str] = field(default_factory=lambda: list(LEFTOVER_TOKENS), metadata=MUST_MATCH)
    """format: chat-template tokens that must not appear in a completion (default: ChatML, Llama-3, DeepSeek, Gemma, Phi, Mistral)."""

    # length
    tokenizer: str | None = field(default=None, metadata=MUST_MATCH)
    """length: the student's tokenizer (model directory or Hub id); without it, the record's completion_tokens."""
    max_tokens: int | None = field(default=None, metadata=MUST_MATCH)
    """length: reject completions longer than this many tokens (default: no limit, lengths are only measured)."""

    # language
    language: str = field(default="auto", metadata=MUST_MATCH)
    """language: the language reasoning and answer must be written in ('auto': the prompt's, or en, zh, ja, ru, …)."""
    language_threshold: float = field(default=0.95, metadata=MUST_MATCH)
    """language: least share of the text's words in the target language (the R1 consistency share)."""
    language_max_foreign_run: int = field(default=4, metadata=MUST_MATCH)
    """language: reject a run of this many consecutive foreign words (Chinese: characters), e.g. one Chinese sentence in English."""
    language_detector: str = field(default="script+langid", metadata=MUST_MATCH)
    """language: 'script' (Unicode scripts: zh/en/ja/ru… mixes) or 'script+langid' (also py3langid on Latin sentences: English in French)."""
    language_candidates: list[str] = field(default_factory=lambda: list(LATIN_CANDIDATES),
                                           metadata=MUST_MATCH)
    """language: the Latin-script languages script+langid tells apart (prompts and sentences)."""

    # repetition
    repetition_ngram: int = field(default=20, metadata=MUST_MATCH)
    """repetition: length in words (Chinese: pairs of characters) of the repeated span looked for."""
    repetition_max_count: int = field(default=4, metadata=MUST_MATCH)
    """repetition: reject when one span of --repetition-ngram words occurs this many times (a loop)."""

    # correctness
    answer_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_ANSWER_PATTERNS),
                                       metadata=MUST_MATCH)
    """correctness: where the final answer is, tried in order: 'boxed' (the last \\boxed{…}, with the boxes listed just before it) or a regex whose group 1 is the answer (a YAML list for regexes with commas)."""
    verify_timeout: float = field(default=5.0, metadata=MUST_MATCH)
    """correctness: seconds math-verify may spend on one answer; a timeout is verdict null."""
    drop_unverified: bool = field(default=False, metadata=MUST_MATCH)
    """correctness: reject records whose correctness is null (no reference, timeout, code without sandbox) instead of keeping them."""

    # selection
    keep_per_prompt: int | None = field(default=None, metadata=MUST_MATCH)
    """selection: keep at most this many passing samples per prompt (default: all)."""
    select_by: str = field(default="random", metadata=MUST_MATCH)
    """selection: which samples --keep-per-prompt keeps: random (seeded), shortest, or first."""
    seed: int = field(default=0, metadata=MUST_MATCH)
    """selection: seed of the random choice (each prompt draws from a seed derived from it and the prompt id)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # an opt-in check joins the default list when its option is given (--judge, --decontaminate)
        if self.checks == list(default_checks()):
            wanted = {"contamination": self.decontaminate is not None, "judge": self.judge is not None}
            self.checks = [name for name in check_names() if name in self.checks or wanted.get(name)]
        require(bool(self.traces), "traces", "is required")
        require(bool(self.out) and not self.out.endswith("/"), "out", "must be a file path such as kept.jsonl")
        names = check_names()
        unknown = [name for name in self.checks if name not in names]
        if unknown:
            close = difflib.get_close_matches(unknown[0], names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"--checks: unknown check '{unknown[0]}'{hint}; valid checks: {', '.join(names)}")
        require(bool(self.checks), "checks", f"must name at least one check ({', '.join(names)})")
        require(len(set(self.checks)) == len(self.checks), "checks", "names a check twice")
        require(self.workers is None or self.workers >= 1, "workers", f"must be at least 1 (got {self.workers})")
        require(bool(self.think_open) and bool(self.think_close), "think_open", "and --think-close must not be empty")
        require(self.max_tokens is None or self.max_tokens >= 1, "max_tokens",
                f"must be at least 1 (got {self.max_tokens})")
        require(self.language == "auto" or known_language(self.language), "language",
                f"must be 'auto' or a language code such as en, zh, ja, ko, ru, fr (got {self.language!r})")
        require(0 <= self.language_threshold <= 1, "language_threshold", "must be in [0, 1]")
        require(self.language_max_foreign_run >= 1, "language_max_foreign_run", "must be at least 1")
        one_of(self.language_detector, "language_detector", LANGUAGE_DETECTORS)
        unknown_latin = [code for code in self.language_candidates if code not in LATIN_LANGUAGES]
        require(not unknown_latin, "language_candidates",
                f"must be Latin-script language codes among {', '.join(LATIN_LANGUAGES)} (got {unknown_latin})")
        require(self.repetition_ngram >= 2, "repetition_ngram", "must be at least 2")
        require(self.repetition_max_count >= 2, "repetition_max_count", "must be at least 2")
        require(bool(self.answer_patterns), "answer_patterns", "must name at least one pattern ('boxed' or a regex)")
        for pattern in self.answer_patterns:
            _check_pattern(pattern)
        require(self.verify_timeout > 0, "verify_timeout", "must be positive")
        require(self.keep_per_prompt is None or self.keep_per_prompt >= 1, "keep_per_prompt",
                f"must be at least 1 (got {self.keep_per_prompt})")
        one_of(self.select_by, "select_by", SELECT_POLICIES)
        if "contamination" in self.checks and self.decontaminate is None:
            self.decontaminate = ["default"]
        require("judge" not in self.checks or self.judge is not None, "judge",
                "is needed by the 'judge' check: name the judge model (--judge MODEL) or drop judge from --checks")
        require("judge" not in self.checks or "correctness" in self.checks, "checks",
                "names judge without correctness: the judge grades what the correctness rules leave open")
        # an option of a check that does not run would be silently ignored
        for name, check, given in (("keep_per_prompt", "selection", self.keep_per_prompt is not None),
                                   ("max_tokens", "length", self.max_tokens is not None),
                                   ("tokenizer", "length", self.tokenizer is not None),
                                   ("drop_unverified", "correctness", self.drop_unverified),
                                   ("decontaminate", "contamination", self.decontaminate is not None),
                                   ("judge", "judge", self.judge is not None)):
            require(not given or check in self.checks, name,
                    f"needs the '{check}' check, which --checks leaves out; add {check} to --checks or drop "
                    f"{flag(name)}")

    @property
    def n_workers(self) -> int:
        return self.workers or default_workers()

    @property
    def shape(self) -> TraceShape:
        """Where the traces keep their reasoning (--think-open, --think-close, --reasoning-field)."""
        return TraceShape(self.think_open, self.think_close, self.reasoning_field)

    @property
    def latin_candidates(self) -> tuple[str, ...]:
        """The languages py3langid chooses among; () for the script-only detector."""
        return tuple(self.language_candidates) if self.language_detector == "script+langid" else ()


def _check_pattern(pattern: str) -> None:
    import re

    if pattern == "boxed":
        return
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"--answer-patterns: {pattern!r} is not a valid regular expression ({exc})") from None
    if compiled.groups < 1:
        raise ConfigError(f"--answer-patterns: {pattern!r} needs a group around the answer, e.g. 'Answer: (.+)'")
