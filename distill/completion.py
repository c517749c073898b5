"""The shape of a reasoning completion: `<think>\\n{reasoning}\\n</think>\\n\\n{answer}`.

Shared by generate (which must store the whole reasoning), the filter's format
check and the trainer's target rendering.
"""

from __future__ import annotations

import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def join_reasoning(reasoning: str, answer: str, *, open_tag: str = THINK_OPEN,
                   close_tag: str = THINK_CLOSE) -> str:
    """The canonical completion text for a reasoning and an answer."""
    return f"{open_tag}\n{reasoning.strip()}\n{close_tag}\n\n{answer.strip()}"


def split_reasoning(completion: str, *, open_tag: str = THINK_OPEN,
                    close_tag: str = THINK_CLOSE) -> tuple[str, str] | None:
    """(reasoning, answer) of a completion with exactly one well-formed think block, else None.

    The block must open the completion (leading whitespace aside).
    """
    text = completion.lstrip()
    if not text.startswith(open_tag) or text.count(open_tag) != 1 or text.count(close_tag) != 1:
        return None
    reasoning, _, answer = text[len(open_tag):].partition(close_tag)
    return reasoning.strip(), answer.strip()


def generation_prefill(prompt_text: str, open_tag: str = THINK_OPEN) -> str:
    """The part of a think block that a chat template already wrote into the generation prompt.

    Newer DeepSeek-R1-Distill (and QwQ, Qwen3 thinking) templates end the
    generation prompt with '<think>\\n', so the model's output starts inside the
    reasoning. That prefix is returned here so the stored completion can start
    with it again; '' when the template pre-fills nothing.
    """
    match = re.search(re.escape(open_tag) + r"\s*$", prompt_text)
    return match.group(0) if match else ""


def restore_prefill(prefill: str, text: str, open_tag: str = THINK_OPEN) -> str:
    """Put the template's pre-filled `<think>` back in front of a completion (never twice)."""
    if not prefill or text.lstrip().startswith(open_tag):
        return text
    return prefill + text


def fold_reasoning_field(reasoning: str | None, content: str | None, open_tag: str = THINK_OPEN,
                         close_tag: str = THINK_CLOSE) -> str:
    """One completion text from an API reply that returns the reasoning in a separate field.

    DeepSeek's API and servers run with a reasoning parser (vLLM's
    `--reasoning-parser deepseek_r1`) return `reasoning_content` beside `content`;
    the trace keeps both, folded back into one `<think>` block.
    """
    content = content or ""
    if reasoning:
        return f"{open_tag}\n{reasoning.strip(chr(10))}\n{close_tag}\n\n{content.lstrip(chr(10))}"
    # A server without a reasoning parser whose template pre-fills '<think>\n' returns the
    # reasoning without its opening tag: restore it so the trace holds the whole block.
    if close_tag in content and open_tag not in content:
        return f"{open_tag}\n{content}"
    return content
