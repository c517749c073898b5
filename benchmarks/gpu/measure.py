"""What the GPU benchmarks here share: the card's measured bf16 peak, device facts, step timing, child processes."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def device_facts() -> dict[str, Any]:
    """GPU name, memory, compute capability, versions; the driver from nvidia-smi."""
    import torch

    facts: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0],
                             "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpus": os.cpu_count()}
    try:
        import transformers

        facts["transformers"] = transformers.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 2),
                     capability=f"{props.major}.{props.minor}", multiprocessors=props.multi_processor_count)
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            facts["nvidia_smi"] = smi.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return facts


def bf16_matmul_peak(size: int = 8192, repeats: int = 30, warmup: int = 10) -> dict[str, float]:
    """The card's dense bf16 matmul rate on random data (METHOD.md: never on zeros), median of
    `repeats` products timed with CUDA events after `warmup`, rotating over 3 input pairs
    (each 128 MiB at 8192², over the 50 MB L2)."""
    import torch

    generator = torch.Generator(device="cuda").manual_seed(0)
    pairs = [(torch.randn(size, size, device="cuda", dtype=torch.bfloat16, generator=generator),
              torch.randn(size, size, device="cuda", dtype=torch.bfloat16, generator=generator)) for _ in range(3)]
    out = torch.empty(size, size, device="cuda", dtype=torch.bfloat16)
    for i in range(warmup):
        a, b = pairs[i % 3]
        torch.matmul(a, b, out=out)
    torch.cuda.synchronize()
    times = []
    for i in range(repeats):
        a, b = pairs[i % 3]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.matmul(a, b, out=out)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    if not torch.isfinite(out).all():
        raise RuntimeError("the bf16 matmul produced non-finite values")
    flops = 2 * size**3
    return {"size": size, "median_tflops": round(flops / statistics.median(times) / 1e12, 1),
            "best_tflops": round(flops / min(times) / 1e12, 1), "repeats": repeats}


def sequence_lengths(position_ids: Any) -> list[int]:
    """Lengths of the examples packed in one row, from position ids that restart at 0 for each."""
    import torch

    ids = torch.as_tensor(position_ids).reshape(-1)
    starts = (ids == 0).nonzero().reshape(-1).tolist()
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    return [end - start for start, end in zip(starts, [*starts[1:], len(ids)])]


def trained_tokens(labels: Any) -> int:
    """Positions whose next token is in the loss (labels shifted by one, -100 ignored)."""
    import torch

    labels = torch.as_tensor(labels).reshape(-1)
    return int((labels[1:] != -100).sum())


def step_timer_callback():
    """A transformers callback that records the period of every optimizer step: from the end of the
    previous step (or the start of training) to the end of this one, each end after a device
    synchronization. A period holds everything the training loop does for that step — fetching and
    collating its micro-batches (the Trainer does that before `on_step_begin`), forward, backward,
    optimizer, logging — so a slow collator or a per-step host overhead shows in it."""
    import torch
    from transformers import TrainerCallback

    def now() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.durations: list[float] = []
            self.peak_allocated = 0
            self._last = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self._last = now()

        def on_step_end(self, args, state, control, **kwargs):
            end = now()
            self.durations.append(end - self._last)
            self._last = end
            if torch.cuda.is_available():
                self.peak_allocated = max(self.peak_allocated, torch.cuda.max_memory_allocated())

    return StepTimer()


def run_json_subprocess(command: list[str], *, timeout: float, log: Path | None = None,
                        env: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], str]:
    """Run a child that prints `RESULT {json}` lines: (every result, in order; the output's tail)."""
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env={**os.environ, **(env or {})})
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        output = "".join(part.decode(errors="replace") if isinstance(part, bytes) else (part or "")
                         for part in (exc.stdout, exc.stderr))
        output += f"\nTIMEOUT after {timeout:.0f} s"
        code = -1
    if log is not None:
        with log.open("a") as handle:
            handle.write(f"$ {' '.join(command)}  (exit {code}, {time.perf_counter() - started:.1f} s)\n{output}\n")
    results = [json.loads(line[len("RESULT "):]) for line in output.splitlines() if line.startswith("RESULT ")]
    return results, output[-3000:]
