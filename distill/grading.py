"""Final answers: extract them from a completion and grade them against a reference.

Shared by `distill filter` (the correctness check) and `distill eval` (pass@k,
majority vote). Everything here is a plain function of strings, run in this
process; `distill.grading_pool` runs `slow_grade` in worker processes.

    answer = extract_answer(completion)            # the last \\boxed{…} (and those listed with it), then the fallbacks
    grade(answer, "\\frac{1}{2}")                  # True / False / None (cannot tell)

Reference shapes (the `reference` field of a trace):
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
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

BOXED = "boxed"
"""The answer pattern name for the last \\boxed{…} (or \\fbox{…}) with balanced braces, joined with the boxes
listed right before it (`boxed_answers`)."""
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
_CHOICE_WITH_TEXT = re.compile(r"^\s*+(?:\(\s*+([A-J])\s*+\)|([A-J])\s*+[.:)])\s*+(\S.*?)\s*$", re.DOTALL)
"""A letter that carries its option's text: '(B) 42', 'B: \\frac{1}{2}', 'B. 42', 'B) 42'. Capitals only:
'(a) 12 (b) 15' is an answer in parts."""
_ANOTHER_OPTION = re.compile(r"\(\s*+[A-Ja-j]\s*+\)")

# ---------------------------------------------------------------- extraction


_SPACES = re.compile(r"\s*+")
_BARE_BOX = re.compile(r"\s++([^\s$]+)")


def _box_at(text: str, start: int) -> tuple[str, int] | None:
    """(content, end) of the box whose command starts at `start`: `\\boxed{…}` (nested braces
    balanced; end = index of its closing brace) or `\\boxed 5` (one token); None when unbalanced."""
    body_start = start + (len("\\boxed") if text.startswith("\\boxed", start) else len("\\fbox"))
    stripped = _SPACES.match(text, body_start).end()
    if stripped < len(text) and text[stripped] == "{":
        depth = 0
        for i in range(stripped, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[stripped + 1:i].strip(), i
        return None  # unbalanced: the text was cut off; an earlier box was not the final answer
    match = _BARE_BOX.match(text, body_start)
    return (match.group(1).strip(), match.end() - 1) if match else None


def _last_box_start(text: str, before: int, fbox: bool = True, after: int = 0) -> int:
    """Where the last box command in text[after:before] starts (-1: none). `fbox=False` when the text
    has no \\fbox: a search for it would scan the whole text back each time."""
    boxed = text.rfind("\\boxed", after, before)
    return max(boxed, text.rfind("\\fbox", after, before)) if fbox else boxed


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{…}` / `\\fbox{…}` (nested braces balanced), or of `\\boxed 5`."""
    start = _last_box_start(text, len(text))
    if start < 0:
        return None
    box = _box_at(text, start)
    return box[0] if box is not None else None


_BOX_SEPARATOR = re.compile(r"\b(?:and|or)\b|[,;]")
_BOX_REACH = 2048
"""A box joins the next one only if it starts at most this far before it (its content and the gap):
the search for it then never rescans a long text."""
_BOX_GROUP_LIMIT = 64
"""At most this many boxes are read back from the last one (a list of answers is shorter): the scan
stays bounded on a text of thousands of adjacent boxes."""


def boxed_answers(text: str) -> list[str] | None:
    """The final answer's boxes, in order: the last box and the boxes just before it that list the same
    answer (`\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}`); None without a (balanced) last box.

    A box joins the next one by math-verify's rule (latex2sympy2_extended.extract_boxed_content):
    fewer than 10 characters apart, or fewer than 70 with 'and', 'or', ',' or ';' between them and a
    different content. A repeated box ('\\boxed{5}. So \\boxed{5}') counts once."""
    group = _boxed_group(text)
    return group[0] if group is not None else None


def _boxed_group(text: str) -> tuple[list[str], int] | None:
    """`boxed_answers` and the index of the last box's closing brace."""
    start = _last_box_start(text, len(text))
    if start < 0:
        return None
    box = _box_at(text, start)
    if box is None:
        return None
    contents, end = [box[0]], box[1]
    fbox = "\\fbox" in text
    for _ in range(_BOX_GROUP_LIMIT):
        previous = _last_box_start(text, start, fbox, max(0, start - _BOX_REACH))
        earlier = _box_at(text, previous) if previous >= 0 else None
        if earlier is None or earlier[1] >= start:  # none, cut off, or the box around this one
            break
        between = text[earlier[1] + 1:start]
        if not (len(between) < 10 or (earlier[0] != contents[0] and len(between) < 70
                                      and _BOX_SEPARATOR.search(between))):
            break
        if earlier[0] != contents[0]:
            contents.insert(0, earlier[0])
        start = previous
    return contents, end


BOX_JOINER = ", "
"""How `extract_answer` joins several boxes into one answer: a list, read as the tuple or set it forms."""


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

    `patterns` are tried in order: "boxed" is the last `\\boxed{…}`, joined with
    the boxes listed right before it (`boxed_answers`: `\\boxed{1}, \\boxed{2}` is
    "1, 2", graded as the set or tuple it forms, as math-verify reads it); any other
    entry is a regular expression (multiline) whose first group, at its last
    match within `answer_window(text)`, is the answer. Surrounding `$` and a
    trailing period are removed; a found answer that is a math span followed by
    a sentence ("$10,455$. I hope it is correct.") is the math span.

    A final answer stated after the last box by one of the other patterns, with
    a digit or math in it, is the final answer: working that boxes intermediate
    results and ends 'The final answer is $10,455$.' is graded by 10,455.

    This one string is the answer everywhere: graded by `grade`, shown in the
    filter's details, and counted by `distill eval`'s majority vote.
    """
    others = [pattern for pattern in patterns if pattern != BOXED]
    window = None
    for pattern in patterns:
        if pattern == BOXED:
            group = _boxed_group(text)  # a linear scan: the box may open before the window
            if group is None:
                continue
            after = text[group[1] + 1:]
            restated = None
            if len(after.strip()) > _BOX_TAIL:  # '$.' or '\\].' closes the box; a restatement takes more
                after = answer_window(after)
                restated = next((found for found in (_pattern_answer(after, p) for p in others)
                                 if found and _MATHLIKE.search(found)), None)
            found = restated or _strip_delimiters(BOX_JOINER.join(group[0]))
        else:
            window = answer_window(text) if window is None else window
            found = _pattern_answer(window, pattern)
        if found:
            return found
    return None


_MATHLIKE = re.compile(r"[\d$\\]")
_BOX_TAIL = 3
"""Characters after the last box (spaces aside) that cannot hold a restated answer ('$.', '\\].', '$$.')."""


def _pattern_answer(window: str, pattern: str) -> str | None:
    """The first group of `pattern`'s last match in `window`, its delimiters stripped. A match that
    holds another ('Final Answer: The final answer is $5$') is read down to the innermost."""
    matches = list(re.finditer(pattern, window, flags=re.MULTILINE))
    if not matches:
        return None
    found = matches[-1].group(1)
    while found:
        inner = re.search(pattern, found, flags=re.MULTILINE)
        if inner is None or not inner.group(1) or len(inner.group(1)) >= len(found):
            break
        found = inner.group(1)
    return (_strip_delimiters(_leading_math(found)) or None) if found else None


_LEADING_MATH = re.compile(r"\s*+(\$\$?|\\\(|\\\[)(.+?)(?:\$\$?|\\\)|\\\])(?=[.!;]\s)")


def _leading_math(found: str) -> str:
    """The math span a pattern's answer starts with, when a new sentence follows it: the statement
    of the answer ends there."""
    match = _LEADING_MATH.match(found)
    return match.group(2) if match else found


_DELIMITERS = tuple((open_, close, re.compile(r"(?<!\\)" + re.escape(close)))
                    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**")))


def _strip_delimiters(answer: str) -> str:
    answer = answer.strip().rstrip(".").strip()
    for open_, close, closing in _DELIMITERS:
        if answer.startswith(open_) and answer.endswith(close) and len(answer) >= len(open_) + len(close):
            inner = answer[len(open_):len(answer) - len(close)]
            if not closing.search(inner):  # "$5$ and $6$" is two spans, not one to unwrap
                answer = inner.strip()
    return answer.rstrip(".").strip()


def extract_choice(text: str) -> frozenset[str] | None:
    """The letters (A-J) a multiple-choice answer picks: from `\\boxed{B}`, `(B)`, `B.`, 'answer is B'."""
    window = answer_window(text)
    # the whole text may be the letter, but the end of a longer one is not an answer on its own
    whole = window if len(window) < ANSWER_WINDOW else None
    boxes = boxed_answers(text)
    candidates = [c for c in (BOX_JOINER.join(boxes) if boxes else None, whole) if c]
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
_THOUSANDS = re.compile(r"^-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$")
"""1,000 and 12,345.5 (as math-verify reads them); 0,111 is no thousands grouping"""
_LEADING_CURRENCY = re.compile(r"(-?)(?:\\\$|\$|€|£|¥|₹|\\euro|\\pounds|\\yen)(?=[\d.])")
_TRAILING_CURRENCY = ("\\$", "$", "€", "£", "¥", "₹")
_FRAC = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}$|^(-?)\\frac(\d)(\d)$")
_PLAIN_NUMBER = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")
_SLASH_FRACTION = re.compile(r"^(-?\d+)/(\d+)$")
_DECIMAL_COMMA = re.compile(r"^-?\d+,\d+$")


def _normalize_text(answer: str) -> str:
    return _TEXT.sub(r"\1", answer).strip()


def normalize_answer(answer: str) -> str:
    """A canonical spelling for comparing answers as strings (fast path, majority vote).

    Removes what never changes a value: delimiters, spacing commands,
    `\\left`/`\\right`, `\\text{}` wrappers, degree signs, `\\dfrac` vs `\\frac`,
    thousands separators, a currency sign on a number, spaces and a trailing period.
    """
    text = _strip_delimiters(answer)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("{,}", "")
    text = _SPACING.sub("", text)
    text = _DEGREES.sub("", text)
    text = _normalize_text(text)
    text = re.sub(r"\s+", "", text).rstrip(".")
    text = _strip_currency(text)
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    return text


def _strip_currency(text: str) -> str:
    """A currency sign before or after a number dropped: \\$1000, -$5, 2,74€."""
    match = _LEADING_CURRENCY.match(text)
    if match:
        text = match.group(1) + text[match.end():]
    for sign in _TRAILING_CURRENCY:
        if text.endswith(sign) and len(text) > len(sign) and text[-len(sign) - 1] in "0123456789.":
            return text[:-len(sign)]
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

    `exact` is False for decimals, which are compared within the precision they
    show (`rounded_equal`), so only an exact pair is compared as numbers alone.
    A number too long to convert (`has_giant_number`) is None too.
    """
    return _number(normalize_answer(answer))


def _number(text: str) -> tuple[Fraction, bool] | None:
    """`as_number` of an answer already normalised."""
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
    frozenset({"nosolution", "nosolutions", "thereisnosolution", "\\emptyset", "\\varnothing", "∅", "\\{\\}"}),
)
"""Phrases that say the same thing (compared lowercased, without spaces, `\\text{}` and apostrophes).
A short table of certain synonyms, not a thesaurus: 'undefined' is not 'does not exist' (a function
value vs a limit), nor 'none' 'no solution'."""


def _phrase(normalized: str) -> str:
    return normalized.lower().replace("'", "").replace("’", "")


def same_meaning(answer: str, reference: str) -> bool:
    """Whether the answer and the reference are two phrases of one `SAME_MEANING` entry."""
    return _same_meaning(normalize_answer(answer), normalize_answer(reference))


def _same_meaning(answer: str, reference: str) -> bool:
    ours, theirs = _phrase(answer), _phrase(reference)
    return any(ours in phrases and theirs in phrases for phrases in SAME_MEANING)


_VARIABLE = re.compile(r"\\(?:text|textbf|textit|mathrm|mbox|operatorname)\s*+\{[^{}]*\}|\\[A-Za-z]+|([A-Za-z])")
"""A text block or a command name (neither holds variables), or one letter: a variable."""
# a bound variable is a lowercase letter: P(A) is the probability of the event A, not a function of it
_FUNCTION_BINDER = re.compile(r"^\s*+([A-Za-z])\s*+\(\s*+([a-z](?:\s*+,\s*+[a-z])*)\s*+\)\s*+(?:=|$)")
_INDEX_BINDER = re.compile(r"\\(sum|prod)(?:\\limits)?\s*+_\s*+\{?\s*+([a-z])\s*+=")


_MAY_BIND = re.compile(r"\(|\\sum|\\prod")


def _variables(text: str) -> set[str]:
    return {match.group(1) for match in _VARIABLE.finditer(text) if match.group(1)}


def _binders(text: str) -> list[tuple[str, str]]:
    """(kind, variable) of what binds a variable: a function defined or applied at the start
    (`C(x) = …`, `f(x)`: kind 'C()'), a sum's or product's index (kind 'sum', 'prod'), in order."""
    found = []
    text = _strip_delimiters(text)
    match = _FUNCTION_BINDER.match(text)
    if match:
        found += [(f"{match.group(1)}()", name.strip()) for name in match.group(2).split(",")]
    found += [(m.group(1), m.group(2)) for m in _INDEX_BINDER.finditer(text)]
    return found


def rename_bound_variables(answer: str, reference: str) -> str:
    """The answer with its bound variables named as the reference names them, where that is a
    renaming and nothing else: `C(n) = 542n + 500` → `C(x) = 542x + 500` for `C(x) = 542x + 500`,
    `\\sum_{i=1}^n i^2` → `\\sum_{k=1}^n k^2`, `f(y)` → `f(x)`. Else the answer unchanged.

    Bound variables are a function's arguments (defined or applied at the start) and a sum's or
    product's index, paired in order with the reference's of the same kind (the same function name).
    Where only one side defines a function (`f(n) = 2n` for `2x`), its argument pairs with the one
    variable the other side alone uses. The renaming is refused when it is not one-to-one or when a
    new name is already a variable of the answer (`f(y) = y + x` against `f(x) = x + y` stays itself),
    so that no free variable is ever renamed into another: `x + 2y` is never `2x + y`."""
    if not (_MAY_BIND.search(answer) or _MAY_BIND.search(reference)):
        return answer
    ours, theirs = _binders(answer), _binders(reference)
    if not ours and not theirs:
        return answer
    mapping: dict[str, str] = {}
    if ours and theirs:
        if [kind for kind, _ in ours] != [kind for kind, _ in theirs]:
            return answer
        for (_, name), (_, new) in zip(ours, theirs, strict=True):
            if mapping.setdefault(name, new) != new:
                return answer
    elif len(ours or theirs) == 1 and (ours or theirs)[0][0].endswith("()"):
        if ours:  # f(n) = 2n against 2x: the argument takes the one name only the reference uses
            others = _variables(reference) - _variables(answer)
            if len(others) == 1:
                mapping = {ours[0][1]: others.pop()}
        else:  # 2n against f(x) = 2x: the one name only the answer uses takes the argument's
            others = _variables(answer) - _variables(reference)
            if len(others) == 1:
                mapping = {others.pop(): theirs[0][1]}
    mapping = {name: new for name, new in mapping.items() if name != new}
    if not mapping or len(set(mapping.values())) != len(mapping) \
            or (set(mapping.values()) - set(mapping)) & _variables(answer):
        return answer
    return _VARIABLE.sub(lambda m: mapping.get(m.group(1), m.group(1)) if m.group(1) else m.group(0), answer)


# ---------------------------------------------------------------- the fast path


def _decimal_comma(answer: str) -> str | None:
    """'1,22' as '1.22', when it cannot be a thousands grouping (1,220 is 1220) and has no space
    after its comma (1, 22 is a list)."""
    text = _strip_delimiters(answer).strip()
    if _DECIMAL_COMMA.match(text) and not _THOUSANDS.match(text) and not has_giant_number(text):
        return text.replace(",", ".")
    return None


def fast_verdict(answer: str, reference: str) -> bool | None:
    """True when the answers are plainly equal, False when they are plainly numbers that differ,
    None when it takes math-verify to tell.

    Plainly equal: the same normalised string (after `rename_bound_variables`), two phrases of one
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
    normalized, normalized_reference = normalize_answer(answer), normalize_answer(reference)
    if normalized == normalized_reference or _same_meaning(normalized, normalized_reference):
        return True
    if "." in normalized and _PLAIN_NUMBER.match(normalized) and _decimal_comma(reference) == normalized:
        return True
    ours, gold = _number(normalized), _number(normalized_reference)
    comma = _decimal_comma(answer) if ours is None and gold is not None and not gold[1] else None
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


def choice_reference(reference: str) -> tuple[frozenset[str], str | None] | None:
    """(letters, option text) of a multiple-choice reference: 'B' -> ({B}, None), '(B) 42' and
    'B: 42' -> ({B}, '42'); None when the reference is no letter."""
    match = _CHOICE_REFERENCE.match(reference)
    if match:
        return frozenset(match.group(1).upper()), None
    match = _CHOICE_WITH_TEXT.match(reference)
    if match and not _ANOTHER_OPTION.search(match.group(3)):
        return frozenset((match.group(1) or match.group(2)).upper()), match.group(3)
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
        picked = extract_choice(answer_text)
        if picked is not None:
            return Grade(picked == letters, "letter"), "".join(sorted(picked))
        if option is None:
            return Grade(False, "no choice letter"), None
    answer = extract_answer(answer_text, patterns)
    if answer is None:
        return Grade(False, "no answer"), None
    golds = reference_answers(reference, kind)
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
    """
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    latex, both = [LatexExtractionConfig()], [LatexExtractionConfig(), ExprExtractionConfig()]
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


def math_verify_equal(answer: str, reference: str) -> bool:
    """math-verify on an extracted answer and a reference (`parse_math`), gold first; no timeout of its own.

    Our settings: decimals against exact values at the places they show (`rounding_places`); an
    interval against the relation it denotes either way round (`allow_set_relation_comp`: math-verify
    by default compares `x \\in [-2,7]` with `-2 \\le x \\le 7` only with the set as the answer);
    variables stay strict (`strict=True`: its `strict=False` pairs any free variables by position,
    so `x + 2y` would equal `2x + y`), bound ones renamed first (`rename_bound_variables`).
    """
    from math_verify import verify

    silence_math_verify()
    answer = rename_bound_variables(answer, reference)
    gold = parse_math(reference)
    if not gold:
        return False
    predicted = parse_math(answer)
    if not predicted:
        return False
    return bool(verify(gold, predicted, float_rounding=rounding_places(answer, reference),
                       allow_set_relation_comp=True, timeout_seconds=None))


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
