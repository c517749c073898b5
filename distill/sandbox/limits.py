"""The limits every sandboxed run gets: an option group stages can inherit (filter, eval)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import ClassVar

from distill.config import FREE, MUST_MATCH, Options, require


@dataclass(kw_only=True)
class SandboxLimits(Options):
    panel: ClassVar[str] = "Code sandbox"
    memory_mb: int = field(default=1024, metadata=MUST_MATCH)
    """Address space per process of the code (RLIMIT_AS), in MiB; past it allocations fail (status 'oom')."""
    cpu_seconds: int = field(default=10, metadata=MUST_MATCH)
    """CPU time per process of the code (RLIMIT_CPU), in seconds; then it is killed (status 'timeout')."""
    max_processes: int = field(default=64, metadata=MUST_MATCH)
    """Most processes and threads a run may have at once (RLIMIT_NPROC, made binding by a uid of its own)."""
    wall_seconds: float = field(default=6.0, metadata=MUST_MATCH)
    """Wall-clock seconds per test (one stdio input, or one call of the function); past it the test fails."""
    total_seconds: float = field(default=60.0, metadata=MUST_MATCH)
    """Wall-clock cap, in seconds, on all tests of one answer together (it wins over --wall-seconds); past it the answer fails."""
    max_file_mb: int = field(default=64, metadata=MUST_MATCH)
    """Largest file the code may write (RLIMIT_FSIZE), in MiB."""
    max_disk_mb: int = field(default=256, metadata=MUST_MATCH)
    """Everything the code writes (its cwd and /tmp are one tmpfs of this size, in memory), in MiB."""
    max_open_files: int = field(default=256, metadata=MUST_MATCH)
    """Most open file descriptors per process of the code (RLIMIT_NOFILE)."""
    max_output_kb: int = field(default=1024, metadata=MUST_MATCH)
    """stdout and stderr are each kept up to this many KiB; code that writes more is stopped (status 'output_limit')."""
    strict_isolation: bool = field(default=False, metadata=MUST_MATCH)
    """Refuse to run code (verdict null) unless the network is cut, the code runs unprivileged and all its processes can be killed, instead of falling back with a warning."""
    sandbox_python: str | None = field(default=None, metadata=FREE)
    """Interpreter that runs the code; default: this Python if the sandbox's uid can run it, else python3 from /usr/local/bin, /usr/bin or /bin."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # Python itself needs some room to start: below these it cannot run even "print(1)".
        require(self.memory_mb >= 64, "memory_mb", f"must be at least 64 (got {self.memory_mb})")
        require(self.cpu_seconds >= 1, "cpu_seconds", f"must be at least 1 (got {self.cpu_seconds})")
        require(self.max_processes >= 1, "max_processes", f"must be at least 1 (got {self.max_processes})")
        require(self.wall_seconds > 0, "wall_seconds", f"must be positive (got {self.wall_seconds})")
        require(self.total_seconds > 0, "total_seconds", f"must be positive (got {self.total_seconds})")
        require(self.max_disk_mb >= 1, "max_disk_mb", f"must be at least 1 (got {self.max_disk_mb})")
        require(self.max_file_mb >= 1, "max_file_mb", f"must be at least 1 (got {self.max_file_mb})")
        require(self.max_open_files >= 16, "max_open_files",
                f"must be at least 16 (got {self.max_open_files})")
        require(self.max_output_kb >= 1, "max_output_kb", f"must be at least 1 (got {self.max_output_kb})")
        if self.sandbox_python is not None:
            require(os.path.isabs(self.sandbox_python) and os.access(self.sandbox_python, os.X_OK),
                    "sandbox_python", f"must be the absolute path of a Python executable "
                    f"(got {self.sandbox_python!r}); e.g. /usr/bin/python3")

    def launcher_limits(self) -> dict[str, int]:
        """The limits in the units setrlimit takes."""
        return {"memory_bytes": self.memory_mb << 20, "cpu_seconds": self.cpu_seconds,
                "processes": self.max_processes, "file_bytes": self.max_file_mb << 20,
                "open_files": self.max_open_files}

    @classmethod
    def of(cls, cfg: SandboxLimits) -> SandboxLimits:
        """The limits of a stage config that inherits them (what the grading workers get)."""
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls)})

    @property
    def grading_seconds(self) -> float:
        """The longest one answer can take to grade, sandbox start-up and clean-up included."""
        return self.total_seconds + 10.0
