"""The trace shape: one record type read three ways (a <think> block, other tags, a reasoning field),
and the canonical form the filter keeps, which train then learns from with no shape options."""

from __future__ import annotations

import pytest

from distill.errors import InputError
from distill.shape import CANONICAL, TraceShape
from distill.train import TrainConfig, train
from distill.train.render import split_target
from tests.conftest import read_jsonl, run_cli, write_jsonl
from tests.train_data import kept_records

TAGS = TraceShape(think_open="<reasoning>", think_close="</reasoning>")
FIELD = TraceShape(reasoning_field="reasoning_content")
CANONICAL_TEXT = "<think>\nFive plus seven is twelve.\n</think>\n\nThe answer is 12."


@pytest.mark.parametrize(("shape", "record"), [
    (CANONICAL, {"completion": CANONICAL_TEXT}),
    (TAGS, {"completion": "<reasoning>Five plus seven is twelve.</reasoning>\nThe answer is 12."}),
    (FIELD, {"completion": "The answer is 12.\n", "reasoning_content": "\nFive plus seven is twelve.\n"}),
])
def test_every_shape_splits_answers_and_is_kept_in_the_canonical_form(shape, record):
    assert shape.split(record) == ("Five plus seven is twelve.", "The answer is 12.")
    assert shape.answer(record).strip() == "The answer is 12."
    assert shape.full_text(record) == CANONICAL_TEXT
    kept = shape.canonical({"id": "a:0", **record, "source": {}})
    assert kept == {"id": "a:0", "completion": CANONICAL_TEXT, "source": {}}
    assert list(kept) == ["id", "completion", "source"]  # the field order of the record is kept
    assert CANONICAL.split(kept) == shape.split(record)


def test_a_record_of_another_shape_does_not_split_and_is_left_as_written():
    tagged = {"completion": "<reasoning>r</reasoning>\n12"}
    assert CANONICAL.split(tagged) is None and CANONICAL.canonical(tagged) is tagged
    assert TAGS.split({"completion": CANONICAL_TEXT}) is None
    assert FIELD.split({"completion": CANONICAL_TEXT, "reasoning_content": "r"}) is None
    assert FIELD.malformed({"completion": "12"}) == "no string field 'reasoning_content'"
    assert FIELD.full_text({"completion": "12"}) == "12"
    # a canonical marker inside would break the <think> block it is kept as
    assert TAGS.malformed({"completion": "<reasoning>a <think> b</reasoning>\n12"}) == \
        "<think> or </think> inside the reasoning or the answer"


def _teacher_records(shape: TraceShape) -> list[dict]:
    """kept_records rewritten into `shape`, as a teacher with that shape would have written them."""
    rows = []
    for record in kept_records(6, seed=2):
        reasoning, answer = CANONICAL.split(record)
        if shape.reasoning_field:
            record = {**record, "completion": answer, shape.reasoning_field: reasoning}
        else:
            record = {**record, "completion": f"{shape.think_open}{reasoning}{shape.think_close}\n\n{answer}"}
        rows.append(record)
    return rows


@pytest.mark.parametrize(("shape", "flags"), [
    (FIELD, ["--reasoning-field", "reasoning_content"]),
    (TAGS, ["--think-open", "<reasoning>", "--think-close", "</reasoning>"]),
])
def test_filter_then_train_on_traces_of_another_shape(shape, flags, tmp_path, tiny_models):
    traces = write_jsonl(tmp_path / "traces.jsonl", _teacher_records(shape))
    options = dict(student=str(tiny_models["qwen"]), max_seq_len=512, batch_tokens=600, epochs=1, lr=1e-3,
                   save_steps=0)
    # the teacher's file itself is not trainable: train reads the canonical shape only, and says how to get it
    with pytest.raises(InputError, match="traces.jsonl:1: field 'completion': has no single <think>.*" + flags[0]):
        train(TrainConfig(kept=str(traces), out=str(tmp_path / "raw"), **options))

    result = run_cli("filter", traces, "--out", tmp_path / "kept.jsonl", "--workers", "1", "--language", "en",
                     *flags)
    assert result.returncode == 0, result.stderr
    kept = read_jsonl(tmp_path / "kept.jsonl")
    assert len(kept) == 6
    for teacher, record in zip(_teacher_records(shape), kept):
        assert "reasoning_content" not in record
        assert record["completion"] == shape.full_text(teacher)
        assert split_target(record) == shape.split(teacher)
    trained = train(TrainConfig(kept=str(tmp_path / "kept.jsonl"), out=str(tmp_path / "student"), **options))
    assert trained.steps >= 1 and trained.data.examples == 6 and trained.final_loss is not None
