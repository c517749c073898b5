"""The filter's checks: record in, verdict out, each with its own options and its part of the report.

    base.py           Check, PooledCheck (a slow part in a pool of its own), Selectable (what --checks
                      can name), CheckSummary (a part of the filter's report), Pending, run_checks
    registry.py       CHECKS and SELECTIONS, in run order, and everything derived from them: the
                      --checks help and default list, the option -> check table, build_checks
    format.py         format, finish; FormatOptions is also the trace shape every check reads
    length.py         length; the report's `lengths`
    language.py       language and the mixed-language detection it runs; the report's `language`
    repetition.py     repetition
    correctness.py    correctness (math-verify, letters, the code sandbox); the report's `correctness`
    judge.py          judge (opt-in): a judge model on what the correctness rules leave open
    contamination.py  contamination (opt-in): n-gram overlap with benchmark problems
    selection.py      selection, a check of its own kind: it picks among the samples of one prompt

A check owns everything about itself: the filter (distill.filter) and the CLI name no check;
they read the registry. No module here imports distill.filter.

Adding a check: its module, `distill/checks/<name>.py`, and its test; outside them, one line
registers it (two when it has options, step 4).

1. The check: a `@dataclass(frozen=True)` subclass of `Check` with `name` (its --checks name and
   its verdict's key) and `run(record, details) -> True | False | None` (None: cannot tell; what
   it measured goes into `details`, the record's filter_details). Class attributes it may set:
   `fields` (the record fields it reads: the input is validated for them), `default_on = False`
   (opt-in), `reject_unknown` (None rejects too); methods it may override: `warm_up` (load once
   in the main process), `input_problem` (refuse bad input before anything is written),
   `configure` (complete or refuse the config when it is selected). A check whose slow part needs
   a pool of its own subclasses `PooledCheck` instead (`start`, `open_pool`, `finish`).
2. Its options, if any: a `@dataclass(kw_only=True)` subclass of `distill.config.Options`, each
   field with `metadata=MUST_MATCH` (a resumed run must keep it) or `FREE`, a docstring line under
   it (the flag's help), checked in `__post_init__` with `require`/`one_of` (the message names
   the flag). The check points `option_group` at it, keeps it in a field `options`, builds it in
   `from_config(cfg)` as `cls(project(Group, cfg))`, and lists in `options_that_need_it` the
   options that act only when it runs (given without it, the config is refused; an opt-in check
   given one joins the default list).
3. Its part of the report, if any: a `CheckSummary` subclass named by `summary` (`add` sees every
   output record, `write` puts its section into the report JSON, `plots`, `lines` for the
   terminal); `Reasons` counts the strings it writes under its own name in filter_details.
4. Register it: its class in the `CHECKS` tuple in registry.py, at its place in the run order
   (the order of `verdicts`), and, when it has options, its group among FilterConfig's bases in
   distill/filter/config.py: that is what gives it flags and YAML keys (a test checks every
   registered group is there). Those are one line each; the help of --checks, the default list,
   the option table, the report and the terminal table follow by themselves.

The test (tests/test_filter_checks.py has a worked one, `ShoutCheck`) runs the check on literal
records through `CHECKS[name].from_config(FilterConfig(...))`, the object the filter runs.
"""
from distill.checks.base import (
    Check,
    CheckOutcome,
    CheckSummary,
    Pending,
    PooledCheck,
    Reasons,
    Selectable,
    ThisRun,
    Verdict,
    run_checks,
)
from distill.checks.registry import (
    CHECKS,
    SELECTIONS,
    build_checks,
    build_selections,
    check_names,
    checks_help,
    default_checks,
    option_table,
    registered,
)

__all__ = ["CHECKS", "SELECTIONS", "Check", "CheckOutcome", "CheckSummary", "Pending", "PooledCheck", "Reasons",
           "Selectable", "ThisRun", "Verdict", "build_checks", "build_selections", "check_names", "checks_help",
           "default_checks", "option_table", "registered", "run_checks"]
