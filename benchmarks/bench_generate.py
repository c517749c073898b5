"""Overhead of `distill generate --backend hf` over a plain batched `model.generate` loop.

Both sides get the same model, prompts, chat template, batch size, sampling
parameters and number of new tokens; they run alternately (A B A B …) in one
process so machine noise hits both. Reported: output tokens/s of each side over
the generation phase (model loading excluded on both sides, it is the same
`from_pretrained` call) and end to end (loading included), and the ratio.

    python benchmarks/bench_generate.py                # ~2 min on 2 CPU cores
    python benchmarks/bench_generate.py --rounds 5 --prompts 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def raw_loop(model_dir: Path, prompts: list[str], batch_size: int, n: int, max_new_tokens: int) -> tuple[int, float]:
    """What a hand-written script does: load, template, pad left, generate, decode. (tokens, gen seconds)"""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.backends import derive_seed

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    start = time.perf_counter()
    tokens = 0
    outputs = []
    for i in range(0, len(prompts), batch_size):
        chats = [[{"role": "user", "content": p}] for p in prompts[i:i + batch_size]]
        texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chats]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        # the same per-batch seed distill uses, so both sides sample the very same tokens (equal work)
        torch.manual_seed(derive_seed(0, "batch", i // batch_size))
        with torch.inference_mode():
            out = model.generate(**encoded, max_new_tokens=max_new_tokens, num_return_sequences=n, do_sample=True,
                                 temperature=0.6, top_p=0.95, top_k=0, pad_token_id=tokenizer.pad_token_id)
        generated = out[:, encoded["input_ids"].shape[1]:]
        for row in generated:
            stop = (row == tokenizer.eos_token_id).nonzero()
            length = int(stop[0]) + 1 if len(stop) else len(row)
            tokens += length
            outputs.append(tokenizer.decode(row[:length], skip_special_tokens=True))
    return tokens, time.perf_counter() - start


def distill_run(model_dir: Path, prompts_path: Path, out: Path, batch_size: int, n: int,
                max_new_tokens: int) -> tuple[int, float]:
    from distill.generate import GenerateConfig, generate

    summary = generate(GenerateConfig(prompts=str(prompts_path), teacher=str(model_dir), out=str(out),
                                      backend="hf", batch_size=batch_size, n=n, max_tokens=max_new_tokens,
                                      template="{problem}", overwrite=True))
    return int(summary.completion_tokens["total"]), summary.elapsed_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256, help="hidden size of the benchmark model")
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()

    from distill.tiny import save_tiny

    work = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    model_dir = save_tiny(work / "model", "qwen", hidden_size=args.hidden, layers=args.layers, heads=8, kv_heads=2)
    problems = [f"Compute {i} * {i + 3} and explain each step." for i in range(args.prompts)]
    prompts_path = work / "prompts.jsonl"
    prompts_path.write_text("".join(json.dumps({"problem": p}) + "\n" for p in problems))

    raw_rates, distill_rates, raw_e2e, distill_e2e = [], [], [], []

    def run_raw() -> int:
        start = time.perf_counter()
        tokens, seconds = raw_loop(model_dir, problems, args.batch_size, args.n, args.max_new_tokens)
        raw_e2e.append(tokens / (time.perf_counter() - start))
        raw_rates.append(tokens / seconds)
        return tokens

    def run_distill() -> int:
        start = time.perf_counter()
        tokens, seconds = distill_run(model_dir, prompts_path, work / "traces.jsonl", args.batch_size, args.n,
                                      args.max_new_tokens)
        distill_e2e.append(tokens / (time.perf_counter() - start))
        distill_rates.append(tokens / seconds)
        return tokens

    for round_ in range(args.rounds):
        # A B, then B A: neither side always runs first (warm caches, a neighbour's burst)
        if round_ % 2 == 0:
            tokens, tokens_d = run_raw(), run_distill()
        else:
            tokens_d, tokens = run_distill(), run_raw()
        print(f"round {round_}: raw {raw_rates[-1]:.1f} tok/s ({tokens} tok), distill {distill_rates[-1]:.1f} "
              f"tok/s ({tokens_d} tok), ratio {distill_rates[-1] / raw_rates[-1]:.3f}", flush=True)
        if tokens != tokens_d:
            print(f"  note: the two sides generated different token counts ({tokens} vs {tokens_d})")

    def summary(raw: list[float], dist: list[float]) -> dict[str, object]:
        ratios = [d / r for r, d in zip(raw, dist)]
        return {"raw": round(statistics.median(raw), 1), "distill": round(statistics.median(dist), 1),
                "ratio_per_round": [round(x, 3) for x in ratios], "ratio": round(statistics.median(ratios), 3)}

    print(json.dumps({
        "torch_threads": torch.get_num_threads(), "prompts": args.prompts, "batch_size": args.batch_size,
        "n": args.n, "max_new_tokens": args.max_new_tokens, "model": f"qwen2 h{args.hidden} l{args.layers}",
        "generation_tok_s": summary(raw_rates, distill_rates),
        "end_to_end_tok_s": summary(raw_e2e, distill_e2e),
    }, indent=2))


if __name__ == "__main__":
    main()
