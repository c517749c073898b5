"""Full SFT throughput and MFU: `distill train --method full` against TRL's SFTTrainer, same model and data.

Model: the Qwen2.5-1.5B shape with random bf16 weights (make_models.py). Data: R1-like kept
traces, log-normal lengths (median 3k tokens, up to 16k), packed into 16,384-token micro-batches,
4 micro-batches per optimizer step, one epoch. Both sides: float32 master weights with bf16
autocast, gradient checkpointing, fused AdamW, sdpa attention unless a side says otherwise (the
image has no flash-attn), the same lr and seed.

  distill       distill.train.train(TrainConfig(method="full", max_seq_len=16384, batch_tokens=16384,
                grad_accum=4)), i.e. `distill train` with its defaults (padding-free packing, chunked loss)
  trl           TRL SFTTrainer with its recommended long-context settings: packing="bfd" (padding-free),
                max_length 16384, per-device batch 1, gradient checkpointing, completion-only loss,
                and its default loss, which runs the head without materializing the full logits
  distill-flex  what-if: distill with transformers' flex_attention, which skips the attention
                blocks across packed examples that sdpa's block-diagonal mask still computes (not
                a distill option: --attn-implementation does not list it; the benchmark admits it)
  trl-flex      TRL with flex_attention

Each side runs in its own process. Timed: the period of every optimizer step, from the end of the
previous one to the end of this one after a device synchronization (so fetching and collating the
micro-batches, the optimizer and logging count too); the first `--warmup` steps (allocation,
autotuning, flex compilation) are left out. The flex sides run only when --sides names them.
Model FLOPs per step come from the packed batches the side actually fed (flops.py: dense 6·P·T,
head 6·V·d·T_trained, causal attention 6·L·h·dh·Σ s(s+1)); MFU divides them by the bf16 matmul
peak measured in this run (8192³ products on random data, in its own process before the sides).

    python benchmarks/gpu/bench_sft.py --model /root/gpu/models/qwen2.5-1.5b --out sft.json
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from flops import Shape, mfu, palm_flops, step_flops  # noqa: E402
from measure import (  # noqa: E402
    bf16_matmul_peak,
    device_facts,
    run_json_subprocess,
    sequence_lengths,
    step_timer_callback,
    trained_tokens,
)

from distill.traces import write_json  # noqa: E402

SIDES = ("distill", "trl", "distill-flex", "trl-flex")


class BatchLog:
    """(sequence lengths, trained tokens) of every micro-batch, in the order the sides consumed them."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[int], int]] = []

    def add(self, batch: dict[str, Any]) -> None:
        self.batches.append((sequence_lengths(batch["position_ids"]), trained_tokens(batch["labels"])))


def run_distill(args: argparse.Namespace, attention: str) -> dict[str, Any]:
    import distill.train.run as train_run
    import distill.training.options as training_options
    from distill.train import TrainConfig, train

    log = BatchLog()
    if attention not in training_options.ATTENTION:  # the what-if: admit a kernel distill does not list yet
        training_options.ATTENTION = (*training_options.ATTENTION, attention)

    class RecordingCollator(train_run.PackedCollator):
        def __call__(self, packs):
            batch = super().__call__(packs)
            log.add(batch)
            return batch

    train_run.PackedCollator = RecordingCollator
    timer = step_timer_callback()
    out = args.work / f"distill-{attention}"
    result = train(TrainConfig(kept=str(args.work / "kept.jsonl"), student=str(args.model), out=str(out),
                               method="full", max_seq_len=args.seq, batch_tokens=args.seq, grad_accum=args.grad_accum,
                               epochs=1, lr=1e-5, warmup_ratio=0.0, save_steps=0, overwrite=True,
                               attn_implementation=attention), callbacks=[timer])
    shutil.rmtree(out, ignore_errors=True)
    return {"durations": timer.durations, "batches": log.batches, "peak_allocated": timer.peak_allocated,
            "reported_tokens_per_s": result.tokens_per_s, "steps": result.steps,
            "data": result.data.__dict__}


def run_trl(args: argparse.Namespace, attention: str) -> dict[str, Any]:
    import dataclasses

    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = [json.loads(line) for line in (args.work / "kept.jsonl").read_text().splitlines()]
    dataset = Dataset.from_list([{"prompt": r["messages"],
                                  "completion": [{"role": "assistant", "content": r["completion"]}]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    import torch

    on_gpu = torch.cuda.is_available()  # off a GPU only to check this script: no bf16 there
    known = {f.name for f in dataclasses.fields(SFTConfig)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in known else "gradient_checkpointing"
    options = dict(output_dir=str(args.work / f"trl-{attention}"), max_length=args.seq, packing=True,
                   packing_strategy="bfd", per_device_train_batch_size=1, gradient_accumulation_steps=args.grad_accum,
                   bf16=on_gpu, use_cpu=not on_gpu, learning_rate=1e-5, num_train_epochs=1, save_strategy="no", report_to="none",
                   logging_steps=1, seed=0, dataloader_num_workers=0, optim="adamw_torch_fused",
                   model_init_kwargs={"attn_implementation": attention, "dtype": "float32"},
                   **{checkpointing: True, f"{checkpointing}_kwargs": {"use_reentrant": False}})
    sft_config = SFTConfig(**{k: v for k, v in options.items() if k in known})
    timer = step_timer_callback()
    trainer = SFTTrainer(model=str(args.model), args=sft_config, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[timer])
    log = BatchLog()
    collate = trainer.data_collator

    def recording(features):
        batch = collate(features)
        log.add(batch)
        return batch

    trainer.data_collator = recording
    started = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - started
    shutil.rmtree(args.work / f"trl-{attention}", ignore_errors=True)
    tokens = sum(sum(lengths) for lengths, _ in log.batches)
    return {"durations": timer.durations, "batches": log.batches, "peak_allocated": timer.peak_allocated,
            "reported_tokens_per_s": round(tokens / elapsed, 1), "steps": trainer.state.global_step}


def side_main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.side == "peak":
        print("RESULT " + json.dumps({"peak": bf16_matmul_peak(), "device": device_facts()}), flush=True)
        return
    name, _, kernel = args.side.partition("-")
    attention = "flex_attention" if kernel == "flex" else args.attention
    result = run_distill(args, attention) if name == "distill" else run_trl(args, attention)
    result["attention"] = attention
    print("RESULT " + json.dumps(result), flush=True)


def summarize(side: dict[str, Any], shape: Shape, peak_tflops: float, warmup: int, grad_accum: int,
              seq: int) -> dict[str, Any]:
    """Tokens/s and MFU over the optimizer steps after `warmup`, from the micro-batches they consumed."""
    durations, batches = side["durations"], side["batches"]
    steps = len(durations)
    if steps <= warmup:
        raise ValueError(f"only {steps} steps, need more than --warmup {warmup}; give more --packs")
    measured = batches[warmup * grad_accum:]  # the micro-batches of the timed steps, in order
    seconds = sum(durations[warmup:])
    flops = {"dense": 0, "head": 0, "attention": 0, "total": 0, "tokens": 0}
    for lengths, trained in measured:
        for key, value in step_flops(shape, lengths, trained).items():
            flops[key] += value
    per_step = durations[warmup:]
    palm = palm_flops(shape, seq, flops["tokens"])
    return {"attention": side["attention"], "optimizer_steps": steps, "measured_steps": steps - warmup,
            "measured_tokens": flops["tokens"], "seconds": round(seconds, 3),
            "tokens_per_s": round(flops["tokens"] / seconds, 1),
            "step_seconds_median": round(statistics.median(per_step), 4),
            "model_tflops_per_s": round(flops["total"] / seconds / 1e12, 1),
            "mfu_vs_measured_peak": round(mfu(flops["total"], seconds, peak_tflops * 1e12), 4),
            "mfu_vs_989_datasheet": round(mfu(flops["total"], seconds, 989e12), 4),
            "palm_mfu_vs_measured_peak": round(mfu(palm, seconds, peak_tflops * 1e12), 4),
            "flops_share": {k: round(flops[k] / flops["total"], 4) for k in ("dense", "head", "attention")},
            "examples_per_micro_batch": round(sum(len(b[0]) for b in measured) / max(len(measured), 1), 2),
            "peak_allocated_gib": round(side["peak_allocated"] / 2**30, 2),
            "reported_tokens_per_s": side["reported_tokens_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="train-kind model dir (make_models.py)")
    parser.add_argument("--out", type=Path, required=True, help="results JSON")
    parser.add_argument("--log", type=Path, help="append the sides' output here")
    parser.add_argument("--work", type=Path, default=Path("/root/gpu/work/sft"))
    parser.add_argument("--sides", default="distill,trl", help=f"comma-separated, of {', '.join(SIDES)}")
    parser.add_argument("--seq", type=int, default=16384, help="tokens per packed micro-batch (and longest example)")
    parser.add_argument("--grad-accum", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps of data (warmup included)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--attention", default="sdpa", help="attention of the distill and trl sides")
    parser.add_argument("--side-timeout", type=float, default=300)
    parser.add_argument("--peak-tflops", type=float, help="use this bf16 peak instead of measuring it (CPU checks)")
    parser.add_argument("--side", choices=[*SIDES, "peak"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side_main(args)
        return

    from traces import write_kept
    from transformers import AutoConfig, AutoTokenizer

    sides = [s for s in args.sides.split(",") if s]
    unknown = set(sides) - set(SIDES)
    if unknown:
        raise SystemExit(f"unknown sides {sorted(unknown)}; choose from {SIDES}")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    shape = Shape.of(AutoConfig.from_pretrained(args.model))
    # 3% under the steps' token budget (packing leaves room in each micro-batch); the longest example
    # 64 tokens under --seq, as TRL's rendering adds a newline after each turn (its bfd packing would
    # truncate an example longer than max_length)
    data = write_kept(args.work / "kept.jsonl", tokenizer, total_tokens=int(args.steps * args.grad_accum * args.seq
                                                                            * 0.97), max_len=args.seq - 64)
    results: dict[str, Any] = {"benchmark": "full SFT, distill vs TRL", "model": str(args.model),
                               "shape": shape.__dict__, "seq": args.seq, "grad_accum": args.grad_accum,
                               "warmup_steps": args.warmup, "data": data, "sides": {}, "errors": {}}
    base = [sys.executable, __file__, "--model", str(args.model), "--out", str(args.out), "--work", str(args.work),
            "--seq", str(args.seq), "--grad-accum", str(args.grad_accum), "--attention", args.attention]
    if args.peak_tflops:
        peak = {"peak": {"median_tflops": args.peak_tflops, "given": True}, "device": {}}
    else:
        found, tail = run_json_subprocess([*base, "--side", "peak"], timeout=120, log=args.log)
        peak = found[-1] if found else None
        if peak is None:
            raise SystemExit(f"the matmul peak measurement failed:\n{tail}")
    results.update(device=peak["device"], bf16_peak=peak["peak"])
    peak_tflops = peak["peak"]["median_tflops"]
    print(f"bf16 matmul peak (8192³, random data, median): {peak_tflops} TFLOP/s", flush=True)
    for side in sides:
        found, tail = run_json_subprocess([*base, "--side", side], timeout=args.side_timeout, log=args.log)
        raw = found[-1] if found else None
        if raw is None:
            results["errors"][side] = tail
            print(f"{side:13s} FAILED: {tail.strip().splitlines()[-1] if tail.strip() else '?'}", flush=True)
            continue
        try:
            summary = summarize(raw, shape, peak_tflops, args.warmup, args.grad_accum, args.seq)
        except ValueError as exc:
            results["errors"][side] = str(exc)
            continue
        results["sides"][side] = summary
        print(f"{side:13s} {summary['tokens_per_s']:>10,.0f} tok/s  MFU {summary['mfu_vs_measured_peak']:.1%} "
              f"(PaLM formula {summary['palm_mfu_vs_measured_peak']:.1%})  step {summary['step_seconds_median']:.3f} s"
              f"  peak {summary['peak_allocated_gib']} GiB", flush=True)
        write_json(args.out, results)
    if "distill" in results["sides"] and "trl" in results["sides"]:
        results["distill_over_trl"] = round(results["sides"]["distill"]["tokens_per_s"]
                                            / results["sides"]["trl"]["tokens_per_s"], 4)
    write_json(args.out, results)
    print(json.dumps({k: v for k, v in results.items() if k not in ("data",)}, indent=1)[:3000])


if __name__ == "__main__":
    main()
