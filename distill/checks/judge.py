"""The judge check: a judge model grades what the correctness rules leave open (see distill.judge)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from distill.checks.base import CheckSummary, OverrideCounts, Pending, PooledCheck, ThisRun, Verdict
from distill.checks.format import shape_of
from distill.config import Options, project, require
from distill.grading import DEFAULT_ANSWER_PATTERNS
from distill.judge import JudgeOptions
from distill.shape import CANONICAL, TraceShape
from distill.traces import prompt_text, sidecar

RULES = "correctness"
"""the check whose verdicts the judge revisits"""


class JudgeSummary(CheckSummary):
    """What the judge did in this run, in the report's correctness section (`this_run.judge`, a note)."""

    def write(self, data: dict[str, Any], this_run: ThisRun) -> None:
        pool = this_run.pool_stats.get(self.name)
        if pool is None:
            return
        overrides = this_run.overrides.get(self.name, OverrideCounts())
        # "judged" counts records; the judge's own count is of distinct (problem, reference, answer) items
        asked = pool.to_dict()
        asked["distinct_judged"] = asked.pop("judged")
        section = data[RULES]
        section["this_run"] = {**section["this_run"], "judge": {**asked, **overrides.__dict__, "model": self.cfg.judge}}
        if overrides.overturned_false:
            section["notes"].append(f"the judge overturned {overrides.overturned_false} rule verdicts of 'wrong' "
                                    "(kept; the rule's verdict is in filter_details.correctness_by_rules)")


@dataclass(frozen=True)
class JudgeCheck(PooledCheck):
    """A judge model grades what the rules could not settle (see distill.judge): correctness None (free
    text, proofs, no reference), and with --judge-overrule-false a rule's False on a reference that is not
    a plain number. Its verdict then decides correctness (the rule's verdict stays in filter_details).

    Opt-in (--judge MODEL). It runs after correctness's pool (`after`), in the main process, on the
    records every other check passed; it sees the problem, the reference and the final answer only."""

    name: ClassVar[str] = "judge"
    default_on: ClassVar[bool] = False
    option_group: ClassVar[type[Options]] = JudgeOptions
    options_that_need_it: ClassVar[tuple[str, ...]] = ("judge",)
    summary: ClassVar[type[CheckSummary]] = JudgeSummary
    after: ClassVar[str] = RULES
    overrides: ClassVar[str] = RULES
    fields: ClassVar[tuple[str, ...]] = ("messages", "reference")
    options: JudgeOptions = field(default_factory=JudgeOptions)
    """the judge model and how it is reached"""
    shape: TraceShape = CANONICAL
    patterns: tuple[str, ...] = DEFAULT_ANSWER_PATTERNS
    """where the final answer is (correctness's --answer-patterns)"""
    cache: str | None = None
    """the verdict cache file"""

    @classmethod
    def from_config(cls, cfg: Any) -> JudgeCheck:
        options = project(JudgeOptions, cfg)
        return cls(options, shape=shape_of(cfg), patterns=tuple(cfg.answer_patterns),
                   cache=options.judge_cache or str(sidecar(cfg.out, "judge-cache.jsonl")))

    @classmethod
    def configure(cls, cfg: Any) -> None:
        require(cfg.judge is not None, "judge",
                "is needed by the 'judge' check: name the judge model (--judge MODEL) or drop judge from --checks")
        require(RULES in cfg.checks, "checks",
                "names judge without correctness: the judge grades what the correctness rules leave open")

    @property
    def reject_unknown(self) -> bool:  # type: ignore[override]
        return self.options.judge_unknown == "reject"

    def start(self, record: dict[str, Any], details: dict[str, Any]) -> Verdict | Pending:
        from distill.grading import extract_answer

        reference = record.get("reference")
        if isinstance(reference, dict) or (reference is None and not self.options.judge_without_reference):
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

        return needs_judge(verdicts.get(RULES), pending.args[1], overrule_false=self.options.judge_overrule_false)

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
        if not isinstance(pending, Pending) or not self.wants(pending, {RULES: rule_verdict}):
            return None
        pool = self.open_pool(1)
        try:
            batch = pool.batch()
            batch.add(*pending.args, 0)
            [(_, result)] = list(batch.results())
        finally:
            pool.close()
        return self.finish(result, details)
