"""Training on tiny models (CPU): packed == unpacked loss, the chunked loss, overfitting, LoRA and
QLoRA invariants, merging, the saved stop token, resume after a crash, and multi-process training."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, TrainerCallback

from distill.errors import ConfigError, InputError, ModelError, OutputError
from distill.runs import file_digest
from distill.tiny import build_model, build_tokenizer
from distill.train import TrainConfig, probe_chat_format, render_example, train
from distill.train.data import PackedCollator
from distill.train.loss import chunked_causal_lm_loss, disable_chunked_loss, enable_chunked_loss
from tests.conftest import ROOT
from tests.train_data import kept_record, kept_records, write_kept


def config(kept, student, out, **overrides) -> TrainConfig:
    options = dict(kept=str(kept), student=str(student), out=str(out), max_seq_len=512, batch_tokens=600,
                   epochs=1, lr=1e-3, save_steps=0)
    options.update(overrides)
    return TrainConfig(**options)


def losses(out) -> list[float]:
    history = json.loads((out / "train_summary.json").read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


class Capture(TrainerCallback):
    """Keeps a reference to the model the Trainer trains, and runs `check` on it at the start."""

    def __init__(self, check=None):
        self.check, self.model = check, None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.model = model
        if self.check is not None:
            self.check(model)


# --- the loss ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_loss_equals_unpacked_per_example_loss(attention, tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["qwen"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["qwen"], dtype=torch.float32,
                                                 attn_implementation=attention).eval()
    fmt = probe_chat_format(tokenizer)
    examples = [render_example(r, tokenizer, chat_format=fmt) for r in kept_records(3, seed=4)]
    batch = PackedCollator()([examples])
    with torch.no_grad():
        packed = model(**batch, use_cache=False)
        trained = (batch["labels"][..., 1:] != -100).sum()
        total, count, offset = 0.0, 0, 0
        for example in examples:
            ids, labels = torch.tensor([example["input_ids"]]), torch.tensor([example["labels"]])
            alone = model(input_ids=ids, labels=labels, use_cache=False)
            n = (labels[..., 1:] != -100).sum()
            total, count = total + alone.loss * n, count + n
            # the logits of every packed token equal those of the example run alone
            torch.testing.assert_close(packed.logits[0, offset:offset + ids.shape[1]], alone.logits[0],
                                       rtol=1e-5, atol=1e-5)
            offset += ids.shape[1]
        assert trained == count
        torch.testing.assert_close(packed.loss, total / count, rtol=1e-6, atol=1e-6)
        # and the test can fail: without the per-example positions the examples see each other
        leaky = model(input_ids=batch["input_ids"], labels=batch["labels"], use_cache=False)
        assert abs(leaky.loss.item() - packed.loss.item()) > 1e-4


def test_chunked_loss_and_gradients_equal_the_standard_path():
    from transformers.loss.loss_utils import ForCausalLMLoss

    torch.manual_seed(0)
    hidden = torch.randn(1, 37, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 50, (1, 37))
    labels[0, :9] = -100
    labels[0, 20] = -100
    for items in (None, torch.tensor(40)):
        reference = ForCausalLMLoss(hidden @ weight.T, labels, vocab_size=50, num_items_in_batch=items)
        grads = torch.autograd.grad(reference, (hidden, weight))
        chunked = chunked_causal_lm_loss(hidden, weight, labels, num_items_in_batch=items, chunk_tokens=5)
        chunked_grads = torch.autograd.grad(chunked, (hidden, weight))
        torch.testing.assert_close(chunked, reference)
        for got, expected in zip(chunked_grads, grads):
            torch.testing.assert_close(got, expected)
    nothing = torch.full_like(labels, -100)
    assert chunked_causal_lm_loss(hidden, weight, nothing).item() == 0.0


def test_chunked_loss_inside_the_model_equals_its_own_loss(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float64)
    fmt = probe_chat_format(tokenizer)
    batch = PackedCollator()([[render_example(r, tokenizer, chat_format=fmt) for r in kept_records(3)]])
    reference = model(**batch, use_cache=False).loss
    reference.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    assert enable_chunked_loss(model, chunk_tokens=64)
    chunked = model(**batch, use_cache=False)
    assert chunked.logits.shape[-1] == model.config.hidden_size  # no [tokens, vocab] tensor was made
    chunked.loss.backward()
    torch.testing.assert_close(chunked.loss, reference)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name])
    disable_chunked_loss(model)
    assert model(**batch, use_cache=False).logits.shape[-1] == len(tokenizer)


def test_chunked_loss_trains_like_the_standard_loss(tmp_path, tiny_models):
    kept = write_kept(tmp_path / "kept.jsonl", 8)
    plain = train(config(kept, tiny_models["qwen"], tmp_path / "plain", chunked_loss=False))
    chunked = train(config(kept, tiny_models["qwen"], tmp_path / "chunked", chunked_loss=True, loss_chunk_tokens=64))
    assert losses(tmp_path / "plain") == pytest.approx(losses(tmp_path / "chunked"), rel=1e-4)
    assert plain.steps == chunked.steps


# --- methods -------------------------------------------------------------------------------------------

def test_loss_falls_when_overfitting_a_handful_of_traces(tmp_path, tiny_models):
    kept = write_kept(tmp_path / "kept.jsonl", 6)
    result = train(config(kept, tiny_models["qwen"], tmp_path / "out", epochs=25, lr=3e-3, batch_tokens=2048,
                          warmup_ratio=0.0))
    history = losses(tmp_path / "out")
    assert result.steps == 25 and len(history) == 25
    assert history[-1] < 0.5 * history[0], history
    assert (tmp_path / "out" / "loss.png").stat().st_size > 1000


def test_lora_changes_only_the_adapter_weights(tmp_path, tiny_models):
    kept = write_kept(tmp_path / "kept.jsonl", 8)
    before = {}

    def snapshot(model):
        before.update({n: p.detach().clone() for n, p in model.named_parameters()})

    capture = Capture(snapshot)
    train(config(kept, tiny_models["llama"], tmp_path / "out", method="lora", lora_r=4, epochs=2), callbacks=[capture])
    after = dict(capture.model.named_parameters())
    adapters = [n for n in after if "lora_" in n]
    base = [n for n in after if "lora_" not in n]
    assert adapters and base
    assert all(after[n].requires_grad for n in adapters) and not any(after[n].requires_grad for n in base)
    for name in base:  # byte-identical
        assert torch.equal(after[name].detach(), before[name]), name
    assert all(not torch.equal(after[n].detach(), before[n]) for n in adapters if "lora_B" in n)
    saved = load_file(tmp_path / "out" / "adapter_model.safetensors")
    assert saved and all("lora_" in key for key in saved)
    assert not (tmp_path / "out" / "model.safetensors").exists()
    assert json.loads((tmp_path / "out" / "adapter_config.json").read_text())["r"] == 4


def test_qlora_trains_on_cpu_through_real_bitsandbytes(tmp_path, tiny_models):
    import bitsandbytes as bnb

    kept = write_kept(tmp_path / "kept.jsonl", 8)
    seen = {}

    def inspect(model):
        quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
        seen["layers"] = len(quantized)
        seen["quant_type"] = quantized[0].weight.quant_state.quant_type
        seen["double"] = quantized[0].weight.quant_state.nested
        seen["dtype"] = quantized[0].weight.dtype
        seen["before"] = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}

    capture = Capture(inspect)
    # with activation checkpointing on, as for long sequences: gradients must still reach the adapters
    result = train(config(kept, tiny_models["qwen"], tmp_path / "out", method="qlora", lora_r=4, epochs=2,
                          gradient_checkpointing=True), callbacks=[capture])
    before = seen.pop("before")
    assert seen == {"layers": 14, "quant_type": "nf4", "double": True, "dtype": torch.uint8}  # 7 linears × 2 layers
    after = dict(capture.model.named_parameters())
    assert before and all(not torch.equal(after[n].detach(), before[n]) for n in before)
    assert result.steps > 0 and all(torch.isfinite(torch.tensor(losses(tmp_path / "out"))))
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_merged_model_outputs_equal_base_plus_adapter(tmp_path, tiny_models):
    from peft import PeftModel

    kept = write_kept(tmp_path / "kept.jsonl", 8)
    out = tmp_path / "out"
    result = train(config(kept, tiny_models["qwen"], out, method="lora", lora_r=4, epochs=2, merge=True))
    assert result.merged == str(out / "merged")
    ids = torch.tensor([render_example(kept_records(1)[0], AutoTokenizer.from_pretrained(out))["input_ids"]])
    base = AutoModelForCausalLM.from_pretrained(tiny_models["qwen"], dtype=torch.float32).eval()
    with torch.no_grad():
        plain = base(input_ids=ids).logits
        adapted = PeftModel.from_pretrained(base, out).eval()(input_ids=ids).logits
        merged = AutoModelForCausalLM.from_pretrained(out / "merged").eval()(input_ids=ids).logits
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-5)
    assert (merged - plain).abs().max() > 1e-3  # the adapter did change the model
    assert sorted(load_file(out / "merged" / "model.safetensors")) == sorted(load_file(
        tiny_models["qwen"] / "model.safetensors"))  # a plain model: no lora keys


def qwen_base_like(path):
    """A Qwen2.5 base model's shape: ChatML template, but EOS <|endoftext|> rather than <|im_end|>."""
    tokenizer = build_tokenizer("qwen")
    tokenizer.eos_token = "<|endoftext|>"
    build_model(tokenizer, "qwen").save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_saved_student_stops_at_the_end_of_turn_token(tmp_path):
    student = qwen_base_like(tmp_path / "base")
    kept = write_kept(tmp_path / "kept.jsonl", 6)
    out = tmp_path / "out"
    train(config(kept, student, out))
    tokenizer = AutoTokenizer.from_pretrained(out)
    end_of_turn, eos = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    gen = GenerationConfig.from_pretrained(out)
    assert gen.eos_token_id == [end_of_turn, eos]
    assert (gen.do_sample, gen.temperature, gen.top_p) == (True, 0.6, 0.95)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert "<|im_start|>assistant" in (out / "chat_template.jinja").read_text()
    # generate() with the saved config stops at <|im_end|>: force it as the 3rd new token
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "2+2?"}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    start = prompt["input_ids"].shape[1]
    vocab = list(range(len(tokenizer)))

    def allowed(batch_id, ids):
        return [end_of_turn] if len(ids) - start == 2 else [t for t in vocab if t not in gen.eos_token_id]

    torch.manual_seed(0)
    generated = model.generate(**prompt, generation_config=gen, max_new_tokens=20,
                               prefix_allowed_tokens_fn=allowed)
    assert generated.shape[1] - start == 3 and generated[0, -1].item() == end_of_turn


def test_model_card_records_teacher_filter_counts_data_and_hyperparameters(tmp_path, tiny_models):
    from distill.filter import FilterConfig, filter_traces

    # the report the real filter writes beside its kept file (a hand-made one hid that the card read the
    # wrong keys): 10 traces, 4 of them cut short
    traces = write_kept(tmp_path / "traces.jsonl", 10)
    lines = traces.read_text().splitlines()
    cut = [json.dumps({**json.loads(line), "finish_reason": "length"}) for line in lines[6:]]
    traces.write_text("\n".join(lines[:6] + cut) + "\n")
    filter_traces(FilterConfig(traces=str(traces), out=str(tmp_path / "kept.jsonl"), checks=["format", "finish"],
                               workers=1))
    kept = tmp_path / "kept.jsonl"
    train(config(kept, tiny_models["llama"], tmp_path / "out", lr=2e-4, epochs=1))
    card = (tmp_path / "out" / "README.md").read_text()
    assert "base_model: " + str(tiny_models["llama"]) in card
    assert "`tiny-r1` (6)" in card
    assert "filter report: input 10, kept 6, rejected 4" in card
    assert "| learning rate" in card and "0.0002" in card and "<|eot_id|>" in card
    assert "6 of 6 examples kept" in card


# --- resume -------------------------------------------------------------------------------------------

class Crash(Exception):
    pass


class CrashAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Crash(f"killed at step {self.step}")


def test_resume_continues_from_the_last_checkpoint_with_the_same_data_order(tmp_path, tiny_models):
    kept = write_kept(tmp_path / "kept.jsonl", 24)
    options = dict(epochs=2, save_steps=3)
    uninterrupted = train(config(kept, tiny_models["qwen"], tmp_path / "a", **options))
    out = tmp_path / "b"
    with pytest.raises(Crash):  # in the second epoch, after checkpoint-12 was written
        train(config(kept, tiny_models["qwen"], out, **options), callbacks=[CrashAt(14)])
    checkpoints = out / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-12"]  # keep_checkpoints=1
    # what a kill during a save leaves: a staging dir and an unmarked checkpoint
    (checkpoints / ".staging-15" / "checkpoint-15").mkdir(parents=True)
    (checkpoints / "checkpoint-16").mkdir()
    resumed = train(config(kept, tiny_models["qwen"], out, **options))  # the same settings: resuming is automatic
    assert resumed.resumed_from == str(checkpoints / "checkpoint-12")
    assert resumed.steps == uninterrupted.steps == 20  # 10 packs per epoch: step 12 is in the second
    assert losses(out) == losses(tmp_path / "a")  # same batches in the same order, same optimizer state
    first, second = load_file(tmp_path / "a" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not checkpoints.exists() and not (out / "data").exists()
    # the summary and the card describe the whole run: its loss, its inputs by content, where it resumed
    summary, reference = (json.loads((d / "train_summary.json").read_text()) for d in (out, tmp_path / "a"))
    assert summary["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-6)
    card = (out / "README.md").read_text()
    assert summary["plan"]["kept_sha256"] == file_digest(kept) and file_digest(kept) in card
    assert summary["plan"]["student_identity"].startswith("sha256:") and summary["plan"]["student_identity"] in card
    assert "resumed from `checkpoint-12`" in card and summary["resumed_from"].endswith("checkpoint-12")
    assert json.loads((out / "run.json").read_text())["plan"]["attention"] == "sdpa"


def test_resume_refuses_other_settings_and_a_finished_run_does_nothing(tmp_path, tiny_models, caplog):
    kept = write_kept(tmp_path / "kept.jsonl", 12)
    out = tmp_path / "out"
    with pytest.raises(Crash):
        train(config(kept, tiny_models["qwen"], out, save_steps=2), callbacks=[CrashAt(3)])
    with pytest.raises(OutputError, match=r"with other settings, so this run cannot resume it: --lr 0.001 → 0.002"):
        train(config(kept, tiny_models["qwen"], out, save_steps=2, lr=2e-3))
    finished = train(config(kept, tiny_models["qwen"], out, save_steps=2, resume=True))  # --resume: accepted
    model = out / "model.safetensors"
    written = model.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="distill"):
        again = train(config(kept, tiny_models["qwen"], out, save_steps=4, keep_checkpoints=3))  # free options
    assert any("nothing to do" in r.getMessage() for r in caplog.records)
    assert model.stat().st_mtime_ns == written and again.to_dict() == finished.to_dict()
    train(config(kept, tiny_models["qwen"], out, overwrite=True, epochs=0.5))
    assert json.loads((out / "train_summary.json").read_text())["config"]["epochs"] == 0.5


def test_resume_without_a_checkpoint_starts_over(tmp_path, tiny_models):
    kept = write_kept(tmp_path / "kept.jsonl", 12)
    out = tmp_path / "out"
    with pytest.raises(Crash):
        train(config(kept, tiny_models["qwen"], out, save_steps=0), callbacks=[CrashAt(1)])
    result = train(config(kept, tiny_models["qwen"], out, save_steps=0, resume=True))
    assert result.resumed_from is None and result.steps > 0


# --- bad input ----------------------------------------------------------------------------------------

def test_bad_input_names_the_problem(tmp_path, tiny_models):
    student = tiny_models["qwen"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match="empty.jsonl: holds no records; run distill filter first"):
        train(config(empty, student, tmp_path / "o1"))
    broken = tmp_path / "broken.jsonl"
    rows = kept_records(3)
    rows[2] = kept_record(2, "ignored", "x", completion="The answer is 5, no reasoning.")
    broken.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match=r"broken.jsonl:3: field 'completion': has no single <think>"):
        train(config(broken, student, tmp_path / "o2"))
    kept = write_kept(tmp_path / "kept.jsonl", 4)
    no_tokenizer = tmp_path / "weights-only"
    shutil.copytree(student, no_tokenizer, ignore=shutil.ignore_patterns("tokenizer*", "chat_template*"))
    with pytest.raises(ModelError, match="holds no tokenizer .* or pass --tokenizer"):
        train(config(kept, no_tokenizer, tmp_path / "o3"))
    train(config(kept, no_tokenizer, tmp_path / "o3", tokenizer=str(student)))  # the fix works
    with pytest.raises(InputError, match=r"every one of the 4 examples is longer than --max-seq-len 20 tokens "
                                         r"\(the shortest has \d+\); raise --max-seq-len"):
        train(config(kept, student, tmp_path / "o4", max_seq_len=20, batch_tokens=20))
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="is not a distill train output"):
        train(config(kept, student, tmp_path / "foreign"))
    with pytest.raises(ConfigError, match="--merge needs --method lora or qlora"):
        config(kept, student, tmp_path / "o5", merge=True)
    with pytest.raises(ConfigError, match="--batch-tokens must be at least --max-seq-len 512"):
        config(kept, student, tmp_path / "o5", batch_tokens=100)


def test_over_length_examples_are_dropped_counted_and_reported(tmp_path, tiny_models):
    rows = kept_records(6)
    rows.append(kept_record(99, "a very long chain of thought. " * 80, "The answer is 1."))
    kept = tmp_path / "kept.jsonl"
    kept.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = train(config(kept, tiny_models["qwen"], tmp_path / "out", max_seq_len=300, batch_tokens=600))
    assert (result.data.records, result.data.examples, result.data.dropped_too_long) == (7, 6, 1)
    assert 0.5 < result.data.dropped_token_share < 1
    assert result.data.longest <= 300


# --- multi-process --------------------------------------------------------------------------------------

def test_two_process_data_parallel_training_with_accelerate_launch(tmp_path, tiny_models):
    kept = write_kept(tmp_path / "kept.jsonl", 16)
    out = tmp_path / "out"
    # accelerate's --cpu flag selects its single-process launcher; --multi_gpu starts torchrun, whose
    # workers fall back to gloo DDP on CPU
    # a free port, not accelerate's 29500: tests/test_recipes.py checks that one is free, beside this test
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
               "-m", "cli.main",
               "train", str(kept), "--student", str(tiny_models["qwen"]), "--out", str(out), "--max-seq-len", "512",
               "--batch-tokens", "600", "--epochs", "1", "--save-steps", "2"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    packs = summary["log_history"]
    assert json.loads((out / "run.json").read_text())["fingerprint"]["processes"] == 2
    assert result.stdout.count("student  ") == 1  # rank 0 alone reports
    assert summary["steps"] == len([e for e in packs if "loss" in e])
    assert (out / "model.safetensors").is_file()
    # every rank learns from rank 0 that the run is complete
    again = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert again.returncode == 0 and again.stderr.count("nothing to do") == 1, again.stderr[-3000:]
