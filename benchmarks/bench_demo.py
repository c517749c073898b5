"""Wall time of `distill demo` (the full, default demo) per stage and in total, against its
5-minute goal on a 2-core CPU.

Each round runs the real command line in a fresh process, as a new user would
(`distill demo --out DIR`), so interpreter start-up and imports are inside the total. The
stage times are the demo's own (demo.json); the total is the wall time of the whole process.
The load average before each round is recorded: other work on the machine slows the demo
down, so quote figures from a quiet machine.

    python benchmarks/bench_demo.py                  # one round, ~3-5 min on 2 cores
    python benchmarks/bench_demo.py --rounds 3 --json demo-bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 300.0
STAGES = ("data", "teacher", "generate", "filter", "train", "eval")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def one_round(out: Path, extra: list[str]) -> dict:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "cli.main", "demo", "--out", str(out), *extra], cwd=ROOT,
                            capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"distill demo failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    summary = json.loads((out / "demo.json").read_text())
    return {"wall_s": round(wall, 1), "demo_total_s": summary["total_s"], "stage_s": summary["stage_s"],
            "load_before": round(load, 2), "table": result.stdout, "models": summary["models"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every round's figures here")
    parser.add_argument("extra", nargs="*", help="more `distill demo` flags (after --), e.g. -- --threads 2")
    args = parser.parse_args()

    rounds = []
    for number in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory(prefix="bench-demo-") as scratch:
            rounds.append(one_round(Path(scratch) / "demo", args.extra))
        print(f"round {number}: {rounds[-1]['wall_s']:.1f} s (load average before: {rounds[-1]['load_before']})",
              file=sys.stderr)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    median = statistics.median(r["wall_s"] for r in rounds)
    best = min(rounds, key=lambda r: r["wall_s"])
    machine = f"{os.cpu_count()} cores ({cpu_name()}), Python {platform.python_version()}"
    print(f"## `distill demo` ({time.strftime('%Y-%m-%d')}, {machine})\n")
    print("    python benchmarks/bench_demo.py" + (f" --rounds {args.rounds}" if args.rounds > 1 else "") + "\n")
    print("| stage | " + " | ".join(f"round {i}" for i in range(1, len(rounds) + 1)) + " |")
    print("|---|" + "---:|" * len(rounds))
    for stage in STAGES:
        print(f"| {stage} | " + " | ".join(f"{r['stage_s'].get(stage, 0):.1f} s" for r in rounds) + " |")
    print("| inside the demo | " + " | ".join(f"{r['demo_total_s']:.1f} s" for r in rounds) + " |")
    print("| **whole command** (start-up included) | " + " | ".join(f"**{r['wall_s']:.1f} s**" for r in rounds)
          + " |")
    print("| load average before | " + " | ".join(f"{r['load_before']:.2f}" for r in rounds) + " |")
    print(f"\nGoal: the whole demo in at most {GOAL_S:.0f} s on 2 cores: "
          f"{'met' if median <= GOAL_S else 'NOT met'} (median {median:.1f} s; peak RSS of a process "
          f"{peak_mib:,.0f} MiB).\n")
    print("The table the fastest round printed:\n")
    print("\n".join("    " + line for line in best["table"].splitlines()
                    if not line.startswith("reports and plots")))  # its directory is gone
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rounds": rounds, "median_wall_s": median,
                                         "peak_rss_mib": round(peak_mib)}, indent=2))


if __name__ == "__main__":
    main()
