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


def already_complete(what: str, again: str) -> OutputError:
    """The one error for a finished output met without --overwrite."""
    return OutputError(f"{what} is already complete; pass --overwrite to {again} or choose another --out")


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


@contextlib.contextmanager
def claim(outputs: Mapping[str, str | Path], inputs: Mapping[str, str | Path | None], *,
          locked: tuple[str, ...] | None = None, directories: tuple[str, ...] = ()) -> Iterator[None]:
    """The guard every stage runs inside: no output is an input (see `check_inputs`), then an exclusive
    lock on each output in `locked` (default: all), held until the block ends."""
    check_inputs(outputs, inputs, directories=directories)
    with contextlib.ExitStack() as stack:
        for name in outputs if locked is None else locked:
            lock = OutputLock(outputs[name], name).acquire()
            stack.callback(lock.release)
        yield
