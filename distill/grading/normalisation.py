"""An answer string in a canonical, comparable form: its delimiters, LaTeX spacing and `\\text{}` wrappers
removed (`normalize_answer`), the number it plainly is (`as_number`), the letters it picks
(`choice_letters`, `choice_reference`), its bound variables named as the reference names them
(`rename_bound_variables`).

Plain functions of strings at the bottom of `distill.grading`: nothing here finds an answer in a
completion (`extraction`) or decides whether it is right (`verdicts`).
"""

from __future__ import annotations

import re
import sys
from fractions import Fraction

# ---------------------------------------------------------------- delimiters

_DELIMITERS = tuple((open_, close, re.compile(r"(?<!\\)" + re.escape(close)))
                    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**")))


def strip_delimiters(answer: str) -> str:
    """The answer without the math delimiters (`$…$`, `$$…$$`, `\\(…\\)`, `\\[…\\]`) or the bold
    (`**…**`) around it, nor a trailing period."""
    answer = answer.strip().rstrip(".").strip()
    for open_, close, closing in _DELIMITERS:
        if answer.startswith(open_) and answer.endswith(close) and len(answer) >= len(open_) + len(close):
            inner = answer[len(open_):len(answer) - len(close)]
            if not closing.search(inner):  # "$5$ and $6$" is two spans, not one to unwrap
                answer = inner.strip()
    return answer.rstrip(".").strip()


# ---------------------------------------------------------------- spelling

_SPACING = re.compile(r"\\[,;:! ]|\\q?quad|~|\\left|\\right|\\displaystyle")
_DEGREES = re.compile(r"\^\s*+\{?\\circ\}?|°")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_THOUSANDS = re.compile(r"^-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$")
"""1,000 and 12,345.5 (as math-verify reads them); 0,111 is no thousands grouping"""
_LEADING_CURRENCY = re.compile(r"(-?)(?:\\\$|\$|€|£|¥|₹|\\euro|\\pounds|\\yen)(?=[\d.])")
_TRAILING_CURRENCY = ("\\$", "$", "€", "£", "¥", "₹")


def unwrap_text(answer: str) -> str:
    """The answer with each `\\text{…}`, `\\textbf{…}`, `\\mathrm{…}` and `\\mbox{…}` replaced by its content."""
    return _TEXT.sub(r"\1", answer).strip()


def normalize_answer(answer: str) -> str:
    """A canonical spelling for comparing answers as strings (fast path, majority vote).

    Removes what never changes a value: delimiters, spacing commands,
    `\\left`/`\\right`, `\\text{}` wrappers, degree signs, `\\dfrac` vs `\\frac`,
    thousands separators, a currency sign on a number, spaces and a trailing period.
    """
    text = strip_delimiters(answer)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("{,}", "")
    text = _SPACING.sub("", text)
    text = _DEGREES.sub("", text)
    text = unwrap_text(text)
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


# ---------------------------------------------------------------- numbers

_NUMBER_RUN = re.compile(r"[\d.]+")
_FRAC = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}$|^(-?)\\frac(\d)(\d)$")
PLAIN_NUMBER = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")
"""An integer or a decimal written plainly: 42, -3.5, .5, 3."""
_SLASH_FRACTION = re.compile(r"^(-?\d+)/(\d+)$")
_DECIMAL_COMMA = re.compile(r"^-?\d+,\d+$")


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
    return normalized_number(normalize_answer(answer))


def normalized_number(text: str) -> tuple[Fraction, bool] | None:
    """`as_number` of an answer already normalised."""
    if has_giant_number(text):
        return None
    if PLAIN_NUMBER.match(text):
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


def decimal_comma_as_point(answer: str) -> str | None:
    """'1,22' as '1.22', when it cannot be a thousands grouping (1,220 is 1220) and has no space
    after its comma (1, 22 is a list)."""
    text = strip_delimiters(answer).strip()
    if _DECIMAL_COMMA.match(text) and not _THOUSANDS.match(text) and not has_giant_number(text):
        return text.replace(",", ".")
    return None


# ---------------------------------------------------------------- choice letters

CHOICE_LETTERS = "ABCDEFGHIJ"
_MAX_CHOICE_LENGTH = 100
"""Longer than any list of letters ('(A), (C) and (D)'): a longer text is no letter answer."""
_CHOICE_REFERENCE = re.compile(r"^\s*+\(?\s*+([A-Ja-j])\s*+\)?\s*+[.:]?\s*+$")
_CHOICE_WITH_TEXT = re.compile(r"^\s*+(?:\(\s*+([A-J])\s*+\)|([A-J])\s*+[.:)])\s*+(\S.*?)\s*$", re.DOTALL)
"""A letter that carries its option's text: '(B) 42', 'B: \\frac{1}{2}', 'B. 42', 'B) 42'. Capitals only:
'(a) 12 (b) 15' is an answer in parts."""
_ANOTHER_OPTION = re.compile(r"\(\s*+[A-Ja-j]\s*+\)")


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


# ---------------------------------------------------------------- bound variables

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
    text = strip_delimiters(text)
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
