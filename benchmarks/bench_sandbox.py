"""Per-answer overhead of the code check: this tree's harness against another git revision's.

    python benchmarks/bench_sandbox.py                     # against main, 20 gradings per case
    python benchmarks/bench_sandbox.py --base HEAD~3 --repeats 40

Each side grades the same right answers (an MBPP-style assert task, a HumanEval task, a stdio
task with two inputs) in a fresh process importing that revision's `distill` (the base is
extracted with `git archive`). The two sides alternate, round after round, so load on the machine
hits both; the table gives the median seconds per graded answer and the ratio new / base. RL calls
this once per rollout, so the ratio is what matters (goal: at most 1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, logging, sys, time
logging.disable(logging.WARNING)
from distill.sandbox import grade_code
code = lambda body: "<think>\nok\n</think>\n\n```python\n" + body + "```\n"
cases = {
    "assert (3 asserts)": (code("def add(a, b):\n    return a + b\n"),
                           {"tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(10, 5) == 15"]}),
    "humaneval (3 asserts)": (code("    return [x + 1 for x in xs]\n"),
                              {"prompt": "def add_one(xs):\n    \"\"\"Add 1.\"\"\"\n", "entry_point": "add_one",
                               "test": "def check(candidate):\n    assert candidate([1, 2]) == [2, 3]\n"
                                       "    assert candidate([]) == []\n    assert candidate([0]) == [1]\n"}),
    "stdio (2 inputs)": (code("a, b = map(int, input().split())\nprint(a + b)\n"),
                         {"tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "4 5\n", "output": "9\n"}]}),
}
repeats = int(sys.argv[1])
for answer, reference in cases.values():
    assert grade_code(answer, reference)[0] is True  # warm-up, and both sides must agree
times = {}
for name, (answer, reference) in cases.items():
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        grade_code(answer, reference)
        samples.append(time.perf_counter() - started)
    times[name] = samples
print(json.dumps(times))
"""


def extract(revision: str, into: Path) -> Path:
    archive = into / "base.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), revision, "distill"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "base", filter="data")
    return into / "base"


def measure(tree: Path, repeats: int) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(repeats)], env=env, cwd="/", check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main", help="git revision to compare against (default: main)")
    parser.add_argument("--repeats", type=int, default=20, help="gradings per case per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both sides")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base_tree = extract(args.base, Path(tmp))
        new: dict[str, list[float]] = {}
        base: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for tree, into in ((base_tree, base), (ROOT, new)):
                for name, samples in measure(tree, args.repeats).items():
                    into.setdefault(name, []).extend(samples)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{args.rounds}x{args.repeats} gradings per case and side\n")
    print(f"| case | {args.base} (s/answer) | this tree (s/answer) | ratio |")
    print("|---|---|---|---|")
    for name in new:
        b, n = statistics.median(base[name]), statistics.median(new[name])
        print(f"| {name} | {b:.3f} | {n:.3f} | {n / b:.2f}x |")


if __name__ == "__main__":
    main()
