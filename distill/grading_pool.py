"""The process pool that grades extracted answers with a per-answer timeout (`GradingPool`).

    with GradingPool(workers=4, timeout=5) as pool:
        verdicts = [g.verdict for g in pool.grade_many([(answer_text, reference), ...])]

Why a process pool: math-verify's own timeout uses `signal.alarm`, which only
works in the main thread, and some expressions (`10^{10^{10}}`, `(10^{100})!`)
make sympy run for minutes. Each pool worker runs one answer at a time in its
main thread under an interval timer, and the parent kills and replaces a worker
that still has not answered shortly after the deadline (a hang inside C code
ignores the timer). A timeout is None, never False: the answer may well be right.
The grading itself is `distill.grading`'s.
"""

from __future__ import annotations

import concurrent.futures
import signal
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from distill.grading.extraction import DEFAULT_ANSWER_PATTERNS
from distill.grading.verdicts import (
    Grade,
    quick_grade,
    reference_kind,
    sandbox_module,
    silence_math_verify,
    slow_grade,
)


def _worker_grade(items: list[tuple[str | None, Any]], timer: float | None, sandbox_limits: Any = None
                  ) -> list[Grade]:
    """Grade several answers in one task: per-task overhead of a process pool (~1 ms) is as much as
    math-verify on a short answer, so answers travel in batches; each keeps its own timer."""
    return [slow_grade(answer, reference, None if reference_kind(reference) == "code" else timer, sandbox_limits)
            for answer, reference in items]


def _cache_key(answer: str | None, reference: Any) -> tuple[str, str]:
    import json

    return (answer or "", json.dumps(reference, sort_keys=True, ensure_ascii=False))


@dataclass
class GradingStats:
    graded: int = 0
    """Answers sent to a worker (math-verify or the sandbox)."""
    cache_hits: int = 0
    """Answers whose (answer, reference) pair was graded before."""
    timeouts: int = 0
    """Answers interrupted by their timer, or whose worker was killed when it did not answer in time."""
    killed: int = 0
    """Workers killed and replaced (a hang the timer could not interrupt, or a crash)."""
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class _Entry:
    answer: str | None
    reference: Any
    indices: list[int]
    grade: Grade | None = None


class GradingBatch:
    """Answers to grade together: `add` them, `submit` (returns at once), then read `results`."""

    def __init__(self, pool: GradingPool):
        self.pool = pool
        self.entries: dict[tuple[str, str], _Entry] = {}
        self.tasks: list[tuple[list[tuple[str, str]], concurrent.futures.Future]] = []
        self.submitted = False

    def add(self, answer: str | None, reference: Any, index: int) -> None:
        """One extracted answer; a pair seen before (in this batch or the pool's cache) is graded once."""
        key = _cache_key(answer, reference)
        if key in self.entries:
            self.pool.stats.cache_hits += 1
            self.entries[key].indices.append(index)
            return
        cached = self.pool._cache.get(key)
        if cached is not None:
            self.pool.stats.cache_hits += 1
            self.pool._cache.move_to_end(key)
        else:
            self.pool.stats.graded += 1
        self.entries[key] = _Entry(answer, reference, [index], cached)

    def submit(self) -> None:
        if not self.submitted:
            self.submitted = True
            self.tasks = self.pool._submit([key for key, entry in self.entries.items() if entry.grade is None],
                                           self.entries)

    def pending(self) -> list[concurrent.futures.Future]:
        """The workers' tasks of this batch that have not finished yet."""
        return [future for _, future in self.tasks if not future.done()]

    def results(self) -> Iterable[tuple[list[int], Grade]]:
        """(indices, grade) of every answer added, waiting for the workers."""
        self.submit()
        for keys, future in self.tasks:
            for key, graded in zip(keys, self.pool._collect(keys, future, self.entries)):
                self.entries[key].grade = graded
        for entry in self.entries.values():
            yield entry.indices, entry.grade  # type: ignore[misc]


class GradingPool:
    """Grade extracted answers in worker processes, each with a per-answer timeout.

    Each worker runs math-verify under an interval timer set to `timeout`
    (`in_worker_timer`, on where SIGALRM exists). Answers travel in small
    batches; a batch whose worker has not answered `kill_grace` seconds after
    all its timers could have fired is killed, its worker replaced, and its
    answers graded again one by one, so only the one that hangs comes back None.
    Repeated (answer, reference) pairs are graded once (an LRU cache).
    """

    def __init__(self, workers: int, *, timeout: float = 5.0, kill_grace: float = 2.0,
                 in_worker_timer: bool = hasattr(signal, "setitimer"), cache_size: int = 65536,
                 batch_size: int = 16, sandbox_limits: Any = None):
        import math_verify  # noqa: F401 - imported once here; forked workers inherit it instead of importing sympy each
        from pebble import ProcessPool

        self.workers = max(1, workers)
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.in_worker_timer = in_worker_timer
        self.batch_size = batch_size
        # code runs under the sandbox's own limits, its total cap included (it kills what it
        # started); the parent's deadline only backs that up
        sandbox = sandbox_module()
        self.sandbox_limits = sandbox_limits
        self.code_seconds = (sandbox_limits or sandbox.SandboxLimits()).grading_seconds if sandbox is not None else 0.0
        self.stats = GradingStats()
        self._cache: OrderedDict[tuple[str, str], Grade] = OrderedDict()
        self._cache_size = cache_size
        self._pool = ProcessPool(max_workers=self.workers, initializer=silence_math_verify)

    def batch(self) -> GradingBatch:
        return GradingBatch(self)

    def grade_many(self, items: Iterable[tuple[str | None, Any]],
                   patterns: Sequence[str] = DEFAULT_ANSWER_PATTERNS) -> list[Grade]:
        """Grade (answer text, reference) pairs; the answer text is searched with `patterns`.

        Answers decided by the fast path never leave this process; the rest go to
        the workers, each distinct pair once.
        """
        grades: list[Grade | None] = []
        batch = self.batch()
        for index, (answer_text, reference) in enumerate(items):
            decided, answer = quick_grade(answer_text, reference, patterns)
            grades.append(decided)
            if decided is None:
                batch.add(answer, reference, index)
        for indices, graded in batch.results():
            for index in indices:
                grades[index] = graded
        return grades  # type: ignore[return-value] - every slot is filled by now

    def _seconds(self, reference: Any) -> float:
        """The most one answer may take before its worker is killed."""
        if reference_kind(reference) == "code":
            return max(self.timeout, self.code_seconds) + self.kill_grace
        return self.timeout + (self.kill_grace if self.in_worker_timer else 0.0)

    def _schedule(self, keys: list[tuple[str, str]], entries: dict[tuple[str, str], _Entry]
                  ) -> concurrent.futures.Future:
        items = [(entries[k].answer, entries[k].reference) for k in keys]
        deadline = sum(self._seconds(reference) for _, reference in items)
        if not self.in_worker_timer:
            deadline += self.kill_grace
        return self._pool.schedule(_worker_grade, args=(items, self.timeout if self.in_worker_timer else None,
                                                        self.sandbox_limits), timeout=deadline)

    def _submit(self, keys: list[tuple[str, str]], entries: dict[tuple[str, str], _Entry]
                ) -> list[tuple[list[tuple[str, str]], concurrent.futures.Future]]:
        """Split `keys` into about two batches per worker (at most `batch_size` answers each)."""
        if not keys:
            return []
        size = max(1, min(self.batch_size, -(-len(keys) // (2 * self.workers))))
        return [(keys[i:i + size], self._schedule(keys[i:i + size], entries)) for i in range(0, len(keys), size)]

    def _collect(self, keys: list[tuple[str, str]], future: concurrent.futures.Future,
                 entries: dict[tuple[str, str], _Entry]) -> list[Grade]:
        from pebble import ProcessExpired

        try:
            grades = future.result()
        except (concurrent.futures.TimeoutError, ProcessExpired) as exc:
            # a hang the timer could not interrupt (or a crash): pebble killed and replaced the
            # worker; grade the batch again one answer at a time to find the culprit
            self.stats.killed += 1
            if len(keys) > 1:
                return [self._collect([key], self._schedule([key], entries), entries)[0] for key in keys]
            reason = "timeout" if isinstance(exc, concurrent.futures.TimeoutError) \
                else f"grader crashed (exit code {exc.exitcode})"
            grades = [Grade(None, reason)]
        for key, graded in zip(keys, grades):
            self.stats.reasons[graded.reason] = self.stats.reasons.get(graded.reason, 0) + 1
            if graded.reason == "timeout":
                self.stats.timeouts += 1
            elif graded.verdict is not None or graded.reason.startswith("sandbox"):
                # a timeout or crash may not repeat on a quieter machine: those are not remembered
                self._cache[key] = graded
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return grades

    def close(self) -> None:
        self._pool.stop()
        self._pool.join()

    def __enter__(self) -> GradingPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
