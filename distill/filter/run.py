"""`filter_traces(cfg)`: stream a trace file through the checks into kept and rejects files.

How it runs
- A validation pass reads the whole input first (JSON, fields, duplicate ids, and
  for selection that each prompt's samples are together), so bad input ends with
  one error line before anything is written.
- The input is then processed in chunks of whole prompts. The cheap checks of a
  chunk run in one process pool; math-verify and the sandbox run in a second
  pool (a timeout per answer) on the records every cheap check passed. While one
  chunk is graded and written, the next ones are already being checked and graded.
- Each chunk's kept and rejected records are appended in input order, flushed,
  and then a line in `<out>.filter-progress.jsonl` commits the chunk (records
  done, both files' sizes). Killed at any moment, a rerun truncates both outputs
  to the last commit and goes on, so the outputs equal an uninterrupted run's.
  The progress file is removed when the report is written.
- The run's settings and the input's content are its fingerprint, in the run
  manifest `<out>.run.json` (distill.runs): a rerun with other settings is
  refused naming them; with the same ones on a finished output it does nothing.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.checks.base import Check, CheckOutcome, OverrideCounts, ThisRun, run_checks
from distill.checks.registry import build_checks, build_selections, check_names
from distill.checks.selection import Selection
from distill.errors import InputError, OutputError
from distill.filter.config import FilterConfig
from distill.filter.report import FilterReport, FilterStats, build_report, save_plots
from distill.progress import Progress
from distill.runs import COMPLETE, NEW, RunManifest, claim, fingerprint, nothing_to_do
from distill.traces import (
    JsonlWriter,
    check_writable,
    content_digest,
    intact_length,
    iter_jsonl,
    read_traces,
    repair_torn_tail,
    sidecar,
    write_json,
)

log = logging.getLogger(__name__)

CHUNK_RECORDS = 256
"""Records per chunk (rounded up to whole prompts): the unit of writing, committing and resuming."""
LOOKAHEAD = 4
"""Chunks being checked and graded while the oldest one is written (memory: LOOKAHEAD + 1 chunks). An answer
at math-verify's 5 s timeout holds one grading worker that long; the others need that much work queued."""
FILTER_FIELDS = ("verdicts", "filter_details", "rejected_by")


@dataclass
class OutputPaths:
    input: Path
    kept: Path
    rejects: Path
    report: Path
    progress: Path

    @classmethod
    def of(cls, cfg: FilterConfig) -> OutputPaths:
        kept = check_writable(cfg.out, "--out")
        rejects = check_writable(cfg.rejects or sidecar(kept, "rejects.jsonl"), "--rejects")
        report = check_writable(cfg.report or sidecar(kept, "report.json"), "--report")
        paths = cls(Path(cfg.traces), kept, rejects, report, sidecar(kept, "filter-progress.jsonl"))
        resolved = {name: getattr(paths, name).resolve() for name in ("kept", "rejects", "report")}
        if len(set(resolved.values())) < len(resolved):
            raise OutputError(f"--out, --rejects and --report must be three different files "
                              f"(got {', '.join(f'{k}={v}' for k, v in resolved.items())})")
        return paths

    @property
    def manifest(self) -> RunManifest:
        return RunManifest.beside(self.kept, "filter")

    def outputs(self) -> dict[str, Path]:
        """Every file the run writes or --overwrite removes, by the flag that names it."""
        plots = {f"--report's plot {path.name}": path for path in self.plot_paths()}
        return {"--out": self.kept, "--rejects": self.rejects, "--report": self.report,
                "--out's progress file": self.progress, "--out's manifest": self.manifest.path, **plots}

    def plot_paths(self) -> list[Path]:
        base = self.report.name.removesuffix(".json").removesuffix(".report")
        return [self.report.with_name(f"{base}.{name}") for name in ("reject-reasons.png", "lengths.png",
                                                                      "language.png")]


def required_fields(checks: list[Check]) -> tuple[str, ...]:
    """The trace fields `checks` read."""
    return tuple(dict.fromkeys(["id", "prompt_id", "completion", *(name for check in checks for name in check.fields)]))


def validate_input(cfg: FilterConfig) -> int:
    """Read the whole input once; raise InputError (file, line, field) on the first problem.

    Returns the number of records. Memory: the ids seen (for duplicates) and,
    with selection, the prompt ids seen, not the records.
    """
    path = cfg.traces
    checks = build_checks(cfg)
    selection = next((s.name for s in build_selections(cfg)), None)
    records = 0
    finished_prompts: set[str] = set()
    current_prompt, first_line_of_prompt = None, 0
    for line, record in read_traces(path, required=required_fields(checks)):
        records += 1
        for check in checks:
            problem = check.input_problem(record)
            if problem is not None:
                raise InputError(problem[1], path=path, line=line, field=problem[0])
        if cfg.reasoning_field and cfg.reasoning_field in record and \
                not isinstance(record[cfg.reasoning_field], (str, type(None))):
            raise InputError("must be a string", path=path, line=line, field=cfg.reasoning_field)
        if selection and record["prompt_id"] != current_prompt:
            if record["prompt_id"] in finished_prompts:
                raise InputError(
                    f"the samples of prompt {record['prompt_id']!r} are not together (they appear before line "
                    f"{first_line_of_prompt} and again here); {selection} keeps samples per prompt, so put each "
                    f"prompt's samples on consecutive lines (as generate writes them), or leave '{selection}' out "
                    "of --checks", path=path, line=line, field="prompt_id")
            if current_prompt is not None:
                finished_prompts.add(current_prompt)
            current_prompt, first_line_of_prompt = record["prompt_id"], line
    if records == 0:
        raise InputError("no records: the file is empty; give the traces written by distill generate", path=path)
    return records


# ---------------------------------------------------------------- resuming


@dataclass
class Resume:
    done: int = 0
    kept_bytes: int = 0
    rejects_bytes: int = 0
    last_id: str | None = None


TRACES_DIGEST = {"traces_sha256": "the content of TRACES"}
"""The fingerprint's derived key, named for the refusal line."""


def run_fingerprint(cfg: FilterConfig) -> dict[str, Any]:
    """What a resumed filter run must share with the run it resumes: the must-match options and the input's bytes."""
    return fingerprint(cfg, traces_sha256=content_digest(cfg.traces))


def check_resume(cfg: FilterConfig, paths: OutputPaths) -> str:
    """NEW, RESUME or COMPLETE for this run, before anything is loaded or touched: OutputError when the
    outputs were written with other settings (each named with its flag) or not by distill filter."""
    state = paths.manifest.resume(run_fingerprint(cfg), overwrite=cfg.overwrite, labels=TRACES_DIGEST)
    if state == NEW and not cfg.overwrite:
        existing = [p for p in (paths.kept, paths.rejects) if p.exists()]
        if existing:
            raise OutputError(f"{existing[0]} already exists and has no run manifest ({paths.manifest.path.name}): "
                              "it was not written by this version of distill filter; pass --overwrite to replace "
                              "it or choose another --out")
    if state == COMPLETE and not paths.report.exists():
        raise OutputError(f"{paths.kept} is complete but its report {paths.report} is missing; pass --overwrite "
                          "to filter again")
    return state


def _plan_resume(cfg: FilterConfig, paths: OutputPaths) -> Resume:
    """Where this run starts: fresh, or where an interrupted run stopped (checked, nothing touched yet)."""
    if cfg.overwrite or not paths.progress.exists():
        return Resume()
    lines = [record for _, record in iter_jsonl(paths.progress, end=intact_length(paths.progress))]
    commits = [line["commit"] for line in lines if isinstance(line, dict) and "commit" in line]
    if len(commits) < len(lines):
        raise OutputError(f"{paths.progress} is not a filter progress file; delete it or pass --overwrite")
    resume = Resume(**commits[-1]) if commits else Resume()
    for path, size in ((paths.kept, resume.kept_bytes), (paths.rejects, resume.rejects_bytes)):
        actual = path.stat().st_size if path.exists() else 0
        if actual < size:
            raise OutputError(f"{path} is shorter ({actual} bytes) than the interrupted run left it ({size}); "
                              "pass --overwrite to start over")
    _check_skipped_prefix(paths.input, resume)
    return resume


def _prepare_outputs(cfg: FilterConfig, paths: OutputPaths, resume: Resume) -> None:
    """Start fresh (--overwrite), or cut an interrupted run's outputs back to where `resume` says it stopped."""
    if cfg.overwrite:
        for path in [paths.kept, paths.rejects, paths.report, paths.progress, *paths.plot_paths()]:
            path.unlink(missing_ok=True)
        paths.manifest.write(run_fingerprint(cfg))
        return
    if paths.manifest.read() is None:
        paths.manifest.write(run_fingerprint(cfg))
    if paths.progress.exists() and intact_length(paths.progress) < paths.progress.stat().st_size:
        repair_torn_tail(paths.progress)
    for path, size in ((paths.kept, resume.kept_bytes), (paths.rejects, resume.rejects_bytes)):
        actual = path.stat().st_size if path.exists() else 0
        if path.exists() and actual > size:
            with path.open("rb+") as handle:  # the chunk in flight when the run stopped: done again
                handle.truncate(size)
    if resume.done:
        log.info("resuming: %d records already filtered into %s and %s", resume.done, paths.kept, paths.rejects)


def _restore_stats(stats: FilterStats, paths: OutputPaths) -> None:
    for path, kept in ((paths.kept, True), (paths.rejects, False)):
        if path.exists():
            for _, record in iter_jsonl(path):
                stats.add(record, kept)


# ---------------------------------------------------------------- workers

_WORKER: dict[str, Any] = {}


def _init_check_worker(checks: list[Check]) -> None:
    _WORKER["checks"] = checks


def _check_batch(records: list[dict[str, Any]]) -> list[CheckOutcome]:
    checks = _WORKER["checks"]
    return [run_checks(record, checks) for record in records]


def _slim_fields(cfg: FilterConfig, checks: list[Check]) -> tuple[str, ...]:
    """The fields the checks read (the rest of a record never leaves the main process)."""
    optional = ("completion_tokens", *([cfg.reasoning_field] if cfg.reasoning_field else []))
    return tuple(dict.fromkeys(["completion", *optional, *(name for check in checks for name in check.fields)]))


@dataclass
class ChunkJob:
    """One chunk on its way: cheap checks in the check pool, then grading, then written."""

    records: list[dict[str, Any]]
    last_done: int
    futures: list[Any] = field(default_factory=list)
    """The check workers' batches."""
    outcomes: list[CheckOutcome] | None = None
    batches: dict[str, Any] = field(default_factory=dict)
    """pooled check -> its pool's batch of this chunk's pending records."""


def _chunks(path: Path, skip: int, group_prompts: bool) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """(records, records done after this chunk): chunks of CHUNK_RECORDS rounded up to whole prompts."""
    chunk: list[dict[str, Any]] = []
    seen = 0
    for _, record in iter_jsonl(path):
        seen += 1
        if seen <= skip:
            continue
        if len(chunk) >= CHUNK_RECORDS and (not group_prompts or record["prompt_id"] != chunk[-1]["prompt_id"]):
            yield chunk, seen - 1
            chunk = []
        chunk.append(record)
    if chunk:
        yield chunk, seen


def _check_skipped_prefix(path: Path, resume: Resume) -> None:
    """The input's record number `done` must still be the one the interrupted run ended with."""
    if not resume.done:
        return
    for seen, (line, record) in enumerate(iter_jsonl(path), start=1):
        if seen == resume.done:
            if record.get("id") != resume.last_id:
                raise OutputError(f"{path}:{line}: the input changed since the interrupted run (record "
                                  f"{resume.done} is {record.get('id')!r}, it was {resume.last_id!r}); "
                                  "pass --overwrite to filter it from the start")
            return
    raise OutputError(f"{path} now has fewer records than the interrupted run already filtered ({resume.done}); "
                      "pass --overwrite to filter it from the start")


# ---------------------------------------------------------------- the stage


class _Filter:
    """The state of one run: pools, writers, statistics."""

    def __init__(self, cfg: FilterConfig, paths: OutputPaths, stats: FilterStats):
        from pebble import ProcessPool

        self.cfg, self.paths, self.stats = cfg, paths, stats
        self.checks = [c for c in check_names() if c in cfg.checks]
        self.record_checks = build_checks(cfg)
        self.selections = build_selections(cfg)
        self.slim_fields = _slim_fields(cfg, self.record_checks)
        self.cheap = [check.name for check in self.record_checks if not check.pooled]
        self.workers = cfg.n_workers
        for check in self.record_checks:
            check.warm_up()  # before the workers fork: what cannot load fails here, what loads they inherit
        self.check_pool = ProcessPool(max_workers=self.workers, initializer=_init_check_worker,
                                      initargs=(self.record_checks,))
        self.pools = {check.name: check.open_pool(self.workers)  # type: ignore[attr-defined]
                      for check in self.record_checks if check.pooled}
        self.overrides = {check.name: OverrideCounts() for check in self.record_checks if check.overrides}

    def close(self) -> None:
        self.check_pool.stop()
        self.check_pool.join()
        for pool in self.pools.values():
            pool.close()

    def start(self, records: list[dict[str, Any]], last_done: int) -> ChunkJob:
        job = ChunkJob(records, last_done)
        batch = max(1, math.ceil(len(records) / (2 * self.workers)))
        for start in range(0, len(records), batch):
            slim = [{key: r[key] for key in self.slim_fields if key in r} for r in records[start:start + batch]]
            job.futures.append(self.check_pool.schedule(_check_batch, args=(slim,)))
        return job

    def advance(self, job: ChunkJob) -> None:
        """Send a chunk's survivors to the grading pool as soon as its cheap checks are back (no waiting)."""
        if job.outcomes is None and all(future.done() for future in job.futures):
            self._collect_cheap(job)

    def _collect_cheap(self, job: ChunkJob) -> None:
        if job.outcomes is None:
            job.outcomes = [outcome for future in job.futures for outcome in future.result()]
            self._submit_pooled(job)

    def wait(self, job: ChunkJob, later: Iterable[ChunkJob]) -> None:
        """Wait for a chunk's checks and grades while sending each later chunk's survivors to the grading
        pool as soon as its cheap checks are back, so that an answer that takes long (math-verify's
        timeout) in this chunk holds up one worker, while the others go on with the later chunks."""
        import concurrent.futures

        self._collect_cheap(job)
        later = list(later)
        while True:
            waiting = [future for batch in job.batches.values() if hasattr(batch, "pending")
                       for future in batch.pending()]
            for other in later:
                self.advance(other)
            if not waiting:
                return
            checking = [future for other in later if other.outcomes is None for future in other.futures
                        if not future.done()]
            concurrent.futures.wait(waiting + checking, return_when=concurrent.futures.FIRST_COMPLETED)

    def finish(self, job: ChunkJob) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        """Wait for a chunk's checks and grades, select, and return (kept, rejected, tokens) in input order."""
        self._collect_cheap(job)
        outcomes: list[CheckOutcome] = job.outcomes  # type: ignore[assignment]
        self._gather_pooled(job)
        rejected_by = [self._failed(outcome) for outcome in outcomes]
        for selection in self.selections:
            self._select(selection, job.records, outcomes, rejected_by)
        kept, rejected = [], []
        for record, outcome, reasons in zip(job.records, outcomes, rejected_by):
            out = {k: v for k, v in record.items() if k not in FILTER_FIELDS}
            out["verdicts"] = {check: outcome.verdicts.get(check) for check in self.checks}
            out["filter_details"] = outcome.details
            if reasons:
                out["rejected_by"] = reasons
                rejected.append(out)
            else:
                kept.append(self.cfg.shape.canonical(out))
        return kept, rejected, sum(o.details.get("tokens") or 0 for o in outcomes)

    def _submit_pooled(self, job: ChunkJob) -> None:
        """Each pooled check's slow part for the records every cheap check passed; not run on the others."""
        for check in self.record_checks:
            if check.pooled and not check.after:
                self._fill_batch(job, check)

    def _fill_batch(self, job: ChunkJob, check: Check) -> None:
        """Send the check's pending records to its pool: those every cheap check passed and, for a check
        that runs after another (the judge after correctness), those that check left to it."""
        name = check.name
        batch = job.batches[name] = self.pools[name].batch()
        for index, outcome in enumerate(job.outcomes or []):
            pending = outcome.pending.pop(name, None)
            if pending is None:
                continue
            if any(outcome.verdicts.get(cheap) is False for cheap in self.cheap) or (
                    check.after and not check.wants(pending, outcome.verdicts)):  # type: ignore[attr-defined]
                outcome.verdicts[name] = None
                outcome.details.setdefault("not_run", []).append(name)
                continue
            batch.add(*pending.args, index)
        batch.submit()

    def _gather_pooled(self, job: ChunkJob) -> None:
        outcomes = job.outcomes or []
        for check in self.record_checks:
            if check.pooled and check.after:
                self._fill_batch(job, check)  # now that the check it follows has its verdicts
            if check.name not in job.batches:
                continue
            overrides = check.overrides
            for indices, result in job.batches.pop(check.name).results():
                for index in indices:
                    outcome = outcomes[index]
                    verdict = outcome.verdicts[check.name] = check.finish(  # type: ignore[attr-defined]
                        result, outcome.details)
                    if overrides:
                        self.overrides[check.name].count(outcome.verdicts.get(overrides), verdict)
                        if verdict is not None:
                            outcome.details[f"{overrides}_by_rules"] = outcome.verdicts.get(overrides)
                            outcome.details[f"{overrides}_decided_by"] = check.name
                            outcome.verdicts[overrides] = verdict

    def _failed(self, outcome: CheckOutcome) -> list[str]:
        reasons = [check for check in self.checks if outcome.verdicts.get(check) is False]
        not_run = outcome.details.get("not_run", ())
        reasons += [check.name for check in self.record_checks if check.reject_unknown
                    and outcome.verdicts.get(check.name) is None and check.name not in not_run]
        return reasons

    def _select(self, selection: Selection, records: list[dict[str, Any]], outcomes: list[CheckOutcome],
                rejected_by: list[list[str]]) -> None:
        name = selection.name
        groups: dict[str, list[int]] = {}
        for index, record in enumerate(records):
            if rejected_by[index]:
                outcomes[index].verdicts[name] = None
                outcomes[index].details.setdefault("not_run", []).append(name)
            else:
                groups.setdefault(record["prompt_id"], []).append(index)
        for prompt_id, indices in groups.items():
            keep = selection.keep([self.cfg.shape.full_text(records[i]) for i in indices],
                                  [outcomes[i].details.get("tokens") for i in indices], prompt_id)
            for index, chosen in zip(indices, keep):
                outcomes[index].verdicts[name] = chosen
                if not chosen:
                    rejected_by[index].append(name)


def filter_traces(cfg: FilterConfig) -> FilterReport:
    """Filter cfg.traces into kept and rejected records, with a report of every reason."""
    paths = OutputPaths.of(cfg)
    with claim(paths.outputs(), {"TRACES": cfg.traces, "--tokenizer": cfg.tokenizer}, locked=("--out", "--rejects")):
        return _filter_traces(cfg, paths)


def _filter_traces(cfg: FilterConfig, paths: OutputPaths) -> FilterReport:
    if check_resume(cfg, paths) == COMPLETE:
        log.info(nothing_to_do(f"{paths.kept} (with {paths.rejects} and {paths.report})"))
        return FilterReport.load(paths.kept, paths.rejects, paths.report)
    total = validate_input(cfg)
    resume = _plan_resume(cfg, paths)
    stats = FilterStats.of(cfg)
    # the pools before the outputs are touched: a judge model that cannot load stops the run with them as they were
    run = _Filter(cfg, paths, stats)
    try:
        _prepare_outputs(cfg, paths, resume)
        _restore_stats(stats, paths)
        progress_file = JsonlWriter(paths.progress)
    except BaseException:
        run.close()
        raise
    progress = Progress("filter", total=total, unit="record", initial=resume.done)
    new_records = 0
    try:
        with JsonlWriter(paths.kept) as kept_file, JsonlWriter(paths.rejects) as rejects_file:
            in_flight: deque[ChunkJob] = deque()

            def drain_one() -> None:
                nonlocal new_records
                job = in_flight.popleft()
                run.wait(job, in_flight)
                kept, rejected, tokens = run.finish(job)
                kept_file.write(kept)
                rejects_file.write(rejected)
                # the commit: both outputs hold this chunk completely; a resume cuts back to here
                progress_file.write([{"commit": {"done": job.last_done,
                                                 "kept_bytes": paths.kept.stat().st_size,
                                                 "rejects_bytes": paths.rejects.stat().st_size,
                                                 "last_id": job.records[-1]["id"]}}])
                for record in kept:
                    stats.add(record, True)
                for record in rejected:
                    stats.add(record, False)
                new_records += len(job.records)
                progress.update(len(job.records), tokens=tokens)

            for records, last_done in _chunks(paths.input, resume.done, bool(run.selections)):
                in_flight.append(run.start(records, last_done))
                for job in in_flight:
                    run.advance(job)
                if len(in_flight) > LOOKAHEAD:  # later chunks are checked while this one is graded and written
                    drain_one()
            while in_flight:
                drain_one()
    finally:
        progress.close()
        run.close()
        progress_file.close()

    this_run = ThisRun({name: pool.stats for name, pool in run.pools.items()}, run.overrides)
    data = build_report(stats, cfg, this_run,
                        paths={"input": str(paths.input), "kept": str(paths.kept), "rejects": str(paths.rejects)},
                        elapsed=progress.elapsed, new_records=new_records, workers=run.workers)
    if stats.total != total:  # a bug, not a user error: say so loudly
        raise AssertionError(f"filter accounted for {stats.total} records of {total}")
    plots = save_plots(stats, paths.report)
    data["plots"] = plots
    write_json(paths.report, data)
    paths.manifest.update(complete=True)
    paths.progress.unlink(missing_ok=True)
    return FilterReport(kept_path=str(paths.kept), rejects_path=str(paths.rejects), report_path=str(paths.report),
                        data=data, plots=plots)

