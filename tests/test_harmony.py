"""gpt-oss-style teachers (harmony channels, issue 26): the reasoning in the analysis channel, the answer in
the final one, read into the one canonical trace `<think>\\n{reasoning}\\n</think>\\n\\n{answer}`.

The parser is tested on literal text; the backends' plumbing on a tiny harmony-template teacher trained
here to write one harmony completion (a random one writes the markers at random), decoded greedily by the
hf backend (and by the vLLM engine in tests/test_vllm_families.py), and on a server that sends the markup
as text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.shape import CANONICAL, TraceShape, fold_channels, split_channels
from tests.conftest import read_jsonl, run_cli, write_jsonl
from tests.scripted_server import ScriptedChatServer

HARMONY = ("<|channel|>analysis<|message|>Two plus two is four.<|end|>"
           "<|start|>assistant<|channel|>final<|message|>The answer is 4.<|return|>")
CANONICAL_TEXT = "<think>\nTwo plus two is four.\n</think>\n\nThe answer is 4."
CHANNELS = TraceShape(channels=True)
PROBLEM = "What is 2 + 2?"


# ---------------------------------------------------------------- the parser, literally


def test_analysis_is_the_reasoning_and_final_the_answer():
    assert split_channels(HARMONY) == ("Two plus two is four.", "The answer is 4.")
    assert fold_channels(HARMONY) == CANONICAL_TEXT
    # the final message may carry a recipient or a constraint, and the turn may end without <|return|>
    assert fold_channels("<|channel|>analysis<|message|>r<|end|><|start|>assistant<|channel|>final "
                         "<|constrain|>json<|message|>{}") == "<think>\nr\n</think>\n\n{}"
    # commentary (a tool call's preamble) is reasoning too, in order
    assert split_channels("<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>commentary"
                          "<|message|>b<|end|><|start|>assistant<|channel|>final<|message|>c") == ("a\n\nb", "c")


def test_a_completion_cut_inside_its_analysis_stays_an_open_think_block():
    assert split_channels("<|channel|>analysis<|message|>Two plus") == ("Two plus", None)
    assert fold_channels("<|channel|>analysis<|message|>Two plus", cut=True) == "<think>\nTwo plus"
    assert CHANNELS.split({"completion": "<|channel|>analysis<|message|>Two plus"}) is None
    assert CHANNELS.malformed({"completion": "<|channel|>analysis<|message|>Two plus"}) == \
        "no final channel (cut inside the analysis?)"


def test_text_without_channel_markup_is_left_as_written():
    for text in ("analysisTwo plus two.assistantfinal4", "<think>\nr\n</think>\n\n4", "The answer is 4."):
        assert split_channels(text) is None and fold_channels(text) == text
    # markers without a channel (a teacher that went astray) are dropped, as a decode without them would
    assert fold_channels("The answer<|end|> is 4.<|return|>") == "The answer is 4."


def test_the_channels_shape_reads_keeps_and_refuses_like_the_others():
    record = {"id": "a:0", "completion": HARMONY, "source": {}}
    assert CHANNELS.split(record) == ("Two plus two is four.", "The answer is 4.")
    assert CHANNELS.answer(record) == "The answer is 4." and CHANNELS.full_text(record) == CANONICAL_TEXT
    assert CHANNELS.canonical(record) == {"id": "a:0", "completion": CANONICAL_TEXT, "source": {}}
    assert CANONICAL.split(CHANNELS.canonical(record)) == CHANNELS.split(record)
    # a think marker the teacher wrote inside a channel would break the canonical block: not split
    smuggled = {"completion": HARMONY.replace("Two plus", "</think> Two plus")}
    assert CHANNELS.split(smuggled) is None
    assert CHANNELS.malformed(smuggled) == "<think> or </think> inside the reasoning or the answer"
    assert CHANNELS.malformed({"completion": "4"}) == "no harmony channels (<|channel|>…<|message|>)"


# ---------------------------------------------------------------- a tiny harmony teacher, trained to answer


def overfit_harmony_teacher(path: Path, steps: int = 120) -> Path:
    """A tiny harmony-template model (head size 64: vLLM's CPU attention runs it) trained until its greedy
    completion of PROBLEM (in generate's default user template) is HARMONY."""
    import torch

    from distill.chat import render_prompt
    from distill.options import DEFAULT_TEMPLATE
    from distill.tiny import build_model, build_tokenizer

    tokenizer = build_tokenizer("harmony", [HARMONY, DEFAULT_TEMPLATE.replace("{problem}", PROBLEM)] * 20, 400)
    model = build_model(tokenizer, "harmony", hidden_size=128, heads=2, kv_heads=1, seed=3)
    prompt = render_prompt(tokenizer, [{"role": "user", "content": DEFAULT_TEMPLATE.replace("{problem}", PROBLEM)}])
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(HARMONY, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + target_ids])
    labels = ids.clone()
    labels[0, :len(prompt_ids)] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 0.01, loss.item()
    model.eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def harmony_teacher(tmp_path_factory):
    return overfit_harmony_teacher(tmp_path_factory.mktemp("harmony") / "teacher")


@pytest.fixture
def problem(tmp_path):
    return write_jsonl(tmp_path / "p.jsonl", [{"id": "q", "problem": PROBLEM, "answer": "4"}])


def test_the_hf_backend_reads_a_harmony_teachers_channels(harmony_teacher, problem, tmp_path):
    """The markers are special tokens: decoded without them the completion would be 'analysisTwo plus two is
    four.assistantfinalThe answer is 4.', with no way to tell the reasoning from the answer."""
    out = tmp_path / "t.jsonl"
    result = run_cli("generate", problem, "--teacher", harmony_teacher, "--out", out, "--backend", "hf",
                     "--n", "1", "--temperature", "0", "--max-tokens", "64")
    assert result.returncode == 0, result.stderr
    [record] = read_jsonl(out)
    assert record["completion"] == CANONICAL_TEXT and record["finish_reason"] == "stop"
    # and the filter keeps it as it is: the format check, the answer graded from the final channel
    kept = run_cli("filter", out, "--out", tmp_path / "kept.jsonl", "--workers", "1", "--language", "en")
    assert kept.returncode == 0, kept.stderr
    assert [r["completion"] for r in read_jsonl(tmp_path / "kept.jsonl")] == [CANONICAL_TEXT]


def test_the_ray_stage_reads_a_harmony_sample_from_its_token_ids():
    """Ray's vLLM stage hands back generated_text decoded without the markers; the --ray driver reads the
    sample from generated_tokens instead, as the vllm backend does (a stop token last: 'stop'; cut: open)."""
    from distill.backends import SamplingParams
    from distill.raydata import _sample, channel_reader
    from distill.tiny import build_tokenizer

    tokenizer = build_tokenizer("harmony", [HARMONY] * 20, 400)
    ids = tokenizer.encode(HARMONY, add_special_tokens=False)
    row = {"generated_tokens": ids, "num_input_tokens": 5,
           "generated_text": tokenizer.decode(ids, skip_special_tokens=True)}
    channels = channel_reader(tokenizer)
    assert channels is not None and channel_reader(build_tokenizer("qwen")) is None
    params = SamplingParams(n=1, temperature=0.6, top_p=0.95, max_tokens=64, seed=0)
    done = _sample(row, "", params, 1024, {ids[-1]}, channels)
    assert done["text"] == CANONICAL_TEXT and done["finish_reason"] == "stop"
    assert done["completion_tokens"] == len(ids)
    cut = ids[: ids.index(tokenizer.convert_tokens_to_ids("<|end|>"))]  # inside the analysis, at max_tokens
    done = _sample({**row, "generated_tokens": cut}, "", SamplingParams(n=1, temperature=0.6, top_p=0.95,
                   max_tokens=len(cut), seed=0), 1024, {ids[-1]},
                   channels)
    assert done["finish_reason"] == "length" and done["text"] == "<think>\nTwo plus two is four."


def test_the_openai_backend_reads_channel_markup_sent_as_text(problem, tmp_path):
    """A server without a reasoning parser that keeps special tokens sends the harmony markup in content."""
    with ScriptedChatServer(lambda prompt, call: HARMONY) as server:
        result = run_cli("generate", problem, "--teacher", "gpt-oss", "--backend", "openai", "--base-url",
                         server.base_url, "--out", tmp_path / "t.jsonl", "--n", "1", "--tokenizer", "none")
    assert result.returncode == 0, result.stderr
    assert [r["completion"] for r in read_jsonl(tmp_path / "t.jsonl")] == [CANONICAL_TEXT]


def test_the_filter_reads_harmony_traces_written_by_another_tool_and_keeps_them_canonical(tmp_path):
    """Traces dumped with their channel markup (not by distill generate, which writes them canonical)."""
    rows = [{"id": "q:0", "prompt_id": "q", "sample": 0, "messages": [{"role": "user", "content": PROBLEM}],
             "reference": "4", "completion": HARMONY, "finish_reason": "stop"},
            {"id": "q:1", "prompt_id": "q", "sample": 1, "messages": [{"role": "user", "content": PROBLEM}],
             "reference": "4", "completion": "<|channel|>analysis<|message|>Two plus", "finish_reason": "length"}]
    traces = write_jsonl(tmp_path / "t.jsonl", rows)
    result = run_cli("filter", traces, "--out", tmp_path / "kept.jsonl", "--rejects", tmp_path / "rejects.jsonl",
                     "--workers", "1", "--language", "en", "--reasoning-channels")
    assert result.returncode == 0, result.stderr
    assert [r["completion"] for r in read_jsonl(tmp_path / "kept.jsonl")] == [CANONICAL_TEXT]
    [rejected] = read_jsonl(tmp_path / "rejects.jsonl")
    assert rejected["id"] == "q:1" and "format" in rejected["rejected_by"]
