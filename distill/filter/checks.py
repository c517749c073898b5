"""The filter's checks: one class each, record in, verdict out, registered in `CHECKS`.

True = passes, False = fails (the record is rejected), None = cannot tell (kept,
except that a check with `reject_unknown`, correctness under `--drop-unverified`,
rejects it). `check.run(record, details)` returns the verdict and writes what it
measured into `details` (the record's `filter_details`). The filter builds each
selected check once from its FilterConfig (`from_config`) and runs exactly these
objects; tests run the same classes.

A cheap check runs in the check workers on every record. A pooled check
(correctness: math-verify and the sandbox) runs its quick part there too
(`start`); what that leaves undecided (`Pending`) goes to the check's own pool in
the main process (`open_pool`), only for records every cheap check passed, and
`finish` turns the pool's result into the verdict.

Adding a check: one class below with `name`, `pooled`, `fields`, `from_config` and
`run` (pooled: `start`, `open_pool`, `finish` too), registered in `CHECKS` at the
place in the order it should run, and its test.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from distill.config import project
from distill.filter.language import (
    LATIN_CANDIDATES,
    LATIN_LANGUAGES,
    LanguageMeasure,
    detect_language,
    language_verdict,
    measure_language,
)
from distill.grading import DEFAULT_ANSWER_PATTERNS, quick_grade, reference_kind
from distill.shape import CANONICAL, THINK_CLOSE, THINK_OPEN, TraceShape
from distill.traces import prompt_text

if TYPE_CHECKING:
    from distill.filter.config import FilterConfig

Verdict = bool | None
TokenCounter = Callable[[str], int]

LEFTOVER_TOKENS = (
    # ChatML (Qwen, Yi, …) and Qwen's document end
    "<|im_start|>", "<|im_end|>", "<|endoftext|>",
    # Llama 3
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
    "<|eom_id|>", "<|python_tag|>",
    # DeepSeek V3 / R1 (full-width bars, '▁' in the name)
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜▁pad▁｜>",
    # Gemma, Phi-3, Mistral
    "<start_of_turn>", "<end_of_turn>", "<|user|>", "<|assistant|>", "<|end|>", "[INST]", "[/INST]",
)


class Check(Protocol):
    """One check of one record."""

    name: ClassVar[str]
    """its --checks name and the key of its verdict"""
    pooled: ClassVar[bool]
    """False: runs whole in the check workers. True: only `start` runs there, the rest in its pool"""
    reject_unknown: bool = False
    """a None verdict rejects the record too"""

    @property
    def fields(self) -> tuple[str, ...]:
        """The record fields it needs besides id, prompt_id and completion (the input is validated for them)."""
        ...

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> Check:
        """The check with the options of this filter run."""
        ...

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        """The verdict on `record`; what was measured goes into `details`."""
        ...


@dataclass(frozen=True)
class Pending:
    """What the quick part of a pooled check left for its pool: the arguments of one pool item."""

    args: tuple[Any, ...]


class PooledCheck(Check, Protocol):
    def start(self, record: dict[str, Any], details: dict[str, Any]) -> Verdict | Pending:
        """The quick part, in a check worker: the verdict when it is decided here, else what the pool must do."""
        ...

    def open_pool(self, workers: int) -> Any:
        """The pool of the slow part (`batch()` → add(*pending.args, index), submit(), results(); close(); stats)."""
        ...

    def finish(self, result: Any, details: dict[str, Any]) -> Verdict:
        """The verdict from the pool's result for one record."""
        ...


# ---------------------------------------------------------------- format, finish


@dataclass(frozen=True)
class FormatCheck:
    """Exactly one well-formed reasoning block, non-empty reasoning, a non-empty answer after it,
    and no chat-template token left in the text."""

    name: ClassVar[str] = "format"
    pooled: ClassVar[bool] = False
    fields: ClassVar[tuple[str, ...]] = ()
    reject_unknown: ClassVar[bool] = False
    shape: TraceShape = CANONICAL
    leftover_tokens: Sequence[str] = LEFTOVER_TOKENS

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> FormatCheck:
        return cls(shape=cfg.shape, leftover_tokens=tuple(cfg.leftover_tokens))

    def problem(self, record: dict[str, Any]) -> str:
        """What is wrong with the format, in a few words ('' when nothing is)."""
        parts = self.shape.split(record)
        if parts is None:
            return self.shape.malformed(record)
        if not parts[0]:
            return "empty reasoning"
        if not parts[1]:
            return "no answer after the reasoning"
        text = self.shape.full_text(record)
        leftover = next((token for token in self.leftover_tokens if token in text), None)
        return f"leftover {leftover}" if leftover else ""

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        problem = self.problem(record)
        if problem and details is not None:
            details["format"] = problem
        return not problem


@dataclass(frozen=True)
class FinishCheck:
    """The teacher stopped by itself; a trace cut at the length limit is rejected, never repaired."""

    name: ClassVar[str] = "finish"
    pooled: ClassVar[bool] = False
    fields: ClassVar[tuple[str, ...]] = ("finish_reason",)
    reject_unknown: ClassVar[bool] = False

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> FinishCheck:
        return cls()

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        reason = record.get("finish_reason")
        return None if reason is None else reason == "stop"


# ---------------------------------------------------------------- length


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
    def from_config(cls, cfg: FilterConfig) -> LengthCheck:
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


# ---------------------------------------------------------------- language


@dataclass(frozen=True)
class LanguageCheck:
    """Reasoning and answer written in the target language (see distill.filter.language)."""

    name: ClassVar[str] = "language"
    pooled: ClassVar[bool] = False
    reject_unknown: ClassVar[bool] = False
    language: str = "auto"
    """the target language, or 'auto': the prompt's"""
    threshold: float = 0.95
    max_foreign_run: int = 4
    latin_candidates: tuple[str, ...] = LATIN_CANDIDATES
    """the Latin-script languages py3langid tells apart; () is the script-only detector"""
    shape: TraceShape = CANONICAL

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> LanguageCheck:
        return cls(language=cfg.language, threshold=cfg.language_threshold,
                   max_foreign_run=cfg.language_max_foreign_run, latin_candidates=cfg.latin_candidates,
                   shape=cfg.shape)

    @property
    def fields(self) -> tuple[str, ...]:
        return ("messages",) if self.language == "auto" else ()

    def target(self, record: dict[str, Any]) -> str | None:
        """The language the trace must be written in: the configured one, or for 'auto' the prompt's."""
        return detect_language(prompt_text(record), self.latin_candidates) if self.language == "auto" \
            else self.language

    def measure(self, record: dict[str, Any]) -> tuple[str | None, LanguageMeasure | None]:
        """(target language, measure of reasoning + answer); (None, None) when the target is unknown."""
        target = self.target(record)
        if target is None:
            return None, None
        candidates = self.latin_candidates
        if candidates and target in LATIN_LANGUAGES and target not in candidates:
            candidates = (*candidates, target)
        text = self.shape.full_text(record).replace(THINK_OPEN, " ").replace(THINK_CLOSE, " ")
        return target, measure_language(text, target, prompt_text(record), candidates)

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        details = {} if details is None else details
        target, measure = self.measure(record)
        details["language"] = target
        if measure is None:
            return None
        verdict = language_verdict(measure, min_score=self.threshold, max_foreign_run=self.max_foreign_run)
        details["language_score"] = measure.score
        if measure.foreign_run:
            details["foreign_run"] = measure.foreign_run
            if verdict is False:
                details["foreign_text"] = measure.foreign_example
        return verdict


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


@dataclass(frozen=True)
class RepetitionCheck:
    """False for a degenerate loop: one span of `ngram` words occurring `max_count` times or more.

    A loop of any period shows up this way (the same sentence, the same paragraph,
    a phrase stuck on repeat), while the phrases R1 really repeats ("Wait, let me
    check") are far shorter than 20 words.
    """

    name: ClassVar[str] = "repetition"
    pooled: ClassVar[bool] = False
    fields: ClassVar[tuple[str, ...]] = ()
    reject_unknown: ClassVar[bool] = False
    ngram: int = 20
    max_count: int = 4
    shape: TraceShape = CANONICAL

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> RepetitionCheck:
        return cls(ngram=cfg.repetition_ngram, max_count=cfg.repetition_max_count, shape=cfg.shape)

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        repeats = longest_loop(self.shape.full_text(record), self.ngram)
        if details is not None:
            details["repeats"] = repeats
        return repeats < self.max_count


# ---------------------------------------------------------------- correctness (pooled)


@dataclass(frozen=True)
class CorrectnessCheck:
    """The final answer matches `reference` (math-verify, letter or sandbox).

    The answer extraction and the plain cases (no reference, no answer, equal strings or
    numbers, letters) run in the check workers; math-verify and the sandbox in a GradingPool.
    """

    name: ClassVar[str] = "correctness"
    pooled: ClassVar[bool] = True
    fields: ClassVar[tuple[str, ...]] = ("reference",)
    patterns: Sequence[str] = DEFAULT_ANSWER_PATTERNS
    timeout: float = 5.0
    """seconds math-verify may spend on one answer; a timeout is None"""
    reject_unknown: bool = False
    shape: TraceShape = CANONICAL
    sandbox_limits: Any = None
    """the SandboxLimits model-written code runs under (None: their defaults)"""

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> CorrectnessCheck:
        from distill.sandbox.limits import SandboxLimits

        return cls(patterns=tuple(cfg.answer_patterns), timeout=cfg.verify_timeout,
                   reject_unknown=cfg.drop_unverified, shape=cfg.shape, sandbox_limits=SandboxLimits.of(cfg))

    def start(self, record: dict[str, Any], details: dict[str, Any]) -> Verdict | Pending:
        decided, answer = quick_grade(self.shape.answer(record), record.get("reference"), self.patterns)
        details["reference_kind"] = reference_kind(record.get("reference"))
        if answer is not None and details["reference_kind"] != "code":
            details["answer"] = answer[:200]
        if decided is None:
            return Pending((answer, record.get("reference")))
        return self.finish(decided, details)

    def open_pool(self, workers: int) -> Any:
        from distill.grading_pool import GradingPool

        return GradingPool(workers, timeout=self.timeout, sandbox_limits=self.sandbox_limits)

    def finish(self, result: Any, details: dict[str, Any]) -> Verdict:
        details["correctness"] = result.reason
        return result.verdict

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        """The whole verdict in this process (the filter runs the slow part in its pool instead)."""
        from distill.grading import slow_grade

        details = {} if details is None else details
        verdict = self.start(record, details)
        if isinstance(verdict, Pending):
            return self.finish(slow_grade(*verdict.args, timeout=self.timeout, sandbox_limits=self.sandbox_limits),
                               details)
        return verdict


# ---------------------------------------------------------------- judge


@dataclass(frozen=True)
class JudgeCheck:
    """A judge model grades what the rules could not settle (see distill.judge): correctness None (free
    text, proofs, no reference), and with --judge-overrule-false a rule's False on a reference that is not
    a plain number. Its verdict then decides correctness (the rule's verdict stays in filter_details).

    Opt-in (--judge MODEL). It runs after correctness's pool (`after`), in the main process, on the
    records every other check passed; it sees the problem, the reference and the final answer only."""

    name: ClassVar[str] = "judge"
    pooled: ClassVar[bool] = True
    default_on: ClassVar[bool] = False
    after: ClassVar[str] = "correctness"
    overrides: ClassVar[str] = "correctness"
    fields: ClassVar[tuple[str, ...]] = ("messages", "reference")
    reject_unknown: bool = False
    shape: TraceShape = CANONICAL
    patterns: Sequence[str] = DEFAULT_ANSWER_PATTERNS
    overrule_false: bool = True
    without_reference: bool = True
    options: Any = None
    """the JudgeOptions the judge is built from"""
    cache: str | None = None

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> JudgeCheck:
        from distill.judge import JudgeOptions
        from distill.traces import sidecar

        return cls(reject_unknown=cfg.judge_unknown == "reject", shape=cfg.shape,
                   patterns=tuple(cfg.answer_patterns), overrule_false=cfg.judge_overrule_false,
                   without_reference=cfg.judge_without_reference, options=project(JudgeOptions, cfg),
                   cache=cfg.judge_cache or str(sidecar(cfg.out, "judge-cache.jsonl")))

    def start(self, record: dict[str, Any], details: dict[str, Any]) -> Verdict | Pending:
        from distill.grading import extract_answer

        reference = record.get("reference")
        if isinstance(reference, dict) or (reference is None and not self.without_reference):
            # code: the sandbox's verdict is final; no reference, and no rubric grading asked for
            details.setdefault("not_run", []).append(self.name)
            return None
        answer_part = self.shape.answer(record)
        # the final answer, as the rules extract it; free text (no box, no pattern) is the whole answer part
        answer = extract_answer(answer_part, self.patterns) if reference is not None else None
        return Pending((prompt_text(record), None if reference is None else str(reference),
                        (answer or answer_part).strip()))

    def wants(self, pending: Pending, verdicts: dict[str, Verdict]) -> bool:
        """Whether the rules left this record to the judge."""
        from distill.judge import needs_judge

        return needs_judge(verdicts.get("correctness"), pending.args[1], overrule_false=self.overrule_false)

    def open_pool(self, workers: int) -> Any:
        from pathlib import Path

        from distill.judge import JudgePool

        return JudgePool(self.options.make_judge(Path(self.cache)))

    def finish(self, result: Any, details: dict[str, Any]) -> Verdict:
        details["judge"] = result.reason
        return result.verdict

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None,
            rule_verdict: Verdict = None) -> Verdict:
        """The judge's verdict on one record in this process (the filter batches them through its pool)."""
        details = {} if details is None else details
        pending = self.start(record, details)
        if not isinstance(pending, Pending) or not self.wants(pending, {"correctness": rule_verdict}):
            return None
        pool = self.open_pool(1)
        try:
            batch = pool.batch()
            batch.add(*pending.args, 0)
            [(_, result)] = list(batch.results())
        finally:
            pool.close()
        return self.finish(result, details)


# ---------------------------------------------------------------- contamination


@dataclass(frozen=True)
class ContaminationCheck:
    """The prompt shares no word n-gram with a benchmark problem (decontamination, see distill.decontam).

    Opt-in (not in the default --checks): its benchmarks are loaded once, in the main process, and the
    hashed index travels to the workers with the check."""

    name: ClassVar[str] = "contamination"
    pooled: ClassVar[bool] = False
    fields: ClassVar[tuple[str, ...]] = ("messages",)
    reject_unknown: ClassVar[bool] = False
    default_on: ClassVar[bool] = False
    index: Any = None
    """a distill.decontam.NgramIndex"""

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> ContaminationCheck:
        from distill.decontam import build_index

        return cls(index=build_index(cfg.decontaminate, cfg.contamination_ngram))

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        match = self.index.find(prompt_text(record))
        if match is not None and details is not None:
            details["contamination"] = match.to_dict()
        return match is None


# ---------------------------------------------------------------- the registry

CHECKS: dict[str, type[Check]] = {check.name: check for check in (
    FormatCheck, FinishCheck, LengthCheck, LanguageCheck, RepetitionCheck, ContaminationCheck, CorrectnessCheck,
    JudgeCheck)}
"""Every check of one record, in the order they run (the order of `verdicts`)."""


def build_checks(cfg: FilterConfig) -> list[Check]:
    """The checks `cfg` selects, with its options, in registry order."""
    return [check.from_config(cfg) for name, check in CHECKS.items() if name in cfg.checks]


@dataclass
class CheckOutcome:
    """What the checks found for one record in a worker (sent back to the main process)."""

    verdicts: dict[str, Verdict] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)
    """pooled check -> what its pool must do (its verdict is not known yet)"""


def run_checks(record: dict[str, Any], checks: Sequence[Check]) -> CheckOutcome:
    """Run every check on `record`: the cheap ones whole, the pooled ones' quick part."""
    outcome = CheckOutcome()
    for check in checks:
        if check.pooled:
            verdict = check.start(record, outcome.details)  # type: ignore[attr-defined]
            if isinstance(verdict, Pending):
                outcome.pending[check.name] = verdict
                continue
        else:
            verdict = check.run(record, outcome.details)
        outcome.verdicts[check.name] = verdict
    return outcome
