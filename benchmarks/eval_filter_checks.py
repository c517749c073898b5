"""Precision and recall of every `distill filter` check on the labelled evaluation set.

Builds the set of benchmarks/filter_evalset.py (synthetic R1-style traces, one
injected fault per record at known rates, plus hard negatives), runs the real
`filter_traces` on it with all checks, and compares each check's verdicts with
the labels: a check "predicts" a fault when its verdict is false.

    python benchmarks/eval_filter_checks.py                 # 1,600 records, ~1 min on 2 cores
    python benchmarks/eval_filter_checks.py --prompts 1000 --language-max-foreign-run 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from filter_evalset import MAX_TOKENS, build_evalset  # benchmarks/ is on the path of a script run from it

from distill.checks import default_checks
from distill.filter import FilterConfig, filter_traces
from distill.report import markdown_table


def score_checks(records: list[dict]) -> list[list]:
    rows = []
    for check in default_checks():
        tp = fp = fn = tn = unknown = 0
        for record in records:
            truth = check in record["source"]["faults"]
            verdict = record["verdicts"].get(check)
            predicted = verdict is False
            unknown += verdict is None
            tp += truth and predicted
            fp += predicted and not truth
            fn += truth and not predicted
            tn += not truth and not predicted
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / (tp + fn) if tp + fn else float("nan")
        rows.append([check, tp + fn, tp, fp, fn, unknown, round(precision, 3), round(recall, 3)])
    return rows


def score_cases(records: list[dict]) -> list[list]:
    by_case: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_case[record["source"]["case"]].append(record)
    rows = []
    for case, group in sorted(by_case.items()):
        rejected = [r for r in group if r.get("rejected_by")]
        fired = Counter(check for r in rejected for check in r["rejected_by"])
        expected = ",".join(group[0]["source"]["faults"]) or "(keep)"
        rows.append([case, expected, len(group), len(rejected), round(len(rejected) / len(group), 3),
                     " ".join(f"{c}:{n}" for c, n in fired.most_common())])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--language-max-foreign-run", type=int, default=None)
    parser.add_argument("--language-threshold", type=float, default=None)
    parser.add_argument("--repetition-max-count", type=int, default=None)
    parser.add_argument("--repetition-ngram", type=int, default=None)
    parser.add_argument("--json", type=Path, help="also write the tables here")
    args = parser.parse_args()

    records = build_evalset(args.prompts, seed=args.seed)
    overrides = {k: v for k, v in vars(args).items()
                 if k.startswith(("language_", "repetition_")) and v is not None}
    with tempfile.TemporaryDirectory() as tmp:
        traces = Path(tmp) / "evalset.jsonl"
        traces.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        start = time.perf_counter()
        report = filter_traces(FilterConfig(traces=str(traces), out=str(Path(tmp) / "kept.jsonl"),
                                            max_tokens=MAX_TOKENS, workers=args.workers, **overrides))
        elapsed = time.perf_counter() - start
        outputs = [json.loads(line) for name in ("kept.jsonl", "kept.rejects.jsonl")
                   for line in (Path(tmp) / name).read_text(encoding="utf-8").splitlines()]
    faults = Counter(f for r in records for f in r["source"]["faults"])
    print(f"{len(records)} records ({sum(1 for r in records if not r['source']['faults'])} clean), "
          f"faults per check: {dict(faults)}; filtered in {elapsed:.1f} s; options {overrides or 'defaults'}\n")
    check_rows = score_checks(outputs)
    print(markdown_table(["check", "faulty", "TP", "FP", "FN", "null", "precision", "recall"], check_rows))
    print()
    case_rows = score_cases(outputs)
    print(markdown_table(["case", "should be rejected by", "records", "rejected", "share", "rejected by"],
                         case_rows))
    print()
    print(report.format())
    if args.json:
        args.json.write_text(json.dumps({"checks": check_rows, "cases": case_rows}, indent=1))


if __name__ == "__main__":
    main()
