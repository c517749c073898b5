"""The registry: every check --checks can name, in the order they run, and what the filter derives
from it (the --checks help, the default list, the table of options that need a check, the checks a
config builds). Nothing here names a check but the two lists below."""

from __future__ import annotations

import dataclasses
from typing import Any

from distill.checks.base import Check, Selectable
from distill.checks.contamination import ContaminationCheck
from distill.checks.correctness import CorrectnessCheck
from distill.checks.format import FinishCheck, FormatCheck
from distill.checks.judge import JudgeCheck
from distill.checks.language import LanguageCheck
from distill.checks.length import LengthCheck
from distill.checks.repetition import RepetitionCheck
from distill.checks.selection import Selection

CHECKS: dict[str, type[Check]] = {check.name: check for check in (
    FormatCheck, FinishCheck, LengthCheck, LanguageCheck, RepetitionCheck, ContaminationCheck, CorrectnessCheck,
    JudgeCheck)}
"""Every check of one record, in the order they run (the order of `verdicts`). A pooled check's slow
part (correctness's math-verify and sandbox) runs only on records every cheap check passed."""

SELECTIONS: dict[str, type[Selection]] = {Selection.name: Selection}
"""The checks that pick among the records of one prompt that passed every check of one record; they run last."""


def registered() -> dict[str, type[Selectable]]:
    """Every name --checks accepts -> its class, in the order they run (read now: a check registered
    since import is there)."""
    return {**CHECKS, **SELECTIONS}


def check_names() -> tuple[str, ...]:
    """Every name --checks accepts, in the order they run."""
    return tuple(registered())


def default_checks() -> tuple[str, ...]:
    """The checks that run when --checks is not given: all but the opt-in ones (contamination needs
    benchmarks to compare with, judge a judge model)."""
    return tuple(name for name, check in registered().items() if check.default_on)


def checks_help() -> str:
    """The help of --checks: the names, the default ones first."""
    opt_in = [name for name in check_names() if name not in default_checks()]
    return (f"Checks to run, comma-separated: {', '.join(default_checks())} (the default)"
            + (f", and {', '.join(opt_in)}." if opt_in else "."))


def option_table() -> dict[str, str]:
    """option -> the check it needs: the options that act only when their check runs (each check's
    `options_that_need_it`). Given one without its check, the filter config is refused, since the option
    would be silently ignored; given one of an opt-in check's, the check joins the default list."""
    return {option: name for name, check in registered().items() for option in check.options_that_need_it}


def given(cfg: Any, option: str) -> bool:
    """Whether `cfg` sets `option` off its default (a config without the option does not)."""
    found = next((f for f in dataclasses.fields(cfg) if f.name == option), None)
    if found is None:
        return False
    default = found.default_factory() if found.default is dataclasses.MISSING else found.default  # type: ignore[misc]
    return getattr(cfg, option) != default


def wanted_by_options(cfg: Any) -> list[str]:
    """The checks one of whose `options_that_need_it` `cfg` gives, in run order."""
    table = option_table()
    return list(dict.fromkeys(table[option] for option in table if given(cfg, option)))


def build_checks(cfg: Any) -> list[Check]:
    """The checks of one record `cfg` selects, built from its options, in registry order."""
    return [check.from_config(cfg) for name, check in CHECKS.items() if name in cfg.checks]


def build_selections(cfg: Any) -> list[Selection]:
    """The selections `cfg` selects, built from its options."""
    return [selection.from_config(cfg) for name, selection in SELECTIONS.items() if name in cfg.checks]
