"""`distill generate --ray` for real: a local Ray started by the run, Ray Data's vLLM processor and the
vLLM CPU engine in its actor, the tiny R1-Distill teacher (skipped where Ray or vLLM is not installed).

Each --ray run starts Ray and its engine actor (~40-70 s on 2 cores), so the module runs two: a
partial run, then its resume; everything else is refused or finished before a cluster is asked.
The kill trials (`-m slow`) SIGKILL the driver at random moments and an engine actor mid-run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_user_error, in_process_vllm, read_jsonl, run_cli, write_jsonl

pytest.importorskip("ray")
pytest.importorskip("vllm")

# the engine settings of tests/test_vllm.py: a 1 GiB KV cache, no compilation, the engine in one process
ENGINE_ARGS = json.dumps({"enforce_eager": True, "distributed_executor_backend": "uni",
                          "kv_cache_memory_bytes": 1 << 30})
SETTINGS = ["--backend", "vllm", "--n", "3", "--max-tokens", "48", "--max-model-len", "1024", "--dtype", "float32",
            "--vllm-args", ENGINE_ARGS]
LONG = 2000
"""Words in the last prompt: more tokens than the 1024-token context holds, so that prompt fails."""


def stray_processes() -> list[str]:
    """Ray processes (and vLLM engines orphaned by one) still running: none may outlive a run."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "name", "cmdline", "ppid"]):
        try:
            line = " ".join(process.info["cmdline"] or [process.info["name"] or ""])
        except psutil.Error:
            continue
        ray_process = any(part in line for part in ("raylet", "gcs_server", "ray::", "default_worker.py"))
        if ray_process or (line.startswith("VLLM::") and process.info["ppid"] == 1):
            found.append(f"{process.pid} {line[:80]}")
    return found


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    from distill.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("ray") / "r1", "r1", hidden_size=128, heads=2, kv_heads=1)


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> Path:
    rows = [{"id": f"r{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(6)]
    rows.append({"id": "long", "problem": "word " * LONG, "answer": "0"})
    return write_jsonl(tmp_path_factory.mktemp("prompts") / "p.jsonl", rows)


def generate_cli(prompts, teacher, out, *extra, timeout=900):
    return run_cli("generate", prompts, "--teacher", teacher, "--out", out, *SETTINGS, *extra, timeout=timeout)


def vllm_records(prompts, teacher, out) -> dict[str, dict]:
    """What `--backend vllm` writes for the same prompts and settings (its engine in this process)."""
    from distill.generate import GenerateConfig, generate
    from distill.traces import read_traces

    with in_process_vllm():
        summary = generate(GenerateConfig(prompts=str(prompts), teacher=str(teacher), out=str(out), backend="vllm",
                                          n=3, max_tokens=48, max_model_len=1024, dtype="float32",
                                          vllm_args=ENGINE_ARGS))
    assert [f["prompt_id"] for f in summary.failed_prompts] == ["long"]
    return {r["id"]: r for _, r in read_traces(out)}


def test_ray_records_equal_the_vllm_backends_and_resume_by_id(teacher, prompts, tmp_path):
    from distill.shards import read_shard_manifest
    from distill.traces import read_traces

    out = tmp_path / "traces"
    # a partial run (the first 3 prompts) on a Ray started for it: a bare --ray, last on the line
    first = generate_cli(prompts, teacher, f"{out}/", "--limit", "3", "--ray")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "records           9 (9 new) for 3 prompts" in first.stdout
    assert "generate: " in first.stderr and " records, " in first.stderr and "tok/s" in first.stderr  # progress
    # the rest: only the missing ids go to the cluster; the prompt too long for the context fails, so the
    # run is partial (exit 3) and says which prompt and why
    rest = generate_cli(prompts, teacher, out, "--ray", "local")
    assert rest.returncode == 3, rest.stderr[-3000:]
    assert "records           18 (9 new) for 7 prompts" in rest.stdout
    assert "FAILED prompts    1" in rest.stdout and "long: the prompt's" in rest.stdout
    assert [(s["file"], s["records"]) for s in read_shard_manifest(out)["shards"]] == [
        ("part-00000.jsonl", 9), ("part-00001.jsonl", 9)]  # one shard per run, nothing written twice
    records = [r for _, r in read_traces(out)]
    assert [r["id"] for r in records] == sorted({r["id"] for r in records}, key=[r["id"] for r in records].index)
    # every prompt's samples on consecutive lines, in sample order (the filter's per-prompt selection)
    for index in range(0, len(records), 3):
        assert [r["sample"] for r in records[index:index + 3]] == [0, 1, 2]
        assert len({r["prompt_id"] for r in records[index:index + 3]}) == 1
    # field for field what --backend vllm writes for the same seeds
    assert {r["id"]: r for r in records} == vllm_records(prompts, teacher, tmp_path / "vllm.jsonl")
    assert not _wait_stray_gone(), "Ray or vLLM processes outlived the run"

    # without the failing prompt the run is complete (no cluster is asked: every record is on disk) …
    done = generate_cli(prompts, teacher, out, "--limit", "6", "--ray")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "traces.run.json").read_text())["complete"] is True
    # … so the same command again does nothing, and exits 0
    again = generate_cli(prompts, teacher, out, "--limit", "6", "--ray")
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr[-3000:]
    # a changed must-match setting is refused in one line naming it
    changed = generate_cli(prompts, teacher, out, "--limit", "6", "--temperature", "0.7", "--ray")
    assert_user_error(changed, "--temperature 0.6 → 0.7", "--overwrite")
    # the directory reads as one trace file: the filter takes it as it is
    filtered = run_cli("filter", out, "--out", tmp_path / "kept.jsonl", "--checks", "format,finish")
    assert filtered.returncode == 0, filtered.stderr[-2000:]
    kept, rejected = (read_jsonl(tmp_path / name) for name in ("kept.jsonl", "kept.rejects.jsonl"))
    assert sorted(r["id"] for r in kept + rejected) == sorted(r["id"] for r in records)


def test_ray_bad_input_is_one_line(teacher, prompts, tmp_path):
    from distill.runs import OutputLock

    # Ray not installed: how to install the extra
    missing = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['ray'] = None; from cli.main import main; main()",
         "generate", str(prompts), "--teacher", str(teacher), "--out", str(tmp_path / "a"), *SETTINGS, "--ray"],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert_user_error(missing, "--ray needs Ray Data", "pip install 'distill[ray]'")
    # an address nobody listens on: refused at once, not after Ray's minute of retries
    started = time.monotonic()
    unreachable = generate_cli(prompts, teacher, tmp_path / "b", "--limit", "1", "--ray", "127.0.0.1:9")
    assert_user_error(unreachable, "--ray 127.0.0.1:9: cannot reach a Ray cluster", "ray start --head")
    assert time.monotonic() - started < 120
    assert_user_error(generate_cli(prompts, teacher, tmp_path / "c", "--ray", "nowhere"),
                      "--ray takes 'local', 'auto', ray://HOST:PORT or HOST:PORT (got 'nowhere')")
    # another run holds the output
    lock = OutputLock(tmp_path / "d").acquire()
    try:
        assert_user_error(generate_cli(prompts, teacher, tmp_path / "d", "--ray"),
                          "is being written by another run", f"PID {os.getpid()}")
    finally:
        lock.release()
    # a file output (a run without --ray) is not a directory of shards
    (tmp_path / "e.jsonl").write_text("")
    assert_user_error(generate_cli(prompts, teacher, tmp_path / "e.jsonl", "--ray"),
                      "--ray writes a directory of shards")
    assert_user_error(run_cli("generate", prompts, "--teacher", teacher, "--out", tmp_path / "f", "--backend", "hf",
                              "--ray"), "--ray runs the teacher in vLLM engines", "--backend vllm")
    assert not _wait_stray_gone(), "Ray or vLLM processes outlived the run"


def test_engine_actors_that_cannot_load_the_model_end_the_run_in_one_line(teacher, prompts, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(teacher, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])  # the driver reads config and tokenizer
    result = generate_cli(prompts, broken, tmp_path / "out", "--limit", "1", "--ray")
    assert_user_error(result, "the engine actors cannot load --teacher", "every node can read it")
    assert not _wait_stray_gone(), "Ray or vLLM processes outlived the run"


# ---------------------------------------------------------------- kill trials (-m slow)


def _records_on_disk(out: Path) -> list[str]:
    """Ids on disk as a resumed run reads them: the listed shards, without a torn last line."""
    from distill.traces import intact_length, iter_jsonl, shard_files

    if not (out / "manifest.json").is_file():
        return []
    ids = []
    files = shard_files(out)
    for index, shard in enumerate(files):
        end = intact_length(shard) if index == len(files) - 1 else None
        ids += [record["id"] for _, record in iter_jsonl(shard, end=end)]
    return ids


def _driver(prompts, teacher, out, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli.main", "generate", str(prompts), "--teacher", str(teacher),
                             "--out", str(out), *SETTINGS, "--ray-batch-size", "2", *extra],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _wait_stray_gone(timeout: float = 240) -> list[str]:
    """The stray processes still there after `timeout` s: Ray's agents of a finished or killed run take a
    minute or two to notice that their raylet is gone."""
    deadline = time.monotonic() + timeout
    while (left := stray_processes()) and time.monotonic() < deadline:
        time.sleep(1)
    return left


@pytest.mark.slow
def test_sigkill_the_driver_at_random_moments_loses_and_duplicates_nothing(teacher, tmp_path):
    rows = [{"id": f"k{i}", "problem": f"What is {i} times 3?", "answer": str(3 * i)} for i in range(200)]
    prompts = write_jsonl(tmp_path / "p.jsonl", rows)
    out = tmp_path / "traces"
    expected = {f"k{i}:{s}" for i in range(200) for s in range(3)}
    rng = random.Random(30)
    trials, killed_with = 0, []
    while trials < 10:
        driver = _driver(prompts, teacher, out, "--ray")
        before = len(_records_on_disk(out))
        # a random moment: while Ray starts, while the engine starts, or mid-stream (once records flow)
        moment = rng.choice(["early", "start", "stream", "stream", "stream"])
        deadline = time.monotonic() + {"early": rng.uniform(1, 8), "start": rng.uniform(10, 40), "stream": 900}[moment]
        while driver.poll() is None and time.monotonic() < deadline:
            if moment == "stream" and len(_records_on_disk(out)) > before:
                time.sleep(rng.uniform(0, 1.5))
                break
            time.sleep(0.1)
        if driver.poll() is not None:  # it finished first: no kill left to try
            break
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        trials += 1
        ids = _records_on_disk(out)
        killed_with.append((moment, len(ids)))
        assert len(ids) == len(set(ids)), f"a duplicate after trial {trials}"
    final = subprocess.run([sys.executable, "-m", "cli.main", "generate", str(prompts), "--teacher", str(teacher),
                            "--out", str(out), *SETTINGS, "--ray"], cwd=ROOT, capture_output=True, text=True,
                           timeout=1200)
    assert final.returncode == 0, final.stderr[-3000:]
    ids = _records_on_disk(out)
    print(f"kill trials: {trials} SIGKILLs (moment, records on disk after it): {killed_with}; final run: "
          f"{len(ids)} records, {len(set(ids))} unique, {len(expected - set(ids))} lost, "
          f"{len(ids) - len(set(ids))} duplicated")
    assert trials >= 10, f"the run finished after {trials} kills"
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == expected  # 0 lost, 0 duplicated
    assert not _wait_stray_gone(300), "Ray or vLLM processes outlived the killed drivers"


@pytest.mark.slow
def test_an_engine_actor_killed_mid_run_is_restarted_and_the_run_completes(teacher, tmp_path):
    import psutil

    rows = [{"id": f"a{i}", "problem": f"What is {i} minus 2?", "answer": str(i - 2)} for i in range(120)]
    prompts = write_jsonl(tmp_path / "p.jsonl", rows)
    out = tmp_path / "traces"
    driver = _driver(prompts, teacher, out, "--ray")
    deadline = time.monotonic() + 600
    while driver.poll() is None and not _records_on_disk(out) and time.monotonic() < deadline:
        time.sleep(0.5)
    actors = [p for p in psutil.process_iter(["cmdline"])
              if "MapWorker(MapBatches(vLLMEngineStageUDF))" in " ".join(p.info["cmdline"] or [])]
    assert driver.poll() is None and actors, "no engine actor mid-run"
    for actor in actors:
        actor.kill()  # SIGKILL: Ray restarts the actor and retries its batches on the new one
    _, stderr = driver.communicate(timeout=1200)
    assert driver.returncode == 0, stderr[-3000:]
    ids = _records_on_disk(out)
    assert len(ids) == len(set(ids)) == 360
    assert not _wait_stray_gone()
