"""`distill filter` end to end: the real CLI on generate-like files, every output, determinism
across worker counts, resuming after a kill, and one clear line for every bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.filter import FilterConfig, default_checks, filter_traces
from distill.filter import run as filter_run
from distill.grading import GIANT_ANSWER, GIANT_REFERENCE
from tests.conftest import ROOT, assert_user_error, read_jsonl, run_cli, write_jsonl

THINK = "<think>\n{reasoning}\n</think>\n\n{answer}"
REASONING = "Okay, five plus seven: I count up from five, six, seven, eight, and so on, to twelve."


def record(prompt_id: str, sample: int, completion: str, *, reference="12", finish="stop",
           prompt="What is 5 + 7?", tokens: int | None = None) -> dict:
    """A trace exactly as `distill generate` writes it."""
    return {"id": f"{prompt_id}:{sample}", "prompt_id": prompt_id, "sample": sample,
            "messages": [{"role": "user", "content": prompt + "\nPlease reason step by step, and put your final "
                                                           "answer within \\boxed{}."}],
            "reference": reference, "completion": completion, "finish_reason": finish,
            "completion_tokens": tokens if tokens is not None else len(completion) // 4, "prompt_tokens": 30,
            "teacher": "deepseek-ai/DeepSeek-R1", "params": {"temperature": 0.6, "top_p": 0.95,
                                                             "max_tokens": 64, "seed": 0},
            "source": {"level": 1}}


def good(answer: str = "$\\boxed{12}$", reasoning: str = REASONING) -> str:
    return THINK.format(reasoning=reasoning, answer=f"The answer is {answer}.")


LOOP = "Let me add the two numbers again to be completely sure that the total is right. " * 8

CASES = [  # (record, rejected_by) — [] means kept
    (record("a", 0, good()), []),
    (record("a", 1, good()), ["selection"]),  # an exact duplicate of a:0
    (record("a", 2, good("$\\boxed{13}$")), ["correctness"]),
    (record("a", 3, good(reasoning=REASONING + " 所以答案是十二，我们再检查一遍。")), ["language"]),
    (record("b", 0, good(reasoning=REASONING + " " + LOOP), tokens=90), ["repetition"]),
    (record("b", 1, "<think>\nFive plus seven is twel", finish="length"), ["format", "finish", "correctness"]),
    (record("b", 2, good() + "<|im_end|>"), ["format"]),
    (record("b", 3, good(), tokens=500), ["length"]),
    (record("c", 0, good("$\\boxed{\\frac{1}{2}}$"), reference="0.5", prompt="Half of one?"), []),
    (record("c", 1, good("(B)"), reference="B", prompt="Pick one: (A) 11 (B) 12"), []),
    (record("d", 0, good(), reference=None, prompt="Say twelve."), []),
]


@pytest.fixture
def traces(tmp_path) -> Path:
    return write_jsonl(tmp_path / "traces.jsonl", [r for r, _ in CASES])


def outputs(out: Path) -> tuple[list[dict], list[dict]]:
    return read_jsonl(out), read_jsonl(out.with_name(out.name.replace(".jsonl", ".rejects.jsonl")))


def test_cli_filters_a_generate_file_and_says_why(traces, tmp_path):
    out = tmp_path / "kept.jsonl"
    result = run_cli("filter", traces, "--out", out, "--max-tokens", "100", "--workers", "2")
    assert result.returncode == 0, result.stderr
    kept, rejected = outputs(out)
    assert [r["id"] for r in kept] == [r["id"] for r, reasons in CASES if not reasons]
    assert {r["id"]: r["rejected_by"] for r in rejected} == {r["id"]: reasons for r, reasons in CASES if reasons}
    for out_record in kept + rejected:
        assert list(out_record["verdicts"]) == list(default_checks())
        source = next(r for r, _ in CASES if r["id"] == out_record["id"])
        assert {k: out_record[k] for k in source} == source  # the trace itself is untouched
    by_id = {r["id"]: r for r in kept + rejected}
    assert by_id["d:0"]["verdicts"]["correctness"] is None
    assert by_id["d:0"]["filter_details"]["correctness"] == "no reference"
    assert by_id["a:2"]["filter_details"]["answer"] == "13"
    assert by_id["a:3"]["filter_details"]["foreign_run"] >= 10
    assert by_id["b:3"]["filter_details"]["tokens"] == 500
    # a trace that failed a cheap check never reaches math-verify or selection
    assert by_id["b:2"]["verdicts"]["selection"] is None
    assert "selection" in by_id["b:2"]["filter_details"]["not_run"]

    report = json.loads((tmp_path / "kept.report.json").read_text())
    assert report["records"] == {"input": 11, "kept": 4, "rejected": 7, "kept_plus_rejected_equals_input": True}
    assert report["checks"]["format"] == {"pass": 9, "fail": 2, "unknown": 0, "not_run": 0, "rejected": 2,
                                          "sole_reason": 1, "reasons": {"1× <think>, 0× </think>": 1,
                                                                        "leftover <|im_end|>": 1}}
    assert report["checks"]["correctness"]["unknown"] == 1
    assert report["prompts"]["total"] == 4 and report["prompts"]["with_kept"] == 3
    assert report["lengths"]["max_tokens"] == 100 and report["lengths"]["all"]["max"] == 500
    assert report["language"]["languages"] == {"en": 11}
    assert report["throughput"]["new_records"] == 11
    for name in ("reject-reasons", "lengths", "language"):
        assert (tmp_path / f"kept.{name}.png").stat().st_size > 1000
    assert "kept 4 + rejected 7 = input 11" in result.stdout
    assert "| correctness |" in result.stdout
    assert not (tmp_path / "kept.filter-progress.jsonl").exists()


def test_correctness_checks_survivors_only_and_none_keeps_unless_dropped(tmp_path):
    symbolic = good("$\\boxed{(x+1)^2}$")
    rows = [record("p", 0, symbolic, reference="x^2+2x+1"),
            record("p", 1, symbolic + "<|im_end|>", reference="x^2+2x+1"),
            record("q", 0, good(), reference=None)]
    traces = write_jsonl(tmp_path / "t.jsonl", rows)
    filter_traces(FilterConfig(traces=str(traces), out=str(tmp_path / "k.jsonl"), workers=1))
    kept, rejected = outputs(tmp_path / "k.jsonl")
    assert kept[0]["verdicts"]["correctness"] is True  # math-verify says (x+1)^2 = x^2+2x+1
    assert kept[0]["filter_details"]["correctness"] == "math-verify"
    assert rejected[0]["verdicts"]["correctness"] is None and rejected[0]["rejected_by"] == ["format"]
    assert "correctness" in rejected[0]["filter_details"]["not_run"]
    assert [r["id"] for r in kept] == ["p:0", "q:0"]
    filter_traces(FilterConfig(traces=str(traces), out=str(tmp_path / "d.jsonl"), workers=1, drop_unverified=True))
    kept, rejected = outputs(tmp_path / "d.jsonl")
    assert [r["id"] for r in kept] == ["p:0"]
    assert {r["id"]: r["rejected_by"] for r in rejected} == {"p:1": ["format"], "q:0": ["correctness"]}


def test_code_answers_are_graded_in_the_sandbox(tmp_path):
    pytest.importorskip("distill.sandbox")
    mbpp = {"tests": ["assert add(1, 2) == 3", "assert add(-2, 2) == 0"], "format": "assert"}
    code = "Here it is:\n```python\ndef add(a, b):\n    return a {op} b\n```"
    rows = [record("add", s, THINK.format(reasoning="Add the two arguments.", answer=code.format(op=op)),
                   reference=mbpp, prompt="Write add(a, b).") for s, op in enumerate("+-")]
    traces = write_jsonl(tmp_path / "t.jsonl", rows)
    report = filter_traces(FilterConfig(traces=str(traces), out=str(tmp_path / "k.jsonl"), workers=1))
    kept, rejected = outputs(tmp_path / "k.jsonl")
    assert [r["id"] for r in kept] == ["add:0"] and kept[0]["filter_details"]["correctness"] == "sandbox: passed"
    assert rejected[0]["rejected_by"] == ["correctness"]
    assert "assert add(1, 2) == 3" in rejected[0]["filter_details"]["correctness"]
    assert report.data["correctness"]["reference_kinds"] == {"code": 2}


def test_giant_numbers_get_a_verdict_and_a_rerun_finishes(tmp_path):
    giant = "9" * 5000  # past Python's int-string limit (4,300 digits), where int() raises ValueError
    rows = [record("g", 0, good(f"$\\boxed{{{giant}}}$")),                      # answer: wrong, not a crash
            record("g", 1, good(f"$\\boxed{{\\frac{{{giant}}}{{3}}}}$")),
            record("h", 0, good(), reference=giant, prompt="What is 10^5000 - 1?"),  # reference: cannot tell
            record("h", 1, good(f"$\\boxed{{{giant}}}$"), reference=giant, prompt="What is 10^5000 - 1?")]
    traces = write_jsonl(tmp_path / "t.jsonl", rows)
    for attempt in range(2):
        result = run_cli("filter", traces, "--out", tmp_path / "k.jsonl", "--checks", "format,correctness",
                         *(["--overwrite"] if attempt else []))
        assert result.returncode == 0, result.stderr
    kept, rejected = outputs(tmp_path / "k.jsonl")
    verdicts = {r["id"]: (r["verdicts"]["correctness"], r["filter_details"]["correctness"]) for r in kept + rejected}
    assert verdicts == {"g:0": (False, GIANT_ANSWER), "g:1": (False, GIANT_ANSWER),
                        "h:0": (None, GIANT_REFERENCE), "h:1": (True, "equal")}
    assert [r["id"] for r in rejected] == ["g:0", "g:1"]


def test_a_whitespace_bomb_record_is_graded(tmp_path):
    # 200 KB of spaces around an answer: the answer patterns backtracked quadratically on them
    # (20,000 spaces took 12 s, so this file hours); now padding is one space (see answer_window)
    bomb = " " * 200_000
    answers = {"w:0": f"The answer is: 12{bomb}.", "w:1": f"Answer: 13{bomb}", "w:2": f"the answer is{bomb}(B).{bomb}",
               "w:3": f"Answer: 12{bomb}, or so{bomb}", "w:4": f"{bomb}"}
    rows = [record("w", int(i[-1]), THINK.format(reasoning=REASONING, answer=answer),
                   reference="B" if i == "w:2" else "12") for i, answer in answers.items()]
    result = run_cli("filter", write_jsonl(tmp_path / "t.jsonl", rows), "--out", tmp_path / "k.jsonl",
                     "--checks", "format,correctness", "--workers", "1")
    assert result.returncode == 0, result.stderr
    kept, rejected = outputs(tmp_path / "k.jsonl")
    verdicts = {r["id"]: (r["verdicts"]["correctness"], r["filter_details"]["correctness"]) for r in kept + rejected}
    assert verdicts == {"w:0": (True, "equal"), "w:1": (False, "unequal numbers"), "w:2": (True, "letter"),
                        "w:3": (False, "math-verify"), "w:4": (False, "no answer")}


def many_traces(path: Path, prompts: int = 60) -> Path:
    """Prompts with four samples each, every kind of fault in turn, some answers needing math-verify."""
    variants = [good(), good(), good("$\\boxed{13}$"), good("$\\boxed{\\frac{24}{2}}$"),
                good(reasoning=REASONING + " 所以答案是十二。"), good(reasoning=REASONING + " " + LOOP),
                good("$\\boxed{(x+1)^2}$"), "<think>\nFive plus", good() + "<|eot_id|>"]
    rows = []
    for p in range(prompts):
        for s in range(4):
            completion = variants[(p * 3 + s) % len(variants)].replace("Okay", f"Okay ({p})")
            reference = "x^2+2x+1" if "(x+1)^2" in completion else "12"
            rows.append(record(f"q{p:03d}", s, completion, reference=reference,
                               finish="length" if completion.endswith("Five plus") else "stop"))
    return write_jsonl(path, rows)


def test_output_is_the_same_whatever_the_worker_count(tmp_path):
    traces = many_traces(tmp_path / "t.jsonl")
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.jsonl"
        report = filter_traces(FilterConfig(traces=str(traces), out=str(out), workers=workers, keep_per_prompt=2,
                                            seed=5))
        assert report.kept + report.rejected == report.input_records == 240
        runs[workers] = (out.read_bytes(), out.with_name(f"w{workers}.rejects.jsonl").read_bytes())
    assert runs[1] == runs[2]
    kept, rejected = outputs(tmp_path / "w1.jsonl")
    input_order = [r["id"] for r in read_jsonl(traces)]
    assert sorted(r["id"] for r in kept + rejected) == sorted(input_order)
    for part in (kept, rejected):  # each output keeps input order
        assert [r["id"] for r in part] == [i for i in input_order if i in {r["id"] for r in part}]
    per_prompt = {}
    for r in kept:
        per_prompt[r["prompt_id"]] = per_prompt.get(r["prompt_id"], 0) + 1
    assert max(per_prompt.values()) == 2


def test_filter_runs_on_real_generate_output(tmp_path, tiny_models, prompts_file):
    traces = tmp_path / "traces.jsonl"
    result = run_cli("generate", prompts_file, "--teacher", tiny_models["r1"], "--out", traces, "--backend", "hf",
                     "--n", "2", "--max-tokens", "8")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "kept.jsonl"
    result = run_cli("filter", traces, "--out", out, "--tokenizer", tiny_models["qwen"], "--max-tokens", "4")
    assert result.returncode == 0, result.stderr
    kept, rejected = outputs(out)
    assert len(kept) + len(rejected) == 12
    # a tiny random teacher writes no closed think block within 8 tokens
    assert all("format" in r["rejected_by"] for r in rejected) and not kept
    assert all(isinstance(r["filter_details"]["tokens"], int) for r in rejected)
    report = json.loads((tmp_path / "kept.report.json").read_text())
    assert report["lengths"]["source"] == f"tokenizer {tiny_models['qwen']}"


@pytest.mark.parametrize("lines, args, needles", [
    (['{"id": "a:0", "prompt_id": "a", "completion": "x", "finish_reason": "stop", "reference": "1"}',
      '{"id": "a:1", "prompt_id": "a", "completion": "x", "finish_reason": "stop", "reference": "1"}',
      '{"id": "a:2", "prompt_id": "a", "compl'], [], ["traces.jsonl:3", "malformed JSON"]),
    (['{"id": "a:0", "prompt_id": "a", "finish_reason": "stop", "reference": "1"}'], [],
     ["traces.jsonl:1", "field 'completion'", "missing"]),
    (['{"id": "a:0", "prompt_id": "a", "completion": "x", "finish_reason": "stop"}'], [],
     ["traces.jsonl:1", "field 'reference'", "missing"]),
    (['{"id": "a:0", "prompt_id": "a", "completion": "x", "finish_reason": "stop", "reference": {"x": 1}}'], [],
     ["traces.jsonl:1", "field 'reference'", "'tests'"]),
    (['{"id": "a:0", "prompt_id": "a", "completion": "x", "finish_reason": "stop", "reference": "1"}',
      '{"id": "b:0", "prompt_id": "b", "completion": "x", "finish_reason": "stop", "reference": "1"}',
      '{"id": "a:1", "prompt_id": "a", "completion": "x", "finish_reason": "stop", "reference": "1"}'], [],
     ["traces.jsonl:3", "not together", "selection"]),
    ([], [], ["traces.jsonl", "no records"]),
    (['{"id": "a:0", "prompt_id": "a", "completion": "x", "finish_reason": "stop", "reference": "1"}'],
     ["--checks", "format,langauge"], ["unknown check 'langauge'", "did you mean 'language'", "valid checks: format"]),
    (['{"id": "a:0", "prompt_id": "a", "completion": "x", "finish_reason": "stop", "reference": "1"}'],
     ["--tokenizer", "/nonexistent/student"], ["cannot load a tokenizer", "/nonexistent/student"]),
    (['{"id": "a:0", "prompt_id": "a", "completion": "x", "finish_reason": "stop", "reference": "1"}'],
     ["--answer-patterns", "Answer: .+"], ["--answer-patterns", "needs a group"]),
])
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, lines, args, needles):
    traces = tmp_path / "traces.jsonl"
    traces.write_text("".join(line + "\n" for line in lines))
    out = tmp_path / "kept.jsonl"
    assert_user_error(run_cli("filter", traces, "--out", out, "--language", "en", *args), *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["traces.jsonl"]


def test_reference_is_only_required_by_the_correctness_check(tmp_path):
    rows = [{"id": "a:0", "prompt_id": "a", "completion": good(), "finish_reason": "stop",
             "messages": [{"role": "user", "content": "What is 5 + 7?"}]}]
    traces = write_jsonl(tmp_path / "t.jsonl", rows)
    result = run_cli("filter", traces, "--out", tmp_path / "k.jsonl", "--checks", "format,finish,language")
    assert result.returncode == 0, result.stderr
    assert list(read_jsonl(tmp_path / "k.jsonl")[0]["verdicts"]) == ["format", "finish", "language"]


def test_a_finished_output_is_left_alone_and_other_options_are_refused(traces, tmp_path):
    out = tmp_path / "kept.jsonl"
    assert run_cli("filter", traces, "--out", out).returncode == 0
    before = out.read_bytes(), out.stat().st_mtime_ns, (tmp_path / "kept.report.json").read_bytes()
    again = run_cli("filter", traces, "--out", out)
    assert again.returncode == 0, again.stderr
    assert "already complete with these settings: nothing to do" in again.stderr
    assert (out.read_bytes(), out.stat().st_mtime_ns, (tmp_path / "kept.report.json").read_bytes()) == before
    assert_user_error(run_cli("filter", traces, "--out", out, "--max-tokens", "7"), "other settings",
                      "--max-tokens None → 7", "--overwrite")
    # the input is part of the fingerprint by content: traces grown since are refused too
    original = Path(traces).read_text()
    first = json.loads(original.splitlines()[0])
    Path(traces).write_text(original + json.dumps({**first, "id": "more:0", "prompt_id": "more"}) + "\n")
    assert_user_error(run_cli("filter", traces, "--out", out), "the content of TRACES")
    assert out.read_bytes() == before[0]
    Path(traces).write_text(original)
    result = run_cli("filter", traces, "--out", out, "--overwrite", "--max-tokens", "100")
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(out)) == 4


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    traces = many_traces(tmp_path / "t.jsonl", prompts=30)
    monkeypatch.setattr(filter_run, "CHUNK_RECORDS", 16)
    filter_traces(FilterConfig(traces=str(traces), out=str(tmp_path / "ref.jsonl"), workers=1))
    reference = outputs(tmp_path / "ref.jsonl")

    out = tmp_path / "kept.jsonl"
    finish, calls = filter_run._Filter.finish, []

    def crash_after_three_chunks(self, job):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return finish(self, job)

    monkeypatch.setattr(filter_run._Filter, "finish", crash_after_three_chunks)
    with pytest.raises(KeyboardInterrupt):
        filter_traces(FilterConfig(traces=str(traces), out=str(out), workers=1))
    monkeypatch.setattr(filter_run._Filter, "finish", finish)
    # what a kill between the two writes and mid-line leaves: rejects of the next chunk, a torn kept line
    with (tmp_path / "kept.rejects.jsonl").open("a") as handle:
        handle.write(json.dumps(reference[1][-1]) + "\n")
    with out.open("a") as handle:
        handle.write('{"id": "q029:3", "prompt_id": "q0')
    resumed = filter_traces(FilterConfig(traces=str(traces), out=str(out), workers=2))
    assert outputs(out) == reference
    assert resumed.data["throughput"]["new_records"] == 120 - 3 * 16
    assert resumed.data["records"]["input"] == 120


def test_a_killed_cli_resumes_to_the_uninterrupted_result(tmp_path):
    traces = many_traces(tmp_path / "t.jsonl", prompts=400)
    args = ["filter", str(traces), "--workers", "2"]
    assert run_cli(*args, "--out", tmp_path / "ref.jsonl").returncode == 0
    reference = outputs(tmp_path / "ref.jsonl")

    out = tmp_path / "kept.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "cli.main", *args, "--out", str(out)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = tmp_path / "kept.filter-progress.jsonl"
    # no deadline of its own (a loaded machine may take minutes to start); it stops if the run ends first
    while process.poll() is None and (not progress.exists() or len(progress.read_text().splitlines()) < 3):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(read_jsonl(out)) + len(read_jsonl(tmp_path / "kept.rejects.jsonl"))
    assert 0 < done < 1600, "the kill must land mid-run"
    result = run_cli(*args, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stderr
    assert outputs(out) == reference
