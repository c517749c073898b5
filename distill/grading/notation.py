"""An answer and its reference rewritten into one notation before they are compared, so that two ways of
writing the same object read the same, and one way of writing two objects never does.

    answer, reference = canonical_pair(answer, reference)   # both sides, each rewrite where it applies
    plus_minus_expansions("(\\pm 1, \\pm 2)")                 # the tuples a ± stands for

Each rewrite is a plain function of strings with a literal test. What each one does, and why math-verify
alone gets it wrong (latex2sympy2_extended 1.11, math-verify 0.9):
- `unicode_as_latex`: ∞ ∪ ± √ ≤ π x² … as LaTeX (latex2sympy reads none of them);
- `brace_arguments`: `\\frac{1+a}b` as `\\frac{1+a}{b}` (unparsable as written);
- `parenthesise_arguments`: `\\cot x \\cdot \\ln(\\cos x)` as `\\cot(x) \\cdot …` (latex2sympy takes the
  whole rest of the product as the argument);
- `ordinals_as_numbers`: `7^{\\text{th}}` as 7 (policy: an ordinal answer is graded by its number);
- `degrees_as_radians`: `45^\\circ` as `45 · π/180`, only against a side that writes π and no degrees;
- `strip_units`: unit labels dropped where they are labels: a `\\text{…}` block after a value, or a unit
  word after a space (`3 \\text{ cm}, 4 \\text{ cm}` is `3, 4`). A bare letter is a variable, never a unit:
  math-verify strips a trailing `m`, `s`, `g`, `d` … and so graded `2m` equal to 2 and
  `\\frac{5}{2}p+\\frac{1}{2}m` unequal to `\\frac{5p+m}{2}`; `parse_math` turns its unit stripping off;
- `matrix_as_tuple`: a one-column or one-row matrix as a tuple, against a side that writes no matrix;
- `set_builder_condition` and `relations_as_intervals`: `\\{x \\mid -2<x<2\\}` and `x<0 \\text{ or } x\\ge 3`
  as intervals against a side written with intervals;
- `drop_component_names`: `x = 1, \\ y = 5` as `1, 5` and `k_{\\min} = n+1` as `n+1` against a side that
  names nothing;
- `plus_minus_expansions`: `(\\pm 1, \\pm 2)` as the four tuples it stands for (every sign independently;
  with a `\\mp` the signs go together), against a side that lists values.

Nothing here imports the other grading modules: `verdicts` calls it before the rules and math-verify.
"""

from __future__ import annotations

import itertools
import re

# ---------------------------------------------------------------- unicode

_UNICODE = {
    "∞": "\\infty ", "∪": "\\cup ", "∩": "\\cap ", "±": "\\pm ", "∓": "\\mp ", "≤": "\\le ", "⩽": "\\le ",
    "≥": "\\ge ", "⩾": "\\ge ", "≠": "\\ne ", "π": "\\pi ", "×": "\\times ", "·": "\\cdot ", "⋅": "\\cdot ",
    "−": "-", "–": "-", "÷": "\\div ", "∅": "\\varnothing ", "∈": "\\in ", "θ": "\\theta ", "α": "\\alpha ",
    "β": "\\beta ", "°": "^\\circ ", "ℝ": "\\mathbb{R}", "→": "\\to ",
}
_SUPERSCRIPTS = {"⁰": "0", "¹": "1", "²": "2", "³": "3", "⁴": "4", "⁵": "5", "⁶": "6", "⁷": "7", "⁸": "8",
                 "⁹": "9", "⁺": "+", "⁻": "-", "ⁿ": "n"}
_SUPERSCRIPT_RUN = re.compile(f"[{''.join(_SUPERSCRIPTS)}]+")
_UNICODE_CHAR = re.compile(f"[{''.join(_UNICODE)}]")
_ROOT = re.compile(r"√\s*+(?:(\()|(\{)|(\d+(?:\.\d+)?|[A-Za-z]|\\[A-Za-z]+))")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def unicode_as_latex(text: str) -> str:
    """Unicode maths as LaTeX: `(-∞, 0) ∪ [3, ∞)` → `(-\\infty, 0) \\cup [3, \\infty)`, `±√2` →
    `\\pm\\sqrt{2}`, `√(x+1)` → `\\sqrt{x+1}`, `x²` → `x^{2}`, `30°` → `30^\\circ`."""
    if not _NON_ASCII.search(text):
        return text
    text = _SUPERSCRIPT_RUN.sub(lambda m: "^{" + "".join(_SUPERSCRIPTS[c] for c in m.group()) + "}", text)
    while (match := _ROOT.search(text)) is not None:
        if match.group(1) or match.group(2):  # √(…) or √{…}: the balanced group is the radicand
            end = _closing(text, match.end() - 1)
            if end < 0:
                break
            text = f"{text[:match.start()]}\\sqrt{{{text[match.end():end]}}}{text[end + 1:]}"
        else:
            text = f"{text[:match.start()]}\\sqrt{{{match.group(3)}}}{text[match.end():]}"
    text = _UNICODE_CHAR.sub(lambda m: _UNICODE[m.group()], text)
    return re.sub(r" +(?=[ }),\]])", "", text).strip()


_PAIRS = {"(": ")", "{": "}", "[": "]"}


def _closing(text: str, start: int) -> int:
    """Index of the bracket closing the one at `start` (same kind, nested ones balanced), else -1."""
    opening, closing = text[start], _PAIRS[text[start]]
    depth = 0
    for i in range(start, len(text)):
        if text[i] == opening and (opening != "{" or text[i - 1:i] != "\\"):
            depth += 1
        elif text[i] == closing and (closing != "}" or text[i - 1:i] != "\\"):
            depth -= 1
            if depth == 0:
                return i
    return -1


# ---------------------------------------------------------------- \frac arguments, function arguments

_FRACTION = re.compile(r"\\[dt]?frac(?![A-Za-z])")


def _argument(text: str, at: int) -> tuple[str, int] | None:
    """(argument, index after it) of a LaTeX argument starting at `at` (spaces skipped): a braced group,
    a command name, or one character."""
    while at < len(text) and text[at] == " ":
        at += 1
    if at >= len(text) or text[at] in "}^_":
        return None
    if text[at] == "{":
        end = _closing(text, at)
        return (text[at + 1:end], end + 1) if end >= 0 else None
    if text[at] == "\\":
        command = re.match(r"\\[A-Za-z]+|\\.", text[at:])
        return (command.group(), at + command.end()) if command else None
    return text[at], at + 1


def brace_arguments(text: str) -> str:
    """Every fraction's arguments braced: `\\frac{1+a}b` → `\\frac{1+a}{b}`, `\\frac12` → `\\frac{1}{2}`,
    `\\dfrac\\pi4` → `\\frac{\\pi}{4}` (also inside other arguments)."""
    if "frac" not in text:
        return text
    out, at = [], 0
    for match in _FRACTION.finditer(text):
        if match.start() < at:
            continue
        numerator = _argument(text, match.end())
        denominator = _argument(text, numerator[1]) if numerator else None
        if denominator is None:
            continue
        out += [text[at:match.start()], "\\frac{", brace_arguments(numerator[0]), "}{",
                brace_arguments(denominator[0]), "}"]
        at = denominator[1]
    return "".join(out) + text[at:] if out else text


_GREEK = r"\\(?:alpha|beta|gamma|delta|theta|phi|varphi|pi|omega|mu|lambda|sigma|tau|psi)(?![A-Za-z])"
_FUNCTION_ARGUMENT = re.compile(
    r"(\\(?:arcsin|arccos|arctan|sinh|cosh|tanh|sin|cos|tan|cot|sec|csc|ln|log|exp)(?![A-Za-z])"
    r"(?:\s*+[_^]\s*+(?:\{[^{}]*\}|[0-9A-Za-z]))*)"  # a power or a base: \sin^2, \log_{2}
    r"\s*+((?:\d+(?:\.\d+)?)?(?:" + _GREEK + r"\s*+)?[A-Za-z]?(?:\^(?:\{[^{}]*\}|\d))?)"
    r"(?![A-Za-z0-9({\[\\])")


def parenthesise_arguments(text: str) -> str:
    """A function applied without brackets gets them around its argument, one monomial:
    `\\cot x \\cdot \\ln(\\cos x)` → `\\cot(x) \\cdot \\ln(\\cos(x))`, `\\sin 2x` → `\\sin(2x)`, `\\sin^2 x` →
    `\\sin^2(x)`, `\\ln x^2` → `\\ln(x^2)`. latex2sympy otherwise reads the rest of a product as the argument."""
    if "\\" not in text:
        return text

    def wrap(match: re.Match) -> str:
        argument = match.group(2).strip()
        if not re.search(r"[A-Za-z0-9]", argument):
            return match.group()
        return f"{match.group(1)}({argument})"

    return _FUNCTION_ARGUMENT.sub(wrap, text)


# ---------------------------------------------------------------- ordinals, degrees, units

_TEXT_SUPERSCRIPT = re.compile(r"\\textsuperscript\s*+\{")
_ORDINAL = re.compile(r"(\d)\s*+(?:\^\s*+)?(?:\{\s*+)?(?:\\(?:text|mathrm|textrm|mbox)\s*+\{\s*+)?"
                      r"(?:st|nd|rd|th)(?![A-Za-z])(?:\s*+\})?(?:\s*+\})?")


def ordinals_as_numbers(text: str) -> str:
    """An ordinal as its number: `7^{\\text{th}}`, `7^{th}`, `7\\text{th}`, `7th`, `2nd` → 7, 7, 7, 7, 2
    (policy: 'the 7th' answers 'which term?' as 7 does)."""
    if not re.search(r"\d\s*+\S*?(?:st|nd|rd|th)", text):
        return text
    return _ORDINAL.sub(r"\1", _TEXT_SUPERSCRIPT.sub("^{", text))


DEGREES = re.compile(r"\^\s*+\{?\s*+\\circ\s*+\}?|\\degree(?![A-Za-z])")
_DEGREE_WORD = re.compile(r"\s*+(?:\\(?:text|mathrm|textrm|mbox)\s*+\{\s*+(?:degrees?|deg)\s*+\}|\s(?:degrees?|deg)\b)")
_DEGREE_VALUE = re.compile(r"(\d+(?:\.\d+)?|\\frac\{[^{}]*\}\{[^{}]*\}|\{[^{}]*\})\s*+(?:" + DEGREES.pattern + ")")


def degrees_as_radians(text: str) -> str:
    """Each angle in degrees as radians: `45^\\circ` → `45\\cdot\\frac{\\pi}{180}`. Used only against a side
    that writes π and no degrees (`\\frac{\\pi}{4}`): elsewhere a degree sign is dropped as a unit."""
    return _DEGREE_VALUE.sub(lambda m: f"{m.group(1)}\\cdot\\frac{{\\pi}}{{180}}", text)


def degree_words_as_signs(text: str) -> str:
    """`45 \\text{ degrees}`, `45 degrees` → `45^\\circ`."""
    return _DEGREE_WORD.sub(lambda _: "^\\circ", text) if "deg" in text else text


_TEXT_BLOCK = re.compile(r"\\(?:text|textrm|textbf|textit|mathrm|mbox|textnormal|operatorname)\s*+\{([^{}]*)\}"
                         r"(?:\s*+\^\s*+(?:\{\s*+\d\s*+\}|\d))?")
_UNIT_LABEL = re.compile(r"^\s*+[A-Za-z][A-Za-z .'/\-]*(?:\^\{?\d\}?)?\s*+$")
_NOT_UNITS = {"and", "or", "if", "for", "where", "when", "with", "no solution", "no solutions", "none",
              "undefined", "dne", "even", "odd", "yes", "no", "true", "false", "i", "e", "th", "st", "nd", "rd"}
_SPACING = re.compile(r"(?:\\[,;:! ]|\\q?quad|~|\s)*+$")
_VALUE_END = re.compile(r"[\d})\]|!%.]$|\\(?:pi|infty|circ)$")
_AFTER_UNIT = re.compile(r"\s*+(?:$|[,;)\]}$]|\\[)\]}]|\\q?quad|\\text\s*+\{\s*+(?:and|or)\s*+\})")
_PLAIN_UNITS = ("cm|mm|km|kg|mg|ml|ft|lb|lbs|oz|hr|hrs|yr|yrs|mi|mph|kph|sec|min|m/s|km/h|sq")
_UNIT_WORD = r"(?:" + _PLAIN_UNITS + r"|[a-z]{3,})\.?"
_PLAIN_UNIT = re.compile(r"(?<=[\d}])\s++(" + _UNIT_WORD + r"(?:\s++" + _UNIT_WORD + r")*+)"
                         r"(?:\^\{?\d\}?)?(?=\s*+(?:$|[,;}$]|\\[)\]]))")
_MATH_WORDS = {"and", "or", "pi", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "mod",
               "sqrt", "max", "min", "gcd", "lcm", "deg", "arg", "det", "for", "if", "with", "where", "all",
               "real", "numbers", "integers", "none", "undefined", "even", "odd", "yes", "no", "true", "false"}


def strip_units(text: str) -> str:
    """Unit labels dropped where they label a value: `\\frac{109}{3}\\text{ seconds}` → `\\frac{109}{3}`,
    `3 \\text{ cm}, 4 \\text{ cm}` → `3, 4`, `12 \\mathrm{cm}^2` → 12, `5 apples` → 5, `36 mph` → 36.

    A `\\text{…}` block of words is a label when a value ends just before it and the answer (or an
    item of a list) ends after it; a plain word is one when a space separates it from a number and it
    has three letters or more, or is a common abbreviation (cm, kg, ft, …). A bare letter (`2m`,
    `\\frac{1}{2}m`) is a variable, and phrases that are answers themselves (`\\text{no solution}`,
    `\\text{ or }`) are kept."""
    if "\\" in text and "{" in text:
        out, at = [], 0
        for match in _TEXT_BLOCK.finditer(text):
            label = match.group(1).strip()
            before = _SPACING.sub("", text[at:match.start()])
            if not (label and _UNIT_LABEL.match(label) and label.lower() not in _NOT_UNITS
                    and (before or out) and _VALUE_END.search("".join(out) + before)
                    and _AFTER_UNIT.match(text, match.end())):
                continue
            out.append(before)
            at = match.end()
        text = ("".join(out) + text[at:]).strip() if out else text
    if " " in text:
        text = _PLAIN_UNIT.sub(lambda m: "" if not set(m.group(1).replace(".", " ").split()) & _MATH_WORDS
                               else m.group(), text).strip()
    return text


# ---------------------------------------------------------------- matrices, sets, intervals, names

_MATRIX = re.compile(r"^\s*+\\begin\{([pbvB]?matrix)\}(.*)\\end\{\1\}\s*+$", re.DOTALL)


def matrix_as_tuple(text: str) -> str:
    """A one-column or one-row matrix as a tuple: `\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}` → `(1, 2)`.
    Anything else unchanged."""
    match = _MATRIX.match(text)
    if not match:
        return text
    rows = [row.strip() for row in re.split(r"\\\\", match.group(2)) if row.strip()]
    cells = [[cell.strip() for cell in row.split("&")] for row in rows]
    if len(rows) >= 2 and all(len(row) == 1 for row in cells):
        return "(" + ", ".join(row[0] for row in cells) + ")"
    if len(rows) == 1 and len(cells[0]) >= 2:
        return "(" + ", ".join(cells[0]) + ")"
    return text


_LEFT_RIGHT = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![A-Za-z])\s*+(\.?)")
_SET_BUILDER = re.compile(r"^\s*+\\\{\s*+([A-Za-z])\s*+(?:\\in\s*+\\mathbb\s*+\{?R\}?\s*+)?(?:\\mid|\\vert|\||:)"
                          r"\s*+(.+?)\s*+\\\}\s*+$", re.DOTALL)


def without_left_right(text: str) -> str:
    """`\\left(`, `\\right]`, `\\bigl\\{` … as the bare delimiters (`\\left.` as nothing)."""
    return _LEFT_RIGHT.sub("", text) if "\\" in text else text


def set_builder_condition(text: str) -> tuple[str, str] | None:
    """(variable, condition) of a set written by a condition: `\\{x \\mid -2<x<2\\}` → ('x', '-2<x<2'),
    also with `|`, `:` and `x \\in \\mathbb{R}`; None for anything else."""
    match = _SET_BUILDER.match(text)
    return (match.group(1), match.group(2)) if match else None


_OR = re.compile(r"\s*+(?:\\text\s*+\{\s*+or\s*+\}|\\(?:lor|vee|cup)(?![A-Za-z])|(?<![A-Za-z\\])or(?![A-Za-z]))\s*+")
_RELATION = re.compile(r"(<|>|\\leq?(?![A-Za-z])|\\geq?(?![A-Za-z])|\\leqslant|\\geqslant|\\lt(?![A-Za-z])"
                       r"|\\gt(?![A-Za-z]))")
_LESS = {"<": "<", "\\lt": "<", "\\le": "<=", "\\leq": "<=", "\\leqslant": "<="}
_GREATER = {">": ">", "\\gt": ">", "\\ge": ">=", "\\geq": ">=", "\\geqslant": ">="}
_IN = re.compile(r"^\s*+([A-Za-z])\s*+\\in\s*+(.+)$", re.DOTALL)


def _mentions(expression: str, variable: str) -> bool:
    return re.search(rf"(?<![\\A-Za-z]){variable}(?![A-Za-z])", expression) is not None


def _interval(piece: str) -> tuple[str, str] | None:
    """(variable, interval) of one relation on one variable: `x<0` → ('x', '(-\\infty, 0)'),
    `-2 < x \\le 7` → ('x', '(-2, 7]'), `x \\in [3, \\infty)` → ('x', '[3, \\infty)')."""
    member = _IN.match(piece)
    if member:
        return member.group(1), member.group(2).strip()
    parts = [part.strip() for part in _RELATION.split(piece)]
    if len(parts) == 3:
        left, op, right = parts
        if re.fullmatch(r"[A-Za-z]", left) and right and not _mentions(right, left):
            variable, bound, less = left, right, op in _LESS
        elif re.fullmatch(r"[A-Za-z]", right) and left and not _mentions(left, right):
            variable, bound, less = right, left, op in _GREATER  # 3 > x is x < 3
        else:
            return None
        strict = (_LESS.get(op) or _GREATER.get(op)) in ("<", ">")
        if less:
            return variable, f"(-\\infty, {bound}{')' if strict else ']'}"
        return variable, f"{'(' if strict else '['}{bound}, \\infty)"
    if len(parts) == 5 and re.fullmatch(r"[A-Za-z]", parts[2]):
        low, op1, variable, op2, high = parts
        if not low or not high or _mentions(low, variable) or _mentions(high, variable):
            return None
        if op1 in _LESS and op2 in _LESS:
            return variable, f"{'(' if _LESS[op1] == '<' else '['}{low}, {high}{')' if _LESS[op2] == '<' else ']'}"
        if op1 in _GREATER and op2 in _GREATER:
            return variable, (f"{'(' if _GREATER[op2] == '>' else '['}{high}, {low}"
                              f"{')' if _GREATER[op1] == '>' else ']'}")
    return None


def relations_as_intervals(text: str) -> str | None:
    """Relations on one variable joined by 'or' (or ∪) as the union of intervals they describe:
    `x<0 \\text{ or } x\\ge 3` → `(-\\infty, 0) \\cup [3, \\infty)`; None when the text is anything else
    (two variables, a relation between expressions, no relation at all)."""
    pieces = [piece for piece in _OR.split(text) if piece.strip()]
    intervals = [_interval(piece) for piece in pieces]
    if not intervals or None in intervals or len({variable for variable, _ in intervals}) != 1:  # type: ignore[misc]
        return None
    if all(not _RELATION.search(piece) for piece in pieces):
        return None  # `x \in [0, 1]` alone is left to math-verify
    return " \\cup ".join(interval for _, interval in intervals)  # type: ignore[misc]


_INTERVAL_LIKE = re.compile(r"\\infty|\\cup|^\s*+[(\[].*,.*[)\]]\s*+$|\\varnothing|\\emptyset", re.DOTALL)


def _names_an_interval(text: str) -> bool:
    return bool(_INTERVAL_LIKE.search(text)) and not _RELATION.search(text)


_NAME = (r"(?:[A-Za-z]|" + _GREEK + r"|\\(?:text|mathrm|operatorname)\s*+\{[^{}]*\})"
         r"(?:\s*+_\s*+(?:\{[^{}]*\}|[0-9A-Za-z]))?(?:\s*+\^\s*+\{?\*\}?|')?")
_NAMED = re.compile(r"^\s*+" + _NAME + r"\s*+=\s*+(.+?)\s*+$", re.DOTALL)
_NAMES_TUPLE = re.compile(r"^\s*+\(\s*+" + _NAME + r"(?:\s*+,\s*+" + _NAME + r")+\s*+\)\s*+=\s*+")
_ITEM_SEPARATOR = re.compile(r",\s*+(?:\\[,;:! ]|\\q?quad|~|\\text\s*+\{\s*+and\s*+\}|and\s|\s)*+")


_GROUPED = re.compile(r"\d|\\!\s*+\d{3}(?!\d)")


def top_level_items(text: str) -> list[str]:
    """`text` split at the commas outside brackets and braces (`(1, 2), 3` → `(1, 2)`, `3`); a comma
    between digits with no space (`1,000`, `1,5`) or before `\\!` and three digits (`11,\\! 111`) does
    not split."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0 and not (text[i - 1:i].isdigit() and _GROUPED.match(text, i + 1)):
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item.strip() for item in items]


def drop_component_names(text: str) -> str:
    """The values of named components, without the names: `x = 1, \\ y = 5` → `1, 5`, `k_{\\min} = n+1`
    → `n+1`, `(x, y) = (1, 5)` → `(1, 5)`. Unchanged unless every item is one `name = value` whose value
    holds no other relation."""
    text = _NAMES_TUPLE.sub("", text, count=1)
    if "=" not in text:
        return text
    values = []
    for item in top_level_items(text):
        item = re.sub(r"^(?:\\[,;:! ]|\\q?quad|~|\\text\s*+\{\s*+and\s*+\}|and\s)*+", "", item)
        match = _NAMED.match(item)
        if not match or "=" in match.group(1) or _RELATION.search(match.group(1)):
            return text
        values.append(match.group(1))
    return ", ".join(values)


# ---------------------------------------------------------------- the pair

_HAS_RELATION = re.compile(r"=|<|>|\\(?:le|ge|leq|geq|ne|neq|lt|gt|in)(?![A-Za-z])")


_CURRENCY = re.compile(r"\\\$\s*+(?=-?[\d.])")


def canonical(text: str) -> str:
    """The rewrites that read one side alone: unicode, `\\left`/`\\right`, a `\\$` before a number,
    fraction braces, function arguments, ordinals, degree words."""
    text = _CURRENCY.sub("", unicode_as_latex(text))
    text = without_left_right(text)
    text = brace_arguments(text)
    text = parenthesise_arguments(text)
    text = ordinals_as_numbers(text)
    return degree_words_as_signs(text)


PROSE = re.compile(r"[A-Za-z'’]{2,}\s++[A-Za-z'’]{2,}\s++[A-Za-z'’]{2,}")
"""Three words in a row outside `\\text{}`: a sentence, not an answer."""


def is_prose(text: str) -> bool:
    """Whether `text` holds a sentence (three words in a row outside `\\text{…}`)."""
    return PROSE.search(_TEXT_BLOCK.sub(" ", text)) is not None


_NUMERIC = re.compile(r"[\d.,+\-/ ]*+")
"""Numbers alone (most answers): nothing to rewrite."""


def canonical_pair(answer: str, reference: str) -> tuple[str, str]:
    """An answer and its reference in one notation (see the module's docstring). The rewrites that depend
    on the other side: degrees as radians against π, a vector matrix as a tuple against a tuple, relations
    and set-builder sets as intervals against intervals, names dropped against values without names.
    A side that is prose (`is_prose`) is left as it is: it is math-verify's to read."""
    if (_NUMERIC.fullmatch(answer) and _NUMERIC.fullmatch(reference)) or is_prose(answer) or is_prose(reference):
        return answer, reference
    answer, reference = canonical(answer), canonical(reference)
    sides = [answer, reference]
    for i in (0, 1):
        this, other = sides[i], sides[1 - i]
        if DEGREES.search(this) and not DEGREES.search(other) and "\\pi" in other and "\\pi" not in this:
            sides[i] = degrees_as_radians(this)
    sides = [strip_units(side) for side in sides]
    for i in (0, 1):
        this, other = sides[i], sides[1 - i]
        if "matrix" in this and "matrix" not in other:
            sides[i] = matrix_as_tuple(this)
    for i in (0, 1):
        this, other = sides[i], sides[1 - i]
        builder = set_builder_condition(this)
        if builder is not None:
            this = builder[1]
        if builder is not None or _names_an_interval(other):
            sides[i] = relations_as_intervals(this) or this
    for i in (0, 1):
        if not _HAS_RELATION.search(sides[1 - i]):
            sides[i] = drop_component_names(sides[i])
    return sides[0], sides[1]


_PLUS_MINUS = re.compile(r"\\(pm|mp)(?![A-Za-z])")
MAX_PLUS_MINUS = 4
"""At most this many ± in one answer are expanded (2^4 = 16 values)."""


def plus_minus_expansions(text: str) -> list[str]:
    """The values a text with ± stands for, as one list each: `(\\pm 1, \\pm 2)` →
    [`(1, 2), (1, -2), (-1, 2), (-1, -2)`]; `(\\pm 1, \\mp 2)` → [`(1, -2), (-1, 2)`] (a ∓ ties every sign
    to one choice); `1 \\pm \\sqrt{2}` → [`1 + \\sqrt{2}, 1 - \\sqrt{2}`]. [] without ± or with more than
    `MAX_PLUS_MINUS`.

    Independent signs are the plain reading of `(\\pm 1, \\pm 2)`; an answer of only the two tuples with
    equal signs names half of them, and is not accepted for it."""
    signs = _PLUS_MINUS.findall(text)
    if not signs or len(signs) > MAX_PLUS_MINUS:
        return []
    pieces = _PLUS_MINUS.split(text)[::2]  # the text between the signs
    choices = [(1,), (-1,)] if "mp" in signs else list(itertools.product((1, -1), repeat=len(signs)))
    values = []
    for choice in choices:
        chosen = choice * len(signs) if len(choice) == 1 else choice
        out = [pieces[0]]
        for sign, flip, piece in zip(signs, chosen, pieces[1:], strict=True):
            positive = (flip == 1) == (sign == "pm")
            leading = not out[-1].strip() or out[-1].rstrip()[-1] in "(,[{"
            out.append(("" if leading else "+") if positive else "-")
            out.append(piece)
        values.append("".join(out).strip())
    return [", ".join(values)]
