"""`distill train` (padding-free packing to a token budget) against TRL's `SFTTrainer` with its
default padded batches, on the same model, data and schedule.

The data mimics R1 traces: a long-tailed (log-normal) length mix, most examples short, a few long.
Each side runs in its own process (so its peak memory is its own), alternately A B A B, on the
same number of threads. Reported per side: training throughput in real (non-padding) tokens/s
over `trainer.train()`, padding efficiency (real tokens / tokens the model computed on), peak
memory (RSS on CPU, allocated on GPU), and the ratios.

TRL's defaults are kept except where they would change the work: max_length is raised to the
longest example (its default 1024 truncates), gradient checkpointing is off on both sides and
bf16 is off on CPU. Both use sdpa attention, lr 2e-5, one epoch, seed 0.

    python benchmarks/bench_train.py                   # ~3 min on 2 CPU cores
    python benchmarks/bench_train.py --examples 256 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = [
    "let", "me", "check", "the", "sum", "again", "so", "we", "get", "seven", "plus", "five",
    "equals", "twelve", "then", "multiply", "by", "three", "wait", "that", "is", "not", "right",
    "because", "the", "remainder", "is", "two", "hmm", "okay", "the", "answer", "follows",
]


def make_data(work: Path, examples: int, max_len: int, seed: int) -> Path:
    """Kept traces whose reasoning lengths follow a log-normal (median ~450 words, long tail)."""
    rng = random.Random(seed)
    rows = []
    for i in range(examples):
        words = int(min(max(rng.lognormvariate(math.log(450), 0.9), 40), max_len // 3))  # all fit: no drops
        reasoning = " ".join(rng.choice(WORDS) for _ in range(words))
        rows.append({"id": f"b{i}:0", "prompt_id": f"b{i}", "sample": 0,
                     "messages": [{"role": "user", "content": f"Problem {i}: what is {i} * 7 + 12?"}],
                     "completion": f"<think>\n{reasoning}\n</think>\n\nThe answer is \\boxed{{{7 * i + 12}}}.",
                     "reference": str(7 * i + 12), "finish_reason": "stop", "teacher": "bench"})
    path = work / "kept.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def peak_memory_mib() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_distill(work: Path, max_len: int) -> dict:
    from transformers import TrainerCallback

    from distill.train import TrainConfig, train

    class Tokens(TrainerCallback):
        computed = 0

        def on_train_end(self, args, state, control, **kwargs):
            Tokens.computed = state.num_input_tokens_seen

    result = train(TrainConfig(kept=str(work / "kept.jsonl"), student=str(work / "model"), out=str(work / "distill"),
                               max_seq_len=max_len, epochs=1, lr=2e-5, save_steps=0, gradient_checkpointing=False,
                               attn_implementation="sdpa", overwrite=True), callbacks=[Tokens()])
    return {"real": result.data.tokens, "computed": Tokens.computed, "seconds": result.elapsed_s,
            "steps": result.steps, "peak_mib": peak_memory_mib()}


def run_trl(work: Path, max_len: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = [json.loads(line) for line in (work / "kept.jsonl").read_text().splitlines()]
    dataset = Dataset.from_list([{"prompt": r["messages"],
                                  "completion": [{"role": "assistant", "content": r["completion"]}]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(work / "model")
    model = AutoModelForCausalLM.from_pretrained(work / "model", dtype=torch.float32, attn_implementation="sdpa")
    on_gpu = torch.cuda.is_available()
    args = SFTConfig(output_dir=str(work / "trl"), max_length=max_len, num_train_epochs=1, learning_rate=2e-5,
                     gradient_checkpointing=False, bf16=on_gpu, save_strategy="no", report_to="none", seed=0,
                     logging_steps=10, disable_tqdm=True, dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    counts = {"real": 0, "computed": 0}
    collate = trainer.data_collator

    def counting(features):
        batch = collate(features)
        counts["real"] += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
        counts["computed"] += batch["input_ids"].numel()
        return batch

    trainer.data_collator = counting
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {**counts, "seconds": seconds, "steps": trainer.state.global_step, "peak_mib": peak_memory_mib(),
            "batch_size": args.per_device_train_batch_size}


def side_main(side: str, work: Path, max_len: int) -> None:
    import logging

    logging.disable(logging.WARNING)
    result = run_distill(work, max_len) if side == "distill" else run_trl(work, max_len)
    print("RESULT " + json.dumps(result), flush=True)


def run_side(side: str, work: Path, max_len: int) -> dict:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error",
           "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    done = subprocess.run([sys.executable, __file__, "--side", side, "--work", str(work), "--max-len", str(max_len)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"{side} failed:\n{done.stderr[-4000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=128)
    parser.add_argument("--max-len", type=int, default=4096, help="distill --max-seq-len and TRL max_length")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--side", choices=["distill", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side_main(args.side, args.work, args.max_len)
        return

    import torch

    from distill.tiny import save_tiny

    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    save_tiny(work / "model", "qwen", hidden_size=args.hidden, layers=args.layers, heads=8, kv_heads=2,
              max_positions=args.max_len)
    make_data(work, args.examples, args.max_len, seed=0)
    runs: dict[str, list[dict]] = {"distill": [], "trl": []}
    for round_ in range(args.rounds):
        for side in ("trl", "distill") if round_ % 2 else ("distill", "trl"):
            runs[side].append(run_side(side, work, args.max_len))
            r = runs[side][-1]
            print(f"round {round_} {side:8s} {r['real'] / r['seconds']:>9,.0f} real tok/s  padding efficiency "
                  f"{r['real'] / r['computed']:.1%}  peak {r['peak_mib']:,.0f} MiB  {r['steps']} steps", flush=True)

    def summary(side: str) -> dict:
        rs = runs[side]
        return {"real_tok_s": round(statistics.median(r["real"] / r["seconds"] for r in rs), 1),
                "padding_efficiency": round(statistics.median(r["real"] / r["computed"] for r in rs), 4),
                "peak_mib": round(max(r["peak_mib"] for r in rs)), "real_tokens": rs[0]["real"],
                "computed_tokens": rs[0]["computed"], "steps": rs[0]["steps"]}

    ours, peer = summary("distill"), summary("trl")
    print(json.dumps({
        "device": "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)",
        "model": f"qwen2 h{args.hidden} l{args.layers}", "examples": args.examples, "max_len": args.max_len,
        "distill": ours, "trl_sft_padded": peer,
        "throughput_ratio": round(ours["real_tok_s"] / peer["real_tok_s"], 3),
        "peak_memory_ratio": round(ours["peak_mib"] / peer["peak_mib"], 3),
    }, indent=2))


if __name__ == "__main__":
    main()
