"""Speed and memory of the filter's tokenizer-based length check (`distill filter --checks length
--tokenizer T`) on 100k traces, against the two ways a script would count the same tokens.

Runs on any CPU (on the GPU machine it uses that machine's 16 cores; no GPU). Input: synthetic
R1-style traces of ~4.3k characters, one prompt in five in Chinese (benchmarks/filter_evalset.py,
seeded). Tokenizer: Qwen2.5's vocabulary size (151,936 tokens) from distill.tiny.synthetic_tokenizer;
its merges are synthetic, so it splits text finer than the real one (chars/token is reported);
a BPE trained on these traces plus Python sources to the same vocabulary size counted ~20 % more
traces per second per core on the 2-core container, so the ratios, not the absolute rates, carry over.

  distill   the real CLI: `distill filter TRACES --out ... --checks length --tokenizer T --max-tokens 16384`
            with a worker per core, end to end (validation pass, pool start with a tokenizer per
            worker, kept and rejects files, report); peak RSS of the main process and of main +
            workers, sampled every 20 ms
  loop      one process: for each JSON line, `len(tok(text)["input_ids"])` (what most scripts do);
            run on the first --loop-records traces (its rate per trace does not depend on the count)
  batched   one process: the fast tokenizer on batches of 1,000 texts read as they come (its Rust
            threads use every core)

Each side is a separate process; rates are traces/s, memory peak RSS in MiB.

    python benchmarks/gpu/bench_filter_length.py --records 100000 --out filter-length.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from measure import run_json_subprocess  # noqa: E402

from distill.traces import write_json  # noqa: E402

MAX_TOKENS = 16384


def make_traces(path: Path, records: int) -> dict[str, Any]:
    from filter_evalset import CASES, build_evalset

    cases = {"clean": (0.6, ()), "clean_equivalent_answer": (0.2, ()), "wrong_answer": (0.2, CASES["wrong_answer"][1])}
    # at most 20k distinct traces (the generator is slow single-threaded Python), repeated under new
    # ids up to `records`: the length check costs the same per trace either way
    rows = build_evalset(min(records, 20_000) // 4, samples=4, seed=0, target_chars=(3900, 4600), zh_share=0.2,
                         cases=cases)
    written = chars = 0
    with path.open("w", encoding="utf-8") as handle:
        while written < records:
            copy = written // len(rows)
            for row in rows[: records - written]:
                if copy:
                    row = {**row, "id": f"{row['id']}~{copy}", "prompt_id": f"{row['prompt_id']}~{copy}"}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                chars += len(row["completion"])
            written += min(len(rows), records - written)
    return {"records": written, "distinct": len(rows), "bytes": path.stat().st_size,
            "mean_completion_chars": round(chars / written, 1)}


def texts_of(path: Path, limit: int | None = None):
    from distill.shape import CANONICAL

    with path.open(encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if limit is not None and i >= limit:
                return
            yield CANONICAL.full_text(json.loads(line))


def side_main(args: argparse.Namespace) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    started = time.perf_counter()
    records = tokens = chars = 0
    if args.side == "loop":
        for text in texts_of(args.traces, args.loop_records):
            tokens += len(tokenizer(text, add_special_tokens=False)["input_ids"])
            chars += len(text)
            records += 1
    else:
        texts = texts_of(args.traces)  # streamed: 1,000 texts in memory at a time
        while batch := list(itertools.islice(texts, 1000)):
            tokens += sum(len(ids) for ids in tokenizer(batch, add_special_tokens=False)["input_ids"])
            chars += sum(len(text) for text in batch)
            records += len(batch)
    seconds = time.perf_counter() - started
    print("RESULT " + json.dumps({"records": records, "tokens": tokens, "chars": chars, "seconds": round(seconds, 3),
                                  "traces_per_s": round(records / seconds, 1),
                                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}),
          flush=True)


def tree_rss(pid: int) -> tuple[int, int]:
    import psutil

    try:
        main = psutil.Process(pid)
        rss = main.memory_info().rss
        return rss, rss + sum(child.memory_info().rss for child in main.children(recursive=True))
    except psutil.Error:
        return 0, 0


def run_distill(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    out = args.work / "kept.jsonl"
    report = args.work / "report.json"
    command = [sys.executable, "-m", "cli.main", "filter", str(args.traces), "--out", str(out), "--report", str(report),
               "--checks", "length", "--tokenizer", str(args.tokenizer), "--max-tokens", str(MAX_TOKENS),
               "--workers", str(workers), "--overwrite"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak_main = peak_tree = 0
    while process.poll() is None:
        main, tree = tree_rss(process.pid)
        peak_main, peak_tree = max(peak_main, main), max(peak_tree, tree)
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"distill filter failed:\n{process.stderr.read()[-3000:]}")
    data = json.loads(report.read_text())
    records = sum(1 for _ in args.traces.open(encoding="utf-8"))
    return {"records": records, "workers": workers, "seconds": round(seconds, 3),
            "traces_per_s": round(records / seconds, 1),
            "chunk_loop_traces_per_s": data.get("throughput", {}).get("records_per_s"),
            "kept": data["records"]["kept"], "tokens": round(data["lengths"]["all"]["mean"] * data["lengths"]["all"]["count"]),
            "peak_rss_main_mib": round(peak_main / 2**20, 1),
            "peak_rss_with_workers_mib": round(peak_tree / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--loop-records", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-filter-length"))
    parser.add_argument("--tokenizer", type=Path, help="default: a synthetic Qwen2.5-vocabulary tokenizer made here")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--side", choices=["loop", "batched"], help=argparse.SUPPRESS)
    parser.add_argument("--traces", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side_main(args)
        return

    args.work.mkdir(parents=True, exist_ok=True)
    if args.tokenizer is None:
        from distill.tiny import synthetic_tokenizer

        args.tokenizer = args.work / "tokenizer"
        synthetic_tokenizer(151936, "qwen").save_pretrained(args.tokenizer)
    args.traces = args.work / "traces.jsonl"
    started = time.perf_counter()
    data = make_traces(args.traces, args.records)
    print(f"{data['records']:,} traces ({data['bytes'] / 2**20:.0f} MiB, {data['mean_completion_chars']:,.0f} characters "
          f"on average) written in {time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs", flush=True)
    results: dict[str, Any] = {"benchmark": "filter length check with a tokenizer", "cpus": os.cpu_count(),
                               "tokenizer": "synthetic, 151,936 tokens (Qwen2.5 vocabulary size)", "data": data,
                               "max_tokens": MAX_TOKENS, "sides": {}}
    env = {"TOKENIZERS_PARALLELISM": "true"}
    for side in ("loop", "batched"):
        command = [sys.executable, __file__, "--side", side, "--traces", str(args.traces), "--tokenizer",
                   str(args.tokenizer), "--loop-records", str(args.loop_records)]
        found, tail = run_json_subprocess(command, timeout=3600, env=env)
        if not found:
            raise SystemExit(f"{side} failed:\n{tail}")
        results["sides"][side] = found[-1]
        print(f"{side:8s} {found[-1]['traces_per_s']:>9,.1f} traces/s  peak RSS {found[-1]['peak_rss_mib']:,.0f} MiB "
              f"({found[-1]['chars'] / max(found[-1]['tokens'], 1):.2f} characters/token)", flush=True)
    distill = run_distill(args, args.workers)
    results["sides"]["distill"] = distill
    print(f"distill  {distill['traces_per_s']:>9,.1f} traces/s end to end (chunk loop "
          f"{distill['chunk_loop_traces_per_s']}/s), {distill['workers']} workers, peak RSS main "
          f"{distill['peak_rss_main_mib']:,.0f} MiB, with workers {distill['peak_rss_with_workers_mib']:,.0f} MiB",
          flush=True)
    loop = results["sides"]["loop"]["traces_per_s"]
    results["distill_over_loop"] = round(distill["traces_per_s"] / loop, 2)
    results["distill_over_batched"] = round(distill["traces_per_s"] / results["sides"]["batched"]["traces_per_s"], 2)
    # the same work: distill's report counts the same tokens as the batched tokenizer did
    results["same_token_count"] = distill["tokens"] == results["sides"]["batched"]["tokens"]
    if args.out:
        write_json(args.out, results)
    print(json.dumps({k: v for k, v in results.items() if k != "sides"}, indent=1))


if __name__ == "__main__":
    main()
