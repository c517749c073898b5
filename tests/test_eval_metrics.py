"""Eval metrics on literal cases."""

from __future__ import annotations

import pytest

from distill.eval.metrics import majority_vote, mean_pass_at_k, pass_at_k


def test_pass_at_k_matches_the_unbiased_estimator():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 4, 1) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)         # pass@1 is the share correct
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)    # 1 - C(3,2)/C(4,2)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)  # 1 - C(7,5)/C(10,5)
    assert pass_at_k(5, 3, 3) == 1.0                         # fewer wrong samples than k: certain
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)
    assert mean_pass_at_k([(4, 1), (4, 3)], 1) == pytest.approx(0.5)
    assert mean_pass_at_k([], 1) == 0.0


def test_majority_vote_with_ties_and_missing_answers():
    assert majority_vote(["12", "7", "12", "7", "12"]) == ("12", 3)
    assert majority_vote(["7", "12", "12", "7"]) == ("7", 2)     # tie: the first seen wins
    assert majority_vote([None, None, "3"]) == ("3", 1)           # nothing extracted never wins
    assert majority_vote([None, None]) == (None, 0)
    assert majority_vote([]) == (None, 0)
