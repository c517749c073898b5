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
from distill.shards import concatenate, shard_configs, shard_output, shard_outputs, shard_specs


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
