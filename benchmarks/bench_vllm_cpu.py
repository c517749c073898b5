"""distill's vllm and openai backends against plain vLLM scripts, on vLLM's CPU build.

The GPU suite's benchmark (benchmarks/gpu/bench_vllm.py: its docstring says what each side does)
with a model vLLM's CPU build can run: Qwen2.5-1.5B's family on two layers of head size 64
(benchmarks/gpu/make_models.py --cpu) with an 8,192-token vocabulary (--vocab), random weights, no
end-of-sequence token, so every sample of every side runs to max_tokens (equal work, checked in
every run). float32, eager, a 1 GiB KV cache. Sides run alternately, rounds alternating which goes first:

  offline   distill generate --backend vllm | a plain `vllm.LLM.generate` | the same with distill's
            per-prompt seeds (what seeding costs inside vLLM), on one shared engine
  server    distill generate --backend openai | a plain AsyncOpenAI loop with the same concurrency
            (| the same with the seeds), against one `vllm serve`

    python benchmarks/bench_vllm_cpu.py offline --out vllm-cpu-offline.json      # ~10 min on 2 busy cores
    python benchmarks/bench_vllm_cpu.py server --out vllm-cpu-server.json
    python benchmarks/bench_vllm_cpu.py offline --out o.json --cases 128:8 --rounds 3 --vocab 151936
                                                       # --vocab is this script's; the other flags bench_vllm.py's
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "gpu"))

import bench_vllm  # noqa: E402
from make_models import make_model  # noqa: E402

VOCAB = 8192
"""The default vocabulary: on a CPU, sampling over Qwen's 151,936 tokens (a top-p sort per sequence and
step) takes most of a step, which would hide what distill adds; --vocab 151936 measures that too."""
CPU_DEFAULTS = ["--dtype", "float32", "--max-model-len", "1024", "--cases", "256:16", "--n", "4", "--rounds", "5",
                "--concurrency", "16", "--gpu-memory-utilization", "0.9",
                # chunked prefill off, as distill sets it on a CPU (vLLM's CPU build dies splitting a seeded
                # prompt over two steps), on every side and on the server
                "--engine-args", json.dumps({"enforce_eager": True, "kv_cache_memory_bytes": 1 << 30,
                                             "enable_chunked_prefill": False})]


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("offline", "server"):
        raise SystemExit(__doc__)
    rest = sys.argv[2:]
    vocab = VOCAB
    if "--vocab" in rest:  # this script's own flag; the others are bench_vllm.py's
        at = rest.index("--vocab")
        vocab, rest = int(rest[at + 1]), rest[:at] + rest[at + 2:]
    work = Path(tempfile.mkdtemp(prefix="bench-vllm-cpu-"))
    model = make_model(work / "models", "qwen2.5-1.5b", "gen", tiny="cpu", vocab=vocab)["path"]
    print(f"model: Qwen2.5-1.5B's family on two layers of head size 64, vocabulary {vocab:,}", flush=True)
    # the user's flags come last: argparse keeps the last value of a flag given twice
    bench_vllm.main([sys.argv[1], "--model", model, "--work", str(work / "run"), "--pidfile", str(work / "serve.pid"),
                     "--log", str(work / "serve.log"), *CPU_DEFAULTS, *rest])


if __name__ == "__main__":
    main()
