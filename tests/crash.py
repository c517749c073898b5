"""Crash-resume trials: SIGKILL a real `distill` process at random moments, rerun the same
command, and compare the final output with an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
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


def run_to_completion(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ})


def crash_trials(make_args: Callable[[int], list[str]], output_of: Callable[[int], Path],
                 check: Callable[[int], None], *, trials: int, full_seconds: float,
                 seed: int = 0) -> TrialStats:
    """For each trial: start the command, SIGKILL it at a uniformly random moment of a typical
    run, rerun the same command to completion, then `check(trial)` the final output."""
    rng = random.Random(seed)
    stats = TrialStats()
    for trial in range(trials):
        args = make_args(trial)
        process = subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rng.uniform(0.05, full_seconds)
        stats.kill_times.append(round(delay, 2))
        try:
            process.wait(timeout=delay)
            stats.finished_before_kill += 1
            assert process.returncode == 0, f"trial {trial}: the run failed without a kill"
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            output = output_of(trial)
            if output.exists() and output.stat().st_size > 0:
                stats.killed_mid_output += 1
            else:
                stats.killed_before_output += 1
            result = run_to_completion(args)
            # killed after its last write, the run was already complete: the rerun says so (exit 1)
            finished = result.returncode == 1 and "already complete" in result.stderr
            assert result.returncode == 0 or finished, f"trial {trial}: resume failed:\n{result.stderr[-2000:]}"
        check(trial)
        stats.trials += 1
    return stats


def time_run(args: list[str]) -> float:
    start = time.perf_counter()
    result = run_to_completion(args)
    assert result.returncode == 0, result.stderr[-2000:]
    return time.perf_counter() - start
