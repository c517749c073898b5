"""The one output guard every stage runs inside (distill.runs): resume metadata on every config field,
the fingerprint, one writer per output (two real processes), and no run writing over or deleting its
own inputs (the real CLI, with --overwrite)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import distill.demo
import distill.eval
import distill.filter
import distill.generate
import distill.sandbox
import distill.train  # noqa: F401 - every config class is defined once these are imported
from distill.config import MUST_MATCH, Options
from distill.errors import OutputError
from distill.filter import FilterConfig
from distill.runs import OutputLock, check_inputs, fingerprint, lock_path, resume_policy
from tests.conftest import ROOT, assert_user_error, read_jsonl, run_cli, write_jsonl
from tests.crash import run_to_completion, start


def _configs(cls=Options):
    for sub in cls.__subclasses__():
        yield sub
        yield from _configs(sub)


@pytest.mark.parametrize("cfg_cls", sorted(set(_configs()), key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_every_config_field_declares_its_resume_behaviour(cfg_cls):
    policy = resume_policy(cfg_cls)
    assert set(policy) == {f.name for f in dataclasses.fields(cfg_cls)}


def test_a_field_without_resume_metadata_fails():
    @dataclasses.dataclass(kw_only=True)
    class Forgotten(Options):
        declared: int = dataclasses.field(default=1, metadata=MUST_MATCH)
        new_field: int = 2

    with pytest.raises(TypeError, match="Forgotten.new_field declares no resume behaviour"):
        fingerprint(Forgotten())


def test_the_fingerprint_holds_the_must_match_fields_only(tmp_path):
    cfg = FilterConfig(traces="t.jsonl", out="k.jsonl", workers=3, report="r.json")
    saved = fingerprint(cfg)
    assert saved["max_tokens"] is None and saved["checks"] == list(cfg.checks)
    assert not {"workers", "overwrite", "report"} & set(saved)
    assert fingerprint(dataclasses.replace(cfg, workers=1)) == saved
    assert fingerprint(dataclasses.replace(cfg, max_tokens=5)) != saved


def test_an_input_is_never_an_output_however_it_is_reached(tmp_path):
    data = write_jsonl(tmp_path / "data.jsonl", [{"problem": "1 + 1?"}])
    (tmp_path / "link.jsonl").symlink_to(data)
    os.link(data, tmp_path / "hard.jsonl")
    for out in (data, tmp_path / "link.jsonl", tmp_path / "hard.jsonl", tmp_path / "sub" / ".." / "data.jsonl"):
        with pytest.raises(OutputError, match="is the input PROMPTS"):
            check_inputs({"--out": out}, {"PROMPTS": data})
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    with pytest.raises(OutputError, match="lies inside the output directory --out"):
        check_inputs({"--out": run}, {"--student": run / "model"}, directories=("--out",))
    with pytest.raises(OutputError, match="lies inside the input --student"):
        check_inputs({"--out": run / "model" / "out"}, {"--student": run}, directories=("--out",))
    check_inputs({"--out": tmp_path / "other.jsonl"}, {"PROMPTS": data, "--teacher": "Qwen/Qwen2.5-0.5B"})


# ---------------------------------------------------------------- one writer per output

HOLDER = textwrap.dedent("""
    import os, sys, time
    from distill.runs import OutputLock
    OutputLock(sys.argv[1]).acquire()
    if os.fork() == 0:  # a worker forked while the lock is held (the filter's pools) outlives a SIGKILL
        time.sleep(120)
        os._exit(0)
    print("locked", flush=True)
    time.sleep(120)
""")


def hold_lock(output: Path) -> subprocess.Popen:
    """A real process holding the lock on `output` (with a forked child), until it is killed."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(output)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def kill_holder(holder: subprocess.Popen) -> None:
    holder.send_signal(signal.SIGKILL)  # the parent only: its forked child lives on
    holder.wait()


def test_a_lock_is_released_when_its_holder_is_killed_even_while_a_forked_child_lives(tmp_path):
    out = tmp_path / "traces.jsonl"
    holder = hold_lock(out)
    try:
        with pytest.raises(OutputError, match=rf"being written by another run \(PID {holder.pid} holds"):
            OutputLock(out).acquire()
        kill_holder(holder)
        lock = OutputLock(out).acquire()  # the kernel dropped it: no stale lock
        lock.release()
        assert not lock_path(out).exists()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)


def test_two_generate_runs_on_one_output_the_second_is_refused_and_a_killed_one_resumes(tmp_path, tiny_models):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": f"k{i}", "problem": f"Add {i} and {i}."} for i in range(60)])
    out = tmp_path / "traces.jsonl"
    args = ["generate", prompts, "--teacher", tiny_models["llama"], "--out", out, "--backend", "hf", "--n", "2",
            "--max-tokens", "48", "--batch-size", "1"]
    first = start(args)
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and out.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the second started"
        second = run_cli(*args)
        assert_user_error(second, str(out), "being written by another run", f"PID {first.pid}")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    rerun = run_to_completion(args)
    assert rerun.returncode == 0, rerun.stderr
    ids = [record["id"] for record in read_jsonl(out)]
    assert sorted(ids) == sorted({f"k{i}:{s}" for i in range(60) for s in range(2)})
    assert not lock_path(out).exists()


@pytest.mark.parametrize("stage", ["filter", "train", "eval", "demo"])
def test_every_stage_refuses_an_output_another_run_holds(stage, tmp_path, tiny_models):
    from tests.test_bad_inputs import kept_records, trace

    traces = write_jsonl(tmp_path / "traces.jsonl", [trace(0), trace(1)])
    kept = write_jsonl(tmp_path / "kept.jsonl", kept_records(2))
    bench = write_jsonl(tmp_path / "bench.jsonl", [{"problem": "1 + 1?", "answer": "2"}])
    output, args = {
        "filter": (tmp_path / "k.jsonl", ["filter", traces, "--out", tmp_path / "k.jsonl", "--workers", "1"]),
        "train": (tmp_path / "student", ["train", kept, "--student", tiny_models["qwen"], "--out",
                                         tmp_path / "student", "--max-seq-len", "512"]),
        "eval": (tmp_path / "results.json", ["eval", "--model", tiny_models["qwen"], "--data", bench, "--out",
                                             tmp_path / "results.json", "--backend", "hf", "--max-tokens", "4"]),
        "demo": (tmp_path / "demo", ["demo", "--quick", "--out", tmp_path / "demo"]),
    }[stage]
    holder = hold_lock(output)
    try:
        assert_user_error(run_cli(*args), str(output), "being written by another run", f"PID {holder.pid}")
        assert not output.exists()  # nothing written
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()


# ---------------------------------------------------------------- out == input, --overwrite never deletes an input


def _finished_train_dir(path: Path, model: Path) -> Path:
    """What `distill train` leaves: a model directory with its train_summary.json."""
    shutil.copytree(model, path)
    (path / "train_summary.json").write_text(json.dumps({"steps": 1}))
    return path


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_generate_never_writes_over_its_prompts(tmp_path, tiny_models, prompts_file):
    before = prompts_file.read_bytes()
    os.link(prompts_file, tmp_path / "hard.jsonl")
    for out in (prompts_file, tmp_path / "hard.jsonl"):
        result = run_cli("generate", prompts_file, "--teacher", tiny_models["qwen"], "--out", out, "--backend", "hf",
                         "--overwrite")
        assert_user_error(result, "is the input PROMPTS", "--overwrite never deletes")
    assert prompts_file.read_bytes() == before


def test_eval_never_writes_over_its_benchmark_nor_deletes_it_as_a_models_samples(tmp_path, tiny_models):
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([{"problem": "1 + 1?", "answer": "2"}]))
    common = ["--backend", "hf", "--max-tokens", "4", "--n", "1"]
    assert_user_error(run_cli("eval", "--model", tiny_models["qwen"], "--data", bench, "--out", bench, *common),
                      "--out", "is the input --data")
    # the benchmark given as the file eval keeps a model's samples in: --overwrite would delete it
    data = write_jsonl(tmp_path / "results.qwen.traces.jsonl", [{"problem": "1 + 1?", "answer": "2"}])
    before = data.read_bytes()
    result = run_cli("eval", "--model", f"qwen={tiny_models['qwen']}", "--data", data, "--out",
                     tmp_path / "results.json", "--overwrite", *common)
    assert_user_error(result, "the traces of --model qwen", "is the input --data")
    assert bench.exists() and data.read_bytes() == before


def test_filter_never_writes_over_its_traces_through_a_symlink(tmp_path):
    from tests.test_bad_inputs import trace

    traces = write_jsonl(tmp_path / "traces.jsonl", [trace(0)])
    (tmp_path / "kept.jsonl").symlink_to(traces)
    result = run_cli("filter", traces, "--out", tmp_path / "kept.jsonl", "--overwrite", "--workers", "1")
    assert_user_error(result, "is the input TRACES")
    assert len(read_jsonl(traces)) == 1


def test_train_overwrite_never_deletes_the_student_the_kept_file_or_the_tokenizer(tmp_path, tiny_models):
    from tests.test_bad_inputs import kept_records

    common = ["--overwrite", "--max-seq-len", "512", "--epochs", "1"]
    # continuing a finished run in place: --student DIR --out DIR
    run = _finished_train_dir(tmp_path / "run", tiny_models["qwen"])
    kept = write_jsonl(tmp_path / "kept.jsonl", kept_records(2))
    before = _snapshot(run)
    assert_user_error(run_cli("train", kept, "--student", run, "--out", run, *common),
                      "--out", "is the input --student")
    assert _snapshot(run) == before
    # the kept file, and the tokenizer, inside the finished run that --out names
    inside = write_jsonl(run / "kept.jsonl", kept_records(2))
    before = _snapshot(run)
    assert_user_error(run_cli("train", inside, "--student", tiny_models["qwen"], "--out", run, *common),
                      "the input KEPT", "lies inside the output directory --out")
    assert_user_error(run_cli("train", kept, "--student", tiny_models["qwen"], "--tokenizer", run, "--out", run,
                              *common), "is the input --tokenizer")
    assert _snapshot(run) == before


def test_a_script_without_a_main_guard_is_told_so_by_the_worker_that_reruns_it(tmp_path):
    """vLLM starts its workers with spawn, which runs the script's top level again in each: there the distill
    call found its output locked by the run that started the worker ('being written by another run (PID …)').
    A spawn of the script's own, made while the run holds its lock, is the same thing without vLLM."""
    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent(f"""
        import multiprocessing
        import sys

        import distill.generate
        from distill.generate import GenerateConfig, generate

        def start_a_worker(*args):  # what vLLM does inside the run: a worker process, started with spawn
            worker = multiprocessing.get_context("spawn").Process(target=print)
            worker.start()
            worker.join()
            sys.exit(worker.exitcode)

        distill.generate._generate = start_a_worker
        generate(GenerateConfig(prompts="p.jsonl", teacher="t", out={str(tmp_path / "t.jsonl")!r}, backend="hf"))
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 1, result.stderr
    assert "re-ran your script's top level: put the distill call under `if __name__ == \"__main__\":`" in result.stderr
    assert "being written by another run" not in result.stderr


def test_a_worker_started_by_spawn_runs_a_stage_like_any_process(tmp_path, tiny_models):
    """The guard above refuses only the re-run of the main script, not a stage in a spawned worker's function."""
    import multiprocessing

    from distill.generate import GenerateConfig, generate

    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "problem": "1 + 1?"}])
    config = GenerateConfig(prompts=str(prompts), teacher=str(tiny_models["qwen"]), out=str(tmp_path / "t.jsonl"),
                            backend="hf", n=1, max_tokens=2)
    worker = multiprocessing.get_context("spawn").Process(target=generate, args=(config,))
    worker.start()
    worker.join(timeout=300)
    assert worker.exitcode == 0 and len(read_jsonl(tmp_path / "t.jsonl")) == 1
