"""The format and finish checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from distill.checks.base import Verdict
from distill.shape import CANONICAL, TraceShape

LEFTOVER_TOKENS = (
    # ChatML (Qwen, Yi, …) and Qwen's document end
    "<|im_start|>", "<|im_end|>", "<|endoftext|>",
    # Llama 3
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
    "<|eom_id|>", "<|python_tag|>",
    # DeepSeek V3 / R1 (full-width bars, '▁' in the name)
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜▁pad▁｜>",
    # Gemma, Phi-3, Mistral
    "<start_of_turn>", "<end_of_turn>", "<|user|>", "<|assistant|>", "<|end|>", "[INST]", "[/INST]",
)


@dataclass(frozen=True)
class FormatCheck:
    """Exactly one well-formed reasoning block, non-empty reasoning, a non-empty answer after it,
    and no chat-template token left in the text."""

    name: ClassVar[str] = "format"
    pooled: ClassVar[bool] = False
    fields: ClassVar[tuple[str, ...]] = ()
    reject_unknown: ClassVar[bool] = False
    shape: TraceShape = CANONICAL
    leftover_tokens: Sequence[str] = LEFTOVER_TOKENS

    @classmethod
    def from_config(cls, cfg: Any) -> FormatCheck:
        return cls(shape=cfg.shape, leftover_tokens=tuple(cfg.leftover_tokens))

    def problem(self, record: dict[str, Any]) -> str:
        """What is wrong with the format, in a few words ('' when nothing is)."""
        parts = self.shape.split(record)
        if parts is None:
            return self.shape.malformed(record)
        if not parts[0]:
            return "empty reasoning"
        if not parts[1]:
            return "no answer after the reasoning"
        text = self.shape.full_text(record)
        leftover = next((token for token in self.leftover_tokens if token in text), None)
        return f"leftover {leftover}" if leftover else ""

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        problem = self.problem(record)
        if problem and details is not None:
            details["format"] = problem
        return not problem


@dataclass(frozen=True)
class FinishCheck:
    """The teacher stopped by itself; a trace cut at the length limit is rejected, never repaired."""

    name: ClassVar[str] = "finish"
    pooled: ClassVar[bool] = False
    fields: ClassVar[tuple[str, ...]] = ("finish_reason",)
    reject_unknown: ClassVar[bool] = False

    @classmethod
    def from_config(cls, cfg: Any) -> FinishCheck:
        return cls()

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        reason = record.get("finish_reason")
        return None if reason is None else reason == "stop"
