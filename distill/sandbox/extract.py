"""Find the program in a model's answer: the final fenced code block."""

from __future__ import annotations

import re

from distill.shape import THINK_CLOSE, THINK_OPEN

# CommonMark fences: three or more backticks or tildes, indented at most three spaces; a backtick
# fence's info string cannot contain a backtick (so "```a``` inline" is not a fence).
_OPENING = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}(?=[^`]*$)|~{3,})\s*(?P<info>.*?)\s*$")
_LANGUAGE_TAGS = {"python": {"python", "py", "python3", "py3"}}


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, code) of every fenced block in `text`, in order; an unclosed last block runs to the end."""
    blocks: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _OPENING.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        info = opening["info"].split()
        tag = info[0].lower().lstrip("{.").rstrip("}") if info else ""
        body: list[str] = []
        i += 1
        while i < len(lines) and not closing.match(lines[i]):
            line = lines[i]
            # the fence's own indentation is not part of the code (a block inside a list item)
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))):])
            i += 1
        blocks.append((tag, "\n".join(body) + "\n" if body else ""))
        i += 1
    return blocks


def extract_code(answer: str, language: str = "python") -> str | None:
    """The final code block of an answer, or None when there is none.

    Only the text after the last `</think>` counts: drafts in the reasoning are not the answer, and
    a completion whose reasoning never ended has no answer. The last block tagged with the language
    wins (```python, ```py, ```python3); untagged ``` blocks are used only when no block is tagged,
    so an example-output block after the code is not mistaken for it.
    """
    if THINK_CLOSE in answer:
        answer = answer.rpartition(THINK_CLOSE)[2]
    elif THINK_OPEN in answer:
        return None
    tags = _LANGUAGE_TAGS.get(language.lower(), {language.lower()})
    blocks = [(tag, code) for tag, code in fenced_blocks(answer) if code.strip()]
    tagged = [code for tag, code in blocks if tag in tags]
    untagged = [code for tag, code in blocks if tag == ""]
    chosen = tagged or untagged
    return chosen[-1] if chosen else None
