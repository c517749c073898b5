"""Checkpoints a kill at any moment cannot corrupt, for every trainer distill runs.

    out/checkpoints/checkpoint-N  complete checkpoints only (each holds distill_checkpoint.json)

A checkpoint is written into `checkpoints/.staging-N/` and renamed into place
once every rank has finished writing and its marker is on disk; a rename is
atomic, so `checkpoint-N` either does not exist or is whole. The marker records
the size and sha256 of every file, checked before resuming from it, and the
run's fingerprint (what a damaged run.json is recovered from). Old checkpoints
are renamed away before they are deleted, and a new one is published before an
old one goes, so a kill during saving or rotation always leaves the last
complete checkpoint. Leftovers of a killed save are removed on resume.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill.errors import OutputError
from distill.runs import file_digest

log = logging.getLogger(__name__)

MARKER_FILE = "distill_checkpoint.json"
CHECKPOINTS = "checkpoints"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def write_json(path: Path, data: Any) -> None:
    """`data` into `path` whole or not at all (written beside it, synced, renamed over it)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def complete_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints in `run_dir`, oldest first."""
    found = []
    if run_dir.is_dir():
        for path in run_dir.iterdir():
            match = _CHECKPOINT.match(path.name)
            if match and path.is_dir() and (path / MARKER_FILE).is_file():
                found.append((int(match.group(1)), path))
    return sorted(found)


def last_checkpoint(run_dir: Path) -> Path | None:
    checkpoints = complete_checkpoints(run_dir)
    return checkpoints[-1][1] if checkpoints else None


def checkpoint_damage(path: Path) -> str | None:
    """What is wrong with a checkpoint's files against the checksums its marker recorded at save, or None."""
    try:
        files = json.loads((path / MARKER_FILE).read_text(encoding="utf-8"))["files"]
        expected = [(name, int(entry["bytes"]), str(entry["sha256"])) for name, entry in sorted(files.items())]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"its {MARKER_FILE} is unreadable or records no checksums"
    for name, size, digest in expected:
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size:,} bytes where {size:,} were written"
        if file_digest(file) != digest:
            return f"{name} differs from what was written (sha256 mismatch)"
    return None


def set_aside_damaged(run_dir: Path) -> Path | None:
    """The newest complete checkpoint whose files match their checksums. Newer damaged ones are renamed
    `damaged-checkpoint-N` (kept, no longer resumable) with a line saying so; OutputError when there are
    checkpoints and none is intact. Runs on rank 0 only."""
    damaged = []
    checkpoints = list(reversed(complete_checkpoints(run_dir)))
    for _, path in checkpoints:
        problem = checkpoint_damage(path)
        if problem is None:
            break
        damaged.append((path, problem))
    else:
        if damaged:
            raise OutputError(f"cannot resume: no checkpoint in {run_dir} is intact ("
                              + "; ".join(f"{p.name}: {why}" for p, why in damaged)
                              + "); pass --overwrite to start over")
        return None
    for damaged_path, problem in damaged:
        aside = damaged_path.with_name(f"damaged-{damaged_path.name}")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(damaged_path, aside)
        log.warning("%s is damaged (%s); resuming from %s instead (the damaged one is kept as %s)",
                    damaged_path.name, problem, path.name, aside.name)
    return path


def resume_point(run_dir: Path, main: bool) -> Path | None:
    """The newest intact checkpoint to resume from (rank 0 first removes what a killed save left and sets
    damaged ones aside), or None to start over."""
    from accelerate import PartialState

    with PartialState().main_process_first():
        if main:
            remove_incomplete(run_dir)
            set_aside_damaged(run_dir)
    resume_from = last_checkpoint(run_dir)
    if main and resume_from is not None:
        log.info("resuming from %s", resume_from)
    elif main:
        log.info("no complete checkpoint in %s yet; the run starts from the beginning", run_dir)
    return resume_from


def remove_incomplete(run_dir: Path) -> list[str]:
    """Delete what a killed save or rotation left behind (staging dirs, unmarked checkpoints)."""
    removed = []
    if not run_dir.is_dir():
        return removed
    for path in run_dir.iterdir():
        leftover = path.name.startswith((".staging-", ".deleting-"))
        unmarked = _CHECKPOINT.match(path.name) and not (path / MARKER_FILE).is_file()
        if path.is_dir() and (leftover or unmarked):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    if removed:
        log.warning("removed what an interrupted checkpoint save left in %s: %s", run_dir, ", ".join(sorted(removed)))
    return removed


def _delete(path: Path) -> None:
    doomed = path.with_name(f".deleting-{path.name}")
    shutil.rmtree(doomed, ignore_errors=True)
    os.replace(path, doomed)  # from here on it no longer counts as a checkpoint
    shutil.rmtree(doomed, ignore_errors=True)


def staging_dir(run_dir: Path, step: int) -> Path:
    return run_dir / f".staging-{step}"


def publish(staged: Path, run_dir: Path, step: int, meta: dict[str, Any]) -> Path:
    """Mark a fully written checkpoint complete, with the size and sha256 of each of its files (checked
    before resuming from it), and rename it to `checkpoint-<step>`."""
    files = {str(p.relative_to(staged)): {"bytes": p.stat().st_size, "sha256": file_digest(p)}
             for p in sorted(staged.rglob("*")) if p.is_file()}
    write_json(staged / MARKER_FILE, {"step": step, "files": files, **meta})
    final = run_dir / f"checkpoint-{step}"
    if final.exists():  # reached again after resuming from an earlier checkpoint
        _delete(final)
    os.replace(staged, final)
    return final


def rotate(run_dir: Path, keep: int) -> None:
    """Delete all but the `keep` newest complete checkpoints."""
    for _, path in complete_checkpoints(run_dir)[:-keep]:
        _delete(path)


def remove_all(run_dir: Path) -> None:
    if run_dir.is_dir():
        for _, path in complete_checkpoints(run_dir):
            _delete(path)
        remove_incomplete(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def save_staged(trainer: Any, save: Callable[[], None], meta: dict[str, Any], keep: int) -> None:
    """Run `save` (a transformers Trainer's own _save_checkpoint) into a staging directory, then publish it.

    Every rank writes into the staging directory; once all are done, rank 0 writes the marker and
    renames it to checkpoint-N. A kill at any point leaves either no checkpoint-N or a complete one,
    and the previous complete checkpoint is only deleted after that."""
    run_dir = Path(trainer.args.output_dir)
    step = trainer.state.global_step
    staged = staging_dir(run_dir, step)
    if trainer.args.should_save:
        shutil.rmtree(staged, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.args.output_dir = str(staged)
    try:
        save()
    finally:
        trainer.args.output_dir = str(run_dir)
    trainer.accelerator.wait_for_everyone()
    if trainer.args.should_save:
        publish(staged / f"checkpoint-{step}", run_dir, step, meta)
        shutil.rmtree(staged, ignore_errors=True)
        rotate(run_dir, keep)
    trainer.accelerator.wait_for_everyone()


class AtomicCheckpoints:
    """Mixed in before a transformers Trainer (TRL's included): its checkpoints are written with
    `save_staged`, so a kill never leaves a torn one, and hold `checkpoint_meta` in their marker."""

    def __init__(self, *args: Any, checkpoint_meta: dict[str, Any], keep_checkpoints: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.checkpoint_meta = checkpoint_meta
        self.keep_checkpoints = keep_checkpoints

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        save = super()._save_checkpoint
        save_staged(self, lambda: save(model, trial), self.checkpoint_meta, self.keep_checkpoints)
