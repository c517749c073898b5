"""Time per graded answer: this checkout's `distill.grading` against another checkout's (main).

The grading rules grew (several boxes, decimals at their shown precision, renamed bound variables,
option texts, …); this measures what that costs per answer, both versions in this process on the
same inputs, rounds alternating (baseline, new, baseline, new …), CPU time of this process; the
median of the per-round ratios, and the ratio of the fastest rounds (noise only ever adds time):

- answer texts: `grade_detailed` (in-process, no timer) on R1-style answer texts (1-2 KB of prose,
  then the boxed answer; integers, fractions, decimals and multiple-choice letters, in the
  reference's spelling, in another, or wrong): the whole grading of a record; and `quick_grade`
  alone on them, what the filter's check workers spend on every record (the rest goes to the pool);
- math-verify: `grade_detailed` (in-process, no timer) on tests/data/grading_pairs.jsonl — what a
  pool worker spends on an answer the fast path cannot settle;
- many boxes: `extract_answer` on answer texts with 2,000 boxes, adjacent and spread out (the
  scan back through a list of boxes is bounded).

    python benchmarks/bench_grading.py --baseline /work/main           # ~1 min on 2 cores
    python benchmarks/bench_grading.py --baseline /work/main --rounds 5 --answers 4000
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

PROSE = ("We first write the condition as an equation and simplify both sides. Substituting the values "
         "found above, the terms cancel and what is left is a linear equation in one unknown. ")


def _distill_modules() -> dict[str, ModuleType]:
    return {name: module for name, module in sys.modules.items() if name == "distill" or name.startswith("distill.")}


def load_baseline(checkout: Path) -> ModuleType:
    """The checkout's `distill.grading` (one module, or the package it became), imported from the checkout's
    own `distill` and then set aside: its modules import each other by absolute name, so they are loaded
    while `distill` is the checkout's, and `distill` is this checkout's again afterwards."""
    ours = _distill_modules()
    for name in ours:
        del sys.modules[name]
    sys.path.insert(0, str(checkout))
    try:
        return importlib.import_module("distill.grading")
    finally:
        sys.path.remove(str(checkout))
        for name in _distill_modules():
            del sys.modules[name]
        sys.modules.update(ours)


def answer_texts(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """(answer text, reference): as `distill filter` sees the part after </think>."""
    rng = random.Random(seed)
    items = []
    for _ in range(count):
        kind = rng.choice(("integer", "fraction", "decimal", "choice"))
        prose = PROSE * rng.randint(8, 16)
        if kind == "integer":
            value = rng.randint(1, 10_000)
            reference, answer = str(value), rng.choice((str(value), f"{value:,}", str(value + 1)))
        elif kind == "fraction":
            p, q = rng.randint(1, 50), rng.randint(51, 99)
            reference, answer = f"\\frac{{{p}}}{{{q}}}", rng.choice((f"\\dfrac{{{p}}}{{{q}}}", f"{p}/{q}", f"{p / q:.2f}"))
        elif kind == "decimal":
            value = rng.randint(1, 9999) / 100
            reference, answer = f"{value}", rng.choice((f"{value}", f"\\${value}", f"{value + 1}"))
        else:
            reference, answer = rng.choice("ABCD"), rng.choice(("\\text{(B)}", "B", "C"))
        items.append((f"{prose}\n\nTherefore the answer is $\\boxed{{{answer}}}$.", reference))
    return items


def many_boxes() -> list[str]:
    adjacent = "\\boxed{1}, " * 2000
    spread = "".join(f"Step {i}: we get \\boxed{{{i}}}. " + PROSE for i in range(2000))
    return [adjacent, spread]


def cpu_seconds(work: Callable[[], object]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout whose distill.grading is the peer")
    parser.add_argument("--answers", type=int, default=3000, help="answer texts for the fast path")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    import math_verify  # noqa: F401 - sympy's import is nobody's grading time

    import distill.grading as new
    from distill.report import markdown_table

    old = load_baseline(args.baseline)
    texts = answer_texts(args.answers)
    pairs_path = Path(__file__).parent.parent / "tests" / "data" / "grading_pairs.jsonl"
    pairs = [json.loads(line) for line in pairs_path.read_text().splitlines() if line.strip()]
    boxes = many_boxes()
    cases: dict[str, tuple[int, Callable[[ModuleType], object]]] = {
        "answer texts (grade_detailed: fast path, math-verify where needed), per answer": (
            len(texts), lambda g: [g.grade_detailed(text, reference, timeout=None) for text, reference in texts]),
        "answer texts, fast path alone (quick_grade), per answer": (
            len(texts), lambda g: [g.quick_grade(text, reference) for text, reference in texts]),
        "math-verify (grade_detailed, labelled pairs), per answer": (
            len(pairs), lambda g: [g.grade_detailed(p["answer"], p["reference"], timeout=None) for p in pairs]),
        "extract_answer, 2,000 boxes, per text": (len(boxes), lambda g: [g.extract_answer(text) for text in boxes]),
    }
    for grading in (old, new):  # warm both: regex compilation, sympy caches
        for _, work in cases.values():
            work(grading)
    print(f"{args.rounds} rounds, alternating; CPU seconds of this process; baseline {args.baseline}\n")
    rows = []
    for name, (count, work) in cases.items():
        times: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(args.rounds):
            times["old"].append(cpu_seconds(lambda work=work: work(old)))
            times["new"].append(cpu_seconds(lambda work=work: work(new)))
        ratios = [n / o for o, n in zip(times["old"], times["new"], strict=True)]
        unit = 1e3 if "math-verify" in name else 1e6
        label = "µs" if unit == 1e6 else "ms"
        rows.append([name, f"{statistics.median(times['old']) / count * unit:.1f} {label}",
                     f"{statistics.median(times['new']) / count * unit:.1f} {label}",
                     ", ".join(f"{r:.2f}" for r in ratios), f"**{statistics.median(ratios):.2f}**",
                     f"{min(times['new']) / min(times['old']):.2f}"])
    print(markdown_table(["case", "baseline", "this checkout", "× baseline (per round)", "× baseline (median)",
                          "fastest / fastest"], rows))


if __name__ == "__main__":
    main()
