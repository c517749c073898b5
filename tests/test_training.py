"""The resume contract of the training stages (`distill train`, `distill rl`), which share one runtime
(distill.training) and resume through distill.runs.RunManifest like every stage.

For every must-match field of TrainConfig and RLConfig, read from the config's metadata (not a hand list),
and every key the stage derives from its inputs: a manifest that recorded another value makes the stage's
own resume check (the one it runs inside the lock, before any model is loaded) refuse in one error
naming the flag. The real runs (a kill, the automatic resume, a complete run rerun) are in
tests/test_train_cli.py and tests/test_rl.py.
"""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from distill.errors import OutputError
from distill.rl import RLConfig
from distill.runs import COMPLETE, NEW, RESUME, RunManifest, file_digest, flag_of
from distill.train import TrainConfig
from tests.conftest import write_jsonl
from tests.test_resume_contract import SENTINEL, must_match
from tests.train_data import write_kept


def train_plan(cfg: TrainConfig):
    """What distill train resolves before its resume check (the plan holds the derived fingerprint keys)."""
    from transformers import AutoTokenizer

    from distill.train.plan import resolve_plan
    from distill.train.render import probe_chat_format
    from distill.training.modeling import Hardware

    tokenizer = AutoTokenizer.from_pretrained(cfg.student)
    return resolve_plan(cfg, Hardware.detect(), chat_format=probe_chat_format(tokenizer),
                        template_source="the student's own", vocab_size=len(tokenizer),
                        kept_sha256=file_digest(cfg.kept))


@pytest.fixture(scope="module")
def train_case(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("train-resume")
    cfg = TrainConfig(kept=str(write_kept(root / "kept.jsonl", 3)), student=str(tiny_models["qwen"]),
                      out=str(root / "unused"), max_seq_len=512, lr=1e-3)
    return cfg, train_plan(cfg)


@pytest.fixture(scope="module")
def rl_case(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("rl-resume")
    prompts = write_jsonl(root / "prompts.jsonl", [{"id": "a", "problem": "What is 1 + 1?", "answer": "2"}])
    return RLConfig(prompts=str(prompts), student=str(tiny_models["r1"]), out=str(root / "unused"))


def named(field: str, labels: dict[str, str]) -> str:
    return labels.get(field, flag_of(field))


def refusal(stage: str, out, saved: dict, field: str, check) -> str:
    RunManifest.inside(out, stage).write({**saved, field: SENTINEL})
    with pytest.raises(OutputError) as refused:
        check()
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]  # refused before anything was written
    return str(refused.value)


def test_both_stages_have_must_match_fields_to_test():
    """A config that lost its metadata would make the parametrised tests below vacuous."""
    assert len(must_match(TrainConfig)) >= 20 and len(must_match(RLConfig)) >= 30


@pytest.mark.parametrize("field", [*must_match(TrainConfig), "kept_sha256", "student_identity", "processes"])
def test_train_refuses_every_changed_must_match_field(field, train_case, tmp_path):
    from distill.train.run import LABELS, check_resume, run_settings

    cfg, plan = train_case
    cfg = dataclasses.replace(cfg, out=str(tmp_path / "out"))
    message = refusal("train", tmp_path / "out", run_settings(cfg, plan), field, lambda: check_resume(cfg, plan))
    assert f"{named(field, LABELS)} {SENTINEL!r} → " in message and "--overwrite" in message, message


@pytest.mark.parametrize("field", [*must_match(RLConfig), "prompts_sha256", "student_identity", "base_identity",
                                   "teacher_identity", "processes"])
def test_rl_refuses_every_changed_must_match_field(field, rl_case, tmp_path):
    from distill.rl.run import LABELS, check_resume, run_settings

    cfg = dataclasses.replace(rl_case, out=str(tmp_path / "out"))
    message = refusal("rl", tmp_path / "out", run_settings(cfg, 1), field, lambda: check_resume(cfg, 1))
    assert f"{named(field, LABELS)} {SENTINEL!r} → " in message and "--overwrite" in message, message


def test_the_same_settings_resume_or_do_nothing_wherever_the_run_directory_moved(train_case, tmp_path):
    """--out is free: a run directory moved elsewhere is still the same run; so are free options."""
    from distill.train.run import check_resume, run_settings

    cfg, plan = train_case
    out = tmp_path / "out"
    cfg = dataclasses.replace(cfg, out=str(out))
    assert check_resume(cfg, plan).state == NEW
    manifest = RunManifest.inside(out, "train")
    manifest.write(run_settings(cfg, plan))
    moved = tmp_path / "elsewhere"
    shutil.move(out, moved)
    free = dataclasses.replace(cfg, out=str(moved), save_steps=7, keep_checkpoints=4, gradient_checkpointing=True,
                               attn_implementation="eager", logging_steps=5)
    assert check_resume(free, plan).state == RESUME
    RunManifest.inside(moved, "train").update(complete=True)
    assert check_resume(free, plan).state == COMPLETE
    again = check_resume(dataclasses.replace(free, overwrite=True), plan)
    assert again.state == NEW and again.clear


def test_a_directory_that_is_no_training_output_is_refused_even_with_overwrite(train_case, rl_case, tmp_path):
    from distill.rl.run import check_resume as rl_check
    from distill.train.run import check_resume as train_check

    cfg, plan = train_case
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="exists and is not a distill train output"):
            train_check(dataclasses.replace(cfg, out=str(out), overwrite=overwrite), plan)
        with pytest.raises(OutputError, match="exists and is not a distill rl output"):
            rl_check(dataclasses.replace(rl_case, out=str(out), overwrite=overwrite), 1)
    # and one stage's run is not the other's to resume
    RunManifest.inside(out, "train").write({})
    with pytest.raises(OutputError, match="written by distill train, not distill rl"):
        rl_check(dataclasses.replace(rl_case, out=str(out)), 1)
    assert (out / "notes.txt").read_text() == "mine"
