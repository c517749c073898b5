"""Models of the real shapes, with random weights, for speed and memory measurements (nothing is downloaded).

Each model is the real config.json's numbers (hidden, intermediate, layers, heads, kv heads, head
dim, rope theta and scaling, vocabulary, tied embeddings, max positions) and a tokenizer of the
real vocabulary size (`distill.tiny.synthetic_tokenizer`: every id decodes, so an engine may
sample any of them). Special-token ids are the synthetic tokenizer's, not the real ones. Two kinds:

  gen    config.json + tokenizer, no weights: vLLM runs it with load_format="dummy" (random
         weights made on the GPU). No end-of-sequence token anywhere (tokenizer, config, no
         generation_config.json), so every sample runs to max_tokens on every engine: the
         equivalent of ignore_eos, which `distill generate` does not expose, and equal work
         for distill and its peers whatever they sample.
  train  the same plus random bf16 weights (normal, std = initializer_range) saved as safetensors,
         because `distill train --student` loads with from_pretrained (QLoRA quantizes while
         loading): 3.1 GB for Qwen2.5-1.5B, 15.2 GB for Qwen2.5-7B, 16.1 GB for Llama-3.1-8B.
         The end of turn is the family's (<|im_end|>, <|eot_id|>). Other train-kind weights are
         deleted, oldest first, when the disk lacks room for these (make_room).

    python benchmarks/gpu/make_models.py --out /root/gpu/models qwen2.5-1.5b:gen qwen2.5-1.5b:train
    python benchmarks/gpu/make_models.py --out /tmp/m --tiny qwen2.5-7b:train    # CPU check: 2 small layers
    python benchmarks/gpu/make_models.py --out /tmp/m --cpu qwen2.5-1.5b:gen     # for vLLM's CPU build
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# The real config.json numbers (base models: what a distillation student starts from).
SHAPES: dict[str, dict[str, Any]] = {
    # https://huggingface.co/Qwen/Qwen2.5-1.5B/blob/main/config.json
    "qwen2.5-1.5b": {"family": "qwen", "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
                     "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                     "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 131072,
                     "max_window_layers": 21, "sliding_window": 131072, "use_sliding_window": False,
                     "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "tie_word_embeddings": True,
                     "vocab_size": 151936, "hidden_act": "silu", "initializer_range": 0.02,
                     "attention_dropout": 0.0},
    # https://huggingface.co/Qwen/Qwen2.5-7B/blob/main/config.json
    "qwen2.5-7b": {"family": "qwen", "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
                   "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                   "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 131072,
                   "max_window_layers": 28, "sliding_window": 131072, "use_sliding_window": False,
                   "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "tie_word_embeddings": False,
                   "vocab_size": 152064, "hidden_act": "silu", "initializer_range": 0.02,
                   "attention_dropout": 0.0},
    # https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json
    "llama3.1-8b": {"family": "llama", "model_type": "llama", "architectures": ["LlamaForCausalLM"],
                    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                    "max_position_embeddings": 131072, "rope_theta": 500000.0,
                    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                    "rms_norm_eps": 1e-05, "tie_word_embeddings": False, "vocab_size": 128256,
                    "hidden_act": "silu", "initializer_range": 0.02, "attention_bias": False,
                    "attention_dropout": 0.0, "mlp_bias": False, "pretraining_tp": 1},
}
# --tiny: the same vocabulary and family on two small layers (checks the pipeline on a CPU)
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "max_window_layers": 2}
# --cpu: the same on two layers of the head size vLLM's CPU attention takes (64; it refuses 16), for
# benchmarks/bench_vllm_cpu.py
CPU = {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 2,
       "num_key_value_heads": 1, "head_dim": 64, "max_window_layers": 2}
KINDS = ("gen", "train")


def model_dir(out: Path, name: str, kind: str) -> Path:
    return out / (f"{name}-gen" if kind == "gen" else name)


def make_config(name: str, tokenizer: Any, *, kind: str, tiny: bool | str = False, vocab: int | None = None) -> Any:
    """`tiny`: True for the TINY layers, "cpu" for the CPU ones; `vocab`: another vocabulary size."""
    from transformers import AutoConfig

    numbers = {k: v for k, v in SHAPES[name].items() if k != "family"}
    if vocab:
        numbers["vocab_size"] = vocab
    if tiny:
        small = CPU if tiny == "cpu" else TINY
        numbers.update({k: v for k, v in small.items() if k in numbers or k == "head_dim"})
    model_type = numbers.pop("model_type")
    eos = tokenizer.eos_token_id if kind == "train" else None
    return AutoConfig.for_model(model_type, **numbers, bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                                pad_token_id=tokenizer.pad_token_id, dtype="bfloat16", use_cache=True)


def make_room(out: Path, needed: int, keep: Path) -> list[str]:
    """Delete other train-kind model dirs under `out` (oldest first) until `needed` bytes are free; the
    GPU machine's 64 GiB disk holds the image and cannot hold all three models' weights (34 GB) beside it."""
    evicted = []
    candidates = sorted((m for m in out.glob("*/.complete") if m.parent != keep
                         and json.loads(m.read_text()).get("kind") == "train"), key=lambda m: m.stat().st_mtime)
    for marker in candidates:
        if shutil.disk_usage(out).free >= needed:
            break
        shutil.rmtree(marker.parent)
        evicted.append(marker.parent.name)
    if shutil.disk_usage(out).free < needed:
        raise SystemExit(f"{needed / 2**30:.1f} GiB needed in {out}, {shutil.disk_usage(out).free / 2**30:.1f} GiB "
                         "free even after removing the other models' weights")
    return evicted


def make_model(out: Path, name: str, kind: str, *, tiny: bool | str = False, seed: int = 0,
               overwrite: bool = False, vocab: int | None = None) -> dict[str, Any]:
    """`vocab`: another vocabulary size than the real one (a smaller one makes a CPU step cheaper)."""
    """Write one model directory; returns what was written (skips a complete one unless overwrite)."""
    import torch

    from distill.tiny import synthetic_tokenizer

    if kind not in KINDS:
        raise SystemExit(f"kind must be one of {KINDS}, got {kind!r}")
    target = model_dir(out, name, kind)
    done_marker = target / ".complete"
    if done_marker.exists() and not overwrite:
        return json.loads(done_marker.read_text())
    started = time.perf_counter()
    spec = SHAPES[name]
    tokenizer = synthetic_tokenizer(vocab or spec["vocab_size"], spec["family"])
    if kind == "gen":
        tokenizer.eos_token = None  # nothing can end a sample early: every one runs to max_tokens
    config = make_config(name, tokenizer, kind=kind, tiny=tiny, vocab=vocab)
    target.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(target)
    written = {"path": str(target), "name": name, "kind": kind, "tiny": tiny, "vocab": len(tokenizer)}
    if kind == "gen":
        config.save_pretrained(target)
    else:
        from transformers import AutoModelForCausalLM

        device = "cuda" if torch.cuda.is_available() else "cpu"
        torch.manual_seed(seed)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        written["parameters"] = sum(p.numel() for p in model.parameters())
        written["evicted"] = make_room(out, 2 * written["parameters"] + 2**30, keep=target)
        model.save_pretrained(target, max_shard_size="5GB")
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    written["bytes"] = sum(p.stat().st_size for p in target.iterdir() if p.is_file())
    written["seconds"] = round(time.perf_counter() - started, 1)
    done_marker.write_text(json.dumps(written))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="NAME:KIND, NAME one of " + ", ".join(SHAPES) + "; KIND gen|train")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="two small layers, real vocabulary (CPU checks)")
    parser.add_argument("--cpu", action="store_true",
                        help="two small layers of head size 64, real vocabulary (vLLM's CPU build)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    for item in args.models:
        name, _, kind = item.partition(":")
        if name not in SHAPES:
            raise SystemExit(f"unknown model {name!r}; one of {', '.join(SHAPES)}")
        print(json.dumps(make_model(args.out, name, kind or "gen", tiny="cpu" if args.cpu else args.tiny,
                                    overwrite=args.overwrite)),
              flush=True)


if __name__ == "__main__":
    main()
