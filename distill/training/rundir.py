"""The output directory of a training run (`distill train`, `distill rl`) and its life cycle.

    out/run.json                 the run manifest (distill.runs.RunManifest): the fingerprint, `complete`
    out/checkpoints/checkpoint-N complete checkpoints only (see distill.training.checkpoints)
    out/train_summary.json       the result, written with the final model; then the manifest is complete

A run claims --out (no output is an input, rank 0 holds the lock), checks it against its fingerprint
on rank 0 (new, resumed from its last intact checkpoint, or complete: nothing to do), prepares it,
and only then lets the other ranks go on; a full disk anywhere inside is one line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import DistillError, OutputError, out_of_space
from distill.progress import is_main_process
from distill.runs import COMPLETE, NEW, RESUME, RunManifest, claim, nothing_to_do
from distill.training.checkpoints import (
    CHECKPOINTS,
    MARKER_FILE,
    complete_checkpoints,
    resume_point,
    write_json,
)

log = logging.getLogger(__name__)

SUMMARY_FILE = "train_summary.json"


@dataclass(frozen=True)
class RunStart:
    """Where --out stands for a run: NEW, RESUME or COMPLETE (distill.runs), and the fingerprint checked."""
    state: str
    fingerprint: dict[str, Any]
    clear: bool = False
    """--overwrite: the previous run in --out is removed before this one starts"""
    resume_from: Path | None = None
    """the checkpoint a RESUME continues from (None: there is none yet, so it starts from the beginning)"""


def marker_fingerprint(out: Path) -> tuple[dict[str, Any], Path] | None:
    """The fingerprint the newest complete checkpoint's marker recorded, and that marker; None without one."""
    for _, path in reversed(complete_checkpoints(out / CHECKPOINTS)):
        try:
            return json.loads((path / MARKER_FILE).read_text(encoding="utf-8"))["fingerprint"], path / MARKER_FILE
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def check_out(out: Path, stage: str, fingerprint: Mapping[str, Any], *, overwrite: bool,
              labels: Mapping[str, str]) -> RunStart:
    """NEW, RESUME or COMPLETE for a run of `stage` with `fingerprint` into `out` (rank 0, inside the lock).

    Refuses in one line a file, a directory that is not a distill output (even with --overwrite) and
    a run of other must-match settings (each changed flag named). A damaged or missing run.json is
    rebuilt from the fingerprint the newest checkpoint recorded, which is then checked as usual."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give a directory for the trained model")
    manifest = RunManifest.inside(out, stage)
    # a run killed while writing its first file left only run.json.tmp: nothing was started
    if not out.exists() or all(p.name == manifest.path.name + ".tmp" for p in out.iterdir()):
        return RunStart(NEW, dict(fingerprint))
    if not manifest.path.exists() and not (out / CHECKPOINTS).is_dir():
        raise OutputError(f"--out {out} exists and is not a distill {stage} output; choose a new or empty directory")
    if overwrite:
        return RunStart(NEW, dict(fingerprint), clear=True)
    try:
        manifest.read()
        damaged = not manifest.path.exists()
    except OutputError:
        damaged = True
    if damaged:
        recovered = marker_fingerprint(out)
        if recovered is None:
            if manifest.path.exists():
                manifest.read()  # its own error: unreadable, or another version's
            return RunStart(NEW, dict(fingerprint))  # checkpoints/ holds no complete checkpoint: nothing to resume
        saved, marker = recovered
        log.warning("%s is %s; the run's settings are read from %s instead", manifest.path,
                    "damaged" if manifest.path.exists() else "missing", marker)
        manifest.write(saved)
    state = manifest.resume(fingerprint, overwrite=False, labels=labels)
    return RunStart(state, dict(fingerprint))


def _begin(out: Path, stage: str, check: Callable[[], RunStart], record: Mapping[str, Any]) -> RunStart:
    """Rank 0 checks --out and prepares it (clears it for --overwrite, writes or updates the manifest with
    `record`); the other ranks wait for what it decided. A rank that raises ends the whole job (the
    launcher stops the others), so no rank waits forever."""
    from accelerate import PartialState

    processes = PartialState()
    start = None
    if processes.is_main_process:
        start = check()
        manifest = RunManifest.inside(out, stage)
        if start.clear:
            log.warning("--overwrite: removing the previous run in %s", out)
            shutil.rmtree(out)
        if start.state == NEW:
            manifest.write(start.fingerprint, **record)
        elif start.state == RESUME:
            manifest.update(**record)  # what the settings resolved to on this machine, for the record
    if processes.num_processes > 1:
        # every rank must take the same path (resume_point and the trainer meet at barriers), and only
        # rank 0 saw --out as it was
        from accelerate.utils import broadcast_object_list

        start = broadcast_object_list([start], from_process=0)[0]
    if start.state == RESUME:
        start = RunStart(RESUME, start.fingerprint, resume_from=resume_point(out / CHECKPOINTS, processes.is_main_process))
    return start


@contextlib.contextmanager
def training_run(out: Path, stage: str, inputs: Mapping[str, str | Path | None], check: Callable[[], RunStart], *,
                 record: Mapping[str, Any] | None = None,
                 translate: Callable[[BaseException], DistillError | None] | None = None) -> Iterator[RunStart]:
    """The run-directory protocol of a training stage: claim --out against `inputs` (rank 0 holds the
    lock), `check` it on rank 0 and prepare it, and yield where the run starts. An error inside that is
    a full disk (or one `translate` knows) becomes one line; a COMPLETE run is logged as nothing to do."""
    try:
        with claim({"--out": out}, inputs, locked=("--out",) if is_main_process() else (), directories=("--out",)):
            start = _begin(out, stage, check, record or {})
            if start.state == COMPLETE and is_main_process():
                log.info(nothing_to_do(f"--out {out}"))
            yield start
    except DistillError:
        raise
    except Exception as exc:  # a checkpoint or the model saved onto a full disk: say so in one line
        known = out_of_space(exc, out, "free some space there or choose another --out, then rerun the same command "
                                       "(it resumes from the last complete checkpoint)")
        if known is None and translate is not None:
            known = translate(exc)
        if known is None:
            raise
        raise known from exc


def saved_summary(out: Path) -> dict[str, Any]:
    """The summary a complete run in `out` wrote (what it returns when rerun with the same settings)."""
    path = out / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = None
    if not isinstance(summary, dict):
        raise OutputError(f"--out {out} is marked complete but {SUMMARY_FILE} is missing or unreadable; pass "
                          "--overwrite to run it again")
    return summary


def finish(out: Path, stage: str, summary: Mapping[str, Any]) -> None:
    """Rank 0, once the final model is saved: write the summary, then mark the manifest complete (a kill
    between the two leaves a run that a rerun resumes and saves again)."""
    write_json(out / SUMMARY_FILE, summary)
    RunManifest.inside(out, stage).update(complete=True)
