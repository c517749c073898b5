"""What every check is: a check of one record (record in, verdict out), a pooled check's three parts,
and what the workers send back (see distill.checks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

Verdict = bool | None


class Check(Protocol):
    """One check of one record."""

    name: ClassVar[str]
    """its --checks name and the key of its verdict"""
    pooled: ClassVar[bool]
    """False: runs whole in the check workers. True: only `start` runs there, the rest in its pool"""
    reject_unknown: bool = False
    """a None verdict rejects the record too"""

    @property
    def fields(self) -> tuple[str, ...]:
        """The record fields it needs besides id, prompt_id and completion (the input is validated for them)."""
        ...

    @classmethod
    def from_config(cls, cfg: Any) -> Check:
        """The check with the options of this filter run."""
        ...

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        """The verdict on `record`; what was measured goes into `details`."""
        ...


@dataclass(frozen=True)
class Pending:
    """What the quick part of a pooled check left for its pool: the arguments of one pool item."""

    args: tuple[Any, ...]


class PooledCheck(Check, Protocol):
    def start(self, record: dict[str, Any], details: dict[str, Any]) -> Verdict | Pending:
        """The quick part, in a check worker: the verdict when it is decided here, else what the pool must do."""
        ...

    def open_pool(self, workers: int) -> Any:
        """The pool of the slow part (`batch()` → add(*pending.args, index), submit(), results(); close(); stats)."""
        ...

    def finish(self, result: Any, details: dict[str, Any]) -> Verdict:
        """The verdict from the pool's result for one record."""
        ...


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
        if check.pooled:
            verdict = check.start(record, outcome.details)  # type: ignore[attr-defined]
            if isinstance(verdict, Pending):
                outcome.pending[check.name] = verdict
                continue
        else:
            verdict = check.run(record, outcome.details)
        outcome.verdicts[check.name] = verdict
    return outcome
