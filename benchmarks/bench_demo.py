"""Wall time and CPU time of `distill demo` (the full-size, default demo) per stage and in total,
against its goal of 150 s on a 2-core CPU; with `-- --full`, of the demo with its rl rows (GRPO and
on-policy distillation after SFT), which has no goal but its measured time.

Each round runs the real command line in a fresh process, as a new user would
(`distill demo --out DIR`), so interpreter start-up and imports are inside the total. The
stage times are the demo's own (demo.json); the total is the wall time of the whole process.
The load average before and after each round is recorded: other work on the machine slows
the demo down, so quote wall times from a quiet machine; CPU time (user + system of the demo's
processes, measured on the process tree) moves far less with the load.

    python benchmarks/bench_demo.py                  # one round, ~2 min on 2 quiet cores
    python benchmarks/bench_demo.py --rounds 3 --json demo-bench.json
    python benchmarks/bench_demo.py --seeds 0,1,2,3,4        # the filter's margin over five seeds
    python benchmarks/bench_demo.py --seeds 0,1,2 -- --full  # and what GRPO and on-policy distillation add
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
GOAL_S = 150.0
STAGES = ("data", "teacher", "generate", "filter", "train", "rl", "eval")
RL_ROWS = (("student-kept", "student-kept+grpo"), ("student-all", "student-all+grpo"),
           ("student-all", "student-all+on-policy"))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def children_cpu_s() -> float:
    """User + system CPU seconds of the child processes that have ended (and of theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_round(out: Path, extra: list[str]) -> dict:
    load = os.getloadavg()[0]
    cpu = children_cpu_s()
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "cli.main", "demo", "--out", str(out), *extra], cwd=ROOT,
                            capture_output=True, text=True)
    wall = time.perf_counter() - started
    cpu = children_cpu_s() - cpu
    if result.returncode != 0:
        sys.exit(f"distill demo failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    summary = json.loads((out / "demo.json").read_text())
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "demo_total_s": summary["total_s"],
            "stage_s": summary["stage_s"], "stage_cpu_s": summary.get("stage_cpu_s", {}),
            "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2), "table": result.stdout,
            "models": summary["models"]}


def margins(rounds: list[dict]) -> str:
    """Per seed: accuracy and mixed-language share of both students, and the kept student's lead."""
    lines = ["| seed | teacher accuracy | student-kept accuracy | student-all accuracy | accuracy lead | "
             "student-kept mixed | student-all mixed | mixed-language lead |", "|---|" + "---:|" * 7]
    leads = []
    for r in rounds:
        kept, all_ = r["models"]["student-kept"], r["models"]["student-all"]
        leads.append((kept["accuracy"] - all_["accuracy"], all_["mixed_language"] - kept["mixed_language"]))
        lines.append(f"| {r['seed']} | {r['models']['teacher']['accuracy']:.1%} | {kept['accuracy']:.1%} | "
                     f"{all_['accuracy']:.1%} | {leads[-1][0]:+.1%} | {kept['mixed_language']:.1%} | "
                     f"{all_['mixed_language']:.1%} | {leads[-1][1]:+.1%} |")
    accuracy, mixed = [a for a, _ in leads], [m for _, m in leads]
    lines.append(f"\nstudent-kept over student-all, over {len(leads)} seeds: accuracy {min(accuracy):+.1%} to "
                 f"{max(accuracy):+.1%} (median {statistics.median(accuracy):+.1%}); mixed language "
                 f"{min(mixed):+.1%} to {max(mixed):+.1%} lower (median {statistics.median(mixed):+.1%})")
    if all(after in r["models"] for r in rounds for _, after in RL_ROWS):
        lines += ["", "After SFT (--full), per seed: accuracy and mixed-language share before → after.", "",
                  "| seed | " + " | ".join(after for _, after in RL_ROWS) + " |", "|---|" + "---|" * len(RL_ROWS)]
        for r in rounds:
            cells = []
            for before, after in RL_ROWS:
                b, a = r["models"][before], r["models"][after]
                cells.append(f"{b['accuracy']:.1%} → {a['accuracy']:.1%}, mixed {b['mixed_language']:.1%} → "
                             f"{a['mixed_language']:.1%}")
            lines.append(f"| {r['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seeds", default="", help="one round per seed (--seed of the demo), e.g. 0,1,2: the "
                                                     "filter's margin on each")
    parser.add_argument("--json", type=Path, help="write every round's figures here")
    parser.add_argument("extra", nargs="*", help="more `distill demo` flags (after --), e.g. -- --quick")
    args = parser.parse_args()

    seeds = [int(seed) for seed in args.seeds.split(",") if seed] or [None] * args.rounds
    rounds = []
    for number, seed in enumerate(seeds, 1):
        with tempfile.TemporaryDirectory(prefix="bench-demo-") as scratch:
            extra = args.extra + (["--seed", str(seed)] if seed is not None else [])
            rounds.append(one_round(Path(scratch) / "demo", extra) | {"seed": seed})
        print(f"round {number}: {rounds[-1]['wall_s']:.1f} s, {rounds[-1]['cpu_s']:.1f} CPU s (load average "
              f"before: {rounds[-1]['load_before']})", file=sys.stderr)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    median = statistics.median(r["wall_s"] for r in rounds)
    best = min(rounds, key=lambda r: r["wall_s"])
    machine = f"{os.cpu_count()} cores ({cpu_name()}), Python {platform.python_version()}"
    print(f"## `distill demo` ({time.strftime('%Y-%m-%d')}, {machine})\n")
    print("    python benchmarks/bench_demo.py" + (f" --rounds {args.rounds}" if args.rounds > 1 and not args.seeds else "")
          + (f" --seeds {args.seeds}" if args.seeds else "") + (" -- " + " ".join(args.extra) if args.extra else "")
          + "\n")
    print("Wall-clock seconds (CPU seconds: user + system of every process of the demo, which other work on the "
          "machine changes far less).\n")
    print("| stage | " + " | ".join(f"round {i}" for i in range(1, len(rounds) + 1)) + " |")
    print("|---|" + "---:|" * len(rounds))
    for stage in [stage for stage in STAGES if any(stage in r["stage_s"] for r in rounds)]:
        print(f"| {stage} | " + " | ".join(f"{r['stage_s'].get(stage, 0):.1f} s ({r['stage_cpu_s'].get(stage, 0):.1f})"
                                           for r in rounds) + " |")
    print("| inside the demo | " + " | ".join(f"{r['demo_total_s']:.1f} s" for r in rounds) + " |")
    print("| **whole command** (start-up included) | "
          + " | ".join(f"**{r['wall_s']:.1f} s** ({r['cpu_s']:.1f})" for r in rounds) + " |")
    print("| load average before / after | "
          + " | ".join(f"{r['load_before']:.2f} / {r['load_after']:.2f}" for r in rounds) + " |")
    cpu_median = statistics.median(r["cpu_s"] for r in rounds)
    measured = f"median {median:.1f} s, {cpu_median:.1f} CPU s; peak RSS of a process {peak_mib:,.0f} MiB"
    if "--full" in args.extra:
        print(f"\n`distill demo --full` (no goal; the default demo's is {GOAL_S:.0f} s): {measured}.\n")
    else:
        print(f"\nGoal: the whole demo in at most {GOAL_S:.0f} s on 2 cores: "
              f"{'met' if median <= GOAL_S else 'NOT met'} ({measured}).\n")
    if args.seeds:
        print(margins(rounds) + "\n")
    print("The table the fastest round printed:\n")
    print("\n".join("    " + line for line in best["table"].splitlines()
                    if not line.startswith("reports and plots")))  # its directory is gone
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rounds": rounds, "median_wall_s": median,
                                         "median_cpu_s": cpu_median, "peak_rss_mib": round(peak_mib)}, indent=2))


if __name__ == "__main__":
    main()
