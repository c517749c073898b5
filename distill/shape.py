"""The shape of a reasoning trace: where its reasoning is, where its answer is, and the one
canonical form the rest of the pipeline reads.

Teachers mark their reasoning differently: DeepSeek-R1 writes `<think>…</think>` before the
answer, other models use other tags, APIs with a reasoning parser return the reasoning in a
field of its own (`reasoning_content`) beside an answer-only completion, and gpt-oss writes
harmony channels (its reasoning in an `analysis` message, its answer in a `final` one). `TraceShape` names one of
these layouts; the filter's checks read traces through it, and what the filter keeps is rewritten
into the canonical form

    <think>\\n{reasoning}\\n</think>\\n\\n{answer}

which is what train renders for the student and what every generated trace (eval's, the demo's)
already looks like. The text-level helpers below are what generate uses to produce that form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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
                         close_tag: str = THINK_CLOSE, *, cut: bool = False) -> str:
    """One completion text from an API reply that returns the reasoning in a separate field.

    DeepSeek's API and servers run with a reasoning parser (vLLM's
    `--reasoning-parser deepseek_r1`, whose field is `reasoning` since vLLM 0.11)
    return the reasoning beside `content`; the trace keeps both, folded back into one
    `<think>` block. `cut`: the sample hit max_tokens. With no content, it was then cut
    inside its reasoning (the parser calls all of an unclosed output reasoning), so the
    block stays open, as the model left it and as the vllm backend stores it.
    """
    content = content or ""
    if reasoning and cut and not content:
        return f"{open_tag}\n{reasoning.lstrip(chr(10))}"
    if reasoning:
        return f"{open_tag}\n{reasoning.strip(chr(10))}\n{close_tag}\n\n{content.lstrip(chr(10))}"
    # A server without a reasoning parser whose template pre-fills '<think>\n' returns the
    # reasoning without its opening tag: restore it so the trace holds the whole block.
    if close_tag in content and open_tag not in content:
        return f"{open_tag}\n{content}"
    return content


# gpt-oss's harmony format: every message is '<|start|>{role}<|channel|>{channel}<|message|>{text}' ended by
# <|end|> (or <|return|> at the end of the turn, <|call|> before a tool call). The generation prompt ends
# with '<|start|>assistant', so a completion starts at the first message's '<|channel|>'.
HARMONY_MARKERS = ("<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>", "<|constrain|>")
_HARMONY_MESSAGE = re.compile(
    r"(?:<\|start\|>[^<]*)?<\|channel\|>([^<]*?)(?:<\|constrain\|>[^<]*)?<\|message\|>(.*?)"
    r"(?=<\|end\|>|<\|return\|>|<\|call\|>|<\|start\|>|<\|channel\|>|$)", re.DOTALL)
REASONING_CHANNELS = ("analysis", "commentary")
"""Harmony channels that hold reasoning (commentary: the preambles of tool calls); `final` holds the answer."""


def has_channels(text: str) -> bool:
    """Whether `text` is harmony markup (a completion whose channel markers were decoded as text)."""
    return "<|channel|>" in text and "<|message|>" in text


def split_channels(text: str) -> tuple[str, str | None] | None:
    """(reasoning, answer) of a harmony completion: the analysis (and commentary) messages joined, and the
    final message, None when there is none (cut inside the reasoning); None when `text` has no channel
    markup. Channel names are read as the first word after <|channel|> ('final to=…' is final)."""
    if not has_channels(text):
        return None
    reasoning, answers = [], []
    for channel, body in _HARMONY_MESSAGE.findall(text):
        name = (channel.split() or [""])[0]
        body = _drop_markers(body).strip()
        if name == "final":
            answers.append(body)
        elif name in REASONING_CHANNELS or not name:
            reasoning.append(body)
    return "\n\n".join(part for part in reasoning if part), ("\n\n".join(answers) if answers else None)


def _drop_markers(text: str) -> str:
    for marker in HARMONY_MARKERS:
        text = text.replace(marker, "")
    return text


def fold_channels(text: str, *, cut: bool = False) -> str:
    """The canonical completion of a harmony completion.

    Analysis → the think block, final → the answer. Without a final message the reasoning stays an open
    `<think>` block, as a reasoning cut short is stored (and as the filter's format check rejects it).
    Text without channel markup is returned as decoding without special tokens would have left it (stray
    markers dropped)."""
    parts = split_channels(text)
    if parts is None:
        return _drop_markers(text)
    reasoning, answer = parts
    if answer is None:
        return f"{THINK_OPEN}\n{reasoning}" if reasoning else ""
    return fold_reasoning_field(reasoning, answer, cut=cut)


@dataclass(frozen=True)
class TraceShape:
    """Where a trace record keeps its reasoning and its answer."""

    think_open: str = THINK_OPEN
    """the marker that opens the reasoning in the completion"""
    think_close: str = THINK_CLOSE
    """the marker that closes it"""
    reasoning_field: str | None = None
    """the record field holding the reasoning (e.g. reasoning_content); the completion is then the answer alone"""
    channels: bool = False
    """harmony channels in the completion (gpt-oss): the analysis message is the reasoning, the final one the answer"""

    @property
    def is_canonical(self) -> bool:
        """Whether records of this shape already are in the canonical form (nothing to rewrite)."""
        return self == CANONICAL

    def _markers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.think_open, self.think_close, THINK_OPEN, THINK_CLOSE)))

    def split(self, record: dict[str, Any]) -> tuple[str, str] | None:
        """(reasoning, answer) of a well-formed trace, else None.

        Well-formed: one reasoning block opening the completion (or a string reasoning field and no
        marker in the completion), and no marker inside the reasoning or the answer, since either
        would break the canonical form.
        """
        completion = record.get("completion") or ""
        if self.channels:
            found = split_channels(completion)
            if found is None or found[1] is None or not found[0]:
                return None
            parts = found[0], found[1]
        elif self.reasoning_field:
            reasoning = record.get(self.reasoning_field)
            if not isinstance(reasoning, str):
                return None
            parts = reasoning.strip(), completion.strip()
        else:
            parts = split_reasoning(completion, open_tag=self.think_open, close_tag=self.think_close)
            if parts is None or self.is_canonical:
                return parts
        return None if any(marker in part for part in parts for marker in self._markers()) else parts

    def malformed(self, record: dict[str, Any]) -> str:
        """Why `split` finds no (reasoning, answer) in the record, in a few words ('' when it does)."""
        if self.split(record) is not None:
            return ""
        completion = record.get("completion") or ""
        if self.channels:
            found = split_channels(completion)
            if found is None:
                return "no harmony channels (<|channel|>…<|message|>)"
            if found[1] is None:
                return "no final channel (cut inside the analysis?)"
            return "an empty analysis channel" if not found[0] else \
                f"{THINK_OPEN} or {THINK_CLOSE} inside the reasoning or the answer"
        if self.reasoning_field:
            reasoning = record.get(self.reasoning_field)
            if not isinstance(reasoning, str):
                return f"no string field '{self.reasoning_field}'"
            return "think markers in the answer" if any(m in completion for m in self._markers()) \
                else "think markers in the reasoning"
        opens, closes = completion.count(self.think_open), completion.count(self.think_close)
        if opens != 1 or closes != 1:
            return f"{opens}× {self.think_open}, {closes}× {self.think_close}"
        if not completion.lstrip().startswith(self.think_open):
            return f"text before {self.think_open}"
        return f"{THINK_OPEN} or {THINK_CLOSE} inside the reasoning or the answer"

    def answer(self, record: dict[str, Any]) -> str:
        """The text after the reasoning: what answer extraction reads (the whole completion when no
        close marker is there, so a trace without reasoning can still be graded)."""
        completion = record.get("completion") or ""
        if self.channels:
            found = split_channels(completion)
            return completion if found is None else found[1] or ""
        if self.reasoning_field:
            return completion
        return completion.rpartition(self.think_close)[2] if self.think_close in completion else completion

    def full_text(self, record: dict[str, Any]) -> str:
        """The whole completion as the student learns it: the canonical form, the reasoning field
        folded in and the markers replaced by `<think>` / `</think>`. A trace that does not split is
        measured as written (with its reasoning field folded in when it has one)."""
        completion = record.get("completion") or ""
        parts = None if self.is_canonical else self.split(record)
        if parts is not None:
            return join_reasoning(*parts)
        if self.channels:
            return fold_channels(completion)
        reasoning = record.get(self.reasoning_field) if self.reasoning_field else None
        if isinstance(reasoning, str) and reasoning.strip():
            return join_reasoning(reasoning, completion)
        return completion

    def canonical(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record as the filter writes it to kept.jsonl: the completion in the canonical form and the
        reasoning field folded into it (so train reads it with no shape options). Records of the
        canonical shape, and records that do not split, are returned unchanged."""
        if self.is_canonical or self.split(record) is None:
            return record
        out = {key: value for key, value in record.items() if key != self.reasoning_field}
        out["completion"] = self.full_text(record)
        return out


CANONICAL = TraceShape()
"""`<think>…</think>` then the answer, all in the completion: what kept.jsonl holds and train reads."""
