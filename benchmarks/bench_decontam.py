"""Decontamination throughput: distill's hashed n-gram index against open-r1's string n-grams.

Input (seeded): benchmark problems the size of the default set (MATH-500, AIME
2024 and 2025, GPQA-Diamond, LiveCodeBench: ~1,600 problems, ~60-400 words each)
and 100,000 training prompts of 20-120 words, 200 of which carry a planted
benchmark problem (re-cased, re-spaced or re-punctuated). Both sides are built
from one vocabulary, so many n-gram prefixes are shared, as in real math text.

- peer: open-r1's scripts/decontaminate.py, as it runs there: lowercase and
  whitespace-normalise, then a `set` of joined 8-word strings per benchmark, and
  for every prompt `any(ngram in lookup)` against each benchmark in turn.
- distill: `distill.decontam.build_index` + `NgramIndex.find` on every prompt
  (the work the `contamination` check does per record, in one process): every n-gram
  of the prompt is looked up and counted per problem (a share of a problem's n-grams
  flags it, not the first shared one), and the template's instruction is stripped.
- `--main PATH`: the same for another decontam.py (main's, which stopped at the first
  shared n-gram), in the same rounds.
- `--embedder MODEL --embed-prompts N`: the embedding stage (`ContaminationIndex.find_many`:
  n-grams, then the prompts they did not flag encoded in batches and scored against the
  benchmark matrix) on the first N prompts; prompts/s and the time 100k would take.

Index building and lookup are timed separately and together; rounds alternate
peer / distill. Both must flag the same planted prompts (the peer, which does
not strip punctuation, misses the re-punctuated copies; that is reported too).

    python benchmarks/bench_decontam.py                  # ~1 min on 2 cores
    python benchmarks/bench_decontam.py --prompts 20000 --rounds 1
    python benchmarks/bench_decontam.py --rounds 1 --main /work/main/distill/decontam.py \
        --embedder PATH --embed-prompts 2000
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import random
import statistics
import time

from distill.decontam import NgramIndex

BENCHMARK_SIZES = {"math-500": (500, 60), "aime-2024": (30, 90), "aime-2025": (30, 90),
                   "gpqa-diamond": (198, 150), "livecodebench": (880, 400)}


def vocabulary() -> list[str]:
    common = "the of a and is to in that for with find what how many let be if then are number positive " \
             "integer real value sum product such at most least each where x y n k m f p q r $x$ $n$ " \
             "\\frac{1}{2} (a, b) = + - ^2 prime triangle circle area probability"
    rare = [f"w{i}" for i in range(20000)]
    return common.split() * 40 + rare


def text(rng: random.Random, words: list[str], length: int) -> str:
    return " ".join(rng.choice(words) for _ in range(length))


def disguise(rng: random.Random, problem: str, kind: int) -> str:
    if kind == 0:
        return problem.upper()
    if kind == 1:
        return "   ".join(problem.split())
    return problem.replace(" ", ", ", 3).replace("$", "") + "?"


def build_data(prompts: int, seed: int = 0) -> tuple[dict[str, list[str]], list[str], set[int]]:
    rng = random.Random(seed)
    words = vocabulary()
    benchmarks = {name: [text(rng, words, rng.randint(length // 2, length * 3 // 2)) for _ in range(count)]
                  for name, (count, length) in BENCHMARK_SIZES.items()}
    every = [p for problems in benchmarks.values() for p in problems]
    rows = [text(rng, words, rng.randint(20, 120)) for _ in range(prompts)]
    planted = set(rng.sample(range(prompts), 200))
    for i, at in enumerate(sorted(planted)):
        rows[at] = "Solve: " + disguise(rng, rng.choice(every), i % 3)
    return benchmarks, rows, planted


# ---------------------------------------------------------------- the peer: open-r1's decontaminate.py

def normalize_string(text: str) -> str:
    return " ".join(text.lower().strip().split())


def word_ngrams(text: str, n: int) -> list[str]:
    words = text.split()
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def peer(benchmarks: dict[str, list[str]], rows: list[str], n: int) -> tuple[set[int], float, float]:
    start = time.perf_counter()
    lookups = {}
    for name, problems in benchmarks.items():
        lookup = collections.defaultdict(set)
        for doc_id, document in enumerate(problems):
            for ngram in word_ngrams(normalize_string(document), n):
                lookup[ngram].add(doc_id)
        lookups[name] = lookup
    built = time.perf_counter()
    flagged = set()
    for lookup in lookups.values():
        for i, row in enumerate(rows):
            if any(ngram in lookup for ngram in set(word_ngrams(normalize_string(row), n))):
                flagged.add(i)
    return flagged, built - start, time.perf_counter() - built


def ours(benchmarks: dict[str, list[str]], rows: list[str], n: int, module=None) -> tuple[set[int], float, float]:
    start = time.perf_counter()
    index = (module.NgramIndex if module else NgramIndex)(n)
    for name, problems in benchmarks.items():
        index.add(name, problems)
    built = time.perf_counter()
    flagged = {i for i, row in enumerate(rows) if index.find(row) is not None}
    return flagged, built - start, time.perf_counter() - built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ngram", type=int, default=8)
    parser.add_argument("--main", help="another decontam.py to time in the same rounds (main's)")
    parser.add_argument("--embedder", help="a sentence-transformers model: time the embedding stage too")
    parser.add_argument("--embed-prompts", type=int, default=2000)
    parser.add_argument("--embed-from", help="jsonl of realistic problems ('problem') to time the embedding stage "
                        "on, cycled to --embed-prompts, in generate's default template (the seeded prompts are "
                        "word salad, 3x as many tokens as a competition problem)")
    args = parser.parse_args()
    benchmarks, rows, planted = build_data(args.prompts)
    problems = sum(map(len, benchmarks.values()))
    runs = {"peer": peer, "distill": ours}
    if args.main:
        import importlib.util
        import sys

        spec = importlib.util.spec_from_file_location("decontam_main", args.main)
        module = importlib.util.module_from_spec(spec)
        sys.modules["decontam_main"] = module
        spec.loader.exec_module(module)
        runs["distill before (--main)"] = lambda b, r, n: ours(b, r, n, module)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    flagged_by: dict[str, set[int]] = {}
    for _ in range(args.rounds):
        for name, run in runs.items():
            flagged, build_s, lookup_s = run(benchmarks, rows, args.ngram)
            results[name].append((build_s, lookup_s))
            flagged_by[name] = flagged
    summary = {}
    for name, times in results.items():
        total = statistics.median(b + lookup for b, lookup in times)
        summary[name] = {"build_s": round(statistics.median(b for b, _ in times), 3),
                         "lookup_s": round(statistics.median(lookup for _, lookup in times), 3),
                         "total_s": round(total, 3), "prompts_per_s": round(args.prompts / total),
                         "planted_found": len(flagged_by[name] & planted),
                         "other_flagged": len(flagged_by[name] - planted)}
    summary["speedup_total"] = round(summary["peer"]["total_s"] / summary["distill"]["total_s"], 2)
    if args.main:
        summary["before_vs_now"] = round(summary["distill before (--main)"]["total_s"] / summary["distill"]["total_s"], 2)
    summary["setup"] = {"prompts": args.prompts, "benchmark_problems": problems, "planted": len(planted),
                        "ngram": args.ngram, "rounds": args.rounds, "python": platform.python_version()}
    if args.embedder:
        sample = rows[:args.embed_prompts]
        if args.embed_from:
            import itertools

            with open(args.embed_from, encoding="utf-8") as source:
                texts = [json.loads(line)["problem"] for line in source if line.strip()]
            instruction = "Please reason step by step, and put your final answer within \\boxed{}."
            sample = [f"{text}\n{instruction}" for text in itertools.islice(itertools.cycle(texts), args.embed_prompts)]
        summary["embedding"] = embedding_stage(benchmarks, sample, planted if not args.embed_from else set(), args)
    print(json.dumps(summary, indent=2))


def embedding_stage(benchmarks: dict[str, list[str]], rows: list[str], planted: set[int], args) -> dict:
    import tempfile

    import torch

    from distill.decontam import ContaminationIndex, EmbeddingIndex

    index = NgramIndex(args.ngram)
    for name, problems in benchmarks.items():
        index.add(name, problems)
    with tempfile.TemporaryDirectory() as cache:
        embeddings = EmbeddingIndex(args.embedder, cache_dir=cache)
        started = time.perf_counter()
        embeddings.build(index.texts)
        first_build = time.perf_counter() - started
        started = time.perf_counter()
        EmbeddingIndex(args.embedder, cache_dir=cache).build(index.texts)
        cached_build = time.perf_counter() - started
    both = ContaminationIndex(index, embeddings)
    started = time.perf_counter()
    matches = both.find_many(rows)
    seconds = time.perf_counter() - started
    stages = collections.Counter(m.stage for m in matches if m is not None)
    return {"model": args.embedder, "device": str(embeddings.model.device), "torch_threads": torch.get_num_threads(),
            "benchmark_embed_s": round(first_build, 1), "benchmark_from_cache_s": round(cached_build, 2),
            "prompts": len(rows), "seconds": round(seconds, 1), "prompts_per_s": round(len(rows) / seconds, 1),
            "hours_for_100k": round(100_000 / (len(rows) / seconds) / 3600, 2),
            "planted_found": sum(1 for i, m in enumerate(matches) if m is not None and i in planted),
            "planted_in_sample": sum(1 for i in range(len(rows)) if i in planted), "stages": dict(stages)}


if __name__ == "__main__":
    main()
