"""`distill train` against an unlucky user: a diverging (NaN) run, damaged checkpoints on disk, a base
model changed under a LoRA run, a per-file size limit, and `distill eval` on a NaN model."""

from __future__ import annotations

import json
import logging
import resource
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from distill.errors import OutputError, TrainingError
from distill.train import train
from tests.conftest import assert_user_error, run_cli, write_jsonl
from tests.test_train import Crash, CrashAt, config
from tests.train_data import write_kept


def test_a_nan_run_stops_at_that_step_in_one_line_and_saves_no_model(tmp_path, tiny_models):
    kept = write_kept(tmp_path / "kept.jsonl", 12)
    out = tmp_path / "out"
    result = run_cli("train", kept, "--student", tiny_models["qwen"], "--out", out, "--max-seq-len", "512",
                     "--batch-tokens", "600", "--epochs", "2", "--save-steps", "1", "--lr", "1e30")
    assert_user_error(result, "step ", "and the gradient norm", "lower --lr (it is 1e+30)", "--dtype",
                      "no model was saved", "the last finite checkpoint")
    assert not (out / "model.safetensors").exists() and not (out / "train_summary.json").exists()
    kept_checkpoints = sorted((out / "checkpoints").glob("checkpoint-*"))
    assert kept_checkpoints and str(kept_checkpoints[-1]) in result.stderr
    weights = load_file(kept_checkpoints[-1] / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())


def test_max_bad_steps_skips_that_many_updates_then_stops(tmp_path, tiny_models, caplog):
    kept = write_kept(tmp_path / "kept.jsonl", 12)
    with caplog.at_level(logging.WARNING, logger="distill.train"), \
            pytest.raises(TrainingError, match="so training stopped before that update"):
        train(config(kept, tiny_models["qwen"], tmp_path / "out", lr=1e30, epochs=4, max_bad_steps=2))
    skipped = [r.getMessage() for r in caplog.records if "its update is skipped" in r.getMessage()]
    assert len(skipped) == 2 and "(2 of --max-bad-steps 2)" in skipped[-1], skipped
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_eval_refuses_a_model_with_non_finite_weights(tmp_path, tiny_models):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_models["qwen"], broken)
    model = AutoModelForCausalLM.from_pretrained(broken)
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[0, 0] = float("nan")
    model.save_pretrained(broken)
    data = write_jsonl(tmp_path / "bench.jsonl", [{"problem": "What is 1 + 1?", "answer": "2"}])
    result = run_cli("eval", "--model", broken, "--data", data, "--out", tmp_path / "results.json", "--n", "1",
                     "--max-tokens", "4", "--backend", "hf")
    assert_user_error(result, "model.safetensors holds non-finite weights", "up_proj")
    assert not (tmp_path / "results.broken.traces.jsonl").exists()


# --- damaged checkpoints ---------------------------------------------------------------------------------

def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) - 100] ^= 0x04  # inside the last tensor's bytes: the file still loads
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated model.safetensors": ("checkpoint-4/model.safetensors", truncate),
    "truncated trainer_state.json": ("checkpoint-4/trainer_state.json", truncate),
    "truncated scheduler.pt": ("checkpoint-4/scheduler.pt", truncate),
    "emptied optimizer.pt": ("checkpoint-4/optimizer.pt", lambda p: p.write_bytes(b"")),
    "a flipped bit in the weights": ("checkpoint-4/model.safetensors", flip_bit),
}


@pytest.fixture(scope="module")
def crashed_run(tmp_path_factory, tiny_models):
    """A run killed at step 5 with checkpoint-2 and checkpoint-4 on disk."""
    root = tmp_path_factory.mktemp("crashed")
    kept = write_kept(root / "kept.jsonl", 12)
    with pytest.raises(Crash):
        train(config(kept, tiny_models["qwen"], root / "out", epochs=2, save_steps=2, keep_checkpoints=2),
              callbacks=[CrashAt(5)])
    assert sorted(p.name for p in (root / "out" / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]
    return kept, root / "out"


def resume(kept, out, student):
    return train(config(kept, student, out, epochs=2, save_steps=2, keep_checkpoints=2))


def test_a_damaged_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, crashed_run, tiny_models, caplog):
    kept, crashed = crashed_run
    for number, (what, (name, damage)) in enumerate(DAMAGE.items()):
        out = tmp_path / f"out{number}"
        shutil.copytree(crashed, out)
        damage(out / "checkpoints" / name)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            result = resume(kept, out, tiny_models["qwen"])
        assert result.resumed_from == str(out / "checkpoints" / "checkpoint-2"), what
        lines = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
        assert len(lines) == 1 and name.split("/")[1] in lines[0] and "resuming from checkpoint-2" in lines[0], \
            (what, lines)
        assert result.steps == 10 and (out / "train_summary.json").is_file()


@pytest.mark.parametrize("damage", ["damaged", "missing"])
def test_a_damaged_run_file_is_read_back_from_the_checkpoint(tmp_path, crashed_run, tiny_models, caplog, damage):
    kept, crashed = crashed_run
    out = tmp_path / "out"
    shutil.copytree(crashed, out)
    if damage == "damaged":
        truncate(out / "run.json")
    else:
        (out / "run.json").unlink()
    with caplog.at_level(logging.WARNING):
        result = resume(kept, out, tiny_models["qwen"])
    assert result.resumed_from == str(out / "checkpoints" / "checkpoint-4")
    assert any(f"run.json is {damage}; the run's settings are read from" in r.getMessage() for r in caplog.records)
    assert json.loads((out / "run.json").read_text())["complete"]  # rebuilt, then marked complete


def test_no_intact_checkpoint_is_refused_in_one_line(tmp_path, crashed_run, tiny_models):
    kept, crashed = crashed_run
    out = tmp_path / "out"
    shutil.copytree(crashed, out)
    truncate(out / "checkpoints" / "checkpoint-4" / "model.safetensors")
    (out / "checkpoints" / "checkpoint-2" / "optimizer.pt").write_bytes(b"")
    result = run_cli("train", kept, "--student", tiny_models["qwen"], "--out", out, "--max-seq-len", "512",
                     "--batch-tokens", "600", "--epochs", "2", "--lr", "1e-3", "--save-steps", "2",
                     "--keep-checkpoints", "2", "--resume")
    assert_user_error(result, "no checkpoint in", "is intact", "checkpoint-4: model.safetensors has",
                      "checkpoint-2: optimizer.pt has 0 bytes", "--overwrite")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]


# --- the student's identity, the per-file size limit ------------------------------------------------------

def test_lora_resume_after_the_base_changed_in_place_is_refused(tmp_path, tiny_models):
    student = tmp_path / "base"
    shutil.copytree(tiny_models["qwen"], student)
    kept = write_kept(tmp_path / "kept.jsonl", 12)
    out = tmp_path / "out"
    options = dict(method="lora", lora_r=4, save_steps=2)
    with pytest.raises(Crash):
        train(config(kept, student, out, **options), callbacks=[CrashAt(3)])
    weights_file = student / "model.safetensors"
    size, weights = weights_file.stat().st_size, load_file(weights_file)
    name = next(k for k in weights if "up_proj" in k)
    weights[name] = weights[name] * 1.5  # a different base at the same path, of the very same size
    save_file(weights, weights_file, metadata={"format": "pt"})
    assert weights_file.stat().st_size == size
    with pytest.raises(OutputError, match=r"with other settings, so this run cannot resume it: the content of --student "
                                          r"'sha256:"):
        train(config(kept, student, out, **options))


def test_the_per_file_size_limit_gives_one_line_like_a_full_disk(tmp_path, tiny_models):
    kept = write_kept(tmp_path / "kept.jsonl", 6)
    limit = (tiny_models["qwen"] / "model.safetensors").stat().st_size // 2

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    import subprocess
    import sys

    from tests.conftest import ROOT

    result = subprocess.run([sys.executable, "-m", "cli.main", "train", str(kept), "--student",
                             str(tiny_models["qwen"]), "--out", str(tmp_path / "out"), "--max-seq-len", "512",
                             "--batch-tokens", "600", "--epochs", "1", "--save-steps", "0"],
                            capture_output=True, text=True, cwd=ROOT, preexec_fn=limited, timeout=300)
    assert_user_error(result, "per-file size limit", f"{limit:,} bytes", "ulimit -f")
    summary = json.loads((tmp_path / "out" / "run.json").read_text())
    assert summary["fingerprint"]["kept_sha256"]
