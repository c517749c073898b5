"""distill.shards: naming each shard's output and config, and joining the shards in order, all or nothing."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

import distill.shards
from distill.errors import ConfigError, InputError, OutputError
from distill.generate import GenerateConfig
from distill.prompts import parse_shard, shard_slice
from distill.shards import (
    ShardWriter,
    concatenate,
    read_shard_manifest,
    shard_configs,
    shard_files,
    shard_output,
    shard_outputs,
    shard_specs,
)


def test_shard_specs_number_the_shards_from_zero():
    assert shard_specs(3) == ["0/3", "1/3", "2/3"]
    assert shard_specs(1) == ["0/1"]
    with pytest.raises(ConfigError, match="at least 1 shard"):
        shard_specs(0)


def test_each_shard_writes_beside_the_output_with_the_split_in_its_name():
    assert shard_outputs("run/traces.jsonl", 2) == [Path("run/traces.shard-0-of-2.jsonl"),
                                                    Path("run/traces.shard-1-of-2.jsonl")]
    assert shard_output(Path("/data/eval.json"), 3, 4) == Path("/data/eval.shard-3-of-4.json")
    with pytest.raises(ConfigError, match="need 0 ≤ I < N"):
        shard_output("traces.jsonl", 2, 2)


def test_shard_configs_change_only_out_and_shard():
    whole = GenerateConfig(prompts="prompts.jsonl", teacher="teacher", out="run/traces.jsonl", n=4, seed=7)
    configs = shard_configs(whole, 3)
    assert [(c.out, c.shard) for c in configs] == [("run/traces.shard-0-of-3.jsonl", "0/3"),
                                                   ("run/traces.shard-1-of-3.jsonl", "1/3"),
                                                   ("run/traces.shard-2-of-3.jsonl", "2/3")]
    assert all(dataclasses.replace(c, out=whole.out, shard=None) == whole for c in configs)
    # their prompt slices, in order, are the whole run's prompts
    slices = [shard_slice(10, parse_shard(c.shard)) for c in configs]
    assert [i for part in slices for i in range(10)[part]] == list(range(10))


def test_a_shard_is_not_split_again():
    shard = GenerateConfig(prompts="prompts.jsonl", teacher="teacher", out="traces.jsonl", shard="1/2")
    with pytest.raises(ConfigError, match="already one shard"):
        shard_configs(shard, 2)


def _write_shards(tmp_path: Path, contents: list[bytes]) -> list[Path]:
    paths = shard_outputs(tmp_path / "traces.jsonl", len(contents))
    for path, content in zip(paths, contents, strict=True):
        path.write_bytes(content)
    return paths


def test_concatenate_joins_the_shards_in_the_order_given(tmp_path):
    paths = _write_shards(tmp_path, [b'{"id": "a:0"}\n{"id": "a:1"}\n', b"", b'{"id": "b:0"}\n'])
    out = tmp_path / "traces.jsonl"
    assert concatenate(paths, out) == out
    assert out.read_bytes() == b'{"id": "a:0"}\n{"id": "a:1"}\n{"id": "b:0"}\n'
    concatenate(list(reversed(paths)), out)  # an existing output is replaced
    assert out.read_bytes() == b'{"id": "b:0"}\n{"id": "a:0"}\n{"id": "a:1"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["traces.jsonl", "traces.shard-0-of-3.jsonl",
                                                          "traces.shard-1-of-3.jsonl", "traces.shard-2-of-3.jsonl"]


def test_the_output_changes_only_by_the_final_rename(tmp_path, monkeypatch):
    paths = _write_shards(tmp_path, [b"1\n", b"2\n"])
    out = tmp_path / "traces.jsonl"
    out.write_bytes(b"old\n")
    renames = []
    real_replace = os.replace

    def rename(source, target):
        # at the rename the whole join is in the temporary file, and the output is still the old one
        renames.append((Path(source).read_bytes(), Path(target).read_bytes()))
        real_replace(source, target)

    monkeypatch.setattr(distill.shards.os, "replace", rename)
    concatenate(paths, out)
    assert renames == [(b"1\n2\n", b"old\n")]
    assert out.read_bytes() == b"1\n2\n"


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_join_that_fails_midway_leaves_the_output_as_it_was(tmp_path, monkeypatch, failure):
    paths = _write_shards(tmp_path, [b"1\n", b"2\n"])
    out = tmp_path / "traces.jsonl"
    out.write_bytes(b"old\n")
    copies = []
    real_copy = shutil.copyfileobj

    def copy_then_fail(source, target):
        if copies:
            raise failure
        copies.append(source)
        real_copy(source, target)

    monkeypatch.setattr(distill.shards.shutil, "copyfileobj", copy_then_fail)
    with pytest.raises(OutputError if isinstance(failure, OSError) else KeyboardInterrupt) as raised:
        concatenate(paths, out)
    if isinstance(failure, OSError):
        assert str(raised.value).startswith(f"cannot write {out}: No space left on device;")
    assert out.read_bytes() == b"old\n"
    assert not out.with_name("traces.jsonl.tmp").exists()


def test_a_missing_shard_or_a_torn_last_line_is_refused_before_anything_is_written(tmp_path):
    paths = _write_shards(tmp_path, [b"1\n", b'2\n{"id": "cut'])
    out = tmp_path / "traces.jsonl"
    with pytest.raises(InputError, match=r"traces.shard-1-of-2.jsonl: its last line is cut off .* rerun the shard"):
        concatenate(paths, out)
    paths[1].unlink()
    with pytest.raises(InputError, match=r"missing shard file\(s\): .*traces.shard-1-of-2.jsonl; run those shards"):
        concatenate(paths, out)
    assert not out.exists() and not out.with_name("traces.jsonl.tmp").exists()


# ---------------------------------------------------------------- the trace directory (generate --ray)


def _records(prompts: range, n: int = 2) -> list[list[dict]]:
    """Each prompt's samples, as generate writes them (one group per prompt)."""
    return [[{"id": f"p{p}:{s}", "prompt_id": f"p{p}", "sample": s, "messages": [{"role": "user", "content": "1+1?"}],
              "reference": "2", "completion": "<think>\nok\n</think>\n\n2", "finish_reason": "stop",
              "completion_tokens": 5} for s in range(n)] for p in prompts]


def write_directory(directory: Path, groups: list[list[dict]], **kwargs) -> None:
    with ShardWriter(directory, **kwargs) as writer:
        for group in groups:
            writer.write(group)


def test_a_trace_directory_reads_as_its_joined_file(tmp_path):
    from distill.runs import file_digest
    from distill.traces import content_digest, iter_jsonl, read_traces

    directory = tmp_path / "traces"
    write_directory(directory, _records(range(3)), records_per_shard=4)  # 2 prompts a shard: never split
    write_directory(directory, _records(range(3, 5)))  # a resumed run: a shard of its own
    manifest = read_shard_manifest(directory)
    assert [(s["file"], s["records"]) for s in manifest["shards"]] == [
        ("part-00000.jsonl", 4), ("part-00001.jsonl", 2), ("part-00002.jsonl", 4)]
    assert manifest["records"] == 10
    joined = concatenate(shard_files(directory), tmp_path / "joined.jsonl")
    assert list(read_traces(directory)) == list(read_traces(joined))  # same records, same line numbers
    assert list(iter_jsonl(directory)) == list(iter_jsonl(joined))
    assert content_digest(directory) == file_digest(joined) == content_digest(joined)


def test_errors_in_a_trace_directory_name_the_shard_and_its_line(tmp_path):
    from distill.traces import read_traces

    directory = tmp_path / "traces"
    write_directory(directory, _records(range(2)), records_per_shard=2)
    write_directory(directory, _records(range(1, 2)))  # p1 again, in a third shard
    with pytest.raises(InputError, match=r"part-00002.jsonl:1: field 'id': duplicate id 'p1:0' \(first on "
                                         r".*part-00001.jsonl, line 1\)"):
        list(read_traces(directory))
    with (directory / "part-00000.jsonl").open("a") as handle:
        handle.write('{"id": \n')
    with pytest.raises(InputError, match=r"part-00000.jsonl:3: malformed JSON"):
        list(read_traces(directory))
    (directory / "part-00001.jsonl").unlink()
    with pytest.raises(InputError, match="part-00001.jsonl, which is missing"):
        list(read_traces(directory))
    with pytest.raises(InputError, match="without a manifest.json, so not a trace directory"):
        list(read_traces(tmp_path))


def test_the_filter_reads_a_trace_directory_as_its_joined_file(tmp_path):
    from distill.filter import FilterConfig, filter_traces

    directory = tmp_path / "traces"
    write_directory(directory, _records(range(6), n=3), records_per_shard=5)
    joined = concatenate(shard_files(directory), tmp_path / "joined.jsonl")
    outputs = {}
    for name, source in (("dir", directory), ("file", joined)):
        report = filter_traces(FilterConfig(traces=str(source), out=str(tmp_path / f"{name}.jsonl"),
                                            checks=["format", "finish", "selection"], keep_per_prompt=2, workers=1))
        assert report.input_records == 18
        outputs[name] = [(tmp_path / f"{name}{part}.jsonl").read_bytes() for part in ("", ".rejects")]
    assert outputs["dir"] == outputs["file"]
