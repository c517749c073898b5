"""`distill train` through the real command line: QLoRA end to end with a kill, the automatic resume and
the rerun of a complete run, the preflight, and one clear line for bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from transformers import AutoTokenizer, GenerationConfig

from distill.tiny import QWEN_TEMPLATE
from tests.conftest import ROOT, assert_user_error, run_cli, write_jsonl
from tests.train_data import write_kept


def train_args(kept, student, out, *extra):
    return ["train", kept, "--student", student, "--out", out, "--max-seq-len", "512", "--batch-tokens", "600",
            "--lr", "1e-3", *extra]


def start(args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli.main", *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def kill_when(process: subprocess.Popen, condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, ("finished before it could be killed", process.communicate())
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_qlora_trains_is_killed_resumes_and_saves_a_student_that_stops(tmp_path, tiny_models):
    """The resume contract through the command line: a killed run, rerun with another must-match setting, is
    refused naming it; the same command resumes it (no --resume needed); once it is complete, the same command
    again does nothing and exits 0."""
    kept = write_kept(tmp_path / "kept.jsonl", 6)
    out = tmp_path / "student"
    args = train_args(kept, tiny_models["r1"], out, "--method", "qlora", "--epochs", "15", "--save-steps", "3",
                      "--lora-r", "4")
    process = start(args)
    kill_when(process, lambda: any((out / "checkpoints").glob("checkpoint-*")))
    assert not (out / "train_summary.json").exists()
    assert_user_error(run_cli(*args, "--lora-r", "8"), "cannot resume it: --lora-r 4 → 8", "--overwrite")
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout and "checkpoint-" in resumed.stdout
    files = {p.name for p in out.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "generation_config.json", "README.md", "loss.png", "train_summary.json"} <= files
    assert "checkpoints" not in files and "data" not in files
    tokenizer = AutoTokenizer.from_pretrained(out)
    end_of_turn = tokenizer.convert_tokens_to_ids("<｜end▁of▁sentence｜>")
    assert GenerationConfig.from_pretrained(out).eos_token_id[0] == end_of_turn
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 15 * 2 and summary["method"] == "qlora"
    adapter = out / "adapter_model.safetensors"
    written = adapter.stat().st_mtime_ns
    again = run_cli(*args, "--save-steps", "5")  # a free option changed: still the same run
    assert again.returncode == 0, again.stderr
    assert "is already complete with these settings: nothing to do" in again.stderr
    assert again.stdout == resumed.stdout and adapter.stat().st_mtime_ns == written


def test_preflight_shows_the_trained_span_and_counts_without_training(tmp_path, tiny_models):
    kept = write_kept(tmp_path / "kept.jsonl", 5)
    out = tmp_path / "out"
    result = run_cli(*train_args(kept, tiny_models["r1"], out, "--preflight"))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "<｜Assistant｜><think>\n⟦Let me add 0 and 1." in text  # the pre-filled <think> stays outside
    assert "<｜end▁of▁sentence｜>⟧" in text
    assert "pre-filled     '<think>\\n'" in text and "end of turn    '<｜end▁of▁sentence｜>'" in text
    assert "5 of 5 examples kept, 0 dropped" in text and "checks" in text and ": OK" in text
    assert not out.exists()


def test_preflight_refuses_a_template_that_would_not_train_the_stop(tmp_path, tiny_models):
    kept = write_kept(tmp_path / "kept.jsonl", 3)
    template = tmp_path / "chatml.jinja"
    template.write_text(QWEN_TEMPLATE)  # ChatML on a Llama-3 tokenizer: <|im_end|> is no token there
    result = run_cli(*train_args(kept, tiny_models["llama"], tmp_path / "out", "--preflight",
                                 "--chat-template", template))
    assert_user_error(result, "ends an assistant turn with '<|im_end|>\\n'", "could never learn to stop")


def test_bad_input_is_one_line_and_exit_1(tmp_path, tiny_models):
    empty = tmp_path / "kept.jsonl"
    empty.write_text("")
    assert_user_error(run_cli(*train_args(empty, tiny_models["qwen"], tmp_path / "out")), "holds no records")
    kept = write_kept(tmp_path / "good.jsonl", 3)
    assert_user_error(run_cli(*train_args(kept, tmp_path / "missing-model", tmp_path / "out")),
                      "cannot load a tokenizer")
    assert_user_error(run_cli(*train_args(kept, tiny_models["qwen"], tmp_path / "out", "--max-seq-len", "8",
                                          "--batch-tokens", "8")), "--max-seq-len must be at least 16")


def test_qlora_where_bitsandbytes_cannot_run_is_refused(tmp_path, tiny_models):
    # A bitsandbytes without kernels for this machine, as releases before 0.43 were on CPU: it
    # imports, then fails at the first 4-bit op. It shadows the real one for this process only.
    fake = tmp_path / "site" / "bitsandbytes"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("__version__ = '0.42.0'\n"
                                      "def matmul_4bit(*args, **kwargs):\n    raise RuntimeError('no kernel')\n")
    (fake / "functional.py").write_text(
        "def quantize_4bit(*args, **kwargs):\n"
        "    raise RuntimeError('CUDA Setup failed: bitsandbytes was compiled without CPU support')\n")
    kept = write_kept(tmp_path / "kept.jsonl", 3)
    result = run_cli(*train_args(kept, tiny_models["qwen"], tmp_path / "out", "--method", "qlora"),
                     env={"PYTHONPATH": f"{fake.parent}{os.pathsep}{ROOT}"})
    assert_user_error(result, "bitsandbytes 0.42.0 cannot run 4-bit NF4 on cpu", "use --method lora")
    assert not (tmp_path / "out").exists()


def test_a_tracker_that_is_not_installed_is_refused_before_anything_is_loaded(tmp_path, tiny_models):
    """The GPU quickstart's recipe logs to tensorboard: without the package, one line before the model
    loads and before --out is touched (it was a TensorBoardCallback traceback and an unfinished run)."""
    import importlib.util

    from tests.train_data import write_kept

    missing = next(t for t in ("wandb", "mlflow", "trackio") if importlib.util.find_spec(t) is None)
    kept = write_kept(tmp_path / "kept.jsonl", 3)
    out = tmp_path / "student"
    result = run_cli("train", kept, "--student", tiny_models["qwen"], "--out", out, "--report-to", missing)
    assert_user_error(result, f"--report-to {missing} needs the {missing} package", f"pip install {missing}",
                      "--report-to none")
    assert not out.exists()
    # a recipe's tracker is dropped from the command line
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"report_to: [{missing}]\nmax_seq_len: 512\nbatch_tokens: 600\nepochs: 1\n")
    ok = run_cli("train", kept, "--student", tiny_models["qwen"], "--out", out, "--config", recipe,
                 "--report-to", "none")
    assert ok.returncode == 0, ok.stderr


def test_preflight_of_a_hybrid_student_shows_each_mode_the_data_holds(tmp_path):
    """A DeepSeek-V3.1-style student on a file mixing reasoning and non-reasoning records (issue 26): was
    refused ("closes an empty think block"); now each record trains in its mode, and the preflight says so."""
    from distill.tiny import save_tiny
    from tests.train_data import kept_records

    student = save_tiny(tmp_path / "v31", "v31")
    records = kept_records(4)
    records[1] = {**records[1], "completion": "Rain taps the window."}  # a non-reasoning record (writing)
    kept = write_jsonl(tmp_path / "kept.jsonl", records)
    result = run_cli(*train_args(kept, student, tmp_path / "out", "--preflight"))
    assert result.returncode == 0, result.stderr
    assert "hybrid, switched by 'thinking'" in result.stdout
    assert "(thinking mode)" in result.stdout and "(non-thinking mode)" in result.stdout
    assert "<｜Assistant｜></think>⟦Rain taps the window.<｜end▁of▁sentence｜>⟧" in result.stdout
    # a one-mode student cannot train the writing record: one line naming it
    one_mode = run_cli(*train_args(kept, student, tmp_path / "out2", "--chat-template", write_template(tmp_path)))
    assert_user_error(one_mode, "kept.jsonl:2", "no single <think>…</think> block with reasoning", "hybrid-thinking")


def write_template(tmp_path):
    from distill.tiny import R1_DISTILL_TEMPLATE

    path = tmp_path / "r1.jinja"  # one mode: always thinking
    path.write_text(R1_DISTILL_TEMPLATE)
    return path
