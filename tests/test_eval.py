"""`distill eval`: grading and metrics on literal traces, and a side-by-side table of two tiny models."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from distill.errors import ConfigError
from distill.eval import EvalConfig, evaluate
from tests.conftest import assert_user_error, read_jsonl, run_cli, write_jsonl

PARAMS = {"temperature": 0.6, "top_p": 0.95, "max_tokens": 64, "seed": 0}


PROBLEMS = {"p1": "What is 2+2?", "p2": "What is one half?"}
"""The benchmark problems of the literal traces, whose messages are what the eval would send for them."""


def trace(prompt_id, sample, reference, completion, finish="stop", tokens=10, problem=None):
    from distill.options import DEFAULT_TEMPLATE

    content = DEFAULT_TEMPLATE.replace("{problem}", problem or PROBLEMS[prompt_id])
    return {"id": f"{prompt_id}:{sample}", "prompt_id": prompt_id, "sample": sample,
            "messages": [{"role": "user", "content": content}], "reference": reference,
            "completion": completion, "finish_reason": finish, "completion_tokens": tokens,
            "teacher": "m", "params": PARAMS, "source": {}}


def think(answer, reasoning="Adding the two numbers step by step gives the result."):
    return f"<think>\n{reasoning}\n</think>\n\nThe answer is \\boxed{{{answer}}}." if answer else \
        f"<think>\n{reasoning}\n</think>\n\nI am not sure."


def completed_samples(cfg: EvalConfig, model: str, traces: Path) -> None:
    """Mark `traces` as a complete generate output of `model` under the eval's settings (an earlier run's)."""
    from distill.config import project
    from distill.generate import GenerateConfig, manifest
    from distill.runs import fingerprint

    sampling = project(GenerateConfig, cfg, prompts=cfg.data, teacher=model, out=str(traces))
    manifest(traces).write(fingerprint(sampling), complete=True)
    (traces.with_name(traces.name.replace(".jsonl", ".summary.json"))).write_text("{}")


def test_metrics_on_literal_traces(tmp_path):
    records = [
        trace("p1", 0, "4", think("4")), trace("p1", 1, "4", think("4"), tokens=20),
        trace("p1", 2, "4", think("5")), trace("p1", 3, "4", think(None), finish="length", tokens=64),
        trace("p2", 0, "\\frac{1}{2}", think("0.5")), trace("p2", 1, "\\frac{1}{2}", think("1/2")),
        trace("p2", 2, "\\frac{1}{2}", think("3")),
        trace("p2", 3, "\\frac{1}{2}", think("3", "我们先把两个数相加，然后得到结果。Then the answer follows.")),
    ]
    # results of an earlier run: complete samples are reused, not generated again
    write_jsonl(tmp_path / "results.m.traces.jsonl", records)
    data = write_jsonl(tmp_path / "bench.jsonl", [{"id": "p1", "problem": PROBLEMS["p1"], "answer": "4"},
                                                  {"id": "p2", "problem": PROBLEMS["p2"], "answer": "\\frac{1}{2}"}])
    cfg = EvalConfig(model=["m"], data=str(data), out=str(tmp_path / "results.json"), n=4, max_tokens=64, workers=1)
    completed_samples(cfg, "m", tmp_path / "results.m.traces.jsonl")
    result = evaluate(cfg)
    scores = result.scores[0]
    assert scores.problems == 2 and scores.samples == 8
    assert scores.pass_at_1 == pytest.approx(0.5)
    assert scores.pass_at_k["2"] == pytest.approx(1 - 1 / 6)   # each problem: 2 of 4 right
    assert scores.pass_at_k["4"] == pytest.approx(1.0)
    # p1 votes 4 (right); p2 ties 1/2 (as 0.5 and 1/2: one number) with 3: the first seen wins
    assert scores.cons_at_n == pytest.approx(1.0)
    assert scores.truncated == pytest.approx(1 / 8)
    assert scores.mixed_language == pytest.approx(1 / 8)
    assert scores.mean_completion_tokens == pytest.approx((10 * 6 + 20 + 64) / 8)
    problems = {p["prompt_id"]: p for p in read_jsonl(tmp_path / "results.problems.jsonl")}
    assert problems["p1"]["verdicts"] == [True, True, False, False]
    assert problems["p1"]["majority_answer"] == "4" and problems["p1"]["majority_votes"] == 2
    assert problems["p2"]["majority_answer"] == "0.5" and problems["p2"]["majority_correct"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["models"]["m"]["pass_at_1"] == pytest.approx(0.5)
    assert (tmp_path / "results.png").stat().st_size > 0


def test_giant_numbers_are_graded_not_a_crash(tmp_path):
    giant = "9" * 5000  # past Python's int-string limit (4,300 digits), where int() raises ValueError
    records = [trace("p1", 0, "4", think(giant)), trace("p1", 1, "4", think(giant)), trace("p1", 2, "4", think("4")),
               *(trace("p2", i, giant, think(answer), problem="10^5000-1?")
                 for i, answer in enumerate(("4", giant, "4")))]
    write_jsonl(tmp_path / "results.m.traces.jsonl", records)
    data = write_jsonl(tmp_path / "bench.jsonl", [{"id": "p1", "problem": PROBLEMS["p1"], "answer": "4"},
                                                  {"id": "p2", "problem": "10^5000-1?", "answer": giant}])
    completed_samples(EvalConfig(model=["m"], data=str(data), out=str(tmp_path / "results.json"), n=3, max_tokens=64),
                      "m", tmp_path / "results.m.traces.jsonl")
    result = run_cli("eval", "--model", "m", "--data", data, "--out", tmp_path / "results.json", "--n", "3",
                     "--max-tokens", "64", "--workers", "1")
    assert result.returncode == 0, result.stderr
    problems = {p["prompt_id"]: p for p in read_jsonl(tmp_path / "results.problems.jsonl")}
    assert problems["p1"]["verdicts"] == [False, False, True]
    assert problems["p1"]["majority_answer"] == giant and not problems["p1"]["majority_correct"]
    assert problems["p2"]["verdicts"] == [None, True, None]


def test_two_models_give_one_table_and_a_rerun_reuses_the_samples(tmp_path, tiny_models):
    data = write_jsonl(tmp_path / "bench.jsonl", [{"question": f"What is {i} + {i}?", "answer": f"#### {2 * i}"}
                                                  for i in range(3)])
    args = ["eval", "--model", f"qwen={tiny_models['qwen']}", "--model", str(tiny_models["llama"]), "--data", data,
            "--prompt-column", "question", "--out", tmp_path / "results.json", "--n", "2", "--max-tokens", "8",
            "--backend", "hf"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert table[0].startswith("| model | pass@1 | pass@2 | cons@2 |")
    assert [row.split("|")[1].strip() for row in table[2:]] == ["qwen", "llama"]
    problems = read_jsonl(tmp_path / "results.problems.jsonl")
    assert [p["model"] for p in problems] == ["qwen"] * 3 + ["llama"] * 3
    assert {p["reference"] for p in problems} == {"0", "2", "4"}  # GSM8K '#### 4' reduced
    before = (tmp_path / "results.json").read_bytes()
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert "results.json is already complete with these settings: nothing to do" in again.stderr
    assert (tmp_path / "results.json").read_bytes() == before
    # one model more: the two sampled ones are reused by generate's own resume contract, not sampled again
    third = run_cli(*args, "--model", f"again={tiny_models['qwen']}")
    assert third.returncode == 0, third.stderr
    assert third.stderr.count("already complete with these settings: nothing to do") == 2


def test_bad_eval_options_are_one_line():
    with pytest.raises(ConfigError, match="two models share the name 'a'"):
        EvalConfig(model=["a=x", "a=y"], data="d.jsonl")
    with pytest.raises(ConfigError, match=r"the labels 'a b' and 'a-b' would share the files results.a-b.\*; .*"
                                          r"letters, digits, '.', '_' and '-'"):
        EvalConfig(model=["a b=x", "a-b=y"], data="d.jsonl")
    with pytest.raises(ConfigError, match=r"--model runs/a=x: the label 'runs/a' holds a '/'"):
        EvalConfig(model=["runs/a=x"], data="d.jsonl")
    with pytest.raises(ConfigError, match="--out must be a .json file"):
        EvalConfig(model=["x"], data="d.jsonl", out="results.txt")
    assert_user_error(run_cli("eval", "--data", "d.jsonl"), "missing required option --model")
    assert_user_error(run_cli("eval", "--model", "x", "--data", "/nonexistent/bench.jsonl", "--backend", "hf"),
                      "bench.jsonl: file not found")


def test_samples_of_a_model_changed_since_are_not_reused(tmp_path, tiny_models):
    model = tmp_path / "student"
    shutil.copytree(tiny_models["qwen"], model)
    data = write_jsonl(tmp_path / "bench.jsonl", [{"problem": "What is 1 + 1?", "answer": "2"}])
    args = ["eval", "--model", f"s={model}", "--data", data, "--out", tmp_path / "results.json", "--n", "1",
            "--max-tokens", "4", "--backend", "hf"]
    assert run_cli(*args).returncode == 0
    traces = tmp_path / "results.s.traces.jsonl"
    before = traces.read_bytes()
    later = traces.stat().st_mtime + 10  # retrained in place after the samples were drawn
    os.utime(model / "model.safetensors", (later, later))
    assert_user_error(run_cli(*args), "drawn before", "model.safetensors", "--overwrite")
    assert traces.read_bytes() == before
    rerun = run_cli(*args, "--overwrite")
    assert rerun.returncode == 0, rerun.stderr
    assert "reusing" not in rerun.stderr


# ---------------------------------------------------------------- hybrid-thinking models in both modes (issue 26)


def test_a_hybrid_model_in_both_modes_side_by_side_in_one_table(tmp_path):
    """A tiny Qwen3 (architecture and template): one command samples it in thinking and non-thinking mode, a
    row each with a mode column; the non-thinking prompt is the thinking one plus the empty think block its
    template writes (the samples' prompt_tokens say which prompt was sampled). A rerun has nothing to do."""
    from transformers import AutoTokenizer

    from distill.tiny import save_tiny

    student = save_tiny(tmp_path / "qwen3", "qwen3")
    data = write_jsonl(tmp_path / "bench.jsonl", [{"id": f"b{i}", "problem": f"{i} + {i}?", "answer": str(2 * i)}
                                                  for i in range(2)])
    out = tmp_path / "results.json"
    args = ["eval", "--model", f"hybrid={student}", "--data", data, "--out", out, "--backend", "hf", "--n", "2",
            "--max-tokens", "8", "--workers", "1", "--modes", "thinking,non-thinking"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    header, _, *rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert [cell.strip() for cell in header.strip("|").split("|")][:3] == ["model", "mode", "pass@1"]
    assert [[cell.strip() for cell in row.strip("|").split("|")][:2] for row in rows] == \
        [["hybrid", "thinking"], ["hybrid", "non-thinking"]]
    saved = json.loads(out.read_text())["models"]
    assert list(saved) == ["hybrid:thinking", "hybrid:non-thinking"]
    thinking, plain = (read_jsonl(saved[row]["traces"]) for row in saved)
    block = len(AutoTokenizer.from_pretrained(student)("<think>\n\n</think>\n\n", add_special_tokens=False)["input_ids"])
    assert len(thinking) == len(plain) == 4
    assert all(p["prompt_tokens"] == t["prompt_tokens"] + block for t, p in zip(thinking, plain))
    assert {r["mode"] for r in read_jsonl(tmp_path / "results.problems.jsonl")} == {"thinking", "non-thinking"}
    again = run_cli(*args)
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_modes_for_a_model_that_cannot_switch_are_refused_before_sampling(tiny_models, tmp_path):
    data = write_jsonl(tmp_path / "bench.jsonl", [{"id": "b", "problem": "1 + 1?", "answer": "2"}])
    result = run_cli("eval", "--model", tiny_models["qwen"], "--data", data, "--out", tmp_path / "r.json",
                     "--backend", "hf", "--modes", "thinking,non-thinking")
    assert_user_error(result, "has no thinking switch", "--modes")
    assert not list(tmp_path.glob("r.*"))
    with pytest.raises(ConfigError, match="--modes must be one of"):
        EvalConfig(model=["m"], data="d.jsonl", modes=["thinking", "fast"])
