"""Longest single training sequence `distill train --method qlora` fits in a 24 GiB budget.

The process's CUDA caching allocator is capped with torch.cuda.set_per_process_memory_fraction at
24 GiB minus what a 24 GB card loses outside that allocator: the CUDA context (measured in the
probe: device memory in use before any tensor, minus what the allocator holds) and the paged
8-bit AdamW states, which bitsandbytes keeps in managed memory the cap does not see (2 bytes per
trainable parameter, computed from the shape and the recipe's LoRA rank).

One attempt = `distill.train.train()` (the function behind `distill train`) on a kept file holding
one trace that renders to exactly L tokens, with the 24 GB recipe (recipes/train/*-qlora-24gb.yaml:
NF4 + double quantization, LoRA r 64 on all linear layers, paged AdamW 8-bit, gradient
checkpointing) and --max-seq-len L, one optimizer step. It fits when the step finishes; it does not
when the step raises CUDA out of memory. A process that ran out of memory is never reused: the
calibration process runs two lengths (both expected to fit), every later attempt gets a fresh
process, and a failure that follows a success in the same process is confirmed in a fresh one.

Search: the peak reserved memory of the fitting attempts is fitted by a line in L (activations,
checkpoints and chunked or full logits all grow linearly; the flash/efficient sdpa kernels keep
attention memory linear), the line's crossing of the cap is tried, then the bracket is narrowed
to --step tokens.

    python benchmarks/gpu/bench_qlora.py --model /root/gpu/models/qwen2.5-7b \\
        --recipe recipes/train/qwen2.5-7b-qlora-24gb.yaml --variants chunked,unchunked --out qlora.json
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from measure import device_facts, run_json_subprocess  # noqa: E402

from distill.traces import write_json  # noqa: E402

GIB = 2**30
CALIBRATION = {"chunked": (8192, 16384), "unchunked": (4096, 8192)}


@dataclass
class Attempt:
    length: int
    fits: bool | None
    """None: the attempt failed for another reason than memory (the search stops)."""
    reserved: int | None = None
    """Peak bytes the caching allocator held (what the cap is checked against)."""
    outside_allocator_end: int | None = None
    """Device bytes in use outside the allocator at the end (CUDA context after every kernel loaded, paged
    optimizer pages): a 24 GB card needs room for these too."""
    allocated: int | None = None
    cap: int | None = None
    """The allocator cap the probe set (24 GiB less the context and the paged optimizer states)."""
    seconds: float | None = None
    fresh: bool = True
    """The first length of its process (no earlier attempt in that process)."""
    error: str | None = None


def floor_to(value: float, step: int) -> int:
    return int(value // step) * step


def predict(points: list[Attempt], cap: int, step: int) -> int | None:
    """The largest multiple of `step` under the line through the two longest fitting points' reserved
    memory, where it crosses the cap (the probe's own cap when it reported one)."""
    fitted = sorted((a for a in points if a.fits and a.reserved), key=lambda a: a.length)[-2:]
    if len(fitted) < 2 or fitted[1].length == fitted[0].length:
        return None
    slope = (fitted[1].reserved - fitted[0].reserved) / (fitted[1].length - fitted[0].length)
    if slope <= 0:
        return None
    limit = fitted[1].cap or cap
    return floor_to(fitted[1].length + (limit - fitted[1].reserved) / slope, step)


def next_length(attempts: list[Attempt], fits_at: int, fails_at: int | None, *, cap: int, step: int,
                longest: int) -> int | None:
    """The next length to try, or None when the answer is resolved to `step` (or reached `longest`)."""
    guess = predict(attempts, cap, step)
    if fails_at is not None:
        if fails_at - fits_at <= step:
            return None
        # trust the line inside the bracket; outside a wide bracket it was wrong: bisect instead
        if guess is None or (not fits_at < guess < fails_at and fails_at - fits_at > 4 * step):
            guess = floor_to((fits_at + fails_at) / 2, step)
        return min(max(guess, fits_at + step), fails_at - step)
    if fits_at >= longest:
        return None
    if guess is None:
        guess = 2 * fits_at if fits_at else step
    return min(max(guess, fits_at + step), longest)


def search(run: Callable[[list[int]], list[Attempt]], *, cap: int, calibration: tuple[int, int], step: int,
           longest: int, max_attempts: int = 8) -> dict[str, Any]:
    """Narrow (longest fitting, shortest failing) to `step` tokens. `run` tries ascending lengths in one
    fresh process and stops at the first that does not fit."""
    attempts: list[Attempt] = []
    fits_at, fails_at = 0, None

    def attempt(lengths: list[int]) -> None:
        nonlocal fits_at, fails_at
        for i, result in enumerate(run(lengths)):
            result.fresh = i == 0
            attempts.append(result)
            if result.fits is None:
                raise RuntimeError(result.error or "attempt failed")
            if result.fits:
                fits_at = max(fits_at, result.length)
            elif result.fresh:
                fails_at = result.length if fails_at is None else min(fails_at, result.length)
            else:  # a failure after a success in the same process: confirm it in a fresh one
                attempt([result.length])
                return

    error = None
    try:
        attempt(list(calibration))
        while len(attempts) < max_attempts:
            length = next_length(attempts, fits_at, fails_at, cap=cap, step=step, longest=longest)
            if length is None:
                break
            attempt([length])
    except RuntimeError as exc:
        error = str(exc)
    resolved = fails_at is not None and fails_at - fits_at <= step
    return {"longest_fitting": fits_at or None, "shortest_failing": fails_at,
            "resolved_to_tokens": step if resolved else None, "error": error,
            "attempts": [asdict(a) for a in attempts]}


def lora_parameters(config: dict[str, Any], rank: int) -> int:
    """Trainable parameters of LoRA rank `rank` on every linear layer of the blocks (peft's all-linear)."""
    from flops import Shape

    shape = Shape.of(config)
    d, q, kv, ff = shape.hidden, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim, shape.intermediate
    per_layer = (d + q) + 2 * (d + kv) + (q + d) + 2 * (d + ff) + (ff + d)
    return shape.layers * rank * per_layer


# ------------------------------------------------------------------------------------------- probe


def probe(args: argparse.Namespace) -> None:
    """Try each length in order in this process; stop at the first that does not fit."""
    import random

    import torch
    from traces import exact_record, word_costs
    from transformers import AutoTokenizer

    from distill.config import build_config
    from distill.train import TrainConfig, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    cuda = torch.cuda.is_available()  # without one only the wiring is checked: no cap, no memory figures
    context = allowed = None
    if cuda:
        torch.zeros(1, device="cuda")
        free, total = torch.cuda.mem_get_info()
        context = (total - free) - torch.cuda.memory_reserved()
        allowed = int(args.budget_gib * GIB - context - args.outside_bytes)
        torch.cuda.set_per_process_memory_fraction(allowed / total)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    costs = word_costs(tokenizer)
    for length in [int(x) for x in args.lengths.split(",")]:
        work = args.work / f"{args.variant}-{length}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        record = exact_record(0, length, tokenizer, costs, random.Random(length))
        (work / "kept.jsonl").write_text(json.dumps(record) + "\n")
        # a little slack over the length: a merge at the reasoning's edge can make the rendering a token
        # or two longer, and an example over --max-seq-len would be dropped instead of trained
        cfg = build_config(TrainConfig, yaml_path=args.recipe, overrides=dict(
            kept=str(work / "kept.jsonl"), student=str(args.model), out=str(work / "out"), max_seq_len=length + 64,
            batch_tokens=length + 64, grad_accum=1, epochs=1.0, save_steps=0, overwrite=True,
            chunked_loss=args.variant == "chunked", report_to=[]))
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        outcome: dict[str, Any] = {"length": length, "context_bytes": context, "allowed_bytes": allowed}
        try:
            result = train(cfg)
            outcome.update(fits=True, tokens=result.data.tokens, step_tokens_per_s=result.tokens_per_s)
        except torch.OutOfMemoryError as exc:
            outcome.update(fits=False, error=str(exc).splitlines()[0][:300])
        except Exception as exc:  # an OOM surfacing as another type (e.g. from a kernel launch) is still an OOM
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            outcome.update(fits=False if "out of memory" in message.lower() else None, error=message)
        outcome.update(seconds=round(time.perf_counter() - started, 2),
                       reserved=torch.cuda.max_memory_reserved() if cuda else None,
                       allocated=torch.cuda.max_memory_allocated() if cuda else None)
        if cuda:  # what the device holds outside the allocator by now (context grown by kernels, managed pages)
            free, total = torch.cuda.mem_get_info()
            outcome["outside_allocator_end"] = (total - free) - torch.cuda.memory_reserved()
        print("RESULT " + json.dumps(outcome), flush=True)
        if not outcome["fits"]:
            return
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------- driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="train-kind model dir (make_models.py)")
    parser.add_argument("--recipe", type=Path, required=True, help="the 24 GB QLoRA recipe of that model")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--work", type=Path, default=Path("/root/gpu/work/qlora"))
    parser.add_argument("--variants", default="chunked,unchunked")
    parser.add_argument("--budget-gib", type=float, default=24.0)
    parser.add_argument("--step", type=int, default=4096, help="resolution of the answer in tokens")
    parser.add_argument("--calibration", help="the two lengths the first process tries (default: per variant, "
                        + ", ".join(f"{v} {a},{b}" for v, (a, b) in CALIBRATION.items()) + ")")
    parser.add_argument("--longest", type=int, default=131072, help="stop searching above this length")
    parser.add_argument("--max-attempts", type=int, default=5, help="attempts per variant")
    parser.add_argument("--attempt-timeout", type=float, default=150, help="seconds per length tried")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lengths", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--outside-bytes", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args)
        return

    from distill.config import read_yaml

    config = json.loads((args.model / "config.json").read_text())
    rank = int(read_yaml(args.recipe).get("lora_r", 16))
    paged_states = 2 * lora_parameters(config, rank)  # two 8-bit moments per trainable parameter
    results: dict[str, Any] = {"benchmark": "QLoRA longest sequence in a 24 GiB budget", "model": str(args.model),
                               "recipe": str(args.recipe), "budget_gib": args.budget_gib, "step": args.step,
                               "lora_trainable_parameters": lora_parameters(config, rank),
                               "paged_optimizer_bytes_outside_cap": paged_states, "variants": {}}
    try:
        results["device"] = device_facts()
    except Exception as exc:
        results["device"] = {"error": str(exc)}
    for variant in [v for v in args.variants.split(",") if v]:
        if variant not in CALIBRATION:
            raise SystemExit(f"unknown variant {variant!r}; choose chunked or unchunked")
        def run(lengths: list[int], variant: str = variant) -> list[Attempt]:
            command = [sys.executable, __file__, "--probe", "--model", str(args.model), "--recipe", str(args.recipe),
                       "--out", str(args.out), "--work", str(args.work), "--variant", variant,
                       "--budget-gib", str(args.budget_gib), "--outside-bytes", str(paged_states),
                       "--lengths", ",".join(map(str, lengths))]
            started = time.perf_counter()
            outcomes, tail = run_json_subprocess(command, timeout=args.attempt_timeout * len(lengths), log=args.log)
            found = [Attempt(length=o["length"], fits=o["fits"], reserved=o.get("reserved"),
                             allocated=o.get("allocated"), cap=o.get("allowed_bytes"), seconds=o.get("seconds"),
                             outside_allocator_end=o.get("outside_allocator_end"), error=o.get("error"))
                     for o in outcomes]
            tried = {a.length for a in found}
            if not found or (len(found) < len(lengths) and found[-1].fits):
                missing = next(length for length in lengths if length not in tried)
                found.append(Attempt(length=missing, fits=None, error=f"the probe process died without a verdict "
                                     f"({time.perf_counter() - started:.0f} s): {tail.strip()[-300:]}"))
            for a in found:
                print(f"  {variant:9s} {a.length:>7,} tokens: "
                      f"{'fits' if a.fits else 'OUT OF MEMORY' if a.fits is False else 'ERROR'}"
                      f"  reserved {(a.reserved or 0) / GIB:5.1f} GiB  {a.seconds or 0:6.1f} s", flush=True)
            # every attempt on disk at once: a step stopped at its time limit still leaves its evidence
            tried_so_far = results["variants"].setdefault(variant, {"in_progress": True, "attempts": []})
            tried_so_far["attempts"] += [asdict(a) for a in found]
            write_json(args.out, results)
            return found

        cap_estimate = int(args.budget_gib * GIB - paged_states - 0.5 * GIB)  # refined by the probe's own number
        calibration = tuple(int(x) for x in args.calibration.split(",")) if args.calibration else CALIBRATION[variant]
        outcome = search(run, cap=cap_estimate, calibration=calibration, step=args.step,
                         longest=args.longest, max_attempts=args.max_attempts)
        outcome["allocator_cap_bytes"] = next((a["cap"] for a in outcome["attempts"] if a["cap"]), None)
        results["variants"][variant] = outcome
        write_json(args.out, results)
        print(f"{args.model.name} {variant}: longest fitting {outcome['longest_fitting']}, "
              f"shortest failing {outcome['shortest_failing']}", flush=True)
    write_json(args.out, results)


if __name__ == "__main__":
    main()
