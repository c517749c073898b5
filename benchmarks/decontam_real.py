"""Decontamination on real data: clean real competition prompts against the real MATH-500.

distill's labelled sets (benchmarks/eval_decontam.py) are written for the purpose; this script measures
the false-flag rate where it matters, on real prompts that are not benchmark problems, and lists every
flag with the problem it matched so that each one can be read and judged by hand.

Neither set ships with distill (their licences are their owners'). On a machine with the Hub:
MATH-500 is `HuggingFaceH4/MATH-500`; offline, copies in public repositories serve, e.g.

    # MATH-500 (500 rows, a 'Return your final response within \\boxed{}. ' prefix to remove):
    #   github.com/MobileLLM/BudgetThinker evaluation/data/math500/test.jsonl
    # clean prompts: Qwen2.5-Math's evaluation sets, github.com/QwenLM/Qwen2.5-Math evaluation/data/
    #   {aime24,amc23,minerva_math}/test.jsonl#problem, {olympiadbench,gaokao2023en,college_math,sat_math}/test.jsonl#question
    python benchmarks/decontam_real.py --benchmark math500.jsonl#problem \\
        --clean aime24.jsonl#problem --clean olympiadbench.jsonl#question ... \\
        [--embedder PATH_OR_ID] [--json out.json]

Every clean prompt is put in generate's default template (problem + the R1 instruction), as the filter
reads it. 'one shared n-gram' is the old rule (a prompt is flagged on any benchmark 8-gram it holds),
run with the same index at a share small enough that one n-gram suffices.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

R1 = "Please reason step by step, and put your final answer within \\boxed{}."


def load(spec: str) -> list[tuple[str, str]]:
    """(source name, text) per row of FILE#COLUMN."""
    path, _, column = spec.partition("#")
    column = column or "problem"
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            value = json.loads(line).get(column)
            if isinstance(value, str) and value.strip():
                rows.append((Path(path).stem, value))
    return rows


def show(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmark", required=True, help="FILE.jsonl#COLUMN of benchmark problems")
    parser.add_argument("--strip-prefix", default="Return your final response within \\boxed{}. ",
                        help="removed from the start of each benchmark problem where present")
    parser.add_argument("--clean", action="append", required=True, help="FILE.jsonl#COLUMN of clean prompts")
    parser.add_argument("--embedder", help="a sentence-transformers model for the embedding stage")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from distill import decontam

    bench = [text.removeprefix(args.strip_prefix) for _, text in load(args.benchmark)]
    clean = [(source, text) for spec in args.clean for source, text in load(spec)]
    prompts = [f"{text}\n{R1}" for _, text in clean]
    per_source = Counter(source for source, _ in clean)
    report: dict = {"benchmark": len(bench), "clean": len(clean), "sources": dict(per_source)}
    print(f"{len(bench)} benchmark problems; {len(clean)} clean prompts: "
          + ", ".join(f"{k} {v}" for k, v in per_source.items()))

    for label, share in (("one shared n-gram (before)", 1e-9), (f"share {decontam.DEFAULT_SHARE} (now)",
                                                                 decontam.DEFAULT_SHARE)):
        index = decontam.NgramIndex(decontam.DEFAULT_NGRAM, share=share)
        index.add("math500", bench)
        started = time.perf_counter()
        matches = [index.find(text) for text in prompts]
        seconds = time.perf_counter() - started
        flagged = [(i, m) for i, m in enumerate(matches) if m is not None]
        print(f"\nn-gram stage, {label}: {len(flagged)}/{len(prompts)} flagged "
              f"({100 * len(flagged) / len(prompts):.2f} %), {len(prompts) / seconds:,.0f} prompts/s")
        for i, match in flagged:
            print(f"  [{clean[i][0]}] {show(clean[i][1])}\n      ~ {show(index.texts[match.problem - 1])}"
                  f"\n      ({match.stage}, score {match.score:.2f}, {match.ngram!r})")
        report[label] = {"flagged": len(flagged), "rate": len(flagged) / len(prompts),
                         "examples": [{"prompt": clean[i][1], "source": clean[i][0],
                                       "problem": index.texts[m.problem - 1], **m.to_dict()} for i, m in flagged]}

    if args.embedder:
        index = decontam.NgramIndex(decontam.DEFAULT_NGRAM)
        index.add("math500", bench)
        embeddings = decontam.EmbeddingIndex(args.embedder)
        started = time.perf_counter()
        embeddings.build(index.texts)
        built = time.perf_counter() - started
        both = decontam.ContaminationIndex(index, embeddings)
        started = time.perf_counter()
        matches = both.find_many(prompts)
        seconds = time.perf_counter() - started
        flagged = [(i, m) for i, m in enumerate(matches) if m is not None]
        stages = Counter(m.stage for _, m in flagged)
        print(f"\nboth stages ({args.embedder}, threshold {decontam.DEFAULT_EMBEDDING_THRESHOLD}): "
              f"{len(flagged)}/{len(prompts)} flagged ({100 * len(flagged) / len(prompts):.2f} %) "
              f"[{', '.join(f'{k} {v}' for k, v in stages.items())}]; benchmark embedded in {built:.1f} s, "
              f"prompts at {len(prompts) / seconds:.1f} prompts/s")
        for i, match in flagged:
            print(f"  [{clean[i][0]}] {show(clean[i][1])}\n      ~ {show(index.texts[match.problem - 1])}"
                  f"\n      ({match.stage}, score {match.score:.2f})")
        scores = both.scores(prompts)
        best = sorted((hits[0][1] for hits in scores if hits), reverse=True)
        print("  best cosine per clean prompt, quantiles: " + ", ".join(
            f"p{q} {best[int(len(best) * (1 - q / 100))]:.3f}" for q in (50, 90, 99, 99.9) if best))
        report["embedding"] = {"flagged": len(flagged), "rate": len(flagged) / len(prompts), "stages": dict(stages),
                               "seconds": seconds, "examples": [{"prompt": clean[i][1], "source": clean[i][0],
                                                                 "problem": index.texts[m.problem - 1],
                                                                 **m.to_dict()} for i, m in flagged]}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
