"""Final answers: extract them from a completion and grade them against a reference.

Shared by `distill filter` (the correctness check) and `distill eval` (pass@k,
majority vote). Everything here is a plain function of strings, run in this
process; `distill.grading_pool` runs `slow_grade` in worker processes.

    answer = extract_answer(completion)            # last \\boxed{…}, then the fallbacks
    grade(answer, "\\frac{1}{2}")                  # True / False / None (cannot tell)

Reference shapes (the `reference` field of a trace):
- a string or number: a math answer, compared through math-verify (gold first);
- one letter A-J (also "(B)", "B."): a multiple-choice answer, compared as a letter;
- a list: acceptable answers, any one matches;
- an object (MBPP {"tests": [asserts]}, HumanEval {"prompt", "test", "entry_point"}, stdio
  {"tests": [{input, output}]}): a code task, run in `distill.sandbox` (None without it);
- null: nothing to compare with, the verdict is None.

A math-verify call can be bounded by an interval timer (`timeout`), which
works only in the main thread; a timeout is None, never False: the answer may
well be right.
"""

from __future__ import annotations

import logging
import re
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

BOXED = "boxed"
"""The answer pattern name for the last \\boxed{…} (or \\fbox{…}) with balanced braces."""
DEFAULT_ANSWER_PATTERNS = (
    BOXED,
    r"####\s*+(.+)",  # GSM8K
    r"(?i)\bfinal answer\s*+(?:is(?:\s*+:)?|:)\s*+(.+)",
    r"(?i)\banswer\s*+(?:is(?:\s*+:)?|:)\s*+(.+)",
)
"""Tried in order until one matches; within a pattern the last match counts (the final answer).
The answer runs to the end of its line (the caller strips it). Every `\\s*` is possessive (`*+`):
the token after it is never whitespace, so it matches the same, but a long run of spaces can no
longer be split between two quantifiers, which took quadratic time (20,000 spaces: 12 s)."""
ANSWER_WINDOW = 4096
"""The regex patterns search only this many characters at the end of the answer text
(`answer_window`), where a final answer is stated: this bounds the time any pattern, a user's
included, can take on one record, whatever the teacher wrote."""

GIANT_REFERENCE = "reference has a number too long to compare"
GIANT_ANSWER = "answer has a number too long to compare"

CHOICE_LETTERS = "ABCDEFGHIJ"
_MAX_CHOICE_LENGTH = 100
"""Longer than any list of letters ('(A), (C) and (D)'): a longer text is no letter answer."""
_CHOICE_REFERENCE = re.compile(r"^\s*+\(?\s*+([A-Ja-j])\s*+\)?\s*+[.:]?\s*+$")

# ---------------------------------------------------------------- extraction


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{…}` / `\\fbox{…}` (nested braces balanced), or of `\\boxed 5`."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    body = text[start:].removeprefix("\\boxed").removeprefix("\\fbox")
    stripped = body.lstrip()
    if stripped.startswith("{"):
        depth = 0
        for i, char in enumerate(stripped):
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return stripped[1:i].strip()
        return None  # unbalanced: the text was cut off; an earlier box was not the final answer
    match = re.match(r"\s+([^\s$]+)", body)
    return match.group(1).strip() if match else None


_LONG_SPACE = re.compile(r"\s{64,}")


def answer_window(text: str) -> str:
    """The end of `text` that the answer patterns search: its last `ANSWER_WINDOW` characters. In a
    longer text each run of 64 or more whitespace characters is first made one (a newline if it held
    one), so that padding neither hides an answer nor fills the window."""
    text = text.rstrip()
    if len(text) > ANSWER_WINDOW:
        text = _LONG_SPACE.sub(lambda run: "\n" if "\n" in run.group() else " ", text)
    return text[-ANSWER_WINDOW:]


def extract_answer(text: str, patterns: Sequence[str] = DEFAULT_ANSWER_PATTERNS) -> str | None:
    """The final answer in `text` (usually the part after `</think>`), or None.

    `patterns` are tried in order: "boxed" is the last `\\boxed{…}`; any other
    entry is a regular expression (multiline) whose first group, at its last
    match within `answer_window(text)`, is the answer. Surrounding `$` and a
    trailing period are removed.
    """
    window = answer_window(text)
    for pattern in patterns:
        if pattern == BOXED:
            found = last_boxed(text)  # a linear scan: the box may open before the window
        else:
            matches = list(re.finditer(pattern, window, flags=re.MULTILINE))
            found = matches[-1].group(1) if matches else None
        if found is not None:
            found = _strip_delimiters(found)
            if found:
                return found
    return None


def _strip_delimiters(answer: str) -> str:
    answer = answer.strip().rstrip(".").strip()
    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**")):
        if answer.startswith(open_) and answer.endswith(close) and len(answer) >= len(open_) + len(close):
            answer = answer[len(open_):len(answer) - len(close)].strip()
    return answer.rstrip(".").strip()


def extract_choice(text: str) -> frozenset[str] | None:
    """The letters (A-J) a multiple-choice answer picks: from `\\boxed{B}`, `(B)`, `B.`, 'answer is B'."""
    window = answer_window(text)
    # the whole text may be the letter, but the end of a longer one is not an answer on its own
    whole = window if len(window) < ANSWER_WINDOW else None
    candidates = [c for c in (last_boxed(text), whole) if c]
    for candidate in candidates:
        letters = choice_letters(_normalize_text(candidate))
        if letters:
            return letters
    stated = re.findall(r"(?i)answer\s*+(?:is|:)?\s*+\**+\s*+\(?([A-J])\)?(?![A-Za-z])", window)
    return frozenset(stated[-1].upper()) if stated else None


def choice_letters(answer: str) -> frozenset[str] | None:
    """'B', '(B)', 'B.', '\\text{(B)}', 'A, C' -> the set of letters; None if it is not a letter answer."""
    # one space per run: a split pattern tried at every position of a long run is quadratic
    answer = " ".join(re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", answer).split()).rstrip(".")
    if len(answer) > _MAX_CHOICE_LENGTH:
        return None
    parts = [p for p in re.split(r"\s?(?:,|and|&)\s?", answer) if p]
    letters = set()
    for part in parts:
        match = _CHOICE_REFERENCE.match(part)
        if not match or match.group(1).upper() not in CHOICE_LETTERS:
            return None
        letters.add(match.group(1).upper())
    return frozenset(letters) or None


# ---------------------------------------------------------------- normalisation and the fast path

_SPACING = re.compile(r"\\[,;:! ]|\\q?quad|~|\\left|\\right|\\displaystyle")
_DEGREES = re.compile(r"\^\s*+\{?\\circ\}?|°")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_FRAC = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}$|^(-?)\\frac(\d)(\d)$")
_PLAIN_NUMBER = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")
_SLASH_FRACTION = re.compile(r"^(-?\d+)/(\d+)$")


def _normalize_text(answer: str) -> str:
    return _TEXT.sub(r"\1", answer).strip()


def normalize_answer(answer: str) -> str:
    """A canonical spelling for comparing answers as strings (fast path, majority vote).

    Removes what never changes a value: delimiters, spacing commands,
    `\\left`/`\\right`, `\\text{}` wrappers, degree signs, `\\dfrac` vs `\\frac`,
    thousands separators, spaces and a trailing period.
    """
    text = _strip_delimiters(answer)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("{,}", "")
    text = _SPACING.sub("", text)
    text = _DEGREES.sub("", text)
    text = _normalize_text(text)
    text = re.sub(r"\s+", "", text).rstrip(".")
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    return text


_NUMBER_RUN = re.compile(r"[\d.]+")


def max_number_digits() -> int:
    """The most digits a number may have to be compared as a number: Python's int-string limit
    (4,300 by default; `int()`, `Fraction()` and sympy raise beyond it), never more than the default,
    since converting longer numbers takes quadratic time."""
    return min(sys.get_int_max_str_digits() or 4300, 4300)


def has_giant_number(text: str) -> bool:
    """Whether `text` holds a number with more digits than `max_number_digits()`."""
    limit = max_number_digits()
    return len(text) > limit and any(len(run) - run.count(".") > limit for run in _NUMBER_RUN.findall(text))


def as_number(answer: str) -> tuple[Fraction, bool] | None:
    """(value, exact) of an answer that is plainly a number: 42, -3.5, 1/2, \\frac{1}{2}; else None.

    `exact` is False for decimals, which math-verify compares with rounding
    (0.333333 equals 1/3), so only an exact pair may be declared unequal here.
    A number too long to convert (`has_giant_number`) is None too.
    """
    text = normalize_answer(answer)
    if has_giant_number(text):
        return None
    if _PLAIN_NUMBER.match(text):
        return Fraction(text), "." not in text
    match = _SLASH_FRACTION.match(text)
    if match and int(match.group(2)) != 0:
        return Fraction(int(match.group(1)), int(match.group(2))), True
    match = _FRAC.match(text)
    if match:
        sign, numerator, denominator = (match.group(1), match.group(2), match.group(3)) if match.group(2) \
            else (match.group(4), match.group(5), match.group(6))
        if int(denominator) != 0:
            value = Fraction(int(numerator), int(denominator))
            return (-value if sign else value), True
    return None


def fast_verdict(answer: str, reference: str) -> bool | None:
    """True when the answers are plainly equal (same normalised string or number), False when both
    are exact numbers that differ, None when it takes math-verify to tell."""
    if normalize_answer(answer) == normalize_answer(reference):
        return True
    ours, gold = as_number(answer), as_number(reference)
    if ours is not None and gold is not None:
        if ours[0] == gold[0]:
            return True
        if ours[1] and gold[1]:
            return False
    return None


# ---------------------------------------------------------------- grading


@dataclass(frozen=True)
class Grade:
    verdict: bool | None
    """True (correct), False (wrong) or None (cannot tell)."""
    reason: str
    """How the verdict was reached: 'equal', 'math-verify', 'no answer', 'timeout', 'no reference', …"""


def reference_kind(reference: Any) -> str | None:
    """'math', 'choice', 'code', 'list' or None (no reference)."""
    if reference is None:
        return None
    if isinstance(reference, dict):
        return "code"
    if isinstance(reference, list):
        return "list"
    if isinstance(reference, bool):
        return "math"
    if isinstance(reference, (int, float)):
        return "math"
    if isinstance(reference, str):
        if not reference.strip():
            return None
        return "choice" if _CHOICE_REFERENCE.match(reference) else "math"
    return None


def quick_grade(answer_text: str | None, reference: Any,
                patterns: Sequence[str] = DEFAULT_ANSWER_PATTERNS) -> tuple[Grade | None, str | None]:
    """Everything that needs no math-verify and no sandbox: (grade, None) when decided, else
    (None, extracted answer) for `slow_grade`.

    `answer_text` is the text after `</think>` (or the whole completion).
    """
    kind = reference_kind(reference)
    if kind is None:
        return Grade(None, "no reference"), None
    if answer_text is None or not answer_text.strip():
        return Grade(False, "no answer"), None
    if kind == "code":
        return _quick_code_grade(answer_text)
    if kind == "choice":
        picked = extract_choice(answer_text)
        if picked is None:
            return Grade(False, "no choice letter"), None
        return Grade(picked == choice_letters(str(reference)), "letter"), "".join(sorted(picked))
    answer = extract_answer(answer_text, patterns)
    if answer is None:
        return Grade(False, "no answer"), None
    golds = [str(r) for r in reference] if kind == "list" else [str(reference)]
    verdicts = [fast_verdict(answer, gold) for gold in golds]
    if True in verdicts:
        return Grade(True, "equal"), answer
    if all(v is False for v in verdicts):
        return Grade(False, "unequal numbers"), answer
    # math-verify turns the int-string limit's ValueError into "unequal", which a reference
    # it cannot read is not; an answer no check can read is no answer
    if any(has_giant_number(gold) for gold in golds):
        return Grade(None, GIANT_REFERENCE), answer
    if has_giant_number(answer):
        return Grade(False, GIANT_ANSWER), answer
    return None, answer


class VerifyTimeout(BaseException):
    """Raised by the interval timer inside a worker. A BaseException, so that math-verify's and
    sympy's `except Exception` clauses cannot swallow it."""


def _alarm(signum: int, frame: Any) -> None:
    raise VerifyTimeout


def silence_math_verify() -> None:
    # We run math-verify without its own signal.alarm (we set our own timer around the whole
    # parse + verify), which it reports with a warning on first use; timeouts are ours to report.
    logging.getLogger("math_verify").setLevel(logging.ERROR)


def math_verify_equal(answer: str, reference: str) -> bool:
    """math-verify on an extracted answer and a reference, gold first; no timeout of its own."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    silence_math_verify()
    config = [LatexExtractionConfig(), ExprExtractionConfig()]

    def wrap(text: str) -> str:
        return text if "$" in text or "\\boxed" in text else f"${text}$"

    gold = parse(wrap(reference), config, parsing_timeout=None)
    if not gold:
        return False
    predicted = parse(wrap(answer), config, parsing_timeout=None)
    if not predicted:
        return False
    return bool(verify(gold, predicted, timeout_seconds=None))


def sandbox_module():
    """The `distill.sandbox` module when it is installed (it is built beside this one), else None."""
    try:
        import distill.sandbox as sandbox
    except ImportError:
        return None
    return sandbox if hasattr(sandbox, "grade_code") else None


def _sandbox_grader():
    """`distill.sandbox.grade_code` when the sandbox is installed, else None."""
    sandbox = sandbox_module()
    return sandbox.grade_code if sandbox is not None else None


NO_SANDBOX = "code references need the sandbox (distill.sandbox is not installed)"


def _quick_code_grade(answer_text: str) -> tuple[Grade | None, str | None]:
    sandbox = sandbox_module()
    if sandbox is None:
        return Grade(None, NO_SANDBOX), None
    if sandbox.extract_code(answer_text) is None:
        return Grade(False, "no code block"), None  # a code task answered without code is wrong
    return None, answer_text  # the sandbox reads the final block itself


def slow_grade(answer: str | None, reference: Any, timeout: float | None = None,
               sandbox_limits: Any = None) -> Grade:
    """math-verify (or the code sandbox) on an extracted answer, in this process.

    With `timeout`, an interval timer bounds a math-verify call (main thread only;
    otherwise it runs unbounded): a timeout is Grade(None, 'timeout'). Code runs
    under `sandbox_limits` (a SandboxLimits; default: its defaults).
    """
    kind = reference_kind(reference)
    if kind == "code":
        grade_code = _sandbox_grader()
        if grade_code is None:
            return Grade(None, NO_SANDBOX)
        if answer is None:
            return Grade(False, "no code block")
        passed, detail = grade_code(answer, reference, sandbox_limits)
        return Grade(passed, f"sandbox: {detail}" if detail else "sandbox: passed")
    if answer is None:
        return Grade(False, "no answer")
    golds = [str(r) for r in reference] if kind == "list" else [str(reference)]
    import math_verify  # noqa: F401 - before the timer: importing sympy alone takes seconds on a busy machine
    timed = timeout is not None and threading.current_thread() is threading.main_thread() \
        and hasattr(signal, "setitimer")
    previous = signal.signal(signal.SIGALRM, _alarm) if timed else None
    try:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        return Grade(any(math_verify_equal(answer, gold) for gold in golds), "math-verify")
    except VerifyTimeout:
        return Grade(None, "timeout")
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def grade(answer_text: str | None, reference: Any, *, patterns: Sequence[str] = DEFAULT_ANSWER_PATTERNS,
          timeout: float | None = 5.0) -> bool | None:
    """Grade the final answer in `answer_text` against `reference`, in this process.

    True = correct, False = wrong (or no answer found), None = cannot tell (no
    reference, math-verify timed out, code without the sandbox). For many
    answers, or answers from untrusted models, use `distill.grading_pool.GradingPool`.
    """
    return grade_detailed(answer_text, reference, patterns=patterns, timeout=timeout).verdict


def grade_detailed(answer_text: str | None, reference: Any, *,
                   patterns: Sequence[str] = DEFAULT_ANSWER_PATTERNS, timeout: float | None = 5.0) -> Grade:
    """`grade` with the reason for its verdict."""
    decided, answer = quick_grade(answer_text, reference, patterns)
    if decided is not None:
        return decided
    return slow_grade(answer, reference, timeout)
