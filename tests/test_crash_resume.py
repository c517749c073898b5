"""SIGKILL at random moments, rerun, and the output equals an uninterrupted run (slow: 20 trials a stage).

    python -m pytest -q -m slow tests/test_crash_resume.py -s
"""

from __future__ import annotations

import pytest

from distill.traces import read_traces
from tests.conftest import write_jsonl
from tests.crash import crash_trials, time_run

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

    def check(trial):
        got = records_by_id(tmp_path / f"trial{trial}.jsonl")
        assert got == expected, f"trial {trial}: output differs from the uninterrupted run"

    stats = crash_trials(lambda t: args(tmp_path / f"trial{t}.jsonl"), lambda t: tmp_path / f"trial{t}.jsonl",
                         check, trials=TRIALS, full_seconds=full_seconds, seed=11)
    print(f"generate: {stats}")
    assert stats.trials == TRIALS
    assert stats.killed_mid_output >= TRIALS // 2, stats  # enough kills landed while records were being written
