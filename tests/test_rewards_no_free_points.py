"""Rewards and checks without free points (issue 25 item 4): every hack scores below the honest completion.

Literal completions from tests/reward_hacks.py, scored by the reward functions TRL calls and by the
filter's language check; hedged answers are in tests/test_filter_grading.py.
"""

from __future__ import annotations

import json

import pytest

from distill.checks.language import LanguageCheck
from distill.rl.rewards import as_record, reward_functions
from tests import reward_hacks as hacks

PROMPT = [{"role": "user", "content": hacks.ENGLISH_PROMPT}]


def total_reward(completion: str, reference: str = "55") -> float:
    """The sum TRL takes over accuracy, format and language (None counts as 0 there)."""
    columns = dict(prompts=[PROMPT], completions=[[{"role": "assistant", "content": completion}]],
                   reference_json=[json.dumps(reference)])
    return sum(func(**columns)[0] or 0.0 for func in reward_functions(["accuracy", "format", "language"]))


@pytest.mark.parametrize("name", hacks.LANGUAGE_HACKS)
def test_foreign_prose_inside_code_or_math_counts(name):
    completion = hacks.LANGUAGE_HACKS[name]
    language = reward_functions(["language"])[0]
    score = language(prompts=[PROMPT], completions=[[{"role": "assistant", "content": completion}]])[0]
    assert score < 0.95, score
    assert LanguageCheck().run(as_record(PROMPT, completion)) is False
    assert total_reward(completion) < total_reward(hacks.HONEST_ENGLISH)


def test_formula_only_reasoning_is_neutral_not_zero():
    language = reward_functions(["language"])[0]
    scores = language(prompts=[PROMPT] * 2, completions=[[{"role": "assistant", "content": c}]
                                                         for c in (hacks.FORMULA_ONLY, hacks.HONEST_ENGLISH)])
    assert scores == [1.0, 1.0]
    # an honest formula-only trace no longer scores below gibberish with the same right answer
    assert total_reward(hacks.FORMULA_ONLY) >= total_reward(hacks.GIBBERISH)


def test_code_itself_is_not_foreign_language():
    """Keywords and identifiers inside code are not English prose in a Chinese trace, nor prose at all."""
    chinese = ("<think>\n我们先把一到十的数加起来。\n```python\ntotal = sum(range(1, 11))\nprint(total)\n```\n"
               "所以结果是五十五。\n</think>\n\n答案是 \\boxed{55}。")
    record = as_record([{"role": "user", "content": "一到十的正整数之和是多少？"}], chinese)
    assert LanguageCheck().run(record) is True
