"""Decontamination quality on distill's labelled sets (tests/data/decontam_*.jsonl, written by
benchmarks/decontam_data.py): false flags on clean prompts, copies found, and the embedding stage's
recall and false-flag rate by threshold.

Against the stand-in benchmark (200 MATH-style problems; MATH-500 cannot be downloaded here), every
prompt in generate's default template (problem + R1 instruction), as the filter reads it:
- clean: 393 competition prompts that are not benchmark problems but share its generic phrasing;
- disguised: copies (verbatim, re-spaced/re-cased, invisible characters, look-alike letters,
  superscripts) and the short problems with the template;
- rephrased: per benchmark kind, a rephrasing, other numbers, a translation (contaminated), and a
  'near' problem with the same opening and setting (not contaminated).

The embedding threshold is chosen on the even-numbered benchmark kinds (and clean prompts of even
index) and reported on the odd ones, so the reported rates are not those it was fitted to.

    python benchmarks/eval_decontam.py                                   # n-gram stage, now
    python benchmarks/eval_decontam.py --main /work/main/distill/decontam.py   # and main's, before
    python benchmarks/eval_decontam.py --embedder PATH_OR_ID             # and the embedding stage
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
R1 = "Please reason step by step, and put your final answer within \\boxed{}."


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def templated(problem: str) -> str:
    return f"{problem}\n{R1}"


def load_module(path: str):
    spec = importlib.util.spec_from_file_location("decontam_peer", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["decontam_peer"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def ngram_report(name: str, index, bench_size: int) -> dict:
    clean = [templated(row["problem"]) for row in rows("decontam_clean")]
    flagged = [text for text in clean if index.find(text) is not None]
    found, total = Counter(), Counter()
    for row in rows("decontam_disguised"):
        text = row["text"] if "template" in row["kind"] else templated(row["text"])
        match = index.find(text)
        total[row["kind"]] += 1
        found[row["kind"]] += match is not None and match.problem == row["row"]
    rephrased, rephrased_total = Counter(), Counter()
    for row in rows("decontam_rephrased"):
        rephrased_total[row["kind"]] += 1
        rephrased[row["kind"]] += index.find(templated(row["text"])) is not None
    print(f"\n{name}: clean flagged {len(flagged)}/{len(clean)} ({100 * len(flagged) / len(clean):.2f} %)")
    print("  disguised found at their row: " + ", ".join(f"{k} {found[k]}/{total[k]}" for k in total))
    print("  rephrased set flagged: " + ", ".join(f"{k} {rephrased[k]}/{rephrased_total[k]}" for k in rephrased_total))
    return {"clean_flagged": len(flagged), "clean": len(clean), "flagged_examples": flagged[:5],
            "disguised": {k: [found[k], total[k]] for k in total},
            "rephrased": {k: [rephrased[k], rephrased_total[k]] for k in rephrased_total}}


def embedding_report(index, kinds_of_row: dict[int, int]) -> dict:
    """Every labelled prompt's n-gram verdict and embedding match (at every threshold), split in halves."""
    from distill import decontam

    labelled = [(templated(row["problem"]), False, "clean", i % 2) for i, row in enumerate(rows("decontam_clean"))]
    labelled += [(templated(row["text"]), row["contaminated"], row["kind"], kinds_of_row[row["row"]] % 2)
                 for row in rows("decontam_rephrased")]
    texts = [text for text, *_ in labelled]
    started = time.perf_counter()
    hits = index.embeddings.search([decontam.strip_instruction_text(t, index.ngrams.instructions) for t in texts])
    seconds = time.perf_counter() - started
    ngram = [index.ngrams.find(text) is not None for text in texts]
    queries = [decontam.strip_instruction_text(t, index.ngrams.instructions) for t in texts]

    def flagged(threshold: float) -> list[bool]:
        saved = index.embeddings.threshold
        index.embeddings.threshold = threshold
        try:
            return [n or index._embedding_match(q, h) is not None for n, q, h in zip(ngram, queries, hits, strict=True)]
        finally:
            index.embeddings.threshold = saved

    def rates(verdicts: list[bool], half: int | None) -> dict[str, tuple[int, int]]:
        out: dict[str, list[int]] = {}
        for verdict, (_, _, kind, parity) in zip(verdicts, labelled, strict=True):
            if half is None or parity == half:
                out.setdefault(kind, [0, 0])
                out[kind][0] += verdict
                out[kind][1] += 1
        return {k: (v[0], v[1]) for k, v in out.items()}

    table = {}
    for threshold in (0.70, 0.75, 0.80, 0.82, 0.85, 0.88, 0.90, 0.95):
        table[threshold] = flagged(threshold)
    # fit on the even half: the lowest threshold whose clean false flags stay at most 1 %
    fitted = next((t for t in sorted(table) if (lambda r: r["clean"][0] <= 0.01 * r["clean"][1])(rates(table[t], 0))),
                  None)
    print(f"\nembedding stage ({index.embeddings.model_name}): {len(texts)} prompts scored in {seconds:.1f} s "
          f"({len(texts) / seconds:.1f} prompts/s)")
    kinds = ["clean", "near", "rephrase", "numbers", "translation"]
    print("| threshold | half | " + " | ".join(kinds) + " |")
    print("|---|---|" + "---:|" * len(kinds))
    for threshold, verdicts in table.items():
        for half, label in ((0, "fit"), (1, "held out"), (None, "all")):
            r = rates(verdicts, half)
            print(f"| {threshold:.2f} | {label} | " + " | ".join(f"{r[k][0]}/{r[k][1]}" for k in kinds) + " |")
    print(f"threshold fitted on the even half (clean ≤ 1 %): {fitted}; the default is "
          f"{decontam.DEFAULT_EMBEDDING_THRESHOLD}")
    stages = Counter()
    for text, verdict in zip(texts, table[min(table, key=lambda t: abs(t - decontam.DEFAULT_EMBEDDING_THRESHOLD))],
                             strict=True):
        if verdict:
            match = index.find(text)
            stages[match.stage if match else "?"] += 1
    print("stages of the flags at the default threshold: " + ", ".join(f"{k} {v}" for k, v in stages.items()))
    return {"seconds": seconds, "prompts": len(texts), "fitted": fitted,
            "table": {str(t): {h: rates(v, half) for h, half in (("fit", 0), ("held_out", 1), ("all", None))}
                      for t, v in table.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--main", help="another decontam.py to compare (main's, before)")
    parser.add_argument("--embedder", help="a sentence-transformers model for the embedding stage")
    parser.add_argument("--cache-dir", help="benchmark embedding cache (default: distill's)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from distill import decontam

    bench = [row["problem"] for row in rows("decontam_benchmark")]
    report = {}
    if args.main:
        peer = load_module(args.main)
        index = peer.NgramIndex(8)
        index.add("bench", bench)
        report["before"] = ngram_report(f"before ({args.main})", index, len(bench))
    index = decontam.NgramIndex(8)
    index.add("bench", bench)
    report["now"] = ngram_report(f"n-gram stage now (share {decontam.DEFAULT_SHARE})", index, len(bench))
    if args.embedder:
        embeddings = decontam.EmbeddingIndex(args.embedder, cache_dir=args.cache_dir)
        started = time.perf_counter()
        embeddings.build(index.texts)
        print(f"\nbenchmark embeddings: {len(bench)} problems in {time.perf_counter() - started:.1f} s (cache: "
              f"{embeddings.cache_dir})")
        kinds_of_row = {i: row["kind"] for i, row in enumerate(rows("decontam_benchmark"), start=1)}
        report["embedding"] = embedding_report(decontam.ContaminationIndex(index, embeddings), kinds_of_row)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
