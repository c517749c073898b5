"""Decontamination: the hashed word n-gram index finds benchmark problems in training prompts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from distill.decontam import DEFAULT_BENCHMARKS, NgramIndex, build_index, expand_sources, ngram_hashes, words
from distill.errors import ConfigError, InputError
from tests.conftest import ROOT, write_jsonl

AIME = ("Find the number of ordered pairs $(m, n)$ of positive integers such that $m^2 n = 20^{20}$ "
        "and $m + n$ is a perfect square.")
MATH = "What is the smallest positive integer $n$ such that $\\frac{n}{2}$ is a perfect square and $\\frac{n}{3}$ is a perfect cube?"


@pytest.fixture
def index() -> NgramIndex:
    index = NgramIndex(8)
    index.add("aime", [AIME])
    index.add("math", ["A short one.", MATH])
    return index


@pytest.mark.parametrize("copy", [
    AIME,
    AIME.upper(),                                                    # re-cased
    "  ".join(AIME.split()),                                         # re-spaced
    AIME.replace("$", "").replace(",", " ,").replace(".", "!"),     # re-punctuated, LaTeX dollars dropped
    "Solve this: " + AIME + " Show your work.",                     # embedded in a longer prompt
    "\\textbf{Problem.} " + AIME.replace("m^2 n", "m^{2}n"),        # LaTeX re-written inside
])
def test_planted_copies_are_found(index, copy):
    match = index.find(copy)
    assert match is not None and match.benchmark == "aime" and match.problem == 1
    assert len(match.ngram.split()) == 8


def test_the_match_names_benchmark_row_and_ngram(index):
    match = index.find("Tell me: what is the smallest positive integer n such that n/2 is a perfect square?")
    assert match is not None
    assert match.to_dict() == {"benchmark": "math", "problem": 2,
                               "ngram": "what is the smallest positive integer n such"}


@pytest.mark.parametrize("near_miss", [
    "Find the number of ordered pairs of positive integers whose sum is a perfect square.",  # 7 words shared
    "What is the smallest positive integer n that is a perfect cube and a perfect square?",   # reordered
    "Find the number of ordered triples (a, b, c) of real numbers with a + b + c = 20.",
    "",
])
def test_near_misses_are_kept(index, near_miss):
    assert index.find(near_miss) is None


def test_a_prompt_shorter_than_n_matches_only_a_whole_short_problem(index):
    assert index.find("a SHORT one!") is not None
    assert index.find("a short") is None


def test_words_fold_unicode_case_and_latex():
    assert words("Ｆｉｎｄ $\\frac{1}{2}$ of X_1, please.") == ["find", "frac", "1", "2", "of", "x", "1", "please"]


def test_ngram_hashes_are_the_same_in_another_process():
    tokens = words(AIME)
    here = ngram_hashes(tokens, 8)
    code = ("import json, sys; from distill.decontam import ngram_hashes, words; "
            f"print(json.dumps(ngram_hashes(words({AIME!r}), 8)))")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert json.loads(there.stdout) == here
    assert len(set(here)) == len(here) == len(tokens) - 7


def test_ngram_size_must_be_positive():
    with pytest.raises(ConfigError, match="at least 1"):
        NgramIndex(0)


def test_build_index_from_local_files(tmp_path):
    bench = write_jsonl(tmp_path / "bench.jsonl", [{"problem": AIME}, {"problem": MATH}])
    other = write_jsonl(tmp_path / "other.jsonl", [{"question": "Prove that there are infinitely many primes "
                                                                "of the form 4k + 3 for integers k."}])
    index = build_index([str(bench), f"{other}#question"])
    assert index.problems == {str(bench): 2, str(other): 1}
    assert index.find("prove that there are infinitely many primes of the form 4k+3").benchmark == str(other)


def test_build_index_names_a_missing_column_and_file(tmp_path):
    bench = write_jsonl(tmp_path / "bench.jsonl", [{"question": AIME}])
    with pytest.raises(InputError, match=r"bench.jsonl:1: no column 'problem'.*#COLUMN"):
        build_index([str(bench)])
    with pytest.raises(InputError, match="file not found"):
        build_index([str(tmp_path / "missing.jsonl")])


def test_default_expands_to_the_standard_benchmarks_once():
    names = [name for name, _, _ in expand_sources(["default", "mine.jsonl", "default"])]
    assert names == [*DEFAULT_BENCHMARKS, "mine.jsonl"]


def test_distill_filter_rejects_planted_benchmark_problems(tmp_path):
    from tests.conftest import assert_user_error, read_jsonl, run_cli

    bench = write_jsonl(tmp_path / "aime.jsonl", [{"problem": AIME}, {"problem": MATH}])
    prompts = {"copy": AIME.upper().replace("$", ""), "respaced": "  ".join(MATH.split()),
               "near": "Find the number of ordered pairs of positive integers whose sum is a perfect square.",
               "other": "What is 2 + 3?"}
    traces = write_jsonl(tmp_path / "traces.jsonl", [
        {"id": f"{key}:0", "prompt_id": key, "sample": 0, "messages": [{"role": "user", "content": text}],
         "reference": "5", "completion": "<think>\nwork\n</think>\n\nThe answer is \\boxed{5}.",
         "finish_reason": "stop", "completion_tokens": 12} for key, text in prompts.items()])
    out = tmp_path / "kept.jsonl"
    result = run_cli("filter", traces, "--out", out, "--checks", "contamination,format,correctness",
                     "--decontaminate", str(bench), "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert sorted(r["prompt_id"] for r in read_jsonl(out)) == ["near", "other"]
    rejected = {r["prompt_id"]: r for r in read_jsonl(tmp_path / "kept.rejects.jsonl")}
    assert sorted(rejected) == ["copy", "respaced"]
    assert rejected["copy"]["rejected_by"] == ["contamination"]
    assert rejected["copy"]["filter_details"]["contamination"]["benchmark"] == str(bench)
    assert rejected["respaced"]["filter_details"]["contamination"]["problem"] == 2
    assert len(rejected["copy"]["filter_details"]["contamination"]["ngram"].split()) == 8

    # bad input: one line, exit 1, outputs untouched
    before = out.read_bytes()
    assert_user_error(run_cli("filter", traces, "--out", tmp_path / "k2.jsonl", "--checks", "contamination",
                              "--decontaminate", str(tmp_path / "missing.jsonl")), "missing.jsonl", "not found")
    assert_user_error(run_cli("filter", traces, "--out", tmp_path / "k2.jsonl", "--checks", "contamination",
                              "--decontaminate", str(bench), "--contamination-ngram", "0"),
                      "--contamination-ngram")
    assert_user_error(run_cli("filter", traces, "--out", tmp_path / "k2.jsonl", "--checks", "format",
                              "--decontaminate", str(bench)), "--decontaminate", "contamination")
    assert not (tmp_path / "k2.jsonl").exists() and out.read_bytes() == before


def test_distill_generate_spends_no_teacher_time_on_benchmark_problems(tmp_path, tiny_models):
    from tests.conftest import read_jsonl, run_cli

    bench = write_jsonl(tmp_path / "bench.jsonl", [{"problem": AIME}])
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [
        {"id": "planted", "problem": "  ".join(AIME.lower().split()), "answer": "1"},
        {"id": "fresh", "problem": "What is 2 + 3?", "answer": "5"}])
    out = tmp_path / "traces.jsonl"
    result = run_cli("generate", prompts, "--teacher", tiny_models["qwen"], "--out", out, "--backend", "hf",
                     "--n", "1", "--max-tokens", "4", "--decontaminate", str(bench))
    assert result.returncode == 0, result.stderr
    assert [r["prompt_id"] for r in read_jsonl(out)] == ["fresh"]
    summary = json.loads((tmp_path / "traces.summary.json").read_text())
    assert [s["prompt_id"] for s in summary["contaminated_prompts"]] == ["planted"]
    assert summary["contaminated_prompts"][0]["benchmark"] == str(bench)
    assert "decontaminated    1 prompts skipped" in result.stdout
