"""Ends the vLLM engine processes of a distill process that died without stopping them.

vLLM (0.32 included, its issue 19849) leaves its engine-core process and that process's workers
running when the process that started them is killed with SIGKILL or by the OOM killer: on a GPU
they keep its memory, so the rerun that resuming relies on fails for want of it. distill starts
this watcher beside its first vLLM engine. Once a second it notes the `VLLM::` processes under the
watched process; once that process is gone it kills those still running (and no process that has
since taken a noted PID: psutil compares start times).

    python -m distill.backends.engine_reaper PID        (started by distill.backends.vllm_engine)

Kept free of distill's imports: it runs as its own small interpreter.
"""

from __future__ import annotations

import signal
import sys
import time

POLL_S = 1.0


def _is_engine(process) -> bool:
    import psutil

    try:
        return process.name().startswith("VLLM::") or (process.cmdline()[:1] or [""])[0].startswith("VLLM::")
    except psutil.Error:
        return False


def watch(pid: int, poll_s: float = POLL_S) -> list[int]:
    """Wait for `pid` to end, then kill the vLLM engine processes seen under it; returns the PIDs killed."""
    import psutil

    try:
        watched = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return []
    engines: dict[int, psutil.Process] = {}
    while True:
        try:
            alive = watched.is_running() and watched.status() != psutil.STATUS_ZOMBIE
            children = watched.children(recursive=True) if alive else []
        except psutil.Error:
            alive, children = False, []
        if not alive:
            break
        for child in children:
            if child.pid not in engines and _is_engine(child):
                engines[child.pid] = child
        time.sleep(poll_s)
    killed = []
    for engine in engines.values():
        try:
            if engine.is_running():  # False for a PID taken since by another process
                engine.kill()
                killed.append(engine.pid)
        except psutil.Error:
            pass
    return killed


def main() -> None:
    # Ctrl-C or a TERM to the whole process group is for the watched process to handle (it stops its
    # engine itself); this one waits for it to end either way
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    watch(int(sys.argv[1]))


if __name__ == "__main__":
    main()
