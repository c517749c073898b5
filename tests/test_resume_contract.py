"""The one resume contract (distill.runs.RunManifest), stage by stage.

For every must-match field of a stage's config, read from the config's metadata (not a hand list):
a manifest that recorded another value for that field makes the stage itself refuse the run, in one
error naming the field's flag, before anything is loaded or written. The same settings on a complete
output do nothing; a run with free options changed resumes (tests/test_generate.py, test_filter.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.errors import OutputError
from distill.eval.run import EvalConfig, evaluate
from distill.eval.run import manifest as eval_manifest
from distill.eval.run import run_fingerprint as eval_fingerprint
from distill.filter import FilterConfig, filter_traces
from distill.filter.run import OutputPaths, run_fingerprint
from distill.generate import GenerateConfig, generate
from distill.generate import manifest as generate_manifest
from distill.runs import COMPLETE, NEW, RESUME, RunManifest, fingerprint, flag_of, resume_policy
from tests.conftest import write_jsonl

SENTINEL = "<a value of an earlier run>"


def must_match(cfg_cls: type) -> list[str]:
    return [name for name, kind in resume_policy(cfg_cls).items() if kind == "must-match"]


def refused_for(manifest: RunManifest, now: dict, field: str, run) -> str:
    """Write a manifest that differs from `now` in `field` only, run the stage, return its refusal."""
    manifest.write({**now, field: SENTINEL})
    with pytest.raises(OutputError) as refused:
        run()
    return str(refused.value)


@pytest.fixture
def prompts(tmp_path) -> Path:
    return write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "problem": "What is 1 + 1?", "answer": "2"}])


@pytest.mark.parametrize("field", must_match(GenerateConfig))
def test_generate_refuses_every_changed_must_match_field(field, tmp_path, prompts):
    # the teacher does not exist: the refusal must come before anything is loaded
    cfg = GenerateConfig(prompts=str(prompts), teacher=str(tmp_path / "no-teacher"), out=str(tmp_path / "t.jsonl"),
                         backend="hf")
    Path(cfg.out).write_text('{"id": "a:0"}\n')  # a record of the earlier run (with no record, nothing is refused)
    message = refused_for(generate_manifest(cfg.out), fingerprint(cfg), field, lambda: generate(cfg))
    assert flag_of(field) in message and SENTINEL in message and "--overwrite" in message
    assert Path(cfg.out).read_text() == '{"id": "a:0"}\n'


@pytest.mark.parametrize("field", [*must_match(FilterConfig), "traces_sha256"])
def test_filter_refuses_every_changed_must_match_field(field, tmp_path):
    from tests.test_bad_inputs import trace

    traces = write_jsonl(tmp_path / "t.jsonl", [trace("a")])
    cfg = FilterConfig(traces=str(traces), out=str(tmp_path / "kept.jsonl"), workers=1)
    message = refused_for(OutputPaths.of(cfg).manifest, run_fingerprint(cfg), field, lambda: filter_traces(cfg))
    named = "the content of TRACES" if field == "traces_sha256" else flag_of(field)
    assert named in message and SENTINEL in message and "--overwrite" in message
    assert not Path(cfg.out).exists()


@pytest.mark.parametrize("field", [*must_match(EvalConfig), "data_sha256"])
def test_eval_refuses_every_changed_must_match_field(field, tmp_path, prompts):
    cfg = EvalConfig(model=["org/not-loaded"], data=str(prompts), out=str(tmp_path / "results.json"), backend="hf")
    message = refused_for(eval_manifest(cfg.out), eval_fingerprint(cfg), field, lambda: evaluate(cfg))
    named = "the content of --data" if field == "data_sha256" else flag_of(field)
    assert named in message and SENTINEL in message
    assert not Path(cfg.out).exists()


def test_every_stage_has_must_match_fields_to_test():
    """A config that lost its metadata would make the parametrised tests above vacuous."""
    for cfg_cls in (GenerateConfig, FilterConfig, EvalConfig):
        assert len(must_match(cfg_cls)) >= 5, cfg_cls


def test_the_manifest_says_new_resume_complete_and_refuses_other_stages(tmp_path):
    manifest = RunManifest.beside(tmp_path / "t.jsonl", "generate")
    assert manifest.path == tmp_path / "t.run.json"
    assert manifest.resume({"seed": 0}, overwrite=False) == NEW
    manifest.write({"seed": 0})
    assert manifest.resume({"seed": 0}, overwrite=False) == RESUME
    manifest.update(complete=True, note="kept")
    assert manifest.resume({"seed": 0}, overwrite=False) == COMPLETE
    assert manifest.read()["note"] == "kept" and manifest.read()["fingerprint"] == {"seed": 0}
    assert manifest.resume({"seed": 1}, overwrite=True) == NEW
    with pytest.raises(OutputError, match=r"--seed 0 → 1"):
        manifest.resume({"seed": 1}, overwrite=False)
    with pytest.raises(OutputError, match="written by distill generate, not distill filter"):
        RunManifest(manifest.path, "filter", output=tmp_path / "t.jsonl").resume({"seed": 0}, overwrite=False)
    manifest.path.write_text(json.dumps({"version": 99, "fingerprint": {}}))
    with pytest.raises(OutputError, match="another version of distill"):
        manifest.read()
    manifest.path.write_text("{torn")
    with pytest.raises(OutputError, match="unreadable"):
        manifest.read()


def test_an_output_without_a_manifest_is_not_resumed_blindly(tmp_path, prompts):
    """A file that no run of this version wrote: its settings are unknown, so it is refused, not appended to."""
    out = tmp_path / "t.jsonl"
    out.write_text('{"id": "a:0"}\n')
    cfg = GenerateConfig(prompts=str(prompts), teacher=str(tmp_path / "no-teacher"), out=str(out), backend="hf")
    with pytest.raises(OutputError, match="no run manifest"):
        generate(cfg)
    assert out.read_text() == '{"id": "a:0"}\n'
