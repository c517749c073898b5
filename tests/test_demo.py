"""`distill demo --quick --full` end to end through the real command line, and its refusals.

The quick demo trains its models too briefly for the figures to mean anything; what is tested
is that every stage ran on the previous one's output and that the one table the demo prints
is the stages' own numbers, not a copy that could drift from them.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from distill.demo import DemoConfig, task
from distill.demo.run import MARKER, QUICK, REPETITION_MAX_COUNT, REPETITION_NGRAM
from distill.errors import ConfigError
from tests.conftest import assert_user_error, read_jsonl, run_cli

MODELS = ("teacher", "student-kept", "student-kept+grpo", "student-all", "student-all+grpo", "student-all+on-policy")
RL_ROWS = {"student-kept+grpo": ("student-kept", "grpo"), "student-all+grpo": ("student-all", "grpo"),
           "student-all+on-policy": ("student-all", "on-policy")}


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    # --full: the rl rows too (GRPO and on-policy after SFT); the default demo is the same run without them
    result = run_cli("demo", "--quick", "--full", "--out", out, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def table_rows(stdout: str) -> dict[str, list[str]]:
    """model -> the cells of its row in the printed markdown table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] in MODELS:
            rows[cells[0]] = cells
    return rows


def test_every_stage_left_its_outputs(quick_demo):
    out, _ = quick_demo
    for path in ("demo.json", "demo.md", "demo.png", "data/teacher-train.jsonl", "data/prompts.jsonl",
                 "data/heldout.jsonl", "teacher/loss.png", "teacher/train.json", "traces.jsonl",
                 "kept.jsonl", "kept.rejects.jsonl", "kept.report.json",
                 "kept.reject-reasons.png", "all.jsonl", "all.report.json", "eval/results.json",
                 "eval/results.problems.jsonl", "eval/results.png"):
        assert (out / path).is_file(), path
    # generate ran in shards (one per worker process) concatenated into traces.jsonl, or whole on one core
    shards = [Path(p) for p in json.loads((out / "demo.json").read_text())["files"].get("generate_shards", [])]
    summaries = [p.with_name(p.stem + ".summary.json") for p in shards] or [out / "traces.summary.json"]
    assert all(p.is_file() for p in shards + summaries)
    assert sum(json.loads(p.read_text())["records"] for p in summaries) == len(read_jsonl(out / "traces.jsonl"))
    if shards:
        assert b"".join(p.read_bytes() for p in shards) == (out / "traces.jsonl").read_bytes()
    for model in ("teacher", "students/kept", "students/all"):
        assert (out / model / "config.json").is_file(), model
        assert (out / model / "model.safetensors").is_file(), model
        assert (out / model / "tokenizer.json").is_file(), model
    for student in ("students/kept", "students/all"):  # what distill train leaves behind a finished run
        assert (out / student / "loss.png").is_file()
        assert (out / student / "README.md").is_file()
    files = json.loads((out / "demo.json").read_text())["files"]
    for label, (start, objective) in RL_ROWS.items():  # what distill rl leaves behind, started from the SFT student
        finished = json.loads((Path(files[label]) / "train_summary.json").read_text())
        assert finished["objective"] == objective and finished["steps"] == QUICK.rl_steps
        assert finished["student"] == files[start.replace("-", "_")]
        assert (Path(files[label]) / "model.safetensors").is_file() and (Path(files[label]) / "rewards.png").is_file()


def test_the_printed_table_is_the_eval_reports_numbers(quick_demo):
    out, result = quick_demo
    summary = json.loads((out / "demo.json").read_text())
    scores = json.loads((out / "eval/results.json").read_text())["models"]
    printed = table_rows(result.stdout)
    assert list(summary["models"]) == list(MODELS) == list(scores) == list(printed)
    assert result.stdout.rstrip().splitlines()[-1].endswith(f"distill view {out}")  # the demo's last line
    for model in MODELS:
        row, score = summary["models"][model], scores[model]
        assert row["accuracy"] == score["pass_at_1"]
        assert row["mixed_language"] == score["mixed_language"]
        assert row["truncated"] == score["truncated"]
        assert row["mean_tokens"] == score["mean_completion_tokens"]
        assert printed[model][3:7] == [f"{row['accuracy']:.1%}", f"{row['mixed_language']:.1%}",
                                       f"{row['loops']:.1%}", f"{row['truncated']:.1%}"]
        # loops: the samples eval drew that hold a re-check line
        sampled = read_jsonl(score["traces"])
        assert row["loops"] == sum(task.has_loop_line(r["completion"]) for r in sampled) / len(sampled)
        assert score["problems"] == QUICK.heldout and score["samples"] == QUICK.heldout * 2
    # the markdown file holds the same table
    assert table_rows((out / "demo.md").read_text()) == printed
    assert set(summary["stage_s"]) == set(summary["stage_cpu_s"]) == {"data", "teacher", "generate", "filter", "train",
                                                                       "rl", "eval"}
    assert all(seconds > 0 for seconds in summary["stage_s"].values())
    # the teacher and the students train in the worker processes: their CPU time is counted too
    assert all(summary["stage_cpu_s"][stage] > 0 for stage in ("teacher", "train", "rl"))
    assert summary["total_s"] >= sum(summary["stage_s"].values()) - 1


def test_traces_and_reject_reasons_add_up(quick_demo):
    out, _ = quick_demo
    traces = summary_traces = json.loads((out / "demo.json").read_text())["traces"]
    report = json.loads((out / "kept.report.json").read_text())
    generated = read_jsonl(out / "traces.jsonl")
    kept, rejects = read_jsonl(out / "kept.jsonl"), read_jsonl(out / "kept.rejects.jsonl")
    assert len(generated) == traces["generated"] == QUICK.prompts * DemoConfig().n
    assert len(kept) == traces["kept"] == report["records"]["kept"] > 0
    assert len(rejects) == traces["rejected"] == report["records"]["rejected"]
    assert len(kept) + len(rejects) == len(generated)
    counted = Counter(check for record in rejects for check in record["rejected_by"])
    assert dict(counted) == summary_traces["rejected_by"]
    assert {c: v["rejected"] for c, v in report["checks"].items() if v["rejected"]} == dict(counted)
    # all.jsonl is every trace the trainer can read: exactly the ones whose format verdict is true
    well_formed = read_jsonl(out / "all.jsonl")
    assert len(well_formed) == traces["well_formed"]
    assert {r["id"] for r in well_formed} == {r["id"] for r in kept + rejects if r["verdicts"]["format"]}
    # each student was trained on its own file (the counts distill train reports), both to the same budget
    budgets = []
    for name, records in (("kept", kept), ("all", well_formed)):
        finished = json.loads((out / "students" / name / "train_summary.json").read_text())
        assert finished["data"]["records"] == finished["data"]["examples"] == len(records)
        budgets.append(finished["data"]["tokens"] * finished["config"]["epochs"])
    assert budgets[0] == pytest.approx(budgets[1], rel=0.02)


def test_a_second_run_into_the_same_out_is_refused(quick_demo):
    out, _ = quick_demo
    before = sorted(p.name for p in out.iterdir())
    result = run_cli("demo", "--quick", "--out", out)
    assert_user_error(result, "already holds a finished demo run", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == before


def test_overwrite_never_deletes_a_directory_the_demo_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = run_cli("demo", "--quick", "--out", tmp_path, "--overwrite")
    assert_user_error(result, "holds files the demo did not write")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_interrupted_run_is_named_as_such(tmp_path):
    (tmp_path / MARKER).write_text("")
    (tmp_path / "traces.jsonl").write_text("")
    result = run_cli("demo", "--out", tmp_path)
    assert_user_error(result, "unfinished demo run", "--overwrite")


def test_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "demo"
    target.write_text("")
    assert_user_error(run_cli("demo", "--out", target), "is a file")


@pytest.mark.parametrize(("overrides", "flag"), [
    ({"wrong_rate": 0.5, "mixed_language_rate": 0.3, "loop_rate": 0.2}, "--loop-rate"),
    ({"loop_rate": -0.1}, "--loop-rate"),
    ({"prompts": 0}, "--prompts"),
    ({"prompts": 9000}, "--prompts"),
    ({"eval_n": 0}, "--eval-n"),
])
def test_bad_options_name_the_flag(overrides, flag):
    with pytest.raises(ConfigError, match=flag):
        DemoConfig(**overrides)


def test_bad_option_on_the_command_line_exits_1_before_writing(tmp_path):
    out = tmp_path / "d"
    assert_user_error(run_cli("demo", "--out", out, "--wrong-rate", "0.6", "--loop-rate", "0.5"), "--loop-rate")
    assert not Path(out).exists()


def test_each_injected_fault_is_caught_by_its_check_and_clean_traces_pass_all():
    import random

    from distill.checks import build_checks, run_checks
    from distill.filter.config import FilterConfig

    cfg = FilterConfig(traces="t.jsonl", out="k.jsonl", repetition_ngram=REPETITION_NGRAM,
                       repetition_max_count=REPETITION_MAX_COUNT)
    expected = {None: set(), "wrong": {"correctness"}, "mixed_language": {"language"}, "loop": {"repetition"}}
    for index, problem in enumerate(task.split_problems(0, {"sample": 50})["sample"]):
        for fault, failing in expected.items():
            for repeats in (range(task.LOOP_REPEATS[0], task.LOOP_REPEATS[1] + 1) if fault == "loop" else [0]):
                record = {"id": "x", "prompt_id": "x", "finish_reason": "stop", "reference": str(problem.answer),
                          "messages": [{"role": "user", "content": problem.text}],
                          "completion": task.completion(problem, fault, rng=random.Random(index),
                                                        loop_repeats=repeats)}
                verdicts = run_checks(record, build_checks(cfg)).verdicts
                assert {check for check, verdict in verdicts.items() if verdict is False} == failing, (fault, record)


def test_fault_rates_are_exact_and_the_records_are_what_distill_train_reads():
    from distill.train.render import split_target

    problems = task.split_problems(0, {"teacher": 1000})["teacher"]
    rates = {"wrong": 0.1, "mixed_language": 0.05, "loop": 0.2}
    records = list(task.teacher_records(problems, rates, template="{problem}", seed=3))
    counts = Counter(r["source"]["fault"] for r in records)
    assert counts == {"wrong": 100, "mixed_language": 50, "loop": 200, "none": 650}
    for record in records:
        split_target(record)  # one think block, reasoning and an answer
    assert records == list(task.teacher_records(problems, rates, template="{problem}", seed=3))  # seeded


def test_loop_lines_are_what_the_loop_fault_adds():
    import random

    problem = task.Problem((3, 8, 6, 8))
    assert not task.has_loop_line(task.completion(problem))
    assert not task.has_loop_line(task.completion(problem, "mixed_language", rng=random.Random(0)))
    assert task.has_loop_line(task.completion(problem, "loop", rng=random.Random(0), loop_repeats=3))
    assert task.has_loop_line("<think>\nFirst, 3 + 8 = 11.\nWait, 1 + 6 = 7.\n</think>")  # a drifted loop line
