"""`distill generate` with the hf backend on tiny models: the record format, R1 pre-filled
`<think>`, resume after SIGKILL, sharding, and one clear line for every bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from distill.generate import GenerateConfig, generate
from distill.traces import read_traces
from tests.conftest import ROOT, assert_user_error, read_jsonl, run_cli, write_jsonl

FIELDS = {"id", "prompt_id", "sample", "messages", "reference", "completion", "finish_reason",
          "completion_tokens", "prompt_tokens", "teacher", "params", "source"}


def config(prompts, teacher, out, **kwargs) -> GenerateConfig:
    options = dict(backend="hf", n=2, max_tokens=12, batch_size=2)
    options.update(kwargs)
    return GenerateConfig(prompts=str(prompts), teacher=str(teacher), out=str(out), **options)


def by_id(path) -> dict[str, dict]:
    return {record["id"]: record for _, record in read_traces(path)}


def test_records_follow_the_trace_format(tmp_path, tiny_models, prompts_file):
    out = tmp_path / "traces.jsonl"
    summary = generate(config(prompts_file, tiny_models["qwen"], out, n=3))
    records = read_jsonl(out)
    assert len(records) == 18 and summary.records == 18 and summary.complete
    assert {r["id"] for r in records} == {f"q{i}:{s}" for i in range(6) for s in range(3)}
    for record in records:
        assert set(record) == FIELDS
        assert record["finish_reason"] in ("stop", "length")
        assert 1 <= record["completion_tokens"] <= 12
        assert record["finish_reason"] == "stop" or record["completion_tokens"] == 12
        assert record["params"] == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 12, "seed": 0}
        assert record["teacher"] == str(tiny_models["qwen"])
    first = next(r for r in records if r["id"] == "q1:0")
    assert first["reference"] == "3" and first["source"] == {"level": 1}
    assert first["messages"][0]["content"].startswith("What is 1 + 2?\nPlease reason step by step")
    saved = json.loads((tmp_path / "traces.summary.json").read_text())
    assert saved["records"] == 18 and sum(saved["finish_reasons"].values()) == 18
    assert saved["completion_tokens"]["total"] == sum(r["completion_tokens"] for r in records)
    # the completion-length histogram beside the summary (the quickstart: every step writes PNG plots)
    assert (tmp_path / "traces.lengths.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_template_prefilled_think_is_kept_in_the_completion(tmp_path, tiny_models, prompts_file):
    # the R1-Distill template ends the generation prompt with '<think>\n': the model's text
    # starts inside the reasoning, and the stored completion must still hold the whole block
    out = tmp_path / "traces.jsonl"
    generate(config(prompts_file, tiny_models["r1"], out, limit=2))
    for record in read_jsonl(out):
        assert record["completion"].startswith("<think>\n")
        assert record["completion"].count("<think>") >= 1


def test_seeded_runs_reproduce_and_greedy_is_deterministic(tmp_path, tiny_models, prompts_file):
    first = by_id(generate(config(prompts_file, tiny_models["qwen"], tmp_path / "a.jsonl")).output)
    second = by_id(generate(config(prompts_file, tiny_models["qwen"], tmp_path / "b.jsonl")).output)
    assert first == second
    other_seed = by_id(generate(config(prompts_file, tiny_models["qwen"], tmp_path / "c.jsonl", seed=1)).output)
    assert [r["completion"] for r in other_seed.values()] != [r["completion"] for r in first.values()]


def test_sampling_in_rounds_gives_what_one_long_call_gives(tiny_models, monkeypatch):
    # The hf backend samples a batch in rounds and feeds only unfinished rows back; greedy, that must
    # be token for token what one generate() call over the whole length gives, with rows stopping at
    # different points (a token the model emits early in one row is made an end-of-turn token).
    import torch

    from distill.backends import hf
    from distill.backends.base import GenerationRequest, SamplingParams

    backend = hf.HFBackend(str(tiny_models["qwen"]), hf.HFOptions(batch_size=4))
    torch.manual_seed(0)
    with torch.no_grad():  # larger random weights: greedy decoding no longer repeats one token in every row
        for weight in backend.lm.parameters():
            if weight.dim() > 1:
                weight.normal_(0, 0.3)
    problems = ["What is 1 + 2?", "Add 17 and 25.", "What is the sum of all odd numbers below ten?", "Compute 3 * 4."]
    requests = [GenerationRequest(key=f"q{i}", messages=[{"role": "user", "content": problem}], index=i)
                for i, problem in enumerate(problems)]  # prompts of different lengths: left padding in every round
    params = SamplingParams(n=2, temperature=0.0, top_p=1.0, max_tokens=16, seed=0)
    monkeypatch.setattr(hf, "FIRST_ROUND_TOKENS", 1000)
    prompt_ids = backend.tokenizer([hf.render_prompt(backend.tokenizer, r.messages) for r in requests],
                                   add_special_tokens=False)["input_ids"]
    rows = [tokens for tokens, _ in backend._sample_rows(prompt_ids, params, [0] * len(prompt_ids))]
    backend.eos_ids = [*backend.eos_ids, next(t for t in rows[0][2:] if any(t not in row for row in rows))]
    one_call = list(backend.generate(requests, params))
    monkeypatch.setattr(hf, "FIRST_ROUND_TOKENS", 3)  # rounds of 3, 6 and the last 7 tokens
    in_rounds = list(backend.generate(requests, params))
    assert in_rounds == one_call
    finished = [s.finish_reason for result in one_call for s in result.samples]
    assert "stop" in finished and "length" in finished
    assert all(s.completion_tokens <= 16 for result in one_call for s in result.samples)
    # sampled, each row's random stream goes on across the rounds: the same samples again
    params = SamplingParams(n=2, temperature=0.6, top_p=0.95, max_tokens=16, seed=0)
    monkeypatch.setattr(hf, "FIRST_ROUND_TOKENS", 1000)
    one_call = list(backend.generate(requests, params))
    monkeypatch.setattr(hf, "FIRST_ROUND_TOKENS", 3)
    assert list(backend.generate(requests, params)) == one_call
    assert len({s.text for result in one_call for s in result.samples}) > 1


def test_hf_samples_are_the_same_whatever_the_batching_and_a_resume_with_another_batch_size(
        tmp_path, tiny_models, prompts_file):
    """Seeds were per batch: a run killed and resumed with another --batch-size mixed two sampling streams in
    one file. Each sample now draws from its own seed (prompt id, sample index, --seed)."""
    sampled = dict(n=2, max_tokens=24, temperature=0.6, top_p=0.95)
    alone = by_id(generate(config(prompts_file, tiny_models["llama"], tmp_path / "b1.jsonl", batch_size=1,
                                  **sampled)).output)
    together = by_id(generate(config(prompts_file, tiny_models["llama"], tmp_path / "b4.jsonl", batch_size=4,
                                     **sampled)).output)
    assert together == alone
    assert len({r["completion"] for r in alone.values()}) == len(alone)  # sampled, not one text repeated
    # a run stopped after 3 prompts (batches of 2) and resumed with batches of 5: one uninterrupted run's records
    out = tmp_path / "resumed.jsonl"
    generate(config(prompts_file, tiny_models["llama"], out, batch_size=2, limit=3, **sampled))
    assert by_id(generate(config(prompts_file, tiny_models["llama"], out, batch_size=5, **sampled)).output) == alone
    # another seed samples otherwise
    other = by_id(generate(config(prompts_file, tiny_models["llama"], tmp_path / "s1.jsonl", batch_size=4, seed=1,
                                  **sampled)).output)
    assert [r["completion"] for r in other.values()] != [r["completion"] for r in alone.values()]


def test_a_finished_output_is_left_alone_and_changed_settings_are_refused(tmp_path, tiny_models, prompts_file):
    out = tmp_path / "t.jsonl"
    args = ["generate", prompts_file, "--teacher", tiny_models["qwen"], "--out", out, "--backend", "hf",
            "--n", "1", "--max-tokens", "4"]
    assert run_cli(*args).returncode == 0
    before = out.read_bytes(), out.stat().st_mtime_ns
    # a pipeline script rerun after a crash further down: this stage has nothing to do, says so, exits 0
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert "already complete with these settings: nothing to do" in again.stderr
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before
    assert_user_error(run_cli(*args[:-1], "5", "--limit", "3"), "other settings", "--max-tokens 4 → 5", "--overwrite")
    assert out.read_bytes() == before[0]
    result = run_cli(*args, "--overwrite", "--seed", "7")
    assert result.returncode == 0, result.stderr
    assert all(r["params"]["seed"] == 7 for r in read_jsonl(out))


def test_a_resume_with_another_dtype_is_refused_and_a_free_option_resumes(tmp_path, tiny_models, prompts_file):
    """The issue's new user: --limit 3, then the whole file with --dtype bfloat16 (was: mixed dtypes, exit 0)."""
    out = tmp_path / "t.jsonl"
    args = ["generate", prompts_file, "--teacher", tiny_models["qwen"], "--out", out, "--backend", "hf",
            "--n", "1", "--max-tokens", "4"]
    assert run_cli(*args, "--limit", "3").returncode == 0
    before = out.read_bytes()
    assert_user_error(run_cli(*args, "--dtype", "bfloat16"), "--dtype 'auto' → 'bfloat16'", "--overwrite")
    assert out.read_bytes() == before
    # --limit, --batch-size are free: the same settings otherwise resume and add the other prompts
    result = run_cli(*args, "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    records = read_jsonl(out)
    assert len(records) == 6 and out.read_bytes().startswith(before)


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, tiny_models):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": f"k{i}", "problem": f"Add {i} and {i}."} for i in range(24)])
    reference = tmp_path / "reference.jsonl"
    generate(config(prompts, tiny_models["llama"], reference, n=2, max_tokens=48, batch_size=1))

    out = tmp_path / "killed.jsonl"
    args = [sys.executable, "-m", "cli.main", "generate", str(prompts), "--teacher", str(tiny_models["llama"]),
            "--out", str(out), "--backend", "hf", "--n", "2", "--max-tokens", "48", "--batch-size", "1"]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # no deadline of its own (a loaded machine may take minutes to start); it stops if the run ends first
    while process.poll() is None and (not out.exists() or len(out.read_bytes().splitlines()) < 6):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = len(out.read_bytes().splitlines())
    assert 6 <= written < 48, "the kill must land mid-run"
    with out.open("ab") as handle:  # and simulate the torn write a kill mid-write leaves
        handle.write(b'{"id": "k9:0", "prompt_id": "k9", "samp')

    result = run_cli(*args[3:])
    assert result.returncode == 0, result.stderr
    assert "removed a torn last line" in result.stderr
    assert "resuming" in result.stderr
    resumed = [record for _, record in read_traces(out)]  # also checks: no duplicate id
    assert len(resumed) == 48
    assert {r["id"]: r for r in resumed} == by_id(reference)
    assert_grouped(resumed, n=2)


def assert_grouped(records, n):
    """Every prompt's n samples sit on consecutive lines (the filter's selection relies on it)."""
    order = [r["prompt_id"] for r in records]
    starts = [i for i, pid in enumerate(order) if i == 0 or order[i - 1] != pid]
    assert all(order[i:i + n] == [order[i]] * n for i in starts) and len(starts) == len(set(order))


def test_a_prompt_cut_short_is_generated_again_whole(tmp_path, tiny_models, prompts_file):
    reference = generate(config(prompts_file, tiny_models["qwen"], tmp_path / "ref.jsonl")).output
    out = tmp_path / "t.jsonl"
    lines = (tmp_path / "ref.jsonl").read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:5]))  # the third prompt has 1 of its 2 samples
    # and the manifest the killed run wrote before its first record (not yet complete)
    manifest = json.loads((tmp_path / "ref.run.json").read_text())
    (tmp_path / "t.run.json").write_text(json.dumps({**manifest, "complete": False}))
    result = run_cli("generate", prompts_file, "--teacher", tiny_models["qwen"], "--out", out, "--backend", "hf",
                     "--n", "2", "--max-tokens", "12", "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    assert "removed 1 of 2 samples of prompt 'q2'" in result.stderr
    records = [r for _, r in read_traces(out)]
    assert {r["id"]: r for r in records} == by_id(reference)
    assert_grouped(records, n=2)


def test_shards_are_disjoint_and_concatenate_to_the_full_run(tmp_path, tiny_models):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"problem": f"Multiply {i} by 3."} for i in range(7)])
    full = read_jsonl(generate(config(prompts, tiny_models["qwen"], tmp_path / "full.jsonl", n=1,
                                      temperature=0.0)).output)
    parts = [read_jsonl(generate(config(prompts, tiny_models["qwen"], tmp_path / f"s{i}.jsonl", n=1,
                                        temperature=0.0, shard=f"{i}/3")).output) for i in range(3)]
    ids = [[r["id"] for r in part] for part in parts]
    assert all(ids) and not set(ids[0]) & set(ids[1]) and not set(ids[1]) & set(ids[2])
    assert sum(ids, []) == [r["id"] for r in full]
    assert {r["id"]: r["completion"] for part in parts for r in part} == {r["id"]: r["completion"] for r in full}


@pytest.mark.parametrize("case", ["missing file", "empty file", "malformed line", "missing column",
                                  "unwritable output", "unknown backend", "wrong model path", "bad shard"])
def test_bad_input_is_one_line_and_exit_1(tmp_path, tiny_models, prompts_file, case):
    out = tmp_path / "t.jsonl"
    teacher = str(tiny_models["qwen"])
    prompts = prompts_file
    extra: list[str] = []
    if case == "missing file":
        prompts, needles = tmp_path / "nope.jsonl", ("nope.jsonl: file not found",)
    elif case == "empty file":
        prompts = tmp_path / "empty.jsonl"
        prompts.write_text("")
        needles = ("empty.jsonl", "no prompts")
    elif case == "malformed line":
        prompts = tmp_path / "bad.jsonl"
        prompts.write_text('{"problem": "ok"}\n{"problem": "x",}\n')
        needles = ("bad.jsonl:2: malformed JSON",)
    elif case == "missing column":
        extra, needles = ["--prompt-column", "question"], ("no column 'question'", "problem", "--prompt-column")
    elif case == "unwritable output":
        (tmp_path / "afile").write_text("")
        out, needles = tmp_path / "afile" / "t.jsonl", ("cannot write --out", "not a directory")
    elif case == "unknown backend":
        extra, needles = ["--backend", "tgi"], ("--backend must be one of auto, vllm, openai, hf", "'tgi'")
    elif case == "wrong model path":
        teacher, needles = str(tmp_path / "no-model"), ("cannot load a tokenizer", "no-model")
    else:
        extra, needles = ["--shard", "2/2"], ("--shard 2/2",)
    args = ["generate", prompts, "--teacher", teacher, "--out", out, "--max-tokens", "4", *extra]
    if "--backend" not in extra:
        args += ["--backend", "hf"]
    assert_user_error(run_cli(*args), *needles)
    assert not out.exists() or case == "unwritable output"


@pytest.mark.parametrize("stage", ["generate", "eval", "train"])
def test_a_mistyped_relative_model_path_is_no_such_directory_not_a_hub_failure(tmp_path, prompts_file, stage):
    """`models/nope` reads like a Hub id (org/name): beside a `models/` folder it is a mistyped path and is
    said to be one; where `org` is no local folder and the Hub cannot be reached (offline), both are said."""
    import os

    from tests.train_data import write_kept

    (tmp_path / "models").mkdir()
    kept = write_kept(tmp_path / "kept.jsonl")
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "HF_HUB_OFFLINE": "1"}

    def command(model: str) -> list:
        if stage == "generate":
            return ["generate", prompts_file, "--teacher", model, "--out", "t.jsonl", "--backend", "hf"]
        if stage == "eval":
            return ["eval", "--model", model, "--data", prompts_file, "--out", "r.json", "--backend", "hf"]
        return ["train", kept, "--student", model, "--out", "student"]

    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli(*command("models/nope"), cwd=tmp_path, env=env)
    assert_user_error(result, "models/nope", "no such directory", "check the path")
    assert "connect" not in result.stderr and "Hub could not be reached" not in result.stderr
    result = run_cli(*command("nope/model"), cwd=tmp_path, env=env)
    assert_user_error(result, "no such local directory nope/model", "the Hub could not be reached (HF_HUB_OFFLINE "
                      "is set) to look it up as a model id", "check the path")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
