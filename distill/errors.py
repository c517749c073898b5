"""The exceptions the library raises for user mistakes.

Every message is meant to be printed as one line by the CLI: it says what is
wrong (file, line, field where there is one) and how to fix it. Anything that is
not a `DistillError` is a bug in distill and keeps its traceback.
"""

from __future__ import annotations


class DistillError(Exception):
    """A problem the user can fix: bad input, bad options, a missing model."""


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


class BackendError(DistillError):
    """A generation backend cannot run here or failed for good."""
