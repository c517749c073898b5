"""`FilterConfig`: the options of `distill filter` (API, CLI flags and YAML recipe keys at once).

Each check's options are its own group, defined with the check in distill.checks; the config
composes the groups by inheritance, so the flags, the YAML keys and their help come from there.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field

from distill.checks.correctness import CorrectnessOptions
from distill.checks.format import FormatOptions
from distill.checks.language import LanguageOptions
from distill.checks.length import LengthOptions
from distill.checks.registry import (
    check_names,
    checks_help,
    default_checks,
    given,
    option_table,
    registered,
    wanted_by_options,
)
from distill.checks.repetition import RepetitionOptions
from distill.checks.selection import SelectionOptions
from distill.config import FREE, MUST_MATCH, flag, require
from distill.decontam import DecontaminationOptions
from distill.errors import ConfigError
from distill.judge import JudgeOptions
from distill.sandbox.limits import SandboxLimits


def default_workers() -> int:
    """Every core this process may use (the CPU affinity mask, e.g. a Slurm allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@dataclass(kw_only=True)
class FilterConfig(FormatOptions, LengthOptions, LanguageOptions, RepetitionOptions, CorrectnessOptions,
                   SelectionOptions, SandboxLimits, JudgeOptions, DecontaminationOptions):
    traces: str = field(metadata=FREE)
    """Input traces (.jsonl) written by `distill generate` (or anything in the trace format); or the trace directory `distill generate --ray` writes."""
    out: str = field(metadata=MUST_MATCH)
    """Kept traces (.jsonl), in the canonical shape train reads; every record gets `verdicts` and `filter_details`."""
    rejects: str | None = field(default=None, metadata=MUST_MATCH)
    """Rejected traces with `rejected_by` (default: <out>.rejects.jsonl beside --out)."""
    report: str | None = field(default=None, metadata=FREE)
    """JSON report; the PNG plots go beside it (default: <out>.report.json)."""
    checks: list[str] = field(default_factory=lambda: list(default_checks()),
                              metadata={**MUST_MATCH, "doc": checks_help})
    """Checks to run, comma-separated (the help lists the registered ones, distill.checks.registry.checks_help)."""
    workers: int | None = field(default=None, metadata=FREE)
    """Worker processes for the checks and for math-verify (default: every core)."""
    overwrite: bool = field(default=False, metadata=FREE)
    """Replace finished outputs instead of refusing (an interrupted run resumes without it)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # an opt-in check joins the default list when its option is given (--judge, --decontaminate)
        if self.checks == list(default_checks()):
            wanted = wanted_by_options(self)
            self.checks = [name for name in check_names() if name in self.checks or name in wanted]
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
        for name, check in registered().items():
            if name in self.checks:
                check.configure(self)
        # an option of a check that does not run would be silently ignored
        for option, check in option_table().items():
            require(not given(self, option) or check in self.checks, option,
                    f"needs the '{check}' check, which --checks leaves out; add {check} to --checks or drop "
                    f"{flag(option)}")

    @property
    def n_workers(self) -> int:
        return self.workers or default_workers()
