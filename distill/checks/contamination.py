"""The contamination check: the prompt shares no long word n-gram with a benchmark problem."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from distill.checks.base import Check, CheckSummary, Verdict
from distill.config import Options, project
from distill.decontam import DEFAULT, DecontaminationOptions
from distill.traces import prompt_text


class ContaminationSummary(CheckSummary):
    """The report's `contamination` section: per benchmark, every flagged prompt (once, however many of
    its samples were) with the problem it matched, the stage that caught it and its score, so that the
    borderline ones can be reviewed."""

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.flagged: dict[str, dict[str, dict[str, Any]]] = {}

    def add(self, record: dict[str, Any], details: dict[str, Any], kept: bool) -> None:
        match = details.get(self.name)
        if not isinstance(match, dict):
            return
        prompts = self.flagged.setdefault(str(match.get("benchmark")), {})
        prompt_id = str(record.get("prompt_id"))
        if prompt_id not in prompts:
            prompts[prompt_id] = {"prompt_id": prompt_id, "problem": match.get("problem"),
                                  "stage": match.get("stage", "ngram"), "score": match.get("score"),
                                  "ngram": match.get("ngram", ""), "problem_text": match.get("problem_text", "")}

    def write(self, data: dict[str, Any], this_run: Any) -> None:
        data["contamination"] = {
            benchmark: {"prompts": len(prompts),
                        "stages": dict(Counter(item["stage"] for item in prompts.values()).most_common()),
                        # lowest score first: the borderline flags are the ones to read
                        "flagged": sorted(prompts.values(), key=lambda item: (item["score"] or 0, item["prompt_id"]))}
            for benchmark, prompts in sorted(self.flagged.items())}

    @staticmethod
    def lines(data: dict[str, Any]) -> list[str]:
        section = data.get("contamination")
        if not section:
            return []
        parts = [f"{benchmark} {part['prompts']:,} ({', '.join(f'{k} {v}' for k, v in part['stages'].items())})"
                 for benchmark, part in section.items()]
        return [f"contaminated prompts: {'; '.join(parts)} (each in the report's contamination section)"]


@dataclass(frozen=True)
class ContaminationCheck(Check):
    """The prompt shares no word n-gram with a benchmark problem (decontamination, see distill.decontam).

    Opt-in (not in the default --checks): its benchmarks are loaded once, in the main process, and the
    hashed index travels to the workers with the check."""

    name: ClassVar[str] = "contamination"
    default_on: ClassVar[bool] = False
    option_group: ClassVar[type[Options]] = DecontaminationOptions
    options_that_need_it: ClassVar[tuple[str, ...]] = ("decontaminate",)
    fields: ClassVar[tuple[str, ...]] = ("messages",)
    summary: ClassVar[type[CheckSummary]] = ContaminationSummary
    index: Any = None
    """a distill.decontam.NgramIndex"""

    @classmethod
    def from_config(cls, cfg: Any) -> ContaminationCheck:
        options = project(DecontaminationOptions, cfg)
        if not options.decontaminate:
            options.decontaminate = [DEFAULT]
        # generate's default template is known to the index (its instruction is stripped before a short
        # problem is matched whole); a record does not say which template rendered it
        from distill.options import DEFAULT_TEMPLATE

        return cls(index=options.contamination_index(templates=[DEFAULT_TEMPLATE]))

    @classmethod
    def configure(cls, cfg: Any) -> None:
        if cfg.decontaminate is None:  # selected by name alone: the default benchmarks, written into the config
            cfg.decontaminate = [DEFAULT]

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        match = self.index.find(prompt_text(record))
        if match is not None and details is not None:
            details["contamination"] = match.to_dict()
        return match is None
