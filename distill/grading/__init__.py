"""Final answers: extract them from a completion and grade them against a reference.

Shared by `distill filter` (the correctness check) and `distill eval` (pass@k,
majority vote). Everything here is a plain function of strings, run in this
process; `distill.grading_pool` runs `slow_grade` in worker processes.

    answer = extract_answer(completion)            # the last \\boxed{…} (and those listed with it), then the fallbacks
    grade(answer, "\\frac{1}{2}")                  # True / False / None (cannot tell)

Four modules, each importing only the ones below it:
- `verdicts`: an answer compared with a reference (reference kinds, the rules, math-verify, the
  code sandbox): `quick_grade`, `slow_grade`, `grade`;
- `extraction`: the final answer found in a completion (boxes, answer patterns, option letters);
- `normalisation`: an answer string made comparable (spelling, numbers, letters, bound variables);
- `notation`: an answer and its reference rewritten into one notation (units, angles, intervals,
  unicode, vectors, ±, named components, ordinals, function arguments): `notation.canonical_pair`.

Every name below is importable from `distill.grading` as it was when this was one module.
"""

from distill.grading.extraction import (
    ANSWER_WINDOW,
    BOX_JOINER,
    BOXED,
    DEFAULT_ANSWER_PATTERNS,
    answer_window,
    boxed_answers,
    extract_answer,
    extract_choice,
    last_boxed,
)
from distill.grading.normalisation import (
    CHOICE_LETTERS,
    as_number,
    choice_letters,
    choice_reference,
    has_giant_number,
    max_number_digits,
    normalize_answer,
    rename_bound_variables,
)
from distill.grading.verdicts import (
    GIANT_ANSWER,
    GIANT_REFERENCE,
    MATH_VERIFY_PLACES,
    MIN_SIGNIFICANT_DIGITS,
    NO_SANDBOX,
    SAME_MEANING,
    Grade,
    VerifyTimeout,
    fast_verdict,
    grade,
    grade_detailed,
    math_verify_equal,
    parse_math,
    quick_grade,
    reference_answers,
    reference_kind,
    rounded_equal,
    rounding_places,
    same_meaning,
    sandbox_module,
    silence_math_verify,
    slow_grade,
)

__all__ = [
    "ANSWER_WINDOW",
    "BOXED",
    "BOX_JOINER",
    "CHOICE_LETTERS",
    "DEFAULT_ANSWER_PATTERNS",
    "GIANT_ANSWER",
    "GIANT_REFERENCE",
    "MATH_VERIFY_PLACES",
    "MIN_SIGNIFICANT_DIGITS",
    "NO_SANDBOX",
    "SAME_MEANING",
    "Grade",
    "VerifyTimeout",
    "answer_window",
    "as_number",
    "boxed_answers",
    "choice_letters",
    "choice_reference",
    "extract_answer",
    "extract_choice",
    "fast_verdict",
    "grade",
    "grade_detailed",
    "has_giant_number",
    "last_boxed",
    "math_verify_equal",
    "max_number_digits",
    "normalize_answer",
    "parse_math",
    "quick_grade",
    "reference_answers",
    "reference_kind",
    "rename_bound_variables",
    "rounded_equal",
    "rounding_places",
    "same_meaning",
    "sandbox_module",
    "silence_math_verify",
    "slow_grade",
]
