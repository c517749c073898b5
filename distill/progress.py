"""One fixed-format progress line for long work: done/total, tokens/s and ETA.

On a terminal it is a tqdm bar; in a log file (Slurm, CI) it is a plain line
every `interval` seconds, so logs stay readable.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from tqdm import tqdm

log = logging.getLogger("distill")


def is_main_process() -> bool:
    """True on rank 0 of a distributed job (and in any plain process)."""
    return os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    def __init__(self, desc: str, total: int, *, unit: str = "prompt", initial: int = 0,
                 interval: float = 30.0, enabled: bool = True):
        self.desc, self.total, self.unit, self.initial = desc, total, unit, initial
        self.done, self.tokens = initial, 0
        self.failed = 0
        """Failures so far (prompts that failed after their retries), shown once there is one."""
        self.start = time.perf_counter()
        self.interval, self._last_log = interval, self.start
        self.enabled = enabled and is_main_process()
        self._bar = None
        if self.enabled and sys.stderr.isatty():
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit}s "
                                        "[{elapsed}<{remaining}{postfix}]")

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def eta(self) -> float | None:
        progressed = self.done - self.initial
        if progressed <= 0:
            return None
        return (self.total - self.done) * self.elapsed / progressed

    def line(self) -> str:
        eta = self.eta()
        failed = f", {self.failed} failed" if self.failed else ""
        return (f"{self.desc}: {self.done}/{self.total} {self.unit}s{failed}, "
                f"{self.tokens / max(self.elapsed, 1e-9):,.0f} tok/s, "
                f"elapsed {format_duration(self.elapsed)}, ETA {format_duration(eta) if eta is not None else '?'}")

    def update(self, n: int = 1, tokens: int = 0) -> None:
        self.done += n
        self.tokens += tokens
        if not self.enabled:
            return
        if self._bar is not None:
            failed = f", {self.failed} failed" if self.failed else ""
            self._bar.set_postfix_str(f"{self.tokens / max(self.elapsed, 1e-9):,.0f} tok/s{failed}", refresh=False)
            self._bar.update(n)
        elif time.perf_counter() - self._last_log >= self.interval:
            self._last_log = time.perf_counter()
            log.info(self.line())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
