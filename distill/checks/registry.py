"""The registry of the checks of one record."""

from __future__ import annotations

from typing import Any

from distill.checks.base import Check
from distill.checks.contamination import ContaminationCheck
from distill.checks.correctness import CorrectnessCheck
from distill.checks.format import FinishCheck, FormatCheck
from distill.checks.judge import JudgeCheck
from distill.checks.language import LanguageCheck
from distill.checks.length import LengthCheck
from distill.checks.repetition import RepetitionCheck

CHECKS: dict[str, type[Check]] = {check.name: check for check in (
    FormatCheck, FinishCheck, LengthCheck, LanguageCheck, RepetitionCheck, ContaminationCheck, CorrectnessCheck,
    JudgeCheck)}
"""Every check of one record, in the order they run (the order of `verdicts`)."""


def build_checks(cfg: Any) -> list[Check]:
    """The checks `cfg` selects, with its options, in registry order."""
    return [check.from_config(cfg) for name, check in CHECKS.items() if name in cfg.checks]
