"""Many gradings at once: a thread pool whose every task is a sandboxed subprocess.

Threads are enough (each one only waits on its sandbox) and, unlike a process pool, cannot be
broken by a worker that dies: the code runs in the sandbox's processes, never in the pool's. A run
that crashes, is killed or times out is a False verdict; anything else going wrong in a grading is a
None verdict with the reason, logged — the pool and the other gradings go on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from distill.errors import ConfigError
from distill.sandbox.grading import Verdict, grade_code
from distill.sandbox.limits import SandboxLimits

logger = logging.getLogger(__name__)


class SandboxPool:
    """`workers` sandboxed gradings at a time, each with the per-run limits (wall clock included).

        with SandboxPool(workers=8) as pool:
            verdicts = pool.grade_many([(answer, reference), ...])   # in input order
    """

    def __init__(self, workers: int | None = None, limits: SandboxLimits | None = None):
        self.workers = workers or os.cpu_count() or 1
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1 (got {workers})")
        self.limits = limits or SandboxLimits()
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sandbox")

    def submit(self, answer: str, reference: dict) -> Future[Verdict]:
        return self._executor.submit(self._grade, answer, reference)

    def grade_many(self, items: Iterable[tuple[str, dict]]) -> list[Verdict]:
        """Verdicts for (answer, reference) pairs, in input order."""
        futures = [self.submit(answer, reference) for answer, reference in items]
        return [future.result() for future in futures]

    def _grade(self, answer: str, reference: dict) -> Verdict:
        try:
            return grade_code(answer, reference, self.limits)
        except Exception as exc:  # a bug or a host problem (no fds, no memory) must not sink the batch
            logger.exception("code sandbox: grading failed")
            return None, f"sandbox error: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
