"""The format and finish checks, and the trace shape every check reads the traces through."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from distill.checks.base import Check, Reasons, Verdict
from distill.config import MUST_MATCH, Options, project, require
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


@dataclass(kw_only=True)
class FormatOptions(Options):
    """The format check's options. The reasoning markers and field are also the trace shape (`shape`)
    every other check reads the traces through, and the filter writes kept records in."""

    think_open: str = field(default="<think>", metadata=MUST_MATCH)
    """format: the marker that opens the reasoning."""
    think_close: str = field(default="</think>", metadata=MUST_MATCH)
    """format: the marker that closes the reasoning."""
    reasoning_field: str | None = field(default=None, metadata=MUST_MATCH)
    """format: read the reasoning from this record field (e.g. reasoning_content) instead of a think block in the completion; kept records get it folded into a <think> block."""
    reasoning_channels: bool = field(default=False, metadata=MUST_MATCH)
    """format: the completions are harmony channels as gpt-oss writes them (<|channel|>analysis<|message|>…, then final): analysis is the reasoning, final the answer; kept records get the <think> block."""
    leftover_tokens: list[str] = field(default_factory=lambda: list(LEFTOVER_TOKENS), metadata=MUST_MATCH)
    """format: chat-template tokens that must not appear in a completion (default: ChatML, Llama-3, DeepSeek, Gemma, Phi, Mistral)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.think_open) and bool(self.think_close), "think_open", "and --think-close must not be empty")
        require(not (self.reasoning_channels and self.reasoning_field), "reasoning_channels",
                "and --reasoning-field are two places for the reasoning; give one")

    @property
    def shape(self) -> TraceShape:
        """Where the traces keep their reasoning (--think-open, --think-close, --reasoning-field, --reasoning-channels)."""
        return TraceShape(self.think_open, self.think_close, self.reasoning_field, self.reasoning_channels)


@dataclass(frozen=True)
class FormatCheck(Check):
    """Exactly one well-formed reasoning block, non-empty reasoning, a non-empty answer after it,
    and no chat-template token left in the text."""

    name: ClassVar[str] = "format"
    option_group: ClassVar[type[Options]] = FormatOptions
    summary: ClassVar[type[Reasons]] = Reasons
    options: FormatOptions = field(default_factory=FormatOptions)

    @classmethod
    def from_config(cls, cfg: Any) -> FormatCheck:
        return cls(project(FormatOptions, cfg))

    @property
    def shape(self) -> TraceShape:
        return self.options.shape

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
        leftover = next((token for token in self.options.leftover_tokens if token in text), None)
        return f"leftover {leftover}" if leftover else ""

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        problem = self.problem(record)
        if problem and details is not None:
            details["format"] = problem
        return not problem


@dataclass(frozen=True)
class FinishCheck(Check):
    """The teacher stopped by itself; a trace cut at the length limit is rejected, never repaired."""

    name: ClassVar[str] = "finish"
    fields: ClassVar[tuple[str, ...]] = ("finish_reason",)

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        reason = record.get("finish_reason")
        return None if reason is None else reason == "stop"


def shape_of(cfg: Any) -> TraceShape:
    """The trace shape of a config that composes FormatOptions (the canonical one for a config without)."""
    return cfg.shape if isinstance(cfg, FormatOptions) else CANONICAL
