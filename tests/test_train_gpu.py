"""The GPU-only paths of `distill train` (skipped without CUDA): QLoRA with bf16 compute and the paged
8-bit optimizer, bf16 packed attention, the chunked loss's memory, Liger kernels, FSDP2."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from distill.tiny import build_model, build_tokenizer
from distill.train import TrainConfig, probe_chat_format, render_example, train
from distill.train.data import PackedCollator
from distill.train.loss import chunked_causal_lm_loss
from tests.conftest import ROOT
from tests.train_data import kept_records, write_kept

pytestmark = pytest.mark.gpu


def config(kept, student, out, **overrides) -> TrainConfig:
    options = dict(kept=str(kept), student=str(student), out=str(out), max_seq_len=512, batch_tokens=1024,
                   epochs=2, lr=1e-3, save_steps=0)
    options.update(overrides)
    return TrainConfig(**options)


class Inspect(TrainerCallback):
    def __init__(self):
        self.seen = {}

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        inner = getattr(optimizer, "optimizer", optimizer)
        self.seen.update(optimizer=type(inner).__name__, bf16=args.bf16, device=next(model.parameters()).device.type)
        self.model = model
        self.before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}


def test_qlora_on_gpu_uses_bf16_compute_and_the_paged_8bit_optimizer(tmp_path, tiny_models):
    import bitsandbytes as bnb

    kept = write_kept(tmp_path / "kept.jsonl", 16)
    probe = Inspect()
    result = train(config(kept, tiny_models["qwen"], tmp_path / "out", method="qlora", lora_r=8,
                          gradient_checkpointing=True), callbacks=[probe])
    assert probe.seen == {"optimizer": "PagedAdamW8bit", "bf16": True, "device": "cuda"}
    layers = [m for m in probe.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and layers[0].compute_dtype == torch.bfloat16
    assert layers[0].weight.quant_state.quant_type == "nf4" and layers[0].weight.quant_state.nested
    after = dict(probe.model.named_parameters())
    assert all(not torch.equal(after[n].detach(), b) for n, b in probe.before.items())
    assert result.final_loss is not None and result.final_loss == result.final_loss  # not NaN


@pytest.mark.parametrize("attention", ["sdpa", "flash_attention_2"])
def test_packed_loss_equals_unpacked_in_bf16_on_gpu(attention, tiny_models):
    if attention == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        pytest.skip("flash-attn is not installed")
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["qwen"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["qwen"], dtype=torch.bfloat16,
                                                 attn_implementation=attention).cuda().eval()
    fmt = probe_chat_format(tokenizer)
    examples = [render_example(r, tokenizer, chat_format=fmt) for r in kept_records(4, seed=2)]
    batch = {k: v.cuda() if torch.is_tensor(v) else v
             for k, v in PackedCollator(flash_attention=attention.startswith("flash"))([examples]).items()}
    with torch.no_grad():
        packed = model(**batch, use_cache=False).loss.float()
        total = count = 0
        for example in examples:
            labels = torch.tensor([example["labels"]], device="cuda")
            loss = model(input_ids=torch.tensor([example["input_ids"]], device="cuda"), labels=labels,
                         use_cache=False).loss.float()
            n = (labels[..., 1:] != -100).sum()
            total, count = total + loss * n, count + n
    torch.testing.assert_close(packed, total / count, rtol=2e-2, atol=2e-2)


def test_chunked_loss_never_holds_the_full_logits():
    torch.manual_seed(0)
    tokens, hidden_size, vocab = 8192, 256, 152064
    hidden = torch.randn(1, tokens, hidden_size, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    weight = torch.randn(vocab, hidden_size, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    labels = torch.randint(0, vocab, (1, tokens), device="cuda")

    def peak(fn):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        loss = fn()
        loss.backward()
        torch.cuda.synchronize()
        hidden.grad = weight.grad = None
        return loss.detach().float(), torch.cuda.max_memory_allocated() - start

    from transformers.loss.loss_utils import ForCausalLMLoss

    standard, standard_peak = peak(lambda: ForCausalLMLoss(hidden @ weight.T, labels, vocab_size=vocab))
    chunked, chunked_peak = peak(lambda: chunked_causal_lm_loss(hidden, weight, labels, chunk_tokens=512))
    torch.testing.assert_close(chunked, standard, rtol=1e-2, atol=1e-2)
    full_logits = tokens * vocab * 4
    assert standard_peak > full_logits
    assert chunked_peak < full_logits / 3, (chunked_peak, full_logits)


def test_liger_kernels_train(tmp_path, tiny_models):
    if importlib.util.find_spec("liger_kernel") is None:
        pytest.skip("liger-kernel is not installed (pip install 'distill[liger]')")
    kept = write_kept(tmp_path / "kept.jsonl", 16)
    result = train(config(kept, tiny_models["qwen"], tmp_path / "out", liger=True, epochs=4))
    history = [e["loss"] for e in json.loads((tmp_path / "out" / "train_summary.json").read_text())["log_history"]
               if "loss" in e]
    assert result.steps > 0 and history[-1] < history[0]


def test_fsdp2_recipe_config_trains_and_saves_one_safetensors_file(tmp_path):
    student = tmp_path / "student"
    tokenizer = build_tokenizer("qwen")
    build_model(tokenizer, "qwen", hidden_size=128, layers=4).save_pretrained(student)
    tokenizer.save_pretrained(student)
    kept = write_kept(tmp_path / "kept.jsonl", 16)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "recipes/accelerate/fsdp2-8gpu.yaml"), "--num_processes", "1", "-m", "cli.main", "train",
               str(kept), "--student", str(student), "--out", str(out), "--max-seq-len", "512", "--epochs", "2",
               "--save-steps", "3", "--lr", "1e-3"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600,
                            env={**os.environ, "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0")})
    assert result.returncode == 0, result.stderr[-3000:]
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 4 and (out / "model.safetensors").is_file()
    assert json.loads((out / "train_summary.json").read_text())["steps"] > 0
