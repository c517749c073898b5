"""The correctness check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from distill.checks.base import Pending, Verdict
from distill.grading import DEFAULT_ANSWER_PATTERNS, quick_grade, reference_kind
from distill.shape import CANONICAL, TraceShape


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
    def from_config(cls, cfg: Any) -> CorrectnessCheck:
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
