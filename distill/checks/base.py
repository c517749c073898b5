"""What every check is made of: the base classes the registry and the filter read.

`Selectable` is what `--checks` can name: a name, whether it runs by default, its option group and
which of those options need it to run, its part of the filter's report. `Check` is a check of one
record (record in, verdict out); `PooledCheck` one whose slow part runs in a pool of its own. The
other kind, `distill.checks.selection.Selection`, picks among the samples of one prompt.

A check never sees the whole filter config: `from_config` projects the config onto the check's own
option group (`distill.config.project`), so a check is built, and tested, from its group alone.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from distill.config import Options, project
from distill.shape import CANONICAL, TraceShape

Verdict = bool | None


class CheckSummary:
    """A check's part of the filter's report.

    The filter makes one per run (`summary(name, cfg)`), shows it every output record (`add`, the
    records a resumed run reads back from its outputs included), then lets it write its part of the
    report JSON (`write`) and its plots (`plots`). `lines` turns the JSON alone back into lines of the
    terminal table, so a report read from disk prints the same.
    """

    always: ClassVar[bool] = False
    """made even when the check does not run, so its section is in every report (with nothing counted)"""

    def __init__(self, name: str, cfg: Any) -> None:
        self.name, self.cfg = name, cfg

    def add(self, record: dict[str, Any], details: dict[str, Any], kept: bool) -> None:
        """Count one output record (`details` is its filter_details)."""

    def write(self, data: dict[str, Any], this_run: ThisRun) -> None:
        """Add this check's part to the report JSON `data` (its own section, or a key in another's)."""

    def plots(self, beside: Callable[[str], Path]) -> list[Path]:
        """Draw this check's plots into `beside(name)` (names the filter's outputs list); return them."""
        return []

    @staticmethod
    def lines(data: dict[str, Any]) -> list[str]:
        """This check's lines under the terminal table, read from the report JSON."""
        return []


class Reasons(CheckSummary):
    """Counts why the check decided as it did (the string it wrote under its own name in filter_details)
    into the report's `checks.<name>.reasons`."""

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.reasons: Counter[str] = Counter()

    def add(self, record: dict[str, Any], details: dict[str, Any], kept: bool) -> None:
        if self.name in details:
            self.reasons[details[self.name]] += 1

    def write(self, data: dict[str, Any], this_run: ThisRun) -> None:
        if self.reasons:
            data["checks"][self.name]["reasons"] = dict(self.reasons.most_common())


@dataclass
class OverrideCounts:
    """What a check that can override a rule's verdict (the judge) did with the records sent to it."""

    judged: int = 0
    overturned_false: int = 0
    """the rules said wrong, the judge said right: kept (a rule false negative)"""
    confirmed_false: int = 0
    decided_none: int = 0
    """the rules could not tell, the judge could"""
    unknown: int = 0
    """the judge gave no verdict (no parsable reply, unreachable): the rules' verdict stands"""

    def count(self, rule: bool | None, verdict: bool | None) -> None:
        self.judged += 1
        if verdict is None:
            self.unknown += 1
        elif rule is None:
            self.decided_none += 1
        elif rule is False:
            self.overturned_false += verdict is True
            self.confirmed_false += verdict is False


@dataclass
class ThisRun:
    """What this run (not a resumed one's earlier part) knows besides the output records."""

    pool_stats: dict[str, Any] = field(default_factory=dict)
    """pooled check -> its pool's stats"""
    overrides: dict[str, OverrideCounts] = field(default_factory=dict)
    """check that overrides another's verdict -> what it did"""


class Selectable:
    """What --checks can name. The registry (distill.checks.registry) derives from these class
    attributes the --checks help, the default list and the table of options that need a check."""

    name: ClassVar[str]
    """its --checks name and the key of its verdict"""
    default_on: ClassVar[bool] = True
    """in the default --checks; an opt-in check joins it when one of `options_that_need_it` is given"""
    option_group: ClassVar[type[Options] | None] = None
    """the @dataclass(kw_only=True) Options subclass holding its flags (FilterConfig inherits it)"""
    options_that_need_it: ClassVar[tuple[str, ...]] = ()
    """options of its group that only act when it runs: given (off their default) without it, the config is refused"""
    summary: ClassVar[type[CheckSummary] | None] = None
    """its part of the filter's report, if it has one"""

    @classmethod
    def from_config(cls, cfg: Any) -> Any:
        """It with the options of this filter run (`cfg` composes its group): a check that declares an
        `options` field gets its group's values, one with a `shape` field the run's trace shape."""
        declared = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
        values: dict[str, Any] = {}
        if "options" in declared and cls.option_group is not None:
            values["options"] = project(cls.option_group, cfg)
        if "shape" in declared:  # a config composing the format group knows the run's trace shape
            shape = getattr(cfg, "shape", None)
            values["shape"] = shape if isinstance(shape, TraceShape) else CANONICAL
        return cls(**values)

    @classmethod
    def configure(cls, cfg: Any) -> None:
        """Called by the filter config when it selects this check: complete or refuse the options
        this check depends on (outside its own group, or other checks)."""


@dataclass(frozen=True)
class Pending:
    """What the quick part of a pooled check left for its pool: the arguments of one pool item."""

    args: tuple[Any, ...]


@dataclass(frozen=True)
class Check(Selectable):
    """One check of one record: `run(record, details)` returns the verdict (True passes, False rejects,
    None = cannot tell: kept unless `reject_unknown`) and writes what it measured into `details`."""

    pooled: ClassVar[bool] = False
    """False: runs whole in the check workers. True: only `start` runs there, the rest in its pool"""
    fields: ClassVar[tuple[str, ...]] = ()
    """the record fields it needs besides id, prompt_id and completion (the input is validated for them)"""
    reject_unknown: ClassVar[bool] = False
    """a None verdict rejects the record too"""
    after: ClassVar[str | None] = None
    """a pooled check that runs after this other check's pool, on the records it left to it (`wants`)"""
    overrides: ClassVar[str | None] = None
    """the check whose verdict this one's replaces when it has one"""

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        """The verdict on `record`; what was measured goes into `details`."""
        raise NotImplementedError

    def warm_up(self) -> None:
        """Once, in the main process, before the workers start: load what would otherwise fail in every
        worker (a tokenizer that cannot load fails here, with one line), or what forked workers can
        share instead of each loading it (py3langid's model)."""

    def input_problem(self, record: dict[str, Any]) -> tuple[str, str] | None:
        """(field, what is wrong) when `record` is input this check cannot take: the filter stops on it
        before anything is written."""
        return None


class PooledCheck(Check):
    """A check whose quick part runs in the check workers and whose slow part runs in a pool of its own
    in the main process, only for the records every cheap check passed."""

    pooled: ClassVar[bool] = True

    def start(self, record: dict[str, Any], details: dict[str, Any]) -> Verdict | Pending:
        """The quick part, in a check worker: the verdict when it is decided here, else what the pool must do."""
        raise NotImplementedError

    def open_pool(self, workers: int) -> Any:
        """The pool of the slow part (`batch()` → add(*pending.args, index), submit(), results(); close(); stats)."""
        raise NotImplementedError

    def finish(self, result: Any, details: dict[str, Any]) -> Verdict:
        """The verdict from the pool's result for one record."""
        raise NotImplementedError

    def wants(self, pending: Pending, verdicts: dict[str, Verdict]) -> bool:
        """For a check with `after`: whether the check it follows left this record to it."""
        return True


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
        if isinstance(check, PooledCheck):
            verdict = check.start(record, outcome.details)
            if isinstance(verdict, Pending):
                outcome.pending[check.name] = verdict
                continue
        else:
            verdict = check.run(record, outcome.details)
        outcome.verdicts[check.name] = verdict
    return outcome
