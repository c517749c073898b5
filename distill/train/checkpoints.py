"""The output directory's life cycle (its checkpoints: distill.training.checkpoints).

    out/run.json                 the run's settings, written when training starts
    out/checkpoints/checkpoint-N  complete checkpoints only (each holds distill_checkpoint.json)
    out/data/                    the tokenized examples (reused on resume)
    out/train_summary.json       written last: its presence means the run finished
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from distill.errors import OutputError
from distill.runs import refuse_changed
from distill.training.checkpoints import CHECKPOINTS, MARKER_FILE, complete_checkpoints, write_json

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
SUMMARY_FILE = "train_summary.json"


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
        write_json(out / RUN_FILE, {"settings": settings})
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
    write_json(out / RUN_FILE, {"settings": settings, "plan": plan})


def mark_finished(out: Path, summary: dict[str, Any]) -> None:
    write_json(out / SUMMARY_FILE, summary)
