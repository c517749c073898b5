"""The demo's synthetic task: add four digits in three written steps, with the failure modes
the filter exists for injected at stated rates.

    Compute 6 + 7 + 4 + 4.
    <think>
    First, 6 + 7 = 13.
    Then, 13 + 4 = 17.
    Finally, 17 + 4 = 21.
    </think>

    The answer is \\boxed{21}.

A trace is clean or has exactly one fault, so the rate of each fault is what was asked:

- wrong: one step's sum is off by 1 or 2 and the later steps carry the slip on, as a careless
  teacher does; the boxed answer is wrong (the filter's correctness check).
- mixed language: a Chinese sentence between two English steps, as R1 switches language
  mid-thought; the answer is right (the language check).
- loop: the teacher re-checks a step over and over ("Wait, let me check that again."), 3 to 10
  times; with the demo's sampling limit most sampled loops end with finish_reason 'length' (the
  finish and format checks), the shorter ones finish with the line repeated (the repetition check).

Everything is a pure function of its seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from distill.shape import join_reasoning

FAULTS = ("wrong", "mixed_language", "loop")
STEP_WORDS = ("First", "Then", "Finally")
# What R1 writes when it switches language mid-thought: short remarks about the work at hand.
CHINESE_SENTENCES = (
    "我们继续加下一个数。",          # we go on adding the next number
    "这一步的结果是正确的。",        # this step's result is right
    "现在把这个和加上下一个数。",    # now add the next number to this sum
    "让我们一步一步地计算。",        # let us compute step by step
)
LOOP_LINE = "Wait, let me check that again. {left} + {right} = {total}."
LOOP_REPEATS = (3, 10)
DISTINCT_PROBLEMS = 10_000
"""Four digits 0-9 in order: 10,000 different problems in all."""


@dataclass(frozen=True)
class Problem:
    digits: tuple[int, int, int, int]

    @property
    def id(self) -> str:
        return "sum-" + "".join(map(str, self.digits))

    @property
    def text(self) -> str:
        return "Compute " + " + ".join(map(str, self.digits)) + "."

    @property
    def answer(self) -> int:
        return sum(self.digits)


def split_problems(seed: int, sizes: dict[str, int]) -> dict[str, list[Problem]]:
    """Disjoint sets of problems, e.g. {"teacher": 3000, "prompts": 400, "heldout": 200}, drawn
    without replacement from the 10,000 digit quadruples."""
    needed = sum(sizes.values())
    if needed > DISTINCT_PROBLEMS:
        raise ValueError(f"only {DISTINCT_PROBLEMS:,} distinct problems exist, {needed:,} were asked for")
    rng = random.Random(f"{seed}:problems")
    codes = rng.sample(range(DISTINCT_PROBLEMS), needed)
    problems = [Problem(tuple(int(c) for c in f"{code:04d}")) for code in codes]  # type: ignore[misc]
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = problems[start:start + size]
        start += size
    return out


def steps(problem: Problem, slip: tuple[int, int] | None = None) -> list[tuple[int, int, int]]:
    """The three additions (left, right, total); `slip` = (step, delta) makes that step's total off."""
    a, b, c, d = problem.digits
    left, out = a, []
    for index, right in enumerate((b, c, d)):
        total = left + right + (slip[1] if slip is not None and slip[0] == index else 0)
        out.append((left, right, total))
        left = total
    return out


def step_line(index: int, left: int, right: int, total: int) -> str:
    return f"{STEP_WORDS[index]}, {left} + {right} = {total}."


def completion(problem: Problem, fault: str | None = None, *, rng: random.Random | None = None,
               loop_repeats: int = 6) -> str:
    """A teacher completion for `problem`, clean or with one fault (see the module docstring)."""
    rng = rng or random.Random(0)
    slip = None
    if fault == "wrong":
        step = rng.randrange(3)
        exact = steps(problem)[step][2]
        deltas = [d for d in (-2, -1, 1, 2) if exact + d >= 0]
        slip = (step, rng.choice(deltas))
    work = steps(problem, slip)
    lines = [step_line(i, *s) for i, s in enumerate(work)]
    if fault == "mixed_language":
        lines.insert(rng.randrange(1, 3), rng.choice(CHINESE_SENTENCES))
    elif fault == "loop":
        at = rng.randrange(2)  # after the first or the second step
        lines[at + 1:at + 1] = [LOOP_LINE.format(left=work[at][0], right=work[at][1], total=work[at][2])] \
            * loop_repeats
    elif fault is not None and fault != "wrong":
        raise ValueError(f"unknown fault {fault!r} (one of {', '.join(FAULTS)})")
    return join_reasoning("\n".join(lines), f"The answer is \\boxed{{{work[-1][2]}}}.")


def has_loop_line(text: str) -> bool:
    """Whether `text` holds a re-check line, the start of the loop fault ("Wait, …"; no clean trace has one).

    A model that learned the habit seldom repeats the line word for word (the numbers in it drift),
    so this counts every started loop, where the filter's repetition check counts exact repeats."""
    return any(line.startswith("Wait,") for line in text.splitlines())


def assign_faults(count: int, rates: dict[str, float], seed: int) -> list[str | None]:
    """Exactly round(rate × count) records of each fault, at shuffled positions; None = clean."""
    labels: list[str | None] = []
    for fault in FAULTS:
        labels += [fault] * round(rates.get(fault, 0.0) * count)
    if len(labels) > count:
        raise ValueError(f"fault rates add up to more than 1: {rates}")
    labels += [None] * (count - len(labels))
    random.Random(f"{seed}:faults").shuffle(labels)
    return labels


def teacher_records(problems: list[Problem], rates: dict[str, float], *, template: str, seed: int,
                    loop_repeats: tuple[int, int] = LOOP_REPEATS) -> Iterator[dict]:
    """The teacher's training data in the trace format `distill train` reads, with `fault` in `source`.

    A loop repeats its line a number of times drawn uniformly from `loop_repeats` (both ends included).
    """
    faults = assign_faults(len(problems), rates, seed)
    rng = random.Random(f"{seed}:teacher")
    for problem, fault in zip(problems, faults):
        repeats = rng.randint(*loop_repeats) if fault == "loop" else 0
        yield {"id": f"{problem.id}:0", "prompt_id": problem.id, "sample": 0,
               "messages": [{"role": "user", "content": template.replace("{problem}", problem.text)}],
               "reference": str(problem.answer),
               "completion": completion(problem, fault, rng=rng, loop_repeats=repeats),
               "finish_reason": "stop", "teacher": "synthetic", "source": {"fault": fault or "none"}}


def problem_rows(problems: list[Problem]) -> list[dict]:
    """Prompt / benchmark rows (id, problem, answer) as `distill generate` and `distill eval` read them."""
    return [{"id": p.id, "problem": p.text, "answer": str(p.answer)} for p in problems]
