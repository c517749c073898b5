"""Verdicts: an extracted answer compared with a reference, True (right), False (wrong) or None (cannot tell).

    grade(answer_text, "\\frac{1}{2}")          # extract, then the rules, then math-verify or the sandbox
    quick_grade(answer_text, reference)         # the rules alone: (Grade, None) when decided, else (None, answer)
    slow_grade(answer, reference, timeout=5)    # math-verify (or the code sandbox) on the extracted answer

Reference shapes (the `reference` field of a trace, `reference_kind`):
- a string or number: a math answer, compared by distill's rules (`fast_verdict`, `rename_bound_variables`,
  `rounding_places`, `parse_math`; the README's "What the rules accept") and math-verify (gold first);
- one letter A-J (also "(B)", "B."): a multiple-choice answer, compared as a letter; a letter with its
  option's text ("(B) 42", "B: 1/2") also accepts that text as the answer;
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
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from distill.grading.extraction import (
    DEFAULT_ANSWER_PATTERNS,
    answer_window,
    boxed_answers,
    extract_answer,
    extract_choice,
)
from distill.grading.normalisation import (
    PLAIN_NUMBER,
    choice_reference,
    decimal_comma_as_point,
    has_giant_number,
    normalize_answer,
    normalized_number,
    rename_bound_variables,
    unwrap_text,
)
from distill.grading.notation import canonical_pair, is_prose, plus_minus_expansions, top_level_items

GIANT_REFERENCE = "reference has a number too long to compare"
GIANT_ANSWER = "answer has a number too long to compare"


# ---------------------------------------------------------------- decimals: the precision they show

MATH_VERIFY_PLACES = 6
"""math-verify's own rounding (`float_rounding`): decimals with more places are compared at six."""
MIN_SIGNIFICANT_DIGITS = 2
"""A decimal stands for a rounded value only with at least two significant digits: 0.33 is 1/3 to
two places, but 0.3 is not taken for 1/3, nor 0.0 for 1/30 (every value under 0.05 would match)."""
_DECIMAL = re.compile(r"(?<![\d.])(\d*)\.(\d+)(?![\d.])")


def _decimal_shapes(text: str) -> list[tuple[int, int]]:
    """(places, significant digits) of every decimal written in `text`."""
    return [(len(fraction), len((whole + fraction).lstrip("0"))) for whole, fraction in _DECIMAL.findall(text)]


_ENVIRONMENT = re.compile(r"\\(?:begin|end)\{[A-Za-z*]*\}")
_NOT_RATIONAL = re.compile(r"\\(?!(?:(?:d|t)?frac|left|right|cup|infty)(?![A-Za-z])|[,;:! \\])[A-Za-z]+|(?<![\\A-Za-z])[A-Za-z]")
"""A command other than a fraction, brackets, ∪, ∞ or spacing, or a letter: pi, a root, a variable."""


def rounding_places(answer: str, reference: str) -> int:
    """The places at which math-verify compares decimals with exact values (its `float_rounding`).

    When one side writes decimals and the other rational numbers only (integers, fractions, in
    intervals, tuples or matrices), the decimals are taken to be rounded at the precision they show:
    the most places any of them shows (so `(0.6, 2.6667]` is compared with
    `(\\frac{3}{5}, \\frac{8}{3}]` at four places), provided those have `MIN_SIGNIFICANT_DIGITS`.
    Otherwise math-verify's own six places: decimals on both sides (either may be exact), too few
    digits, or an irrational or symbolic exact side (3.14 is not pi, nor 8.2 the value of
    12\\sqrt{3} - 4\\pi: a closed form asked for is not to be estimated)."""
    ours, theirs = _decimal_shapes(answer), _decimal_shapes(reference)
    if bool(ours) == bool(theirs):
        return MATH_VERIFY_PLACES
    shapes, exact = (ours, reference) if ours else (theirs, answer)
    places = max(p for p, _ in shapes)
    if places >= MATH_VERIFY_PLACES or any(p == places and s < MIN_SIGNIFICANT_DIGITS for p, s in shapes) \
            or _NOT_RATIONAL.search(_ENVIRONMENT.sub("", exact)):
        return MATH_VERIFY_PLACES
    return places


def rounded_equal(decimal: str, value: Fraction, exact: Fraction) -> bool | None:
    """Whether a plain decimal (its normalised text and its value) equals an exact number rounded to
    the places it shows (`rounding_places`); None past six places, which math-verify rounds itself."""
    if any(places > MATH_VERIFY_PLACES for places, _ in _decimal_shapes(decimal)):
        return None
    # a tie (1/8 written 0.12 or 0.13) is either rounding, both right
    return abs(value - exact) <= Fraction(1, 2 * 10 ** rounding_places(decimal, ""))


# ---------------------------------------------------------------- free-form answers

SAME_MEANING = (
    frozenset({"dne", "doesnotexist", "doesntexist", "thelimitdoesnotexist", "limitdoesnotexist",
               "thelimitdoesntexist", "itdoesnotexist"}),
    frozenset({"nosolution", "nosolutions", "thereisnosolution", "therearenosolutions", "norealsolutions",
               "norealsolution", "\\emptyset", "\\varnothing", "∅", "\\{\\}"}),
    frozenset({"infinitelymany", "infinitelymanysolutions", "thereareinfinitelymany", "infinite", "infinity",
               "\\infty", "+\\infty", "∞"}),
)
"""Phrases that say the same thing (compared lowercased, without spaces, `\\text{}` and apostrophes).
A short table of certain synonyms, not a thesaurus: 'undefined' is not 'does not exist' (a function
value vs a limit), nor 'none' 'no solution'. 'Infinitely many' is ∞ (a count of solutions, answered
either way); '-∞' is not in it."""


def _phrase(normalized: str) -> str:
    return normalized.lower().replace("'", "").replace("’", "")


def same_meaning(answer: str, reference: str) -> bool:
    """Whether the answer and the reference are two phrases of one `SAME_MEANING` entry."""
    return _same_meaning(normalize_answer(answer), normalize_answer(reference))


def _same_meaning(answer: str, reference: str) -> bool:
    ours, theirs = _phrase(answer), _phrase(reference)
    return any(ours in phrases and theirs in phrases for phrases in SAME_MEANING)


# ---------------------------------------------------------------- the fast path


def fast_verdict(answer: str, reference: str) -> bool | None:
    """True when the answers are plainly equal, False when they are plainly numbers that differ,
    None when it takes math-verify to tell.

    Both sides are first written in one notation (`rename_bound_variables`, then
    `distill.grading.notation.canonical_pair`: units, ordinals, unicode, …).

    Plainly equal: the same normalised string, two phrases of one
    `SAME_MEANING` entry, or the same number. A decimal and an exact number are compared within the
    precision the decimal shows (`rounded_equal`: 0.33 is 1/3).

    A decimal comma is read as a point only against a decimal written with a point: in the answer
    when the reference is such a decimal (1000,99 for 1000.99), in the reference only when the answer
    is the same digits with a point (reference 1,22, answer 1.22). A comma between digits in a
    reference is more often a list ('1,5': the roots 1 and 5, as MATH writes them), which every
    other answer is compared with as a list (math-verify reads it so); the one answer that matches
    it as a decimal, 1.5, would be wrong digit for digit by coincidence.
    """
    answer = rename_bound_variables(answer, reference)
    answer, reference = canonical_pair(answer, reference)
    normalized, normalized_reference = normalize_answer(answer), normalize_answer(reference)
    if normalized == normalized_reference or _same_meaning(normalized, normalized_reference):
        return True
    if "." in normalized and PLAIN_NUMBER.match(normalized) and decimal_comma_as_point(reference) == normalized:
        return True
    ours, gold = normalized_number(normalized), normalized_number(normalized_reference)
    comma = decimal_comma_as_point(answer) if ours is None and gold is not None and not gold[1] else None
    if comma is not None:
        ours = Fraction(comma), False
    if ours is None or gold is None:
        return None
    if ours[0] == gold[0]:
        return True
    if ours[1] and gold[1]:
        return False
    if ours[1] != gold[1]:  # one decimal, one exact
        decimal, value, exact = (normalized_reference, gold[0], ours[0]) if ours[1] else (normalized, ours[0], gold[0])
        return rounded_equal(decimal, value, exact)
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
        return "choice" if choice_reference(reference) is not None else "math"
    return None


def reference_answers(reference: Any, kind: str | None = None) -> list[str]:
    """The texts an answer is compared with as math: the reference, each of a list, or the option
    text a letter reference carries (none for a bare letter or code). `kind`: its `reference_kind`."""
    kind = kind or reference_kind(reference)
    if kind == "list":
        return [str(r) for r in reference]
    if kind == "math":
        return [str(reference)]
    if kind == "choice":
        option = choice_reference(reference)[1]  # type: ignore[index] - a choice reference parses
        return [option] if option is not None else []
    return []


_HEDGE_WORDS = re.compile(r"(?i)(?<![A-Za-z\\])(or|maybe|perhaps|possibly|probably|either)(?![A-Za-z])")
_ALWAYS_HEDGE = {"maybe", "perhaps", "possibly", "probably"}
_RELATION = re.compile(r"<|>|=|≤|≥|≠|\\(?:le|ge|leq|geq|lt|gt|neq|ne|in|notin|subset|subseteq)(?![A-Za-z])")
_LETTER_HEDGE = re.compile(r"(?i)(?:answer\s*(?:is|:)?\s*\**\s*|^\s*)\(?([A-J])\)?\s*(?:or|/)\s*\(?([A-J])\)?(?![A-Za-z])")


def hedged(answer: str, references: Sequence[str]) -> bool:
    """Whether an answer hedges between values ('6 or 12', '1/2 (maybe 1/3)', 'either 3 or 4'): always
    wrong, or a policy collects partial credit by listing guesses. 'or' joining relations is a union
    ('x<0 or x≥3'), 'or' before a reference that lists several values lists them ('3 or 2' for '2, 3'),
    and 'or' the reference itself uses is its own wording: none of those is a hedge."""
    words = {m.group(1).lower() for m in _HEDGE_WORDS.finditer(answer)}
    if not words or any(_HEDGE_WORDS.search(reference) for reference in references):
        return False
    if words & _ALWAYS_HEDGE:
        return True
    if any(re.search(r",|;|\\cup", reference) for reference in references):
        return False  # several values asked for: 'x = 2 or x = 3' lists them ('2, 3'), it does not hedge
    parts = [part for part in re.split(r"(?i)(?<![A-Za-z\\])(?:or|either)(?![A-Za-z])", answer)
             if part.strip(" \t{}()[]\\,.;:~") and part.strip(" \t{}()[]\\,.;:~") not in ("text", "text{", "mbox")]
    return len(parts) > 1 and not all(_RELATION.search(part) for part in parts)


def hedged_letters(answer_text: str) -> bool:
    """'The answer is C or D.', '\\boxed{C/D}': a multiple-choice answer that names two options."""
    boxes = boxed_answers(answer_text)
    texts = [unwrap_text(box) for box in boxes] if boxes else [answer_window(answer_text)]
    return any(_LETTER_HEDGE.search(text) for text in texts)


def quick_grade(answer_text: str | None, reference: Any,
                patterns: Sequence[str] = DEFAULT_ANSWER_PATTERNS) -> tuple[Grade | None, str | None]:
    """Everything that needs no math-verify and no sandbox: (grade, None) when decided, else
    (None, extracted answer) for `slow_grade`.

    `answer_text` is the text after `</think>` (or the whole completion). A letter reference is
    graded by the letters the answer picks; when it carries its option's text ('(B) 42'), an answer
    that picks no letter is compared with that text instead (`\\boxed{42}`). An answer that picks
    a letter is judged by its letter alone, so that a wrong letter is wrong whatever text follows it.
    """
    kind = reference_kind(reference)
    if kind is None:
        return Grade(None, "no reference"), None
    if answer_text is None or not answer_text.strip():
        return Grade(False, "no answer"), None
    if kind == "code":
        return _quick_code_grade(answer_text)
    if kind == "choice":
        letters, option = choice_reference(str(reference))  # type: ignore[misc] - a choice reference parses
        if hedged_letters(answer_text):
            return Grade(False, "hedged"), None
        picked = extract_choice(answer_text)
        if picked is not None:
            return Grade(picked == letters, "letter"), "".join(sorted(picked))
        if option is None:
            return Grade(False, "no choice letter"), None
    answer = extract_answer(answer_text, patterns)
    if answer is None:
        return Grade(False, "no answer"), None
    golds = reference_answers(reference, kind)
    if hedged(answer, golds):
        return Grade(False, "hedged"), answer
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


_MATH_SPANS = re.compile(r"\$\$.*?\$\$|(?<!\\)\$.*?(?<!\\)\$|\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)
_LATEX = re.compile(r"\\[A-Za-z]|[{}]")
_DIGIT = re.compile(r"\d")


def _latex_config():
    """math-verify's LaTeX reading with its unit stripping off: it drops a trailing `m`, `s`, `g`, `d` …
    as a unit (so `2m` read as 2, `\\frac{1}{2}m` as 1/2); `notation.strip_units` drops the labels that
    are units instead."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig

    return LatexExtractionConfig(normalization_config=NormalizationConfig(
        basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all", equations=False))


def parse_math(text: str) -> list:
    """math-verify's `parse` of an answer or a reference, without reading a number out of LaTeX it
    could not parse.

    math-verify tries its LaTeX reading and its plain-expression reading (ExprExtractionConfig) and
    keeps whichever parses; so LaTeX that latex2sympy cannot read ('1 + \\frac{1}{\\mathrm{e}}',
    '3 \\foo{x}') was read as the number it starts with, and graded equal to 1 (or 3). Here:
    - a text with no math delimiters is one math span: LaTeX alone when it holds a command or a
      brace, else LaTeX or a plain expression ('1,000.99', '2,74 $', 'the number is 10');
    - a text with `$…$`, `\\(…\\)` or `\\[…\\]` spans (prose around math) is read as LaTeX, or as a
      plain number from the prose outside the spans when the prose holds the last number
      ('The largest $n$ is 34'); a `\\boxed{}` in it outranks any prose, as in math-verify.
    A bare answer's LaTeX is read without math-verify's unit stripping (`_latex_config`); prose
    (`notation.is_prose`) with it, as math-verify reads prose.
    """
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    # in prose ('the number is 10 which is 1,000.99m²') a letter after a number is a unit as
    # math-verify reads it; in a bare answer it is a variable (`2m`)
    latex_reading = LatexExtractionConfig() if is_prose(text) else _latex_config()
    latex, both = [latex_reading], [latex_reading, ExprExtractionConfig()]
    spans = list(_MATH_SPANS.finditer(text))
    if not spans:
        # a lone $ is a currency sign ('2,74 $'), not a delimiter
        wrapped = text if "$" in text or "\\boxed" in text else f"${text}$"
        return parse(wrapped, latex if _LATEX.search(text) else both, parsing_timeout=None)
    if "\\boxed" in text:
        return parse(text, latex, parsing_timeout=None)
    prose = _MATH_SPANS.sub(lambda span: " " * len(span.group()), text)
    last_digit = max((digit.end() for digit in _DIGIT.finditer(prose)), default=-1)

    def from_prose() -> list:
        return parse(prose, [ExprExtractionConfig()], parsing_timeout=None) if last_digit >= 0 else []

    if last_digit > spans[-1].end():
        return from_prose() or parse(text, latex, parsing_timeout=None)
    return parse(text, latex, parsing_timeout=None) or from_prose()


EXACT_DIGITS = 40
"""Two exact values math-verify calls equal must agree to this many significant digits: its numeric
comparison rounds at six places, so 1/3^40 and 1/3^41, or 10^-20 and 10^-21, were equal."""


def _exact_values_differ(gold: Any, predicted: Any, places: int | None = None) -> bool:
    """Whether two parsed values are numbers (or tuples of numbers) that differ beyond rounding error:
    beyond `EXACT_DIGITS` significant digits, or with `places` (the most decimal places either side
    writes), by more than half a unit of the last place (0.0000002 is not 10^-7, though both round
    to 0 at math-verify's six places). Anything not a plain number is not judged."""
    import sympy

    if isinstance(gold, sympy.Tuple) and isinstance(predicted, sympy.Tuple):
        return len(gold) == len(predicted) and any(_exact_values_differ(a, b, places)
                                                   for a, b in zip(gold, predicted))
    if not (isinstance(gold, sympy.Expr) and isinstance(predicted, sympy.Expr)):
        return False
    if gold.free_symbols or predicted.free_symbols or not (gold.is_number and predicted.is_number):
        return False
    try:
        a, b = sympy.N(gold, EXACT_DIGITS + 10), sympy.N(predicted, EXACT_DIGITS + 10)
        if not (a.is_finite and b.is_finite and a.is_real and b.is_real):
            return False
        scale = max(abs(a), abs(b))
        if places is not None:
            return bool(abs(a - b) > sympy.Rational(1, 2 * 10 ** places) + scale * sympy.Float(10) ** -12)
        return bool(abs(a - b) > scale * sympy.Float(10) ** -EXACT_DIGITS)
    except Exception:
        return False


def _read_as_one_number(text: str, parsed: list) -> bool:
    """A bare list ('3, 4', '3 \\text{ cm}, 9 \\text{ cm}') that math-verify read as one number: the parse
    fell back to its first item, and a list is no number. (A text with math spans or prose is read by
    its spans, not judged here.)"""
    import sympy

    return bool(parsed) and isinstance(parsed[0], sympy.Number) and not _MATH_SPANS.search(text) \
        and "\\boxed" not in text and not is_prose(text) and len(top_level_items(text)) > 1


def math_verify_equal(answer: str, reference: str) -> bool:
    """math-verify on an extracted answer and a reference (`parse_math`), gold first; no timeout of its own.

    Both are first written in one notation (`distill.grading.notation.canonical_pair`); a side with
    ± against a side that lists values is compared as each list the ± stands for
    (`plus_minus_expansions`). Our settings: decimals against exact values at the places they show
    (`rounding_places`); an interval against the relation it denotes either way round
    (`allow_set_relation_comp`: math-verify by default compares `x \\in [-2,7]` with `-2 \\le x \\le 7`
    only with the set as the answer); variables stay strict (`strict=True`: its `strict=False` pairs
    any free variables by position, so `x + 2y` would equal `2x + y`), bound ones renamed first
    (`rename_bound_variables`). Its "equal" is overruled for exact numbers that differ past
    `EXACT_DIGITS` digits, for decimals of six or more places that differ by more than half a unit of
    their last place, and for a list it read as one number.
    """
    answer = rename_bound_variables(answer, reference)
    answer, reference = canonical_pair(answer, reference)
    return any(_math_verify_equal(ours, gold) for ours, gold in _expansions(answer, reference))


def _expansions(answer: str, reference: str) -> list[tuple[str, str]]:
    """(answer, reference) to compare: as they are, and with the ± of one side expanded when the other
    side lists values and writes no ±."""
    pairs = [(answer, reference)]
    for i, (this, other) in enumerate(((answer, reference), (reference, answer))):
        if "\\pm" in other or "\\mp" in other or len(top_level_items(other)) < 2:
            continue
        for expanded in plus_minus_expansions(this):
            pairs.append((expanded, reference) if i == 0 else (answer, expanded))
    return pairs


def _math_verify_equal(answer: str, reference: str) -> bool:
    from math_verify import verify

    silence_math_verify()
    gold = parse_math(reference)
    if not gold or _read_as_one_number(reference, gold):
        return False
    predicted = parse_math(answer)
    if not predicted or _read_as_one_number(answer, predicted):
        return False
    if not verify(gold, predicted, float_rounding=rounding_places(answer, reference),
                  allow_set_relation_comp=True, timeout_seconds=None):
        return False
    shapes = _decimal_shapes(answer) + _decimal_shapes(reference)
    places = max((p for p, _ in shapes), default=None)
    if places is not None and places < MATH_VERIFY_PLACES:
        return True  # rounded at the places shown (`rounding_places`): math-verify's verdict stands
    return not _exact_values_differ(gold[0], predicted[0], places)


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
    golds = reference_answers(reference)
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
