"""SIGKILL at random moments, rerun, and the output equals an uninterrupted run (slow: 20 trials a stage).

    python -m pytest -q -m slow tests/test_crash_resume.py -s      # prints where the kills landed

Each trial starts the real `distill` command, kills it with SIGKILL (at a random moment, or at a
chosen kind of moment: while a checkpoint is being written), reruns the same command to the end,
and compares the result with an uninterrupted run of the same command: every record exactly once,
the same bytes, the same weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest
import torch
from safetensors.torch import load_file

from distill.traces import intact_length, read_traces
from distill.training.checkpoints import last_checkpoint
from tests.conftest import ROOT, write_jsonl
from tests.crash import crash_trials, run_to_completion, time_run
from tests.test_filter import many_traces
from tests.train_data import write_kept

pytestmark = pytest.mark.slow
TRIALS = 20


def records_by_id(path):
    records = {}
    for _, record in read_traces(path):  # raises on a duplicate id or a malformed line
        records[record["id"]] = record
    return records


def test_generate_survives_sigkill_at_random_moments(tmp_path, tiny_models):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": f"c{i}", "problem": f"Add {i} and {2 * i}.",
                                                  "answer": str(3 * i)} for i in range(48)])

    def args(out):
        return ["generate", str(prompts), "--teacher", str(tiny_models["qwen"]), "--out", str(out),
                "--backend", "hf", "--n", "2", "--max-tokens", "48", "--batch-size", "2"]

    reference = tmp_path / "reference.jsonl"
    full_seconds = time_run(args(reference))
    expected = records_by_id(reference)
    assert len(expected) == 96

    def output(trial):
        return tmp_path / f"trial{trial}.jsonl"

    def kill_condition(trial, rng):
        """Odd trials: as soon as a random number of records is written (the output half written)."""
        if trial % 2 == 0:
            return None  # a random moment
        records = rng.randint(1, len(expected) - 2)
        return lambda: output(trial).exists() and output(trial).read_bytes().count(b"\n") >= records

    def classify(trial):
        return "mid-output" if output(trial).exists() and output(trial).stat().st_size else "before any output"

    torn = []

    def damage(trial, rng):
        """What a kill in the middle of a write() leaves: half a record at the end of the output."""
        if trial % 4 in (0, 1) and output(trial).exists():
            torn.append(trial)
            with output(trial).open("ab") as handle:
                handle.write(b'{"id": "c7:1", "prompt_id": "c7", "sample": 1, "messages": [{"role": "us')

    def check(trial):
        got = records_by_id(output(trial))
        assert got == expected, f"trial {trial}: output differs from the uninterrupted run"

    stats = crash_trials(lambda t: args(output(t)), output, check, trials=TRIALS, full_seconds=full_seconds,
                         seed=11, kill_condition=kill_condition, classify=classify, damage=damage)
    print(f"generate: {stats}; torn lines added after the kill: {len(torn)}")
    assert stats.trials == TRIALS
    assert stats.killed_mid_output >= TRIALS // 2, stats  # enough kills landed while records were being written
    assert len(torn) >= 3, torn


# ---------------------------------------------------------------- generate on vLLM

VLLM_ARGS = json.dumps({"enforce_eager": True, "kv_cache_memory_bytes": 1 << 30})


@pytest.fixture(scope="module")
def vllm_run(tmp_path_factory):
    """The tiny R1 teacher (head size 64 for vLLM's CPU attention), the prompts, the command line and an
    uninterrupted run's records. The engine runs as vLLM runs it by default: its engine core (and its
    worker) in processes of their own, which must not outlive a killed run."""
    pytest.importorskip("vllm")
    from distill.tiny import save_tiny

    root = tmp_path_factory.mktemp("vllm-crash")
    teacher = save_tiny(root / "r1", "r1", hidden_size=128, heads=2, kv_heads=1)
    prompts = write_jsonl(root / "p.jsonl", [{"id": f"c{i}", "problem": f"Add {i} and {2 * i}.", "answer": str(3 * i)}
                                             for i in range(24)])

    def args(out):
        # two prompts in the engine at a time: the records come out over seconds, not all at once
        return ["generate", str(prompts), "--teacher", str(teacher), "--out", str(out), "--backend", "vllm",
                "--n", "2", "--max-tokens", "48", "--dtype", "float32", "--max-model-len", "1024",
                "--max-inflight", "2", "--vllm-args", VLLM_ARGS]

    reference = root / "reference.jsonl"
    started = time.monotonic()
    time_run(args(reference))
    expected = records_by_id(reference)
    assert len(expected) == 48
    return args, expected, time.monotonic() - started


@pytest.fixture
def marked(monkeypatch):
    """A mark in the environment of every process the test starts (vLLM's inherit it): finds them later."""
    mark = f"{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.setenv("DISTILL_TEST_RUN", mark)
    return mark


def engine_processes(mark: str) -> list[psutil.Process]:
    """The live vLLM engine processes started under `mark` (their titles start with VLLM::)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            title = process.info["name"] or ""
            engine = title.startswith("VLLM::") or (process.info["cmdline"] or [""])[0].startswith("VLLM::")
            if engine and process.environ().get("DISTILL_TEST_RUN") == mark:
                found.append(process)
        except (psutil.Error, IndexError):
            pass
    return found


def assert_no_engine_outlives(mark: str, seconds: float = 15.0) -> None:
    """A killed run's engine processes are gone within `seconds` (the reaper polls once a second)."""
    deadline = time.monotonic() + seconds
    while (left := engine_processes(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"vLLM processes outlived their run: {[(p.pid, p.name()) for p in left]}"


def test_generate_on_vllm_survives_sigkill_at_random_moments(tmp_path, vllm_run, marked):
    """Each SIGKILLed run's rerun ends with the uninterrupted run's records, field for field: every prompt
    samples with its own seed, so neither the batch it ran in nor what the killed run finished changes it."""
    args, expected, full_seconds = vllm_run
    trials = 10

    def output(trial):
        return tmp_path / f"trial{trial}.jsonl"

    def kill_condition(trial, rng):
        """Odd trials: as soon as a random number of records is written (the output half written)."""
        if trial % 2 == 0:
            return None  # a random moment: often while the engine starts
        records = rng.randint(1, len(expected) - 2)
        return lambda: output(trial).exists() and output(trial).read_bytes().count(b"\n") >= records

    def classify(trial):
        assert_no_engine_outlives(marked)
        return "mid-output" if output(trial).exists() and output(trial).stat().st_size else "before any output"

    torn = []

    def damage(trial, rng):
        if trial % 4 == 1 and output(trial).exists():
            torn.append(trial)
            with output(trial).open("ab") as handle:
                handle.write(b'{"id": "c7:1", "prompt_id": "c7", "sample": 1, "messages": [{"role": "us')

    def check(trial):
        assert records_by_id(output(trial)) == expected, f"trial {trial}: output differs from the uninterrupted run"
        assert_no_engine_outlives(marked, seconds=5)

    stats = crash_trials(lambda t: args(output(t)), output, check, trials=trials, full_seconds=full_seconds,
                         seed=13, kill_condition=kill_condition, classify=classify, damage=damage)
    print(f"generate --backend vllm: {stats}; torn lines added after the kill: {len(torn)}")
    assert stats.trials == trials
    assert stats.killed_mid_output >= trials // 2, stats


def test_a_vllm_engine_that_dies_mid_run_loses_only_unfinished_prompts(tmp_path, vllm_run, marked):
    """The engine core process killed while prompts are in flight: the run stops with one line and exit 1
    instead of waiting forever (vLLM's client would), every prompt written is whole, and the rerun
    produces exactly the rest."""
    args, expected, _ = vllm_run
    out = tmp_path / "t.jsonl"
    command = [*args(out), "--max-inflight", "1"]  # one prompt at a time: the run lasts long enough to be cut
    with (tmp_path / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "cli.main", *command], cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=stderr)
    written = 6
    try:
        deadline = time.monotonic() + 600
        while not (out.exists() and out.read_bytes().count(b"\n") >= written):
            assert process.poll() is None and time.monotonic() < deadline, "the run ended before its engine was killed"
            time.sleep(0.002)
        [core] = [p for p in psutil.Process(process.pid).children(recursive=True)
                  if p.name().startswith("VLLM::EngineCor")]
        core.kill()
        process.wait(timeout=120)  # vLLM's own client would wait forever for the dead engine
    finally:
        if process.poll() is None:
            process.kill()
    errors = [line for line in (tmp_path / "stderr.txt").read_text().splitlines() if line.startswith("error:")]
    assert process.returncode == 1 and len(errors) == 1, (process.returncode, errors)
    assert "the vLLM engine stopped" in errors[0] and "rerun the same command" in errors[0]
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()
    assert_no_engine_outlives(marked)
    kept = records_by_id(out)
    assert written <= len(kept) < len(expected)
    assert all(kept[key] == expected[key] for key in kept)
    assert len({r["prompt_id"] for r in kept.values()}) * 2 == len(kept)  # whole prompts only
    result = run_to_completion(command)
    assert result.returncode == 0, result.stderr[-2000:]
    assert records_by_id(out) == expected


# ---------------------------------------------------------------- filter

# what a report says about the run rather than the data (paths, timing, this run's grading cache)
RUN_FIELDS = ("input", "outputs", "throughput", "config", "plots")


def report_of(path) -> dict:
    report = json.loads(path.read_text())
    report = {k: v for k, v in report.items() if k not in RUN_FIELDS}
    report.get("correctness", {}).pop("this_run", None)
    return report


def test_filter_survives_sigkill_at_random_moments_and_torn_lines(tmp_path):
    traces = many_traces(tmp_path / "traces.jsonl", prompts=2000)  # 8,000 records: ~32 committed chunks

    def paths(trial):
        kept = tmp_path / f"trial{trial}" / "kept.jsonl"
        return (kept, kept.with_name("kept.rejects.jsonl"), kept.with_name("kept.report.json"),
                kept.with_name("kept.filter-progress.jsonl"))

    def args(kept):
        kept.parent.mkdir(exist_ok=True)
        return ["filter", str(traces), "--out", str(kept), "--workers", "2"]

    reference = tmp_path / "reference" / "kept.jsonl"
    full_seconds = time_run(args(reference))
    ref_kept, ref_rejects = reference.read_bytes(), reference.with_name("kept.rejects.jsonl").read_bytes()
    ref_report = report_of(reference.with_name("kept.report.json"))
    assert ref_report["records"] == {"input": 8000, "kept": 4000, "rejected": 4000,
                                     "kept_plus_rejected_equals_input": True}

    def classify(trial):
        kept, rejects, report, progress = paths(trial)
        if report.exists():
            return "after the report"
        lines = progress.read_bytes()[:intact_length(progress)].splitlines() if progress.exists() else []
        if len(lines) < 2:
            return "before the first commit"
        commit = json.loads(lines[-1])["commit"]
        written = (kept.stat().st_size if kept.exists() else 0, rejects.stat().st_size if rejects.exists() else 0)
        if written != (commit["kept_bytes"], commit["rejects_bytes"]) or intact_length(progress) != \
                progress.stat().st_size:
            return "mid-output (a chunk written, not committed)"
        return "between commits"

    def kill_condition(trial, rng):
        """Odd trials: as soon as a random number of chunks is committed (the output half written)."""
        if trial % 2 == 0:
            return None  # a random moment
        chunks = rng.randint(1, 28)
        progress = paths(trial)[3]
        return lambda: progress.exists() and progress.read_bytes().count(b"\n") > chunks

    torn = {"kept": 0, "rejects": 0, "progress": 0}

    def damage(trial, rng):
        """What a kill in the middle of a write() leaves: half a line at the end of one of the files."""
        kept, rejects, _, progress = paths(trial)
        if not progress.exists() or trial % 4 not in (0, 1):
            return
        target = rng.choice(["kept", "rejects", "progress"])
        torn[target] += 1
        path = {"kept": kept, "rejects": rejects, "progress": progress}[target]
        with path.open("ab") as handle:
            handle.write(b'{"id": "q0007:2", "prompt_id": "q0007", "completion": "<think>\\nFive pl' if target != "progress"
                         else b'{"commit": {"done": 4')

    def check(trial):
        kept, rejects, report, progress = paths(trial)
        ids = [r["id"] for _, r in read_traces(kept, required=("id",))] + \
              [r["id"] for _, r in read_traces(rejects, required=("id",))]  # raises on a duplicate within a file
        assert len(ids) == len(set(ids)) == 8000, f"trial {trial}: {len(ids)} records, {len(set(ids))} distinct"
        assert kept.read_bytes() == ref_kept, f"trial {trial}: kept differs from the uninterrupted run"
        assert rejects.read_bytes() == ref_rejects, f"trial {trial}: rejects differ from the uninterrupted run"
        assert report_of(report) == ref_report, f"trial {trial}: the report's counts differ"
        assert not progress.exists()

    stats = crash_trials(lambda t: args(paths(t)[0]), lambda t: paths(t)[0], check, trials=TRIALS,
                         full_seconds=full_seconds, seed=5, kill_condition=kill_condition, classify=classify,
                         damage=damage)
    print(f"filter: {stats}; torn lines added after the kill: {torn}")
    assert stats.trials == TRIALS
    assert stats.killed_mid_output >= TRIALS // 2, stats
    assert sum(torn.values()) >= 3, torn


# ---------------------------------------------------------------- train

SAVE_STEPS = 3


def checkpointed_run_trials(tmp_path, args, *, save_steps: int, seed: int, trials: int, same_log,
                            first_kill_save: int = 1, started_slack_s: float = 1.0):
    """SIGKILL trials of a command that trains with checkpoints (`train`, `rl`), all with --resume: a quarter
    of the kills at a random moment of the command, a quarter at a random moment once the run has started
    (run.json written: steps, saves, rotation, the final save), half while the checkpoint of a random save
    (from the `first_kill_save`-th on) is being written. Each rerun must resume from the last complete
    checkpoint the kill left (or start over, saying so, when there was none) and end like the uninterrupted
    run: the same step count, bit-identical weights, `same_log(summary, reference_summary)` holding, no
    checkpoints left. Returns the trial stats and the checkpoint each rerun resumed from."""
    reference = tmp_path / "reference"
    full_seconds = time_run(args(reference))
    ref_summary = json.loads((reference / "train_summary.json").read_text())
    steps = ref_summary["steps"]
    ref_weights = load_file(reference / "model.safetensors")

    def out(trial):
        return tmp_path / f"trial{trial}"

    def kill_condition(trial, rng):
        if trial % 4 == 0:
            return None  # a random moment of the whole command (half of it is starting Python and torch)
        if trial % 4 == 2:  # a random moment once training has started: steps, saves, rotation, the final save
            delay, run_file, since = rng.uniform(0, ref_summary["elapsed_s"] + started_slack_s), out(trial) / "run.json", []

            def after_delay():
                if not since and run_file.exists():
                    since.append(time.monotonic())
                return bool(since) and time.monotonic() - since[0] >= delay
            return after_delay
        step = rng.choice(range(first_kill_save * save_steps, steps, save_steps))
        staging = out(trial) / "checkpoints" / f".staging-{step}"
        return staging.exists

    resume_from: dict[int, str | None] = {}
    started: dict[int, bool | None] = {}  # the killed run had written run.json: the rerun resumes it

    def classify(trial):
        run_dir = out(trial) / "checkpoints"
        last = last_checkpoint(run_dir)
        resume_from[trial] = str(last) if last else None
        started[trial] = (out(trial) / "run.json").exists()
        if (out(trial) / "train_summary.json").exists():
            started[trial] = None  # complete: the rerun does nothing and exits 0 (crash_trials checks that)
            return "after the summary"
        if run_dir.is_dir() and any(p.name.startswith(".staging-") for p in run_dir.iterdir()):
            return "mid-save (.staging-N present)"
        if run_dir.is_dir() and any(p.name.startswith(".deleting-") for p in run_dir.iterdir()):
            return "mid-rotation"
        if (out(trial) / "model.safetensors").exists():
            return "during the final save"
        if last is not None:
            return "between checkpoints"
        return "before the first checkpoint"

    def after_rerun(trial, result):
        expected = resume_from[trial]
        if started[trial] is None:
            return
        if expected is not None:
            assert f"(resumed from {expected})" in result.stdout, (expected, result.stdout, result.stderr[-1500:])
        else:
            assert result.returncode == 0 and "resumed from" not in result.stdout, result.stderr[-1500:]
            assert ("no complete checkpoint" in result.stderr) == started[trial], result.stderr[-1500:]

    def check(trial):
        summary = json.loads((out(trial) / "train_summary.json").read_text())
        assert summary["steps"] == steps
        weights = load_file(out(trial) / "model.safetensors")
        assert weights.keys() == ref_weights.keys()
        assert all(torch.equal(weights[k], ref_weights[k]) for k in weights), f"trial {trial}: weights differ"
        assert same_log(summary, ref_summary), f"trial {trial}: the log differs from the uninterrupted run's"
        assert not (out(trial) / "checkpoints").exists()

    stats = crash_trials(lambda t: args(out(t)), out, check, trials=trials, full_seconds=full_seconds,
                         seed=seed, kill_condition=kill_condition, classify=classify, after_rerun=after_rerun)
    return stats, resume_from, ref_summary


def test_train_survives_sigkill_at_random_moments_and_mid_save(tmp_path, tiny_models):
    """`distill train --resume` killed 20 times (see checkpointed_run_trials); each run ends with the
    uninterrupted run's weights and loss log, bit for bit."""
    kept = write_kept(tmp_path / "kept.jsonl", 12)  # 5 packed micro-batches per epoch: 100 steps

    def args(out):
        return ["train", str(kept), "--student", str(tiny_models["qwen"]), "--out", str(out), "--max-seq-len",
                "512", "--batch-tokens", "600", "--lr", "1e-3", "--epochs", "20", "--save-steps", str(SAVE_STEPS),
                "--resume"]  # accepted and optional (resuming is automatic): the same command every time

    def losses(summary):
        return [(e["step"], e["loss"]) for e in summary["log_history"] if "loss" in e]

    stats, resume_from, reference = checkpointed_run_trials(
        tmp_path, args, save_steps=SAVE_STEPS, seed=3, trials=TRIALS, same_log=lambda a, b: losses(a) == losses(b))
    print(f"train: {stats}")
    assert reference["steps"] == 100
    assert stats.trials == TRIALS
    assert stats.landed["mid-save (.staging-N present)"] >= TRIALS // 4, stats
    assert sum(1 for t in resume_from.values() if t) >= TRIALS // 2, resume_from  # most resumed from a checkpoint


# ---------------------------------------------------------------- rl

RL_SAVE_STEPS = 3


def step_log(summary: dict) -> list[dict]:
    """The per-step log (rewards, KL, loss, lengths …) without what depends on the clock, and without the
    final training summary (its mean loss covers only the resumed part)."""
    return [{k: v for k, v in entry.items() if "time" not in k and "per_second" not in k}
            for entry in summary["log_history"] if "train_runtime" not in entry]


def test_rl_survives_sigkill_at_random_moments_and_mid_save(tmp_path, tiny_models):
    """`distill rl` (GRPO, all weights, a KL reference) killed 20 times as train is (see
    checkpointed_run_trials; the kills during a save come from the second save on, so that the rerun has
    a checkpoint to resume from); each run ends with the uninterrupted run's weights, reward log and
    step count."""
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"id": f"q{i}", "problem": f"What is {i} + {i + 1}?",
                                                         "answer": str(2 * i + 1)} for i in range(8)])

    def args(out):
        return ["rl", str(prompts), "--student", str(tiny_models["r1"]), "--out", str(out), "--method", "full",
                "--rewards", "format,language", "--num-generations", "2", "--max-completion-tokens", "6",
                "--max-steps", "24", "--save-steps", str(RL_SAVE_STEPS), "--lr", "1e-3", "--kl-coef", "0.001",
                "--resume"]  # accepted and optional (resuming is automatic): the same command every time

    stats, resume_from, reference = checkpointed_run_trials(
        tmp_path, args, save_steps=RL_SAVE_STEPS, seed=7, trials=TRIALS, first_kill_save=2, started_slack_s=3.0,
        same_log=lambda a, b: step_log(a) == step_log(b))
    print(f"rl: {stats}")
    assert reference["steps"] == 24 and sum("reward" in entry for entry in step_log(reference)) == 24
    assert stats.trials == TRIALS
    assert stats.landed["mid-save (.staging-N present)"] >= TRIALS // 4, stats
    assert sum(1 for t in resume_from.values() if t) >= TRIALS // 2, resume_from
