"""The metrics of the DeepSeek-R1 paper's tables, as pure functions.

- pass@1 averaged over n samples: the mean, over problems, of the share of correct samples.
- pass@k: the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k).
- cons@n: majority vote over the n extracted answers; the voted answer is then graded.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from math import comb


def pass_at_k(n: int, correct: int, k: int) -> float:
    """Unbiased pass@k for one problem with `correct` right out of `n` samples (k ≤ n)."""
    if not 0 <= correct <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 ≤ correct ≤ n and 1 ≤ k ≤ n (got n={n}, correct={correct}, k={k})")
    if n - correct < k:
        return 1.0
    return 1.0 - comb(n - correct, k) / comb(n, k)


def mean_pass_at_k(results: Sequence[tuple[int, int]], k: int) -> float:
    """pass@k averaged over problems, each given as (n, correct)."""
    if not results:
        return 0.0
    return sum(pass_at_k(n, c, k) for n, c in results) / len(results)


def majority_vote(answers: Sequence[Hashable | None]) -> tuple[Hashable | None, int]:
    """(most frequent answer, its count); None answers (nothing extracted) never win.

    Ties go to the answer that appeared first among the samples, so the vote is
    deterministic; (None, 0) when no sample had an answer.
    """
    counts: dict[Hashable, int] = {}
    for answer in answers:
        if answer is not None:
            counts[answer] = counts.get(answer, 0) + 1
    if not counts:
        return None, 0
    best = max(counts.values())
    winner = next(a for a in answers if a is not None and counts[a] == best)
    return winner, best
