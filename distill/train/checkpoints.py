"""The output directory's life cycle, and checkpoints a kill at any moment cannot corrupt.

    out/run.json                 the run's settings, written when training starts
    out/checkpoints/checkpoint-N  complete checkpoints only (each holds distill_checkpoint.json)
    out/data/                    the tokenized examples (reused on resume)
    out/train_summary.json       written last: its presence means the run finished

A checkpoint is written into `checkpoints/.staging-N/` and renamed into place
once every rank has finished writing and its marker is on disk; a rename is
atomic, so `checkpoint-N` either does not exist or is whole. Old checkpoints
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
from distill.runs import refuse_changed

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
SUMMARY_FILE = "train_summary.json"
MARKER_FILE = "distill_checkpoint.json"
CHECKPOINTS = "checkpoints"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def run_state(out: Path) -> str:
    """'new' (absent or empty), 'finished', 'unfinished' (a started distill run) or 'foreign'."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give a directory for the trained student")
    if not out.exists():
        ancestor = out.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise OutputError(f"cannot create --out {out}: {ancestor} is a file, not a directory; choose "
                              "another --out")
    # a run killed while writing its first file left only run.json.tmp: nothing was started
    if not out.exists() or all(p.name == RUN_FILE + ".tmp" for p in out.iterdir()):
        return "new"
    if (out / SUMMARY_FILE).is_file():
        return "finished"
    if (out / RUN_FILE).is_file() or (out / CHECKPOINTS).is_dir():
        return "unfinished"
    return "foreign"


def prepare_out(out: Path, settings: dict[str, Any], *, resume: bool, overwrite: bool) -> bool:
    """Check --out against --resume/--overwrite; clear it when asked. True when a run is resumed.

    Runs on rank 0 only; raises OutputError with the fix when the directory must not be touched.
    """
    state = run_state(out)
    if state == "foreign":
        raise OutputError(f"--out {out} exists and is not a distill train output; choose a new or empty directory")
    if state == "finished" and not overwrite:
        raise OutputError(f"--out {out} holds a finished run; pass --overwrite to train it again or choose "
                          "another --out")
    if state == "unfinished" and not (resume or overwrite):
        raise OutputError(f"--out {out} holds an unfinished run; pass --resume to continue it from its last "
                          "checkpoint or --overwrite to start over")
    if overwrite and state != "new":
        log.warning("--overwrite: removing the previous run in %s", out)
        shutil.rmtree(out)
    if state == "unfinished" and resume:
        saved = saved_settings(out)
        if saved is not None:
            refuse_changed(f"--resume: {out} was started with other settings", saved, settings,
                           "rerun with the original ones, or --overwrite to start over")
        return True
    try:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / RUN_FILE, {"settings": settings})
    except OSError as exc:
        raise OutputError(f"cannot write --out {out}: {exc.strerror}; choose a writable location") from None
    return False


def saved_settings(out: Path) -> dict[str, Any] | None:
    """The settings the run in `out` was started with: run.json's or, when it is damaged or missing,
    those recorded in its newest checkpoint's marker (None when neither exists)."""
    run_file = out / RUN_FILE
    try:
        return json.loads(run_file.read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for _, path in reversed(complete_checkpoints(out / CHECKPOINTS)):
        try:
            settings = json.loads((path / MARKER_FILE).read_text(encoding="utf-8"))["settings"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if run_file.exists():
            log.warning("%s is damaged; the run's settings are read from %s instead", run_file, path / MARKER_FILE)
        return settings
    if run_file.exists():
        raise OutputError(f"--resume: {run_file} is damaged and no checkpoint records the run's settings; pass "
                          "--overwrite to start over")
    return None


def record_plan(out: Path, settings: dict[str, Any], plan: dict[str, Any]) -> None:
    """Write run.json once prepare_out has accepted `settings`, with what they resolved to on this machine
    (for the record: resuming compares the settings); this also repairs a damaged run.json."""
    _write_json(out / RUN_FILE, {"settings": settings, "plan": plan})


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
    from distill.training.identity import file_digest

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
            raise OutputError(f"--resume: no checkpoint in {run_dir} is intact ("
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
        log.info("--resume: no complete checkpoint in %s yet; starting from the beginning", run_dir)
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
    from distill.training.identity import file_digest

    files = {str(p.relative_to(staged)): {"bytes": p.stat().st_size, "sha256": file_digest(p)}
             for p in sorted(staged.rglob("*")) if p.is_file()}
    _write_json(staged / MARKER_FILE, {"step": step, "files": files, **meta})
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


def mark_finished(out: Path, summary: dict[str, Any]) -> None:
    _write_json(out / SUMMARY_FILE, summary)


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
