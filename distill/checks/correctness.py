"""The correctness check: the final answer against the reference (math-verify, letters, the code sandbox)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from distill.checks.base import CheckSummary, Pending, PooledCheck, Reasons, ThisRun, Verdict
from distill.checks.format import shape_of
from distill.config import MUST_MATCH, Options, project, require
from distill.errors import ConfigError
from distill.grading import DEFAULT_ANSWER_PATTERNS, NO_SANDBOX, quick_grade, reference_kind
from distill.sandbox.limits import SandboxLimits
from distill.shape import CANONICAL, TraceShape


@dataclass(kw_only=True)
class CorrectnessOptions(Options):
    answer_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_ANSWER_PATTERNS),
                                       metadata=MUST_MATCH)
    """correctness: where the final answer is, tried in order: 'boxed' (the last \\boxed{…}, with the boxes listed just before it) or a regex whose group 1 is the answer (a YAML list for regexes with commas)."""
    verify_timeout: float = field(default=5.0, metadata=MUST_MATCH)
    """correctness: seconds math-verify may spend on one answer; a timeout is verdict null."""
    drop_unverified: bool = field(default=False, metadata=MUST_MATCH)
    """correctness: reject records whose correctness is null (no reference, timeout, code without sandbox) instead of keeping them."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.answer_patterns), "answer_patterns", "must name at least one pattern ('boxed' or a regex)")
        for pattern in self.answer_patterns:
            _check_pattern(pattern)
        require(self.verify_timeout > 0, "verify_timeout", "must be positive")


def _check_pattern(pattern: str) -> None:
    if pattern == "boxed":
        return
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"--answer-patterns: {pattern!r} is not a valid regular expression ({exc})") from None
    if compiled.groups < 1:
        raise ConfigError(f"--answer-patterns: {pattern!r} needs a group around the answer, e.g. 'Answer: (.+)'")


class CorrectnessSummary(Reasons):
    """The report's `correctness`: the reference kinds, what the grading pool did in this run, and notes
    on what left verdicts null."""

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.reference_kinds: Counter[str] = Counter()

    def add(self, record: dict[str, Any], details: dict[str, Any], kept: bool) -> None:
        super().add(record, details, kept)
        self.reference_kinds[str(details.get("reference_kind"))] += 1

    def write(self, data: dict[str, Any], this_run: ThisRun) -> None:
        super().write(data, this_run)
        notes = []
        if self.reasons[NO_SANDBOX]:
            notes.append(f"{self.reasons[NO_SANDBOX]} code references need the sandbox (distill.sandbox is not "
                         "installed): their correctness is null")
        grading: dict[str, Any] = {}
        pool = this_run.pool_stats.get(self.name)
        if pool is not None:
            timeout = self.cfg.verify_timeout
            grading = {"graded_in_workers": pool.graded, "cache_hits": pool.cache_hits, "timeouts": pool.timeouts,
                       "workers_killed": pool.killed, "verify_timeout_s": timeout,
                       "worker_reasons": dict(sorted(pool.reasons.items()))}
            if pool.timeouts:
                notes.append(f"{pool.timeouts} answers timed out in math-verify after {timeout:g} s: correctness "
                             "null" + (" (rejected: --drop-unverified)" if self.cfg.drop_unverified else " (kept)"))
        # the judge, when it runs, adds its part to this_run and notes
        data["correctness"] = {"reference_kinds": dict(self.reference_kinds.most_common()), "this_run": grading,
                               "notes": notes}

    @staticmethod
    def lines(data: dict[str, Any]) -> list[str]:
        return [f"note: {note}" for note in data.get("correctness", {}).get("notes", [])]


@dataclass(frozen=True)
class CorrectnessCheck(PooledCheck):
    """The final answer matches `reference` (math-verify, letter or sandbox).

    The answer extraction and the plain cases (no reference, no answer, equal strings or
    numbers, letters) run in the check workers; math-verify and the sandbox in a GradingPool.
    """

    name: ClassVar[str] = "correctness"
    option_group: ClassVar[type[Options]] = CorrectnessOptions
    options_that_need_it: ClassVar[tuple[str, ...]] = ("drop_unverified",)
    summary: ClassVar[type[CheckSummary]] = CorrectnessSummary
    fields: ClassVar[tuple[str, ...]] = ("reference",)
    options: CorrectnessOptions = field(default_factory=CorrectnessOptions)
    sandbox_limits: SandboxLimits = field(default_factory=SandboxLimits)
    """the limits model-written code runs under (a group of its own: eval's sandbox takes them too)"""
    shape: TraceShape = CANONICAL

    @classmethod
    def from_config(cls, cfg: Any) -> CorrectnessCheck:
        return cls(project(CorrectnessOptions, cfg), project(SandboxLimits, cfg), shape=shape_of(cfg))

    @property
    def reject_unknown(self) -> bool:  # type: ignore[override]
        return self.options.drop_unverified

    @property
    def patterns(self) -> tuple[str, ...]:
        return tuple(self.options.answer_patterns)

    @property
    def timeout(self) -> float:
        """seconds math-verify may spend on one answer; a timeout is None"""
        return self.options.verify_timeout

    def input_problem(self, record: dict[str, Any]) -> tuple[str, str] | None:
        reference = record.get("reference")
        if isinstance(reference, dict) and not {"tests", "test"} & set(reference):
            return "reference", ("a code reference needs 'tests' (MBPP asserts or stdio cases) or 'test' + "
                                 f"'entry_point' (HumanEval); got keys {sorted(reference)}")
        return None

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
