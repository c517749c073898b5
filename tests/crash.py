"""Crash-resume trials: SIGKILL a real `distill` process at random moments, rerun the same
command, and compare the final output with an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT


@dataclass
class TrialStats:
    trials: int = 0
    killed_mid_output: int = 0
    killed_before_output: int = 0
    finished_before_kill: int = 0
    kill_times: list[float] = field(default_factory=list)
    landed: Counter[str] = field(default_factory=Counter)
    """where the kills landed, as the test's `classify` names it (e.g. 'mid-save')"""


def start(args: list[str]) -> subprocess.Popen:
    """The real command line, its output discarded (a full pipe must not stall it)."""
    return subprocess.Popen([sys.executable, "-m", "cli.main", *map(str, args)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})


def kill_when(process: subprocess.Popen, condition: Callable[[], bool], timeout: float = 300,
              poll: float = 0.002) -> bool:
    """SIGKILL `process` as soon as `condition()` holds; False if it finished first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(poll)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


def run_to_completion(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def crash_trials(make_args: Callable[[int], list[str]], output_of: Callable[[int], Path],
                 check: Callable[[int], None], *, trials: int, full_seconds: float, seed: int = 0,
                 kill_condition: Callable[[int, random.Random], Callable[[], bool] | None] | None = None,
                 classify: Callable[[int], str] | None = None,
                 damage: Callable[[int, random.Random], None] | None = None,
                 after_rerun: Callable[[int, subprocess.CompletedProcess], None] | None = None) -> TrialStats:
    """For each trial: start the command and SIGKILL it, rerun the same command to completion, then
    `check(trial)` the final output.

    The kill comes at a uniformly random moment of a typical run, or, where `kill_condition(trial, rng)`
    returns a condition, as soon as that holds (e.g. while a checkpoint is being written). After the
    kill, `classify(trial)` names where it landed, and `damage(trial, rng)` may add what a crash can
    also leave (a torn line). `after_rerun` sees the rerun's result.
    """
    rng = random.Random(seed)
    stats = TrialStats()
    for trial in range(trials):
        args = make_args(trial)
        condition = kill_condition(trial, rng) if kill_condition else None
        started = time.monotonic()
        process = start(args)
        if condition is not None:
            killed = kill_when(process, condition)
        else:
            try:
                process.wait(timeout=rng.uniform(0.05, full_seconds))
                killed = False
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                killed = True
        stats.kill_times.append(round(time.monotonic() - started, 2))
        if not killed:
            stats.finished_before_kill += 1
            stats.landed["finished before the kill"] += 1
            assert process.returncode == 0, f"trial {trial}: the run failed without a kill"
        else:
            output = output_of(trial)
            if output.exists() and (output.is_dir() or output.stat().st_size > 0):
                stats.killed_mid_output += 1
            else:
                stats.killed_before_output += 1
            if classify is not None:
                stats.landed[classify(trial)] += 1
            if damage is not None:
                damage(trial, rng)
            result = run_to_completion(args)
            assert result.returncode == 0, f"trial {trial}: resume failed:\n{result.stderr[-2000:]}"
            if after_rerun is not None:
                after_rerun(trial, result)
        check(trial)
        stats.trials += 1
    return stats


def time_run(args: list[str]) -> float:
    start_time = time.perf_counter()
    result = run_to_completion(args)
    assert result.returncode == 0, result.stderr[-2000:]
    return time.perf_counter() - start_time
