"""One trace record as the viewer shows it: the prompt, the reasoning and the answer apart, the final
answer as grading extracts it beside the reference, and each check's verdict with what it measured.

Everything returned is plain data (strings, numbers): the page puts text in with textContent, so the
model's text is never markup. Nothing here decides a verdict; it only reads what the stages wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from distill.grading import extract_answer
from distill.shape import CANONICAL, THINK_CLOSE, THINK_OPEN, TraceShape

REASONING_FIELDS = ("reasoning_content", "reasoning")
"""Fields in which API traces keep the reasoning beside an answer-only completion (before the filter folds it
into a <think> block)."""

PREVIEW_CHARS = 160

# filter_details keys that belong to a check whose name they do not start with
_DETAIL_OWNER = {"tokens": "length", "foreign_run": "language", "foreign_text": "language", "repeats": "repetition",
                 "answer": "correctness", "reference_kind": "correctness"}


@dataclass(frozen=True)
class Completion:
    reasoning: str | None
    """the text of the think block (None when the completion has none)"""
    answer: str
    """what follows the reasoning: what answer extraction reads"""
    cut: bool
    """the reasoning was never closed (finish_reason 'length' inside the think block)"""


def split_completion(record: dict[str, Any]) -> Completion:
    """The reasoning and the answer, also of a malformed trace (two blocks, text before <think>): the
    answer is what grading reads (`TraceShape.answer`), the reasoning everything before the last </think>."""
    completion = record.get("completion") or ""
    for name in REASONING_FIELDS:
        if isinstance(record.get(name), str) and THINK_OPEN not in completion:
            parts = TraceShape(reasoning_field=name).split(record)
            if parts is not None:
                return Completion(parts[0], parts[1], False)
    parts = CANONICAL.split(record)
    if parts is not None:
        return Completion(parts[0], parts[1], False)
    if THINK_CLOSE in completion:
        before = completion.rpartition(THINK_CLOSE)[0].lstrip()
        return Completion(before.removeprefix(THINK_OPEN).strip("\n"), CANONICAL.answer(record).strip(), False)
    if completion.lstrip().startswith(THINK_OPEN):
        return Completion(completion.lstrip()[len(THINK_OPEN):].strip("\n"), "", True)
    return Completion(None, completion.strip(), False)


def prompt_text(record: dict[str, Any]) -> str:
    """The user turns of the prompt, joined (what the filter's checks read as the prompt)."""
    messages = record.get("messages") or []
    return "\n".join(m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user")


def extracted_answer(record: dict[str, Any], completion: Completion) -> str | None:
    """The final answer: as the filter recorded it, else as `distill.grading.extract_answer` finds it."""
    details = record.get("filter_details")
    if isinstance(details, dict) and isinstance(details.get("answer"), str):
        return details["answer"]
    if completion.cut or not completion.answer:
        return None
    return extract_answer(completion.answer)


def reference_text(reference: Any) -> str | None:
    if reference is None or isinstance(reference, str):
        return reference
    return json.dumps(reference, indent=2, ensure_ascii=False)


def searchable(record: dict[str, Any], where: str) -> str:
    """The text a full-text search looks in: 'prompt', 'reasoning', 'answer', or 'all' of them."""
    completion = split_completion(record)
    parts = {"prompt": prompt_text(record), "reasoning": completion.reasoning or "", "answer": completion.answer}
    if where in parts:
        return parts[where]
    return "\n".join([*parts.values(), reference_text(record.get("reference")) or ""])


def _clip(text: str | None, limit: int = PREVIEW_CHARS) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def preview(record: dict[str, Any]) -> dict[str, Any]:
    """The few fields a row of the record list shows."""
    completion = split_completion(record)
    return {"prompt": _clip(prompt_text(record)), "answer": _clip(extracted_answer(record, completion), 80),
            "reference": _clip(reference_text(record.get("reference")), 80),
            "reasoning_chars": len(completion.reasoning or ""), "cut": completion.cut}


def check_details(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Each check in the order it ran: its verdict, whether it ran, and the filter_details it wrote."""
    verdicts = record.get("verdicts") if isinstance(record.get("verdicts"), dict) else {}
    details = record.get("filter_details") if isinstance(record.get("filter_details"), dict) else {}
    not_run = set(details.get("not_run") or ())
    rejected_by = set(record.get("rejected_by") or ())
    owned: dict[str, dict[str, Any]] = {check: {} for check in verdicts}
    for key, value in details.items():
        if key == "not_run":
            continue
        owner = _DETAIL_OWNER.get(key) or next(
            (check for check in verdicts if key == check or key.startswith(check + "_")), "other")
        owned.setdefault(owner, {})[key] = value
    rows = [{"check": check, "verdict": verdicts[check], "ran": check not in not_run,
             "rejected": check in rejected_by, "details": owned.get(check, {})} for check in verdicts]
    if owned.get("other"):
        rows.append({"check": "other", "verdict": None, "ran": False, "rejected": False, "details": owned["other"]})
    return rows


def record_view(record: dict[str, Any], *, with_reasoning: bool = True) -> dict[str, Any]:
    """Everything the record page shows, as plain data (the reasoning left out for the side-by-side cards,
    which fetch it when opened)."""
    completion = split_completion(record)
    messages = [{"role": str(m.get("role")), "content": str(m.get("content"))}
                for m in record.get("messages") or [] if isinstance(m, dict)]
    view = {
        "id": record.get("id"), "prompt_id": record.get("prompt_id"), "sample": record.get("sample"),
        "messages": messages, "reference": reference_text(record.get("reference")),
        "reference_is_code": isinstance(record.get("reference"), (dict, list)),
        "answer": completion.answer, "extracted": extracted_answer(record, completion),
        "reasoning_chars": len(completion.reasoning or ""), "has_reasoning": completion.reasoning is not None,
        "cut": completion.cut, "finish_reason": record.get("finish_reason"),
        "completion_tokens": record.get("completion_tokens"), "teacher": record.get("teacher"),
        "params": record.get("params"), "source": record.get("source"),
        "rejected_by": list(record.get("rejected_by") or []), "checks": check_details(record),
    }
    if with_reasoning:
        view["reasoning"] = completion.reasoning
    return view
