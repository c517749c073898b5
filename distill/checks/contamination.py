"""The contamination check: the prompt shares no long word n-gram with a benchmark problem."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from distill.checks.base import Check, Verdict
from distill.config import Options, project
from distill.decontam import DEFAULT, DecontaminationOptions
from distill.traces import prompt_text


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
