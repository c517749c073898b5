"""One run's claim on its outputs, shared by every stage: the resume fingerprint, the lock, and the
rule that a run never writes over (or `--overwrite` never deletes) one of its own inputs.

Every field of a stage config declares how it takes part in resuming, in its `metadata`:
`MUST_MATCH` (a resumed run with another value is refused) or `FREE` (may change between a run and
its resume: workers, report paths, the flags that say how to start). There is no default, so a new
field without it fails `resume_policy` (and the test that walks every config).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from distill.errors import OutputError

POLICIES = ("must-match", "free")


def resume_policy(cls: type) -> dict[str, str]:
    """Field -> 'must-match' or 'free' for a config class; TypeError names a field that declares neither."""
    policy = {}
    for f in dataclasses.fields(cls):
        value = f.metadata.get("resume")
        if value not in POLICIES:
            raise TypeError(f"{cls.__name__}.{f.name} declares no resume behaviour: give it "
                            "field(..., metadata=MUST_MATCH) or field(..., metadata=FREE) (distill.config)")
        policy[f.name] = value
    return policy


def fingerprint(cfg: Any, **extra: Any) -> dict[str, Any]:
    """The settings a resumed run must share with the run it resumes: every must-match field of `cfg`
    (lists as lists, JSON-ready), plus what the stage derives from them (`extra`, e.g. a file's hash)."""
    policy = resume_policy(type(cfg))
    values = {name: getattr(cfg, name) for name, kind in policy.items() if kind == "must-match"}
    return {**{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}, **extra}


def changed_keys(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """'key old → new' for every setting that differs (a key missing on either side included)."""
    return [f"{key} {saved.get(key)!r} → {now.get(key)!r}"
            for key in sorted(set(saved) | set(now)) if saved.get(key) != now.get(key)]


def refuse_changed(what: str, saved: Mapping[str, Any], now: Mapping[str, Any], fix: str) -> None:
    """Raise the one 'refused: these keys changed' error when `saved` and `now` differ."""
    changes = changed_keys(saved, now)
    if changes:
        # a few changes with their values; many (another version's run, another stage's file) by name only
        shown = "; ".join(changes) if len(changes) <= 4 else ", ".join(
            sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k)))
        raise OutputError(f"{what}: refused: these keys changed: {shown}; {fix}")


# ---------------------------------------------------------------- the run manifest

MANIFEST_VERSION = 1
"""The manifest's own format; a manifest of another version is refused (named), never guessed at."""

NEW, RESUME, COMPLETE = "new", "resume", "complete"
"""What `RunManifest.resume` finds: start afresh, go on where a run stopped, or nothing left to do."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


class RunManifest:
    """The one record of a stage's run, stored with its output in one format:

        {"stage": "generate", "version": 1, "complete": false, "fingerprint": {...}, ...extra}

    `fingerprint` holds every must-match setting (`fingerprint(cfg, **derived)`); `complete` turns
    true when the stage has produced everything it was asked for. A file output keeps it beside
    itself (`traces.jsonl` -> `traces.run.json`), a directory output inside (`student/run.json`).
    Every stage resumes through `resume()`: a changed must-match setting is refused in one line
    naming each field with its flag, old and new value; the same settings resume, or on a complete
    output do nothing.
    """

    def __init__(self, path: str | Path, stage: str, *, output: str | Path | None = None):
        self.path, self.stage = Path(path), stage
        self.output = Path(output) if output is not None else self.path

    @classmethod
    def beside(cls, output: str | Path, stage: str) -> RunManifest:
        """The manifest of a file output: `traces.jsonl` -> `traces.run.json`."""
        output = Path(output)
        stem = output.name.removesuffix(".jsonl") if output.name.endswith(".jsonl") else output.stem
        return cls(output.with_name(f"{stem}.run.json"), stage, output=output)

    @classmethod
    def inside(cls, directory: str | Path, stage: str) -> RunManifest:
        """The manifest of a directory output: `student/` -> `student/run.json`."""
        return cls(Path(directory) / "run.json", stage, output=directory)

    def read(self) -> dict[str, Any] | None:
        """The manifest as written, None when there is none; OutputError when it is not one of ours."""
        import json

        if not self.path.exists():
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OutputError(f"{self.path} (the run manifest of {self.output}) is unreadable ({exc}); pass "
                              "--overwrite to start afresh") from None
        if not isinstance(data, dict) or not isinstance(data.get("fingerprint"), dict):
            raise OutputError(f"{self.path} is not a distill run manifest; pass --overwrite to start afresh or "
                              "choose another output")
        if data.get("version") != MANIFEST_VERSION:
            raise OutputError(f"{self.path} was written by another version of distill (manifest version "
                              f"{data.get('version')!r}, this one reads {MANIFEST_VERSION}); pass --overwrite to "
                              "start afresh")
        return data

    def fingerprint(self) -> dict[str, Any] | None:
        data = self.read()
        return None if data is None else data["fingerprint"]

    def is_complete(self) -> bool:
        data = self.read()
        return bool(data and data.get("complete"))

    def write(self, fingerprint: Mapping[str, Any], *, complete: bool = False, **extra: Any) -> None:
        """Write the manifest atomically (temp file, fsync, rename): a kill leaves the old one or the new one."""
        import json

        data = {"stage": self.stage, "version": MANIFEST_VERSION, "complete": complete,
                "fingerprint": dict(fingerprint), **extra}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, ensure_ascii=False, default=str)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.path}: {exc.strerror}; free some space, then rerun the same "
                              "command to resume") from None

    def update(self, *, complete: bool | None = None, **extra: Any) -> None:
        """Rewrite the manifest with `complete` and/or more extra keys; the fingerprint stays."""
        data = self.read()
        if data is None:
            raise OutputError(f"{self.path} disappeared while the run was writing {self.output}; rerun the "
                              "same command")
        fields = {k: v for k, v in data.items() if k not in ("stage", "version", "complete", "fingerprint")}
        self.write(data["fingerprint"], complete=data.get("complete", False) if complete is None else complete,
                   **{**fields, **extra})

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def resume(self, now: Mapping[str, Any], *, overwrite: bool, labels: Mapping[str, str] | None = None) -> str:
        """NEW, RESUME or COMPLETE for a run with fingerprint `now`; OutputError when the output was written
        with other must-match settings (each differing field named with its flag, old and new value).

        `labels` names the derived keys of the fingerprint that are not flags ('kept_sha256': 'the
        content of KEPT'); every other key is shown as its flag. With `overwrite`, always NEW: the caller
        removes the old output once the run has started.
        """
        if overwrite:
            return NEW
        data = self.read()
        if data is None:
            return NEW
        if data.get("stage") != self.stage:
            raise OutputError(f"{self.output} was written by distill {data.get('stage')}, not distill {self.stage}; "
                              "choose another output, or pass --overwrite to replace it")
        saved = data["fingerprint"]
        names = labels or {}
        changes = [f"{names.get(key, flag_of(key))} {_short(saved.get(key))} → {_short(now.get(key))}"
                   for key in sorted(set(saved) | set(now)) if saved.get(key) != now.get(key)]
        if changes:
            raise OutputError(f"{self.output} was written with other settings, so this run cannot resume it: "
                              + "; ".join(changes) + ". Rerun with the original values to resume it, or pass "
                              "--overwrite to start afresh (or choose another output)")
        return COMPLETE if data.get("complete") else RESUME


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes: how a fingerprint names an input by its content (a path can move)."""
    import hashlib

    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def flag_of(key: str) -> str:
    """The command-line flag of a fingerprint key: `max_tokens` -> `--max-tokens`."""
    return "--" + key.replace("_", "-")


def nothing_to_do(what: str) -> str:
    """The one line a stage logs when its output is already complete with the same settings."""
    return f"{what} is already complete with these settings: nothing to do (pass --overwrite to redo it)"


# ---------------------------------------------------------------- inputs against outputs


def _local(path: str | Path | None) -> Path | None:
    if not path:
        return None
    candidate = Path(path).expanduser()
    return candidate if os.path.lexists(candidate) else None


def _inside(child: Path, parent: Path) -> bool:
    return child != parent and child.is_relative_to(parent)


def check_inputs(outputs: Mapping[str, str | Path], inputs: Mapping[str, str | Path | None], *,
                 directories: tuple[str, ...] = ()) -> None:
    """Refuse a run one of whose outputs is one of its inputs, before anything is written or removed.

    The same file counts however it is reached (a symlink, a hard link, a relative path). An input
    inside an output directory counts (an --overwrite would delete it), and so does an output directory
    inside an input directory. `directories` names the outputs that are directories.
    """
    for in_flag, given in inputs.items():
        source = _local(given)
        if source is None:  # a Hub id, or an input whose absence the stage reports itself
            continue
        real_in = source.resolve()
        for out_flag, out_path in outputs.items():
            target = Path(out_path).expanduser()
            real_out = target.resolve()
            same = real_in == real_out
            if not same and target.exists():
                with contextlib.suppress(OSError):
                    same = os.path.samefile(source, target)
            if same:
                raise OutputError(f"{out_flag} {out_path} is the input {in_flag} {given} (the same file, counting "
                                  "symlinks and hard links): a run never writes over its own input, and "
                                  "--overwrite never deletes one; choose another " + out_flag)
            if out_flag in directories and _inside(real_in, real_out):
                raise OutputError(f"the input {in_flag} {given} lies inside the output directory {out_flag} "
                                  f"{out_path}, which the run writes (and --overwrite deletes); move the input "
                                  f"out of it or choose another {out_flag}")
            if out_flag in directories and _inside(real_out, real_in):
                raise OutputError(f"the output directory {out_flag} {out_path} lies inside the input {in_flag} "
                                  f"{given}, which the run reads; choose an {out_flag} outside it")


# ---------------------------------------------------------------- one writer per output

_HELD: set[Path] = set()
"""Lock files this process holds: a POSIX lock is per process, so a second claim from the same process
would otherwise succeed silently."""


def lock_path(output: str | Path) -> Path:
    """`traces.jsonl` -> `traces.jsonl.lock`, `students/kept` -> `students/kept.lock`: beside the output,
    never inside it, so an --overwrite that deletes a directory output keeps its lock."""
    output = Path(output)
    return output.with_name(output.name + ".lock")


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        return f"PID {int(path.read_text().split()[0])}"
    return "another process"


class OutputLock:
    """An exclusive lock on one output for as long as the run lasts.

    It is a POSIX record lock (fcntl.lockf) on a sidecar file, not flock: the kernel drops it when the
    process dies, SIGKILL included, and a forked worker (the filter's pools, dataloaders) does not
    inherit it, so a killed run's surviving workers cannot block the rerun. The file holds the PID
    for the message of a run that is refused; it is removed when the lock is released.
    """

    def __init__(self, output: str | Path, flag: str = "--out"):
        self.output, self.flag = Path(output), flag
        self.path = lock_path(self.output)
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        real = self.path.resolve()
        if real in _HELD:
            raise OutputError(f"{self.output} is being written by this process already; give each run "
                              "its own output")
        ancestor = self.path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise OutputError(f"cannot create {self.flag} {self.output}: {ancestor} is a file, not a directory; "
                              f"choose another {self.flag}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno not in (errno.EACCES, errno.EAGAIN):
                        raise
                    raise OutputError(f"{self.output} is being written by another run ({_holder(self.path)} holds "
                                      f"{self.path}); wait for it to end or stop it, or choose another "
                                      "output") from None
                # the holder before us may have removed the file while we waited on it: lock the one on disk
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                        break
                os.close(fd)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            raise OutputError(f"cannot write {self.flag} {self.output}: {exc.strerror} (its lock file "
                              f"{self.path.name}); choose a writable location") from None
        self._fd = fd
        _HELD.add(real)
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # still locked: a run waiting on this file retries on the new one
        os.close(self._fd)
        self._fd = None
        _HELD.discard(self.path.resolve())


def _rerunning_main_in_a_child() -> bool:
    """Whether this is a multiprocessing child (spawn, forkserver) still importing the parent's main script
    as `__mp_main__`, before the function it was started for runs (then it is a worker like any other)."""
    import multiprocessing
    import sys

    if getattr(multiprocessing.current_process(), "_inheriting", False):  # set while the child prepares
        return True
    rerun = sys.modules.get("__mp_main__")
    return rerun is not None and rerun is not sys.modules.get("__main__")


@contextlib.contextmanager
def claim(outputs: Mapping[str, str | Path], inputs: Mapping[str, str | Path | None], *,
          locked: tuple[str, ...] | None = None, directories: tuple[str, ...] = ()) -> Iterator[None]:
    """The guard every stage runs inside: no output is an input (see `check_inputs`), then an exclusive
    lock on each output in `locked` (default: all), held until the block ends."""
    if _rerunning_main_in_a_child():
        # vLLM starts its workers with spawn, which runs the script's top level again in each of them: a
        # stage called there would find its outputs locked by the very run that started the worker
        raise OutputError("this process was started by multiprocessing (vLLM spawns workers) and re-ran your "
                          "script's top level: put the distill call under `if __name__ == \"__main__\":`")
    check_inputs(outputs, inputs, directories=directories)
    with contextlib.ExitStack() as stack:
        for name in outputs if locked is None else locked:
            lock = OutputLock(outputs[name], name).acquire()
            stack.callback(lock.release)
        yield
