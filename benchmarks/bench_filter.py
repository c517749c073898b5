"""Throughput and memory of `distill filter` against the naive math-verify loop.

Input: long (4-5k characters) synthetic R1-style math traces, four samples per
prompt, answers correct as written (60 %), correct in another spelling (20 %:
0.5 for \\frac{1}{2}, \\sqrt{8} for 2\\sqrt{2}, (x+3)^2 for x^2+6x+9) or wrong
(20 %); one prompt in five in Chinese (benchmarks/filter_evalset.py, seeded).
`--answers` picks the answers' forms:

- simple: integers, fractions, roots, short polynomials, letters; math-verify
  compares each in about a millisecond.
- realistic (the default): what R1 writes for MATH-style problems, which
  math-verify takes 20-60 times longer to compare: 45 % simple, 53.5 % heavy
  LaTeX (matrices, intervals, sets, points in \\left( … \\right), nested
  fractions, expanded vs factored quartics, radicals, multiples of π), and
  1.5 % of problems whose other spelling runs into math-verify's 5 s timeout
  (a binomial sum for (x+1)^n, a power tower); see `realistic_problem`.

Sides:
- naive: what the common scripts do — read the JSONL, then for each record
  `verify(parse(reference), parse(completion))` with math-verify in one process
  (its own 5 s timeouts); correctness only.
- distill: `filter_traces` with every check (format, finish, length, language,
  repetition, correctness, selection) and its outputs (kept, rejects, report,
  plots), `--workers` all cores; everything inside the timing (validation pass,
  pools started and torn down, report and plots). Also given: the rate of the
  chunk loop alone (the report's throughput: what a long run approaches).
- distill, correctness only: `--checks correctness`, like for like with the naive loop.
- `--scaling 1,2`: distill, all checks, with each number of workers (worker scaling).

All run in this process, alternately (naive, distill, … in every round), so
machine noise hits all; imports are done before timing. Each round's ratio is
taken against that round's naive run, and the median round is reported; CPU
seconds (this process and its workers) are given beside the wall time. Memory:
the real CLI on two input sizes in a subprocess, its peak RSS (main process,
and main plus worker processes) sampled every 20 ms.

    python benchmarks/bench_filter.py                              # realistic answers, ~6 min on 2 cores
    python benchmarks/bench_filter.py --answers simple --records 8000 --rounds 3
    python benchmarks/bench_filter.py --records 2000 --scaling 1,2 --memory-sizes ""
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from filter_evalset import CASES, build_evalset

ROOT = Path(__file__).resolve().parents[1]


def make_traces(path: Path, records: int, seed: int = 0, answers: str = "realistic") -> Path:
    cases = {"clean": (0.6, ()), "clean_equivalent_answer": (0.2, ()), "wrong_answer": (0.2, CASES["wrong_answer"][1])}
    rows = build_evalset(records // 4, samples=4, seed=seed, target_chars=(3900, 4600), zh_share=0.2, cases=cases,
                         answers=answers)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have ended (the pools' workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def naive_loop(path: Path) -> tuple[float, int]:
    """(seconds, correct) for the one-process math-verify loop."""
    from math_verify import parse, verify

    start = time.perf_counter()
    correct = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            gold = parse(f"${record['reference']}$")
            answer = parse(record["completion"])
            correct += bool(verify(gold, answer))
    return time.perf_counter() - start, correct


def distill_filter(path: Path, out_dir: Path, workers: int | None,
                   checks: list[str] | None = None) -> tuple[float, float, int, dict]:
    """(seconds end to end, records/s of the chunk loop, kept, grading stats) for filter_traces."""
    from distill.checks import default_checks
    from distill.filter import FilterConfig, filter_traces

    start = time.perf_counter()
    report = filter_traces(FilterConfig(traces=str(path), out=str(out_dir / "kept.jsonl"), workers=workers,
                                        overwrite=True, checks=checks or list(default_checks())))
    return (time.perf_counter() - start, report.data["throughput"]["records_per_s"], report.kept,
            report.data.get("correctness", {}).get("this_run") or {})


def _tree_rss(pid: int) -> tuple[int, int]:
    import psutil

    try:
        main = psutil.Process(pid)
        rss = main.memory_info().rss
        total = rss + sum(child.memory_info().rss for child in main.children(recursive=True))
        return rss, total
    except psutil.Error:
        return 0, 0


def peak_memory(path: Path, out_dir: Path, workers: int | None) -> dict[str, float]:
    """Run the real CLI and sample its RSS; MiB of the main process and of main + workers."""
    args = [sys.executable, "-m", "cli.main", "filter", str(path), "--out", str(out_dir / "mem.jsonl"),
            "--overwrite"] + (["--workers", str(workers)] if workers else [])
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak_main = peak_tree = 0
    start = time.perf_counter()
    while process.poll() is None:
        main, tree = _tree_rss(process.pid)
        peak_main, peak_tree = max(peak_main, main), max(peak_tree, tree)
        time.sleep(0.02)
    if process.returncode != 0:
        raise SystemExit(f"distill filter failed:\n{process.stderr.read()}")
    return {"main_mib": round(peak_main / 2**20, 1), "with_workers_mib": round(peak_tree / 2**20, 1),
            "wall_s": round(time.perf_counter() - start, 2)}


def timed(run):
    """(wall seconds, CPU seconds, what `run` returned) of run()."""
    cpu = cpu_seconds()
    result = run()
    return result[0], cpu_seconds() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--answers", choices=("realistic", "simple"), default="realistic")
    parser.add_argument("--workers", type=int, default=None, help="default: every core")
    parser.add_argument("--scaling", default="", help="also run all checks with each of these worker counts, e.g. 1,2")
    parser.add_argument("--memory-sizes", default="2000,8000", help="'' to skip the memory runs")
    args = parser.parse_args()

    import math_verify  # noqa: F401 - import cost outside the timings, for both sides

    import distill.filter  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        traces = make_traces(tmp_dir / "traces.jsonl", args.records, answers=args.answers)
        lines = traces.read_text(encoding="utf-8").splitlines()
        chars = statistics.fmean(len(json.loads(line)["completion"]) for line in lines)
        print(f"{len(lines)} traces ({args.answers} answers), mean completion {chars:,.0f} characters, "
              f"{os.cpu_count()} CPUs, workers {args.workers or 'all cores'}, load average {os.getloadavg()[0]:.2f}")
        sides = {"distill": (args.workers, None), "correctness_only": (args.workers, ["correctness"])}
        sides.update({f"distill_{w}_workers": (w, None) for w in map(int, filter(None, args.scaling.split(",")))})
        times: dict[str, list[float]] = {"naive": [], "distill_loop": [], **{name: [] for name in sides}}
        cpu: dict[str, list[float]] = {"naive": [], **{name: [] for name in sides}}
        grading: dict = {}
        for round_ in range(args.rounds):
            seconds, cpu_s, (_, correct) = timed(lambda: naive_loop(traces))
            times["naive"].append(seconds)
            cpu["naive"].append(cpu_s)
            print(f"round {round_ + 1}: naive                    {len(lines) / seconds:8.1f} traces/s, "
                  f"{cpu_s:6.1f} CPU s ({correct} correct; load {os.getloadavg()[0]:.2f})", flush=True)
            for name, (workers, checks) in sides.items():
                seconds, cpu_s, (_, loop_rate, kept, grading) = timed(
                    lambda w=workers, c=checks: distill_filter(traces, tmp_dir, w, c))
                times[name].append(seconds)
                cpu[name].append(cpu_s)
                if name == "distill":
                    times["distill_loop"].append(len(lines) / loop_rate)
                print(f"round {round_ + 1}: {name:24} {len(lines) / seconds:8.1f} traces/s, {cpu_s:6.1f} CPU s "
                      f"(chunk loop {loop_rate:.1f}/s; {kept} kept; load {os.getloadavg()[0]:.2f})", flush=True)
        # each round's distill runs are compared with that round's naive run (same machine state);
        # the median round is reported, so one round hit by another job does not decide the result
        rates = {name: round(len(lines) / statistics.median(values), 1) for name, values in times.items()}
        ratios = {name: [round(naive / seconds, 2) for naive, seconds in zip(times["naive"], values)]
                  for name, values in times.items() if name != "naive"}
        result = {"records": len(lines), "answers": args.answers, "median_traces_per_s": rates,
                  "ratio_per_round": ratios,
                  "median_ratio": {name: statistics.median(values) for name, values in ratios.items()},
                  "median_cpu_s": {name: round(statistics.median(values), 1) for name, values in cpu.items()},
                  "grading_last_run": {k: v for k, v in grading.items() if k != "worker_reasons"},
                  "worker_reasons_last_run": grading.get("worker_reasons")}
        memory = {}
        for size in (int(s) for s in args.memory_sizes.split(",") if s):
            sized = make_traces(tmp_dir / f"mem-{size}.jsonl", size, seed=1, answers=args.answers)
            memory[size] = peak_memory(sized, tmp_dir, args.workers)
            print(f"memory, {size} traces ({sized.stat().st_size / 2**20:.0f} MiB input): {memory[size]}", flush=True)
        result["peak_rss"] = memory
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
