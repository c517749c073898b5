"""The judge check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from distill.checks.base import Pending, Verdict
from distill.config import project
from distill.grading import DEFAULT_ANSWER_PATTERNS
from distill.shape import CANONICAL, TraceShape
from distill.traces import prompt_text


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
    def from_config(cls, cfg: Any) -> JudgeCheck:
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
