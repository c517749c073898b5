"""The exceptions the library raises for user mistakes.

Every message is meant to be printed as one line by the CLI: it says what is
wrong (file, line, field where there is one) and how to fix it. Anything that is
not a `DistillError` is a bug in distill and keeps its traceback.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path


class DistillError(Exception):
    """A problem the user can fix: bad input, bad options, a missing model."""

    exit_code = 1
    """The CLI's exit status for it."""


class ConfigError(DistillError):
    """An option or recipe key is missing, unknown or out of range."""


class InputError(DistillError):
    """An input file or dataset is missing, empty or malformed."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        if field is not None:
            message = f"field '{field}': {message}"
        super().__init__(where + message)
        self.path, self.line, self.field = path, line, field


class OutputError(DistillError):
    """An output cannot be written, or would overwrite a finished result."""


class ModelError(DistillError):
    """A model or tokenizer cannot be loaded or does not fit the task."""


class TrainingError(DistillError):
    """Training diverged: a non-finite loss, gradient or weight."""


class BackendError(DistillError):
    """A generation backend cannot run here or failed for good."""


class IncompleteRun(DistillError):
    """Prompts failed for good (after their retries) while the rest of the run went on.

    A stage's result carries it as `failure` rather than raising it, so the result is still returned
    and shown; the CLI prints the result, then this line, and exits with `exit_code`:
    3 when the run produced something (rerun the same command to retry the failed prompts),
    1 when it produced nothing at all (retrying alone will not help).
    """

    PARTIAL = 3

    def __init__(self, failed: int, total: int, produced: int, first: str):
        self.exit_code = self.PARTIAL if produced else 1
        fix = ("rerun the same command to retry them" if produced else
               "nothing was produced; fix the cause (see the first error) and rerun")
        super().__init__(f"{failed} of {total} prompts failed after their retries (first: {first}); {fix}")


def out_of_space(exc: BaseException, where: str | Path, fix: str) -> OutputError | None:
    """An OutputError saying the disk holding `where` is full, when that is why `exc` was raised; else None.

    Writers in C++ or Rust (torch.save, safetensors) lose the errno on the way up, so an error raised
    while that disk has almost no space left counts as well (and is quoted, in case it is something else).
    """
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    limit = _file_size_limit()
    for error in chain:
        too_large = (isinstance(error, OSError) and error.errno == errno.EFBIG) or "File too large" in str(error)
        if too_large or (limit is not None and "write" in str(error).lower()):
            # over `ulimit -f` Python gets EFBIG (it ignores SIGXFSZ); torch.save's C++ writer drops the errno
            size = f"{limit:,} bytes" if limit is not None else "a limit"
            return OutputError(f"cannot write {getattr(error, 'filename', None) or where}: a file would exceed the "
                               f"per-file size limit ({size}, ulimit -f); raise it (ulimit -f unlimited) or {fix}")
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return OutputError(f"cannot write {error.filename or where}: {error.strerror}; {fix}")
        if "No space left on device" in str(error) or "Disk quota exceeded" in str(error):
            return OutputError(f"cannot write {where}: no space left on the device; {fix}")
    probe = Path(where)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if shutil.disk_usage(probe).free >= _NEARLY_FULL:
            return None
    except OSError:
        return None
    text = str(exc).strip().splitlines()
    return OutputError(f"cannot write {where}: the device is full (the error was: "
                       f"{text[0] if text else type(exc).__name__}); {fix}")


_NEARLY_FULL = 16 << 20


def _file_size_limit() -> int | None:
    """This process's per-file size limit in bytes (`ulimit -f`), None when unlimited."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft
