"""What every check is made of: `Check`, a check of one record (record in, verdict out), and
`PooledCheck`, one whose slow part runs in a pool of its own.

A check never sees the whole filter config: `from_config` projects the config onto the check's own
option group (`distill.config.project`), so a check is built, and tested, from its group alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from distill.config import Options

Verdict = bool | None


@dataclass(frozen=True)
class Pending:
    """What the quick part of a pooled check left for its pool: the arguments of one pool item."""

    args: tuple[Any, ...]


@dataclass(frozen=True)
class Check:
    """One check of one record: `run(record, details)` returns the verdict (True passes, False rejects,
    None = cannot tell: kept unless `reject_unknown`) and writes what it measured into `details`."""

    name: ClassVar[str]
    """its --checks name and the key of its verdict"""
    default_on: ClassVar[bool] = True
    """in the default --checks (the opt-in ones are not)"""
    option_group: ClassVar[type[Options] | None] = None
    """the @dataclass(kw_only=True) Options subclass holding its flags (FilterConfig inherits it)"""

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

    @classmethod
    def from_config(cls, cfg: Any) -> Any:
        """It with the options of this filter run (`cfg` composes its group)."""
        return cls()

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        """The verdict on `record`; what was measured goes into `details`."""
        raise NotImplementedError


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
