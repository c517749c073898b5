"""Answer extraction on whitespace bombs: distill against the backtracking patterns it replaced.

A completion whose answer is padded with a long run of spaces ("Answer: 7" + n spaces + ".")
made the old fallback patterns (`answer:\\s*(.+?)\\s*$`, searched over the whole text) backtrack
quadratically, and the multiple-choice search (adjacent `\\s*` quantifiers) worse. Measured here:

- old: the previous `DEFAULT_ANSWER_PATTERNS` and choice search, over the whole text (the peer);
- distill: `distill.grading.extraction.extract_answer` / `extract_choice` (answer window, possessive patterns).

Each size runs old and distill in this process, one after the other, on the same text (the
fastest of 5 runs for distill, one run of old); old is skipped above --old-max (minutes there). The last rows are an ordinary 2 KB answer, to
show the window costs nothing on real output.

    python benchmarks/bench_answer_extraction.py                 # ~1 min on 2 cores
    python benchmarks/bench_answer_extraction.py --old-max 40000
"""

from __future__ import annotations

import argparse
import re
import time

from distill.grading.extraction import BOXED, extract_answer, extract_choice

OLD_PATTERNS = (
    BOXED,
    r"####\s*(.+?)\s*$",
    r"(?i)\bfinal answer\s*(?:is\s*:?|:)\s*(.+?)\s*$",
    r"(?i)\banswer\s*(?:is\s*:?|:)\s*(.+?)\s*$",
)
OLD_CHOICE = r"(?i)answer\s*(?:is|:)?\s*\**\s*\(?([A-J])\)?(?![A-Za-z])"
OLD_CHOICE_REFERENCE = re.compile(r"^\s*\(?\s*([A-Ja-j])\s*\)?\s*[.:]?\s*$")


def old_choice(text: str) -> object:
    """The old extract_choice without its \\boxed candidate (the same in both)."""
    answer = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", text).strip()
    answer = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", answer).strip().rstrip(".")
    parts = [p for p in re.split(r"\s*(?:,|and|&)\s*", answer) if p]
    if parts and all(OLD_CHOICE_REFERENCE.match(part) for part in parts):
        return parts
    return re.findall(OLD_CHOICE, text)


def old_extract(text: str, reference: str) -> object:
    """The old extraction (math: the patterns; choice: the letter search), whole text."""
    if reference == "B":
        return old_choice(text)
    for pattern in OLD_PATTERNS[1:]:
        matches = list(re.finditer(pattern, text, flags=re.MULTILINE))
        if matches:
            return matches[-1].group(1)
    return None


def distill_extract(text: str, reference: str) -> object:
    return extract_choice(text) if reference == "B" else extract_answer(text)


def seconds(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,10000,20000,200000,1000000",
                        help="run lengths of spaces, comma-separated")
    parser.add_argument("--old-max", type=int, default=20000, help="largest size the old patterns are run on")
    args = parser.parse_args()
    ordinary = "We check the result once more: both sides agree. " * 40
    cases = [("math", "7", "Answer: 7{pad}.", size) for size in map(int, args.sizes.split(","))]
    cases += [("choice", "B", "The answer is{pad}", size) for size in map(int, args.sizes.split(","))]
    cases += [("math, ordinary 2 KB", "7", ordinary + "\nThe final answer is: 7.", 0),
              ("choice, ordinary 2 KB", "B", ordinary + "\nThe answer is (B).", 0)]
    distill_extract("Answer: 7", "7"), old_extract("Answer: 7", "7")  # warm the regex caches
    print("| answer | spaces | old (s) | distill (s) | old / distill |")
    print("|---|---:|---:|---:|---:|")
    for kind, reference, template, size in cases:
        text = template.format(pad=" " * size)
        # the fastest of several runs (machine noise only adds); the old patterns on a bomb once
        ours = min(seconds(distill_extract, text, reference) for _ in range(5 if size else 200))
        if size <= args.old_max:
            old = min(seconds(old_extract, text, reference) for _ in range(1 if size else 200))
            old_cell, ratio = f"{old:.5f}", f"{old / ours:,.1f}×"
        else:
            old_cell, ratio = "not run", "–"
        print(f"| {kind} | {size:,} | {old_cell} | {ours:.5f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
