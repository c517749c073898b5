"""The filter's checks, one class each, record in, verdict out, registered in `CHECKS`.

True = passes, False = fails (the record is rejected), None = cannot tell (kept,
except that a check with `reject_unknown`, correctness under `--drop-unverified`,
rejects it). `check.run(record, details)` returns the verdict and writes what it
measured into `details` (the record's `filter_details`). The filter builds each
selected check once from its FilterConfig (`from_config`) and runs exactly these
objects; tests run the same classes.

A cheap check runs in the check workers on every record. A pooled check
(correctness: math-verify and the sandbox) runs its quick part there too
(`start`); what that leaves undecided (`Pending`) goes to the check's own pool in
the main process (`open_pool`), only for records every cheap check passed, and
`finish` turns the pool's result into the verdict.

Adding a check: one class in a module of this package, a subclass of `Check` with `name` and
`run` (`PooledCheck`: `start`, `open_pool`, `finish` too); its options, if any, in a
`@dataclass(kw_only=True)` subclass of `distill.config.Options` (a docstring line and
MUST_MATCH/FREE under each field, checked in its `__post_init__`) that it names in
`option_group`, keeps in its `options` field and builds in `from_config` with
`distill.config.project`, and that FilterConfig inherits; registered in `CHECKS`
(registry.py) at the place in the order it should run; and its test.
"""

from distill.checks.base import Check, CheckOutcome, Pending, PooledCheck, Verdict, run_checks
from distill.checks.registry import CHECKS, build_checks

__all__ = ["CHECKS", "Check", "CheckOutcome", "Pending", "PooledCheck", "Verdict", "build_checks", "run_checks"]
