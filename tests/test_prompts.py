"""Prompt loading: every local format and column mapping, stable ids, sharding, clear errors."""

from __future__ import annotations

import json

import pytest

from distill.errors import ConfigError, InputError
from distill.options import DEFAULT_TEMPLATE
from distill.prompts import gsm8k_answer, load_prompts, prompt_hash, shard_slice
from tests.conftest import write_jsonl

ROWS = [{"qid": f"q{i}", "question": f"What is {i} squared?", "solution": f"#### {i * i}", "topic": "algebra"}
        for i in range(10)]


def load(path, **kwargs):
    options = dict(prompt_column="question", answer_column="solution", id_column="qid", template=DEFAULT_TEMPLATE)
    options.update(kwargs)
    return load_prompts(str(path), **options)


@pytest.mark.parametrize("suffix", ["jsonl", "json", "csv", "parquet"])
def test_every_local_format_loads_the_same_prompts(tmp_path, suffix):
    import datasets

    path = tmp_path / f"p.{suffix}"
    if suffix == "jsonl":
        write_jsonl(path, ROWS)
    elif suffix == "json":
        path.write_text(json.dumps(ROWS))
    else:
        dataset = datasets.Dataset.from_list(ROWS)
        getattr(dataset, f"to_{suffix}")(str(path))
    prompts = load(path)
    assert [p.prompt_id for p in prompts] == [f"q{i}" for i in range(10)]
    first = prompts[3]
    assert first.messages == [{"role": "user", "content": "What is 3 squared?\nPlease reason step by step, "
                                                          "and put your final answer within \\boxed{}."}]
    assert first.reference == "9"  # GSM8K '#### 9' reduced to the answer
    assert first.source == {"topic": "algebra"}  # the other columns, unchanged


def test_system_prompt_template_and_hash_ids(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"problem": "1+1?"}, {"problem": "2+2?"}])
    prompts = load_prompts(str(path), template="Q: {problem}", system="Be brief.")
    assert prompts[0].messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q: 1+1?"}]
    assert prompts[0].prompt_id == prompt_hash("1+1?") and len(prompts[0].prompt_id) == 16
    assert prompts[0].reference is None
    # the id does not depend on the template or row order
    again = load_prompts(str(write_jsonl(tmp_path / "q.jsonl", [{"problem": "2+2?"}, {"problem": "1+1?"}])))
    assert again[1].prompt_id == prompts[0].prompt_id


def test_limit_and_shards_concatenate_to_the_whole(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", ROWS)
    whole = [p.prompt_id for p in load(path, limit=7)]
    assert whole == [f"q{i}" for i in range(7)]
    shards = [[p.prompt_id for p in load(path, limit=7, shard=f"{i}/3")] for i in range(3)]
    assert sum(shards, []) == whole and all(shards)
    assert [len(s) for s in shards] == [2, 2, 3]
    assert shard_slice(5, (4, 8)) == slice(2, 3)


def test_missing_column_lists_the_columns(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", ROWS)
    with pytest.raises(InputError, match=r"p.jsonl:1: no column 'problem' \(columns here: qid, question, "
                                         r"solution, topic\); pass --prompt-column NAME"):
        load(path, prompt_column="problem")


def test_bad_rows_are_named(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"problem": "ok"}, {"problem": ""}])
    with pytest.raises(InputError, match=r"p.jsonl:2: field 'problem': must be non-empty text"):
        load_prompts(str(path))
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "problem": "a"}, {"id": 1, "problem": "b"}])
    with pytest.raises(InputError, match=r"p.jsonl:2: field 'id': duplicate id '1' \(first on row 1\)"):
        load_prompts(str(path))
    path.write_text('{"problem": "a"}\n{"problem": "b"\n')
    with pytest.raises(InputError, match=r"p.jsonl:2: malformed JSON"):
        load_prompts(str(path))
    path.write_text("")
    with pytest.raises(InputError, match="p.jsonl: no prompts: the input is empty"):
        load_prompts(str(path))
    with pytest.raises(InputError, match="nope.jsonl: file not found"):
        load_prompts(str(tmp_path / "nope.jsonl"))
    with pytest.raises(InputError, match="nope.parquet: file not found"):
        load_prompts(str(tmp_path / "nope.parquet"))
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(InputError, match="unsupported file type '.txt'"):
        load_prompts(str(tmp_path / "p.txt"))
    with pytest.raises(ConfigError, match="--shard"):
        load_prompts(str(path), shard="1-2")


def test_repeated_problem_text_is_kept_once(tmp_path, caplog):
    path = write_jsonl(tmp_path / "p.jsonl", [{"problem": "same"}, {"problem": "other"}, {"problem": "same"}])
    assert len(load_prompts(str(path))) == 2
    assert "skipped 1 prompts whose text repeats" in caplog.text


def test_hub_name_that_cannot_be_reached_is_one_clear_error():
    with pytest.raises(InputError, match=r"no-such-org/no-such-dataset:main@test: cannot load prompts"):
        load_prompts("no-such-org/no-such-dataset:main@test")


def test_gsm8k_answer():
    assert gsm8k_answer("She has 3 + 4 = <<3+4=7>>7 apples.\n#### 1,234") == "1234"
    assert gsm8k_answer("\\frac{1}{2}") == "\\frac{1}{2}"
    assert gsm8k_answer({"tests": []}) == {"tests": []}
