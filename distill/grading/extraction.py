"""Finding the final answer in a completion: the last `\\boxed{…}` and the boxes listed with it, the
answer patterns ('The final answer is …', GSM8K's '####'), the option letters a multiple-choice answer picks.

    answer = extract_answer(completion)    # the last \\boxed{…} (and those listed with it), then the fallbacks
    letters = extract_choice(completion)   # frozenset({'B'})

Every search here takes bounded time whatever the teacher wrote (`ANSWER_WINDOW`, `_BOX_REACH`,
`_BOX_GROUP_LIMIT`). The letters and the spelling of what is found are `normalisation`'s to read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from distill.grading.normalisation import choice_letters, strip_delimiters, unwrap_text
from distill.grading.notation import is_prose

BOXED = "boxed"
"""The answer pattern name for the last \\boxed{…} (or \\fbox{…}) with balanced braces, joined with the boxes
listed right before it (`boxed_answers`)."""
DEFAULT_ANSWER_PATTERNS = (
    BOXED,
    r"####\s*+(.+)",  # GSM8K
    r"(?i)\bfinal answer\**+[ \t]*+(?:is(?:\s*+:)?|:|(?=[ \t]*+\n))\**+\s*+(.+)",
    r"(?i)\banswer\**+\s*+(?:is(?:\s*+:)?|:)\**+\s*+(.+)",
)
"""Tried in order until one matches; within a pattern the last match counts (the final answer).
The answer runs to the end of its line (the caller strips it), or to the end of a display-math block
that opens there (`\\[` on its own line). A 'Final Answer' heading (`**Final Answer**`, `## Final
Answer`) with the answer on the next line counts, and bold around 'Answer:' is skipped. Every `\\s*`
is possessive (`*+`): the token after it is never whitespace, so it matches the same, but a long run
of spaces can no longer be split between two quantifiers, which took quadratic time (20,000 spaces:
12 s)."""
ANSWER_WINDOW = 4096
"""The regex patterns search only this many characters at the end of the answer text
(`answer_window`), where a final answer is stated: this bounds the time any pattern, a user's
included, can take on one record, whatever the teacher wrote."""


# ---------------------------------------------------------------- boxes

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


# ---------------------------------------------------------------- patterns

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
    results and ends 'The final answer is $10,455$.' is graded by 10,455. A prose
    restatement ('The answer is the point (2, 3), which lies on both lines') is
    not: the box stays the answer.

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
                                 if found and _MATHLIKE.search(found) and not is_prose(_first_sentence(found))),
                                None)
            found = restated or strip_delimiters(BOX_JOINER.join(group[0]))
        else:
            window = answer_window(text) if window is None else window
            found = _pattern_answer(window, pattern)
        if found:
            return found
    return None


_MATHLIKE = re.compile(r"[\d$\\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _first_sentence(text: str) -> str:
    """'"$12$ and $13$". I hope it is correct' -> '"$12$ and $13$".': a restatement is judged by the
    sentence that states it, not by the pleasantry after it."""
    return _SENTENCE_END.split(text, maxsplit=1)[0]
_BOX_TAIL = 3
"""Characters after the last box (spaces aside) that cannot hold a restated answer ('$.', '\\].', '$$.')."""


def _pattern_answer(window: str, pattern: str) -> str | None:
    """The first group of `pattern`'s last match in `window`, its delimiters stripped. A match that
    holds another ('Final Answer: The final answer is $5$') is read down to the innermost."""
    matches = list(re.finditer(pattern, window, flags=re.MULTILINE))
    if not matches:
        return None
    found = matches[-1].group(1)
    display = _DISPLAY_OPENING.match(found)
    if display:  # '\\[' alone on its line: the answer is the block it opens
        closing = window.find(_DISPLAY[display.group(1)], matches[-1].end(1))
        if 0 <= closing - matches[-1].end(1) <= _DISPLAY_REACH:
            found = window[matches[-1].start(1):closing + len(_DISPLAY[display.group(1)])]
    while found:
        inner = re.search(pattern, found, flags=re.MULTILINE)
        if inner is None or not inner.group(1) or len(inner.group(1)) >= len(found):
            break
        found = inner.group(1)
    return (strip_delimiters(_leading_math(found)) or None) if found else None


_DISPLAY = {"\\[": "\\]", "$$": "$$"}
_DISPLAY_OPENING = re.compile(r"^\s*+(\\\[|\$\$)\s*+$")
_DISPLAY_REACH = 500
"""A display block opened on the answer's line closes within this many characters, or is no answer."""
_LEADING_MATH = re.compile(r"\s*+(\$\$?|\\\(|\\\[)(.+?)(?:\$\$?|\\\)|\\\])"
                           r"(?=[.!;]\s|,\s*+(?!and\b|or\b)[A-Za-z])")


def _leading_math(found: str) -> str:
    """The math span a pattern's answer starts with, when a new sentence or a clause follows it
    ('$\\frac{1}{2}$, since half of 10 is 5'): the statement of the answer ends there."""
    match = _LEADING_MATH.match(found)
    return match.group(2) if match else found


# ---------------------------------------------------------------- choice letters


_LEADING_LETTER = re.compile(r"^[\s*]*+(?:\(([A-J])\)|([A-J])[.:)])\**+\s++\S")
"""A letter in brackets or with a period, colon or bracket, opening a short answer ('D. It cannot be A
or B', '**(C)** since …'); a bare capital is no letter here: 'A student …' starts with an article."""
_LEADING_LETTER_REACH = 300
"""Only an answer text this short opens with its letter; a longer one may open with a list item."""


def extract_choice(text: str) -> frozenset[str] | None:
    """The letters (A-J) a multiple-choice answer picks: from `\\boxed{B}`, `(B)`, `B.`, 'answer is B', and
    a short answer that opens with its letter ('D. It cannot be A or B')."""
    window = answer_window(text)
    # the whole text may be the letter, but the end of a longer one is not an answer on its own
    whole = window if len(window) < ANSWER_WINDOW else None
    boxes = boxed_answers(text)
    candidates = [c for c in (BOX_JOINER.join(boxes) if boxes else None, whole) if c]
    for candidate in candidates:
        letters = choice_letters(unwrap_text(candidate))
        if letters:
            return letters
    if whole is not None and len(whole) <= _LEADING_LETTER_REACH:
        leading = _LEADING_LETTER.match(whole)
        if leading:  # 'D. It cannot be A or B': the letter it opens with, then why
            return frozenset(leading.group(1) or leading.group(2))
    stated = re.findall(r"(?i)answer\s*+(?:is|:)?\s*+\**+\s*+\(?([A-J])\)?(?![A-Za-z])", window)
    return frozenset(stated[-1].upper()) if stated else None
