"""Kept-trace files for the trainer tests: small R1-style records with reasoning of varied length."""

from __future__ import annotations

import random
from pathlib import Path

from tests.conftest import write_jsonl


def kept_record(i: int, reasoning: str, answer: str, **overrides) -> dict:
    record = {"id": f"q{i}:0", "prompt_id": f"q{i}", "sample": 0,
              "messages": [{"role": "user", "content": f"Problem {i}: what is {i} + {i + 1}?"}],
              "reference": str(2 * i + 1), "completion": f"<think>\n{reasoning}\n</think>\n\n{answer}",
              "finish_reason": "stop", "completion_tokens": 40, "teacher": "tiny-r1",
              "params": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 256, "seed": 0}}
    record.update(overrides)
    return record


def kept_records(count: int, *, seed: int = 0, max_steps: int = 8) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for i in range(count):
        steps = " ".join(f"Step {k}: {i} plus {k} is {i + k}." for k in range(rng.randint(1, max_steps)))
        records.append(kept_record(i, f"Let me add {i} and {i + 1}. {steps} Wait, check: yes.",
                                   f"The answer is \\boxed{{{2 * i + 1}}}."))
    return records


def write_kept(path: Path, count: int = 16, **kwargs) -> Path:
    return write_jsonl(path, kept_records(count, **kwargs))
