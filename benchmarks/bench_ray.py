"""`distill generate --ray` on one machine against `--backend vllm`, same prompts, engine and tokens.

Both sides run the same vLLM engine settings on the same prompts with the same per-sample seeds,
so they write the same records and generate the same tokens (equal work, checked every round). The
tiny R1-Distill teacher has head size 64, which vLLM's CPU build runs. It is float32 and eager, with a
1 GiB KV cache and chunked prefill off (as distill sets it on a CPU).

- `vllm`: `distill generate --backend vllm`, its engine in a process of its own (vLLM's default).
- `ray`: `distill generate --ray local`: a Ray started for the run, Ray Data's vLLM processor with
  one engine actor.

Each side runs twice per round: a start-up run (one prompt, one sample, one token: what the side
costs before it generates, Ray's and the engine actor's start included) and the measured run.
Throughput after start-up is the measured run's tokens / (its wall time − the start-up run's), the
same arithmetic on both sides (`ratio`). On a shared machine the start-ups vary by ±10 s, which
is large against a vllm side that generates for ~30 s, so the script also gives `ratio_engine_only`:
Ray's rate as above against the vllm side's own summary rate, which is exact (its engine is loaded
before its clock starts). Ray's stage gives no such moment to the driver.

Rounds alternate which side goes first; the ratio is ray / vllm per round, and the table gives its
median.

    python benchmarks/bench_ray.py --prompts 256 --n 4 --max-tokens 192 --rounds 2 --out ray-bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def make_teacher(path: Path) -> Path:
    from distill.tiny import save_tiny

    return save_tiny(path, "r1", hidden_size=128, heads=2, kv_heads=1)


def run_once(side: str, prompts: Path, teacher: Path, out: Path, args: argparse.Namespace, **over) -> tuple:
    from distill.generate import GenerateConfig, generate

    engine = {"enforce_eager": True, "kv_cache_memory_bytes": 1 << 30}
    options = {**dict(backend="vllm", n=args.n, max_tokens=args.max_tokens, max_model_len=1024, dtype="float32",
                      vllm_args=json.dumps(engine), overwrite=True), **over}
    if side == "ray":
        options.update(ray="local", ray_batch_size=args.batch_size)
    start = time.perf_counter()
    summary = generate(GenerateConfig(prompts=str(prompts), teacher=str(teacher), out=str(out), **options))
    wall = time.perf_counter() - start
    assert summary.complete and not summary.failed_prompts, summary.failed_prompts
    return summary, wall


def run_side(side: str, prompts: Path, teacher: Path, out: Path, args: argparse.Namespace) -> dict:
    name = "traces.jsonl" if side == "vllm" else "traces"
    _, startup = run_once(side, prompts, teacher, out / "startup" / name, args, limit=1, n=1, max_tokens=1)
    summary, wall = run_once(side, prompts, teacher, out / name, args)
    tokens = summary.completion_tokens["total"]
    return {"side": side, "records": summary.records, "tokens": tokens, "startup_s": round(startup, 1),
            "wall_s": round(wall, 1), "tokens_per_s_after_startup": round(tokens / (wall - startup), 1),
            "summary_tokens_per_s": summary.tokens_per_s, "first_record_s": summary.startup_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=16, help="--ray-batch-size")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    teacher = make_teacher(work / "teacher")
    prompts = work / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"b{i}", "problem": f"Compute {i} * {i + 3} and explain.",
                                           "answer": str(i * (i + 3))}) + "\n" for i in range(args.prompts)))
    rounds = []
    for index in range(args.rounds):
        order = ("vllm", "ray") if index % 2 == 0 else ("ray", "vllm")
        result = {side: run_side(side, prompts, teacher, work / f"{side}-{index}", args) for side in order}
        assert result["ray"]["tokens"] == result["vllm"]["tokens"], "the sides generated different tokens"
        result["ratio"] = round(result["ray"]["tokens_per_s_after_startup"]
                                / result["vllm"]["tokens_per_s_after_startup"], 3)
        result["ratio_engine_only"] = round(result["ray"]["tokens_per_s_after_startup"]
                                            / result["vllm"]["summary_tokens_per_s"], 3)
        rounds.append(result)
        print(json.dumps(result), flush=True)
    summary = {
        "machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
        "settings": {"prompts": args.prompts, "n": args.n, "max_tokens": args.max_tokens,
                     "ray_batch_size": args.batch_size},
        "rounds": rounds, "median_ratio": statistics.median(r["ratio"] for r in rounds),
        "median_ratio_engine_only": statistics.median(r["ratio_engine_only"] for r in rounds),
    }
    print(json.dumps({k: summary[k] for k in ("settings", "median_ratio", "median_ratio_engine_only")}))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
