"""A hybrid-thinking student learns both modes from one mixed file (issue 26): a tiny Qwen3 (architecture and
template) trained on records with reasoning and records without answers a trained prompt with its reasoning
when thinking is on, and with the answer alone when it is off (greedy, through distill generate).
"""

from __future__ import annotations

import json

import pytest

from distill.generate import GenerateConfig, generate
from distill.options import DEFAULT_TEMPLATE
from distill.traces import read_traces
from distill.train import TrainConfig, train
from tests.conftest import write_jsonl

PROBLEMS = {"a": ("What is 3 + 4?", "Three plus four makes seven.", "The answer is \\boxed{7}."),
            "b": ("What is 5 + 1?", "Five and one more is six.", "The answer is \\boxed{6}.")}


def records() -> list[dict]:
    """Each problem twice: with its reasoning (thinking mode) and with the answer alone (non-thinking mode)."""
    rows = []
    for key, (problem, reasoning, answer) in PROBLEMS.items():
        messages = [{"role": "user", "content": DEFAULT_TEMPLATE.replace("{problem}", problem)}]
        rows.append({"id": f"{key}:0", "prompt_id": key, "sample": 0, "messages": messages,
                     "completion": f"<think>\n{reasoning}\n</think>\n\n{answer}"})
        rows.append({"id": f"{key}:1", "prompt_id": key, "sample": 1, "messages": messages, "completion": answer})
    return rows


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """The tiny Qwen3 trained in full on the mixed file until it has learnt it by heart."""
    import torch

    from distill.tiny import save_tiny

    root = tmp_path_factory.mktemp("hybrid")
    corpus = [text for row in records() for text in (row["messages"][0]["content"], row["completion"])] * 4
    base = save_tiny(root / "qwen3", "qwen3", corpus=corpus, vocab_size=400)
    kept = write_jsonl(root / "kept.jsonl", records())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train(TrainConfig(kept=str(kept), student=str(base), out=str(root / "student"), method="full",
                                   max_seq_len=256, batch_tokens=256, epochs=150, lr=1e-2, warmup_ratio=0.0,
                                   lr_scheduler="constant",
                                   save_steps=0, seed=0))
    finally:
        torch.set_num_threads(threads)
    history = json.loads((root / "student" / "train_summary.json").read_text())["log_history"]
    assert [e["loss"] for e in history if "loss" in e][-1] < 0.05, history[-3:]
    assert result.steps > 0
    return root / "student"


def greedy(student, tmp_path, kwargs: dict) -> dict[str, str]:
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": key, "problem": problem}
                                                 for key, (problem, _, _) in PROBLEMS.items()])
    out = tmp_path / f"{json.dumps(kwargs, sort_keys=True).replace(' ', '')}.jsonl"
    summary = generate(GenerateConfig(prompts=str(prompts), teacher=str(student), out=str(out), backend="hf", n=1,
                                      temperature=0.0, max_tokens=48, chat_template_kwargs=json.dumps(kwargs)))
    return {r["prompt_id"]: r["completion"] for _, r in read_traces(summary.output)}


def test_a_qwen3_student_reasons_in_thinking_mode_and_answers_plainly_in_non_thinking_mode(student, tmp_path):
    thinking = greedy(student, tmp_path, {"enable_thinking": True})
    plain = greedy(student, tmp_path, {"enable_thinking": False})
    for key, (_, reasoning, answer) in PROBLEMS.items():
        assert thinking[key] == f"<think>\n{reasoning}\n</think>\n\n{answer}", thinking[key]
        assert plain[key] == answer, plain[key]
