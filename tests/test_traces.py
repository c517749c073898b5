"""Trace I/O: errors name file, line and field; a torn last line is repaired, nothing else is touched."""

from __future__ import annotations

import json
import os

import pytest

from distill.errors import InputError, OutputError
from distill.traces import JsonlWriter, check_writable, read_traces, repair_torn_tail, sidecar


def trace(i: int, **overrides) -> dict:
    record = {"id": f"p{i}:0", "prompt_id": f"p{i}", "sample": 0, "messages": [{"role": "user", "content": "q"}],
              "reference": "1", "completion": "<think>\nr\n</think>\n\n\\boxed{1}", "finish_reason": "stop",
              "completion_tokens": 9}
    record.update(overrides)
    return record


def write_lines(path, lines):
    path.write_bytes(b"".join(lines))
    return path


def test_reader_names_line_and_field(tmp_path):
    good = json.dumps(trace(0)).encode() + b"\n"
    path = write_lines(tmp_path / "t.jsonl", [good, b"\n", b'{"id": "x", oops}\n'])
    with pytest.raises(InputError, match=r"t.jsonl:3: malformed JSON at column 13"):
        list(read_traces(path))

    bad = trace(1)
    del bad["completion"]
    path = write_lines(tmp_path / "t.jsonl", [good, json.dumps(bad).encode() + b"\n"])
    with pytest.raises(InputError, match=r"t.jsonl:2: field 'completion': missing"):
        list(read_traces(path))

    path = write_lines(tmp_path / "t.jsonl", [json.dumps(trace(1, sample="0")).encode() + b"\n"])
    with pytest.raises(InputError, match=r"t.jsonl:1: field 'sample': must be an integer"):
        list(read_traces(path))

    path = write_lines(tmp_path / "t.jsonl", [good, b"[1, 2]\n"])
    with pytest.raises(InputError, match=r"t.jsonl:2: expected a JSON object, got list"):
        list(read_traces(path))

    path = write_lines(tmp_path / "t.jsonl", [good, b'{"id": "\xff"}\n'])
    with pytest.raises(InputError, match=r"t.jsonl:2: not valid UTF-8"):
        list(read_traces(path))

    path = write_lines(tmp_path / "t.jsonl", [good, good])
    with pytest.raises(InputError, match=r"t.jsonl:2: field 'id': duplicate id 'p0:0' \(first on line 1\)"):
        list(read_traces(path))

    path = write_lines(tmp_path / "t.jsonl", [json.dumps(trace(0, finish_reason="abort")).encode() + b"\n"])
    with pytest.raises(InputError, match="field 'finish_reason': must be 'stop' or 'length'"):
        list(read_traces(path))

    with pytest.raises(InputError, match="missing.jsonl: file not found"):
        list(read_traces(tmp_path / "missing.jsonl"))


def test_a_line_cut_short_is_reported_at_the_column_where_it_ends(tmp_path):
    """A record cut mid-way on a line that still ends in a newline (an editor, a `head -c`): the decoder
    runs out at the end of the line, which is what the message points at (it said column 1)."""
    good = json.dumps(trace(0)).encode() + b"\n"
    for cut in (b'{"id": "p1:0", "prompt_id": "p1"', b'{"id": "p1:0",', b'{"id": "p1:0", "sample": 0'):
        path = write_lines(tmp_path / "t.jsonl", [good, cut + b"\n", good])
        with pytest.raises(InputError, match=rf"t.jsonl:2: malformed JSON at column {len(cut) + 1}: .*"
                                             r"the line ends before the record does"):
            list(read_traces(path))
        path = write_lines(tmp_path / "t.jsonl", [good, cut + b"\r\n"])  # Windows line ends too
        with pytest.raises(InputError, match=rf"t.jsonl:2: malformed JSON at column {len(cut) + 1}:"):
            list(read_traces(path))


def test_torn_last_line_is_cut_and_the_rest_kept_byte_for_byte(tmp_path):
    lines = [json.dumps(trace(i)).encode() + b"\n" for i in range(3)]
    torn = json.dumps(trace(3)).encode()[:25]
    path = write_lines(tmp_path / "t.jsonl", [*lines, torn])
    assert repair_torn_tail(path) == len(torn)
    assert path.read_bytes() == b"".join(lines)
    assert repair_torn_tail(path) == 0  # an intact file is left alone

    # a last line that ends in a newline but is not JSON (e.g. zero bytes after a power cut) also goes
    path = write_lines(tmp_path / "t.jsonl", [*lines, b"\x00\x00\x00\n"])
    assert repair_torn_tail(path) == 4
    assert path.read_bytes() == b"".join(lines)

    # a single torn line is the whole file
    path = write_lines(tmp_path / "t.jsonl", [b'{"id": "p'])
    assert repair_torn_tail(path) == 9 and path.read_bytes() == b""

    # a long last line (larger than the backwards-scan chunk) is found too
    big = json.dumps(trace(9, completion="x" * 200_000)).encode()
    path = write_lines(tmp_path / "t.jsonl", [*lines, big[:150_000]])
    assert repair_torn_tail(path) == 150_000
    assert path.read_bytes() == b"".join(lines)


def test_reader_flags_a_torn_line_it_meets(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [json.dumps(trace(0)).encode() + b"\n", b'{"id": "p1'])
    with pytest.raises(InputError, match=r"t.jsonl:2: malformed JSON .*the last line is cut off"):
        list(read_traces(path))


def test_writer_appends_whole_lines_and_repairs_on_open(tmp_path):
    path = tmp_path / "sub" / "out.jsonl"
    with JsonlWriter(path) as writer:
        assert writer.write([trace(0), trace(1)]) == 2
        # flushed per write: a reader sees the lines before close
        assert len(path.read_text().splitlines()) == 2
    with path.open("ab") as handle:
        handle.write(b'{"id": "p2:0", "prompt')
    with JsonlWriter(path) as writer:
        writer.write([trace(2)])
    assert [r["id"] for _, r in read_traces(path)] == ["p0:0", "p1:0", "p2:0"]


def test_unwritable_outputs_fail_before_any_work(tmp_path):
    with pytest.raises(OutputError, match="is a directory"):
        check_writable(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a directory"):
        check_writable(tmp_path / "file" / "sub" / "out.jsonl")


def test_read_only_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: directory permissions do not bind")
        with pytest.raises(OutputError, match="permission denied"):
            check_writable(locked / "out.jsonl")
    finally:
        locked.chmod(0o700)


def test_sidecar_names():
    assert sidecar("runs/traces.jsonl", "summary.json").as_posix() == "runs/traces.summary.json"
    assert sidecar("kept.json", "report.json").as_posix() == "kept.report.json"
