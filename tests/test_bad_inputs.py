"""The bad-input table: every command, fed what users and crashed runs really produce.

Each row runs one command and must end with exit code 1, exactly one `error:` line on stderr that
contains the row's `needles` (file, line and field where there are such, and the fix), no
traceback, and every file that existed before the run byte-identical afterwards, nothing new
written either. The outputs that exist beforehand are the finished outputs of real generate,
filter, train and eval runs, and most rows point their command at them with --overwrite (the most
destructive setting), so a run that fails late would show up as a changed or deleted file.

Adding a row: append a `Case(id, stage, make_args, needles)` to `CASES`. `make_args(ws)` writes the
bad input into the test's workspace with the `Workspace` helpers and returns the command line
(`ws.generate(...)`, `ws.filter(...)`, `ws.train(...)`, `ws.eval(...)`, or any list of arguments).
Most rows run in-process through typer's CliRunner (quick); `real=True` runs the `distill` command
in a subprocess instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.traces import MAX_LINE_BYTES
from tests.conftest import ROOT, assert_user_error, run_cli, write_jsonl
from tests.train_data import kept_record, kept_records, write_kept

TRACE = {"id": "p0:0", "prompt_id": "p0", "sample": 0, "messages": [{"role": "user", "content": "What is 1 + 1?"}],
         "reference": "2", "completion": "<think>\nOne plus one is two.\n</think>\n\nThe answer is \\boxed{2}.",
         "finish_reason": "stop", "completion_tokens": 12, "teacher": "t", "params": {}}


def trace(i: int, **overrides) -> dict:
    return {**TRACE, "id": f"p{i}:0", "prompt_id": f"p{i}", **overrides}


def line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False)


@dataclass
class Workspace:
    """One test's directory: `out/` holds finished outputs of every stage; helpers write bad inputs."""

    root: Path
    models: dict[str, Path]
    huge_line: Path | None = None
    """a file whose one line is 100 MB (rows with needs='huge_line')"""
    small_disk: Path | None = None
    """a directory on a 12 kB tmpfs (rows with needs='small_disk')"""
    read_only: Path | None = None
    """a directory on a read-only mount (rows with needs='read_only')"""

    @property
    def out(self) -> Path:
        return self.root / "out"

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.root / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def folder(self, name: str) -> Path:
        path = self.root / "in" / name
        path.mkdir(parents=True)
        return path

    def lines(self, name: str, *rows: str | dict) -> Path:
        return self.file(name, "".join((r if isinstance(r, str) else line(r)) + "\n" for r in rows))

    def prompts(self) -> Path:
        return self.lines("prompts.jsonl", {"id": "a", "problem": "What is 1 + 1?", "answer": "2"})

    def traces(self) -> Path:
        return self.lines("traces.jsonl", trace(0), trace(1))

    def kept(self) -> Path:
        return self.lines("kept.jsonl", *kept_records(3))

    def generate(self, prompts: Path | str, *extra: str | Path, out: Path | None = None,
                 overwrite: bool = True) -> list[str]:
        return ["generate", prompts, "--teacher", self.models["qwen"], "--backend", "hf", "--n", "2",
                "--max-tokens", "8", "--out", out or self.out / "traces.jsonl", *(["--overwrite"] if overwrite else []),
                *extra]

    def filter(self, traces: Path | str, *extra: str | Path, out: Path | None = None,
               overwrite: bool = True) -> list[str]:
        return ["filter", traces, "--out", out or self.out / "kept.jsonl", "--workers", "1",
                *(["--overwrite"] if overwrite else []), *extra]

    def train(self, kept: Path | str, *extra: str | Path, out: Path | None = None, overwrite: bool = True,
              student: Path | str | None = None) -> list[str]:
        return ["train", kept, "--student", student or self.models["qwen"], "--out", out or self.out / "student",
                *(["--overwrite"] if overwrite else []), "--max-seq-len", "512", "--batch-tokens", "600",
                "--epochs", "1", *extra]

    def eval(self, data: Path | str, *extra: str | Path, out: Path | None = None, overwrite: bool = True,
             model: Path | str | None = None) -> list[str]:
        return ["eval", "--model", f"qwen={model or self.models['qwen']}", "--data", data, "--out",
                out or self.out / "results.json", "--n", "2", "--max-tokens", "8", "--backend", "hf", "--workers", "1",
                *(["--overwrite"] if overwrite else []), *extra]

    def tokenizer_only(self) -> Path:
        """A directory with the student's tokenizer and nothing else (the weights were not copied)."""
        path = self.root / "in" / "tokenizer-only"
        shutil.copytree(self.models["qwen"], path, ignore=shutil.ignore_patterns("*.safetensors", "config.json",
                                                                                 "generation_config.json"))
        return path

    def interrupted_filter(self) -> list:
        """An interrupted filter run (progress committed after record 1, half a chunk beyond it in the
        outputs) whose input was edited since: the rerun must refuse before cutting anything back."""
        from distill.filter import FilterConfig
        from distill.filter.run import OutputPaths, run_fingerprint

        traces = self.lines("t.jsonl", trace(0), trace(1), trace(2))
        kept = self.out / "resumed" / "k.jsonl"
        args = self.filter(traces, out=kept, overwrite=False)
        kept.parent.mkdir(parents=True)
        committed = line(trace(0, verdicts={})) + "\n"
        kept.write_text(committed + line(trace(1, verdicts={})) + "\n" + '{"id": "p2:0", "pro', encoding="utf-8")
        (kept.parent / "k.rejects.jsonl").write_text("", encoding="utf-8")
        cfg = FilterConfig(traces=str(traces), out=str(kept), workers=1)
        OutputPaths.of(cfg).manifest.write(run_fingerprint(cfg))
        progress = [{"commit": {"done": 1, "kept_bytes": len(committed.encode()), "rejects_bytes": 0,
                                "last_id": "p9:0"}}]  # the input's first record was p9:0 back then
        (kept.parent / "k.filter-progress.jsonl").write_text("".join(line(p) + "\n" for p in progress) + '{"com')
        return args


@dataclass(frozen=True)
class Case:
    id: str
    stage: str
    make_args: Callable[[Workspace], list]
    needles: tuple[str, ...]
    real: bool = False
    """run the real command in a subprocess (else in-process through CliRunner)"""
    max_memory_mb: int | None = None
    """in-process: the most Python memory the failed run may allocate (tracemalloc peak)"""
    needs: str | None = None
    """a workspace feature the row needs: 'small_disk' (a full tmpfs), 'read_only' (a read-only mount), 'huge_line'"""


# ---------------------------------------------------------------- the table

CASES = [
    # ----- generate
    Case("generate: malformed JSON", "generate",
         lambda ws: ws.generate(ws.lines("p.jsonl", '{"problem": "ok"}', '{"problem": "x",}')),
         ("p.jsonl:2:", "malformed JSON at column"), real=True),
    Case("generate: a line that is not an object", "generate",
         lambda ws: ws.generate(ws.lines("p.jsonl", "[1, 2]")), ("p.jsonl:1:", "expected a JSON object")),
    Case("generate: problem of the wrong type", "generate",
         lambda ws: ws.generate(ws.lines("p.jsonl", {"id": "a", "problem": 5})),
         ("p.jsonl:1:", "field 'problem'", "must be non-empty text")),
    Case("generate: id of the wrong type", "generate",
         lambda ws: ws.generate(ws.lines("p.jsonl", {"id": ["a"], "problem": "x"})),
         ("p.jsonl:1:", "field 'id'", "must be a string or an integer")),
    Case("generate: missing prompt column", "generate",
         lambda ws: ws.generate(ws.lines("p.jsonl", {"id": "a", "question": "x"})),
         ("p.jsonl:1:", "no column 'problem'", "columns here: id, question", "pass --prompt-column")),
    Case("generate: empty file", "generate",
         lambda ws: ws.generate(ws.file("p.jsonl", "")), ("p.jsonl:", "no prompts")),
    Case("generate: empty csv", "generate",
         lambda ws: ws.generate(ws.file("p.csv", "")), ("p.csv:", "the file is empty")),
    Case("generate: non-UTF-8 bytes", "generate",
         lambda ws: ws.generate(ws.file("p.jsonl", b'{"problem": "ok"}\n{"problem": "caf\xe9"}\n')),
         ("p.jsonl:2:", "not valid UTF-8", "re-encode the file as UTF-8")),
    Case("generate: an unpaired surrogate escape", "generate",
         lambda ws: ws.generate(ws.file("p.jsonl", '{"problem": "x \\udc00 y"}\n')),
         ("p.jsonl:1:", "unpaired UTF-16 surrogate", "remove or repair")),
    Case("generate: duplicate ids", "generate",
         lambda ws: ws.generate(ws.lines("p.jsonl", {"id": "a", "problem": "x"}, {"id": "a", "problem": "y"})),
         ("p.jsonl:2:", "field 'id'", "duplicate id 'a' (first on row 1)")),
    Case("generate: a 100 MB line", "generate", lambda ws: ws.generate(ws.huge_line),
         ("huge.jsonl:1:", "line longer than 64 MiB", "one JSON object per line"), max_memory_mb=100,
         needs="huge_line"),
    Case("generate: unsupported file type", "generate",
         lambda ws: ws.generate(ws.file("p.txt", "What is 1 + 1?")), ("p.txt:", "unsupported file type '.txt'")),
    Case("generate: wrong teacher path (with --overwrite of a finished run)", "generate",
         lambda ws: [*ws.generate(ws.prompts()), "--teacher", ws.root / "no-such-model"],
         ("no-such-model", "no such directory", "check the path")),
    Case("generate: resuming an output written by another teacher", "generate",
         lambda ws: [*ws.generate(ws.prompts(), overwrite=False), "--teacher", ws.models["llama"]],
         ("traces.jsonl was written with other settings", "--teacher", "pass --overwrite")),
    Case("generate: output under a file", "generate",
         lambda ws: ws.generate(ws.prompts(), out=ws.out / "traces.jsonl" / "t.jsonl"),
         ("cannot write --out", "is a file, not a directory")),
    Case("generate: output is a directory", "generate",
         lambda ws: ws.generate(ws.prompts(), out=ws.out), ("--out", "is a directory", "give a file path")),
    Case("generate: output is a device", "generate",
         lambda ws: ws.generate(ws.prompts(), out=Path("/dev/full")), ("/dev/full", "not a regular file")),
    Case("generate: read-only output directory", "generate",
         lambda ws: ws.generate(ws.prompts(), out=ws.read_only / "t.jsonl"),
         ("cannot write --out", "choose a writable location"), needs="read_only"),
    Case("generate: disk full", "generate",
         lambda ws: ws.generate(ws.lines("p.jsonl", *({"id": f"q{i}", "problem": f"{i} " + "long words " * 150}
                                                      for i in range(6))), out=ws.small_disk / "t.jsonl"),
         ("t.jsonl", "No space left on device", "rerun the same command to resume"), needs="small_disk"),
    Case("generate: bad YAML", "generate",
         lambda ws: [*ws.generate(ws.prompts()), "--config", ws.file("r.yaml", "n: 2\ntemperature: [0.6\n")],
         ("r.yaml:3", "fix the YAML syntax")),
    Case("generate: unknown YAML key", "generate",
         lambda ws: [*ws.generate(ws.prompts()), "--config", ws.file("r.yaml", "temprature: 0.6\n")],
         ("r.yaml", "unknown key 'temprature'", "did you mean 'temperature'")),
    Case("generate: wrong-typed YAML value", "generate",
         lambda ws: [*ws.generate(ws.prompts()), "--config", ws.file("r.yaml", "n: four\n")],
         ("r.yaml", "key 'n' must be an integer", "'four'")),
    Case("generate: recipe that is not a mapping", "generate",
         lambda ws: [*ws.generate(ws.prompts()), "--config", ws.file("r.yaml", "- n: 2\n")],
         ("r.yaml", "must be a mapping of option: value")),
    Case("generate: --base-url with --backend hf", "generate",
         lambda ws: [*ws.generate(ws.prompts()), "--base-url", "http://127.0.0.1:8000/v1"],
         ("--base-url only applies to --backend openai", "add --backend openai or drop --base-url")),
    Case("generate: a key pasted into --api-key-env", "generate",
         lambda ws: [*ws.generate(ws.prompts()), "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                     "--api-key-env", "sk-pasted-by-mistake-0123"],
         ("--api-key-env takes the name of an environment variable", "not the key itself")),
    Case("generate: --backend openai without --base-url", "generate",
         lambda ws: [*ws.generate(ws.prompts()), "--backend", "openai"], ("--base-url is required",)),
    Case("generate: template without {problem}", "generate",
         lambda ws: [*ws.generate(ws.prompts()), "--template", "Solve it."], ("--template must contain '{problem}'",)),
    Case("generate: shard out of range", "generate",
         lambda ws: [*ws.generate(ws.prompts()), "--shard", "2/2"], ("--shard 2/2", "numbered from 0")),

    # ----- filter
    Case("filter: malformed JSON", "filter",
         lambda ws: ws.filter(ws.lines("t.jsonl", trace(0), '{"id": "p1:0", "prompt_id": }')),
         ("t.jsonl:2:", "malformed JSON")),
    Case("filter: torn last line (generate was killed)", "filter",
         lambda ws: ws.filter(ws.file("t.jsonl", line(trace(0)) + "\n" + line(trace(1))[:40])),
         ("t.jsonl:2:", "the last line is cut off")),
    Case("filter: missing field", "filter",
         lambda ws: ws.filter(ws.lines("t.jsonl", trace(0), {k: v for k, v in trace(1).items() if k != "completion"})),
         ("t.jsonl:2:", "field 'completion'", "missing")),
    Case("filter: field of the wrong type", "filter",
         lambda ws: ws.filter(ws.lines("t.jsonl", trace(0, finish_reason=1))),
         ("t.jsonl:1:", "field 'finish_reason'", "'stop' or 'length'")),
    Case("filter: messages of the wrong type", "filter",
         lambda ws: ws.filter(ws.lines("t.jsonl", trace(0, messages="What is 1 + 1?"))),
         ("t.jsonl:1:", "field 'messages'", "list of {role, content} messages")),
    Case("filter: duplicate ids", "filter",
         lambda ws: ws.filter(ws.lines("t.jsonl", trace(0), trace(0))),
         ("t.jsonl:2:", "field 'id'", "duplicate id 'p0:0' (first on line 1)")),
    Case("filter: empty file", "filter", lambda ws: ws.filter(ws.file("t.jsonl", "")),
         ("t.jsonl:", "no records", "give the traces written by distill generate")),
    Case("filter: blank lines only", "filter", lambda ws: ws.filter(ws.file("t.jsonl", "\n  \n\n")),
         ("t.jsonl:", "no records")),
    Case("filter: non-UTF-8 bytes", "filter",
         lambda ws: ws.filter(ws.file("t.jsonl", (line(trace(0)) + "\n").encode() + b"\xff\xfe\n")),
         ("t.jsonl:2:", "not valid UTF-8")),
    Case("filter: an unpaired surrogate escape", "filter",
         lambda ws: ws.filter(ws.file("t.jsonl", line(trace(0)).replace("two.", "two \\ud800.") + "\n")),
         ("t.jsonl:1:", "unpaired UTF-16 surrogate")),
    Case("filter: NaN (not standard JSON, written back as such)", "filter",
         lambda ws: ws.filter(ws.lines("t.jsonl", trace(0), line(trace(1, source={"score": [1, 2]})).replace("2]", "NaN]"))),
         ("t.jsonl:2:", "field 'source.score[1]'", "NaN is not standard JSON", "write null or a number")),
    Case("filter: Infinity and 1e999", "filter",
         lambda ws: ws.filter(ws.lines("t.jsonl", line(trace(0)).replace('"reference": "2"', '"reference": 1e999'))),
         ("t.jsonl:1:", "field 'reference'", "beyond the largest floating-point number")),
    Case("filter: a 5,000-digit integer", "filter",
         lambda ws: ws.filter(ws.lines("t.jsonl", line(trace(0)).replace('"completion_tokens": 12',
                                                                           '"completion_tokens": ' + "9" * 5000))),
         ("t.jsonl:1:", "field 'completion_tokens'", "5,000 digits", "write it as a string")),
    Case("filter: 100k-deep nesting", "filter",
         lambda ws: ws.filter(ws.lines("t.jsonl", line(trace(0))[:-1] + ', "source": ' + "[" * 100_000 + "]" * 100_000 + "}")),
         ("t.jsonl:1:", "field 'source'", "nested deeper")),
    Case("filter: sample true (a bool is no integer)", "filter",
         lambda ws: ws.filter(ws.lines("t.jsonl", trace(0, sample=True))),
         ("t.jsonl:1:", "field 'sample'", "must be an integer, got true")),
    Case("filter: a 100 MB line", "filter", lambda ws: ws.filter(ws.huge_line),
         ("huge.jsonl:1:", "line longer than 64 MiB"), max_memory_mb=100, needs="huge_line"),
    Case("filter: a prompt's samples apart", "filter",
         lambda ws: ws.filter(ws.lines("t.jsonl", trace(0), trace(1), trace(0, id="p0:1"))),
         ("t.jsonl:3:", "field 'prompt_id'", "not together", "or leave 'selection' out of --checks")),
    Case("filter: code reference without tests", "filter",
         lambda ws: ws.filter(ws.lines("t.jsonl", trace(0, reference={"entry_point": "f"}))),
         ("t.jsonl:1:", "field 'reference'", "needs 'tests'")),
    Case("filter: wrong tokenizer path", "filter",
         lambda ws: ws.filter(ws.traces(), "--tokenizer", ws.root / "no-such-model"),
         ("no-such-model", "no such directory")),
    Case("filter: output is the input", "filter",
         lambda ws: ws.filter(ws.traces(), out=ws.root / "in" / "traces.jsonl"), ("is the input TRACES", "never writes over its own input")),
    Case("filter: output under a file", "filter",
         lambda ws: ws.filter(ws.traces(), out=ws.out / "kept.jsonl" / "k.jsonl"),
         ("cannot write --out", "is a file, not a directory")),
    Case("filter: disk full", "filter",
         lambda ws: ws.filter(ws.lines("t.jsonl", *(trace(i, completion="<think>\n" + "thinking " * 60 + "\n</think>\n\n"
                                                                       "The answer is \\boxed{2}.")
                                                     for i in range(60))), out=ws.small_disk / "k.jsonl"),
         ("k.", "No space left on device", "rerun the same command to resume"), needs="small_disk"),
    Case("filter: unknown check", "filter", lambda ws: ws.filter(ws.traces(), "--checks", "format,langauge"),
         ("unknown check 'langauge'", "did you mean 'language'")),
    Case("filter: --keep-per-prompt without selection", "filter",
         lambda ws: ws.filter(ws.traces(), "--checks", "format,finish", "--keep-per-prompt", "2"),
         ("--keep-per-prompt needs the 'selection' check", "add selection to --checks")),
    Case("filter: --max-tokens without the length check", "filter",
         lambda ws: ws.filter(ws.traces(), "--checks", "format", "--max-tokens", "100"),
         ("--max-tokens needs the 'length' check", "add length to --checks or drop --max-tokens")),
    Case("filter: --drop-unverified without correctness", "filter",
         lambda ws: ws.filter(ws.traces(), "--checks", "format", "--drop-unverified"),
         ("--drop-unverified needs the 'correctness' check",)),
    Case("filter: answer pattern without a group", "filter",
         lambda ws: ws.filter(ws.traces(), "--answer-patterns", "Answer: .+"), ("--answer-patterns", "needs a group")),
    Case("filter: wrong-typed YAML value", "filter",
         lambda ws: [*ws.filter(ws.traces()), "--config", ws.file("r.yaml", "workers: many\n")],
         ("r.yaml", "key 'workers' must be an integer")),
    Case("filter: resuming after the input changed", "filter",
         lambda ws: ws.interrupted_filter(), ("t.jsonl:", "the input changed since the interrupted run",
                                              "pass --overwrite")),
    Case("filter: a finished output of other traces without --overwrite", "filter",
         lambda ws: ws.filter(ws.traces(), overwrite=False),
         ("kept.jsonl was written with other settings", "the content of TRACES", "pass --overwrite")),

    # ----- train
    Case("train: missing field", "train",
         lambda ws: ws.train(ws.lines("k.jsonl", *kept_records(1),
                                      {k: v for k, v in kept_record(1, "r", "a").items() if k != "messages"})),
         ("k.jsonl:2:", "field 'messages'", "missing"), real=True),
    Case("train: completion of the wrong type", "train",
         lambda ws: ws.train(ws.lines("k.jsonl", *kept_records(2), kept_record(2, "r", "a", completion=5))),
         ("k.jsonl:3:", "field 'completion'", "must be a string")),
    Case("train: no think block (a record the filter would drop)", "train",
         lambda ws: ws.train(ws.lines("k.jsonl", *kept_records(3), kept_record(3, "r", "a", completion="Just 7."))),
         ("k.jsonl:4:", "field 'completion'", "keep only well-formed traces")),
    Case("train: no answer after the reasoning", "train",
         lambda ws: ws.train(ws.lines("k.jsonl", *kept_records(2), kept_record(2, "thinking", ""))),
         ("k.jsonl:3:", "field 'completion'", "nothing after </think>")),
    Case("train: empty messages", "train",
         lambda ws: ws.train(ws.lines("k.jsonl", *kept_records(2), kept_record(2, "r", "a", messages=[]))),
         ("k.jsonl:3:", "field 'messages'", "at least one user message")),
    Case("train: duplicate ids", "train",
         lambda ws: ws.train(ws.lines("k.jsonl", *kept_records(2), kept_records(1)[0])),
         ("k.jsonl:3:", "duplicate id 'q0:0'")),
    Case("train: empty file", "train", lambda ws: ws.train(ws.file("k.jsonl", "")),
         ("k.jsonl:", "holds no records", "run distill filter first")),
    Case("train: torn last line", "train",
         lambda ws: ws.train(ws.file("k.jsonl", "".join(line(r) + "\n" for r in kept_records(2)) + '{"id": "q2:0", "pr')),
         ("k.jsonl:3:", "the last line is cut off")),
    Case("train: non-UTF-8 bytes", "train",
         lambda ws: ws.train(ws.file("k.jsonl", (line(kept_records(1)[0]) + "\n").encode() + b"\xc3\x28\n")),
         ("k.jsonl:2:", "not valid UTF-8")),
    Case("train: a 100 MB line", "train", lambda ws: ws.train(ws.huge_line),
         ("huge.jsonl:1:", "line longer than 64 MiB"), max_memory_mb=100, needs="huge_line"),
    Case("train: wrong student path (with --overwrite of a finished run)", "train",
         lambda ws: ws.train(ws.kept(), student=ws.root / "no-such-model"),
         ("no-such-model", "no such directory", "check the path"), real=True),
    Case("train: student directory without weights", "train",
         lambda ws: ws.train(ws.kept(), student=ws.tokenizer_only()),
         ("tokenizer-only", "holds no config.json", "save_pretrained")),
    Case("train: output under a file", "train",
         lambda ws: ws.train(ws.kept(), out=ws.out / "kept.jsonl" / "student"),
         ("cannot create --out", "is a file, not a directory")),
    Case("train: output is a file", "train",
         lambda ws: ws.train(ws.kept(), out=ws.out / "kept.jsonl"), ("--out", "is a file", "give a directory")),
    Case("train: read-only output directory", "train",
         lambda ws: ws.train(ws.kept(), out=ws.read_only / "student"),
         ("cannot write --out", "choose a writable location"), needs="read_only"),
    Case("train: disk full", "train",
         lambda ws: ws.train(ws.kept(), "--save-steps", "1", out=ws.small_disk / "student"),
         ("space left on", "rerun the same command"), needs="small_disk"),
    Case("train: chat template that does not render", "train",
         lambda ws: ws.train(ws.kept(), "--chat-template", ws.file("t.jinja", "{% for %}")),
         ("--chat-template", "t.jinja", "fix the template")),
    Case("train: --resume with --overwrite", "train",
         lambda ws: [*ws.train(ws.kept()), "--resume"], ("--resume and --overwrite exclude each other",)),
    Case("train: --merge with --method full", "train",
         lambda ws: [*ws.train(ws.kept()), "--merge"], ("--merge needs --method lora or qlora",)),
    Case("train: unknown YAML key", "train",
         lambda ws: [*ws.train(ws.kept()), "--config", ws.file("r.yaml", "method: lora\nlora_rank: 8\n")],
         ("r.yaml", "unknown key 'lora_rank'", "did you mean 'lora_r'")),
    Case("train: a finished run of other settings without --overwrite", "train",
         lambda ws: ws.train(ws.kept(), "--lr", "1e-3", overwrite=False),
         ("student was written with other settings", "--lr 1e-05 → 0.001", "pass --overwrite")),

    # ----- eval
    Case("eval: malformed benchmark JSON", "eval",
         lambda ws: ws.eval(ws.lines("b.jsonl", {"problem": "1 + 1?", "answer": "2"}, '{"problem": "2 + 2?" "a')),
         ("b.jsonl:2:", "malformed JSON")),
    Case("eval: benchmark not found", "eval", lambda ws: ws.eval(ws.root / "in" / "no-such.jsonl"),
         ("no-such.jsonl", "file not found")),
    Case("eval: missing problem column", "eval",
         lambda ws: ws.eval(ws.lines("b.jsonl", {"question": "1 + 1?", "answer": "2"})),
         ("b.jsonl:1:", "no column 'problem'", "pass --prompt-column")),
    Case("eval: empty benchmark", "eval", lambda ws: ws.eval(ws.file("b.jsonl", "")), ("b.jsonl:", "no prompts")),
    Case("eval: non-UTF-8 benchmark", "eval",
         lambda ws: ws.eval(ws.file("b.jsonl", b'{"problem": "1 + 1 = \xff?"}\n')),
         ("b.jsonl:1:", "not valid UTF-8")),
    Case("eval: the second model's path is wrong (with --overwrite of a finished eval)", "eval",
         lambda ws: [*ws.eval(ws.prompts()), "--model", ws.root / "no-such-model"],
         ("--model", "no-such-model", "no such directory", "check the path")),
    Case("eval: two models with one name", "eval",
         lambda ws: [*ws.eval(ws.prompts()), "--model", f"qwen={ws.models['llama']}"],
         ("two models share the name 'qwen'", "label them as NAME=PATH")),
    Case("eval: a label's earlier samples came from another model", "eval",
         lambda ws: ws.eval(ws.prompts(), model=ws.models["llama"], overwrite=False),
         ("results.qwen.traces.jsonl was written with other settings", "--teacher", "pass --overwrite")),
    Case("eval: --out that is not .json", "eval",
         lambda ws: ws.eval(ws.prompts(), out=ws.out / "results.txt"), ("--out must be a .json file",)),
    Case("eval: output is a directory", "eval",
         lambda ws: ws.eval(ws.prompts(), out=ws.folder("r.json")), ("--out", "is a directory", "give a file path")),
    Case("eval: --n 0", "eval", lambda ws: [*ws.eval(ws.prompts()), "--n", "0"], ("--n must be at least 1",)),
    Case("eval: unknown YAML key", "eval",
         lambda ws: [*ws.eval(ws.prompts()), "--config", ws.file("r.yaml", "models: [a]\n")],
         ("r.yaml", "unknown key 'models'", "did you mean 'model'")),
]


# ---------------------------------------------------------------- the workspace


@pytest.fixture(scope="module")
def finished_outputs(tiny_models, tmp_path_factory) -> Path:
    """Finished generate, filter and train outputs, made once by real runs; each test gets a copy."""
    from distill.eval import EvalConfig, evaluate
    from distill.filter import FilterConfig, filter_traces
    from distill.generate import GenerateConfig, generate
    from distill.train import TrainConfig, train

    root = tmp_path_factory.mktemp("finished")
    prompts = write_jsonl(root / "prompts.jsonl", [{"id": "a", "problem": "What is 1 + 1?", "answer": "2"}])
    out = root / "out"
    generate(GenerateConfig(prompts=str(prompts), teacher=str(tiny_models["qwen"]), out=str(out / "traces.jsonl"),
                            backend="hf", n=2, max_tokens=8))
    filter_traces(FilterConfig(traces=str(out / "traces.jsonl"), out=str(out / "kept.jsonl"), workers=1))
    train(TrainConfig(kept=str(write_kept(root / "kept.jsonl", 3)), student=str(tiny_models["qwen"]),
                      out=str(out / "student"), max_seq_len=512, batch_tokens=600, epochs=1))
    evaluate(EvalConfig(model=[f"qwen={tiny_models['qwen']}"], data=str(prompts), out=str(out / "results.json"),
                        n=2, max_tokens=8, backend="hf", workers=1))
    return out


@pytest.fixture(scope="module")
def huge_line(tmp_path_factory) -> Iterator[Path]:
    """A 100 MB single line (a JSON object, so only its size is wrong), deleted after the module."""
    path = tmp_path_factory.mktemp("huge") / "huge.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"id": "a:0", "prompt_id": "a", "problem": "')
        block = b"many words " * 100_000
        for _ in range((100 << 20) // len(block) + 1):
            handle.write(block)
        handle.write(b'"}\n')
    assert path.stat().st_size > 100 << 20 > MAX_LINE_BYTES
    yield path
    path.unlink()


@contextlib.contextmanager
def mounted(target: Path, *options: str) -> Iterator[None]:
    """Mount (tmpfs, or a read-only bind) on `target` for the duration, or skip saying why not."""
    target.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip() or 'mount failed'}): needs root with "
                    "CAP_SYS_ADMIN; this row is not simulated on this machine")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture
def workspace(request, tmp_path, tiny_models, finished_outputs) -> Iterator[Workspace]:
    ws = Workspace(tmp_path / "ws", tiny_models)
    shutil.copytree(finished_outputs, ws.out)
    case: Case = request.node.callspec.params["case"]
    with contextlib.ExitStack() as stack:
        if case.needs == "huge_line":
            ws.huge_line = request.getfixturevalue("huge_line")
        elif case.needs == "small_disk":
            ws.small_disk = tmp_path / "small-disk"
            stack.enter_context(mounted(ws.small_disk, "-t", "tmpfs", "-o", "size=12k", "tmpfs"))
            # an earlier run's file on the full disk: it must survive the failed run
            (ws.small_disk / "earlier.jsonl").write_text(line(trace(0)) + "\n")
        elif case.needs == "read_only":
            ws.read_only = tmp_path / "read-only"
            ws.read_only.mkdir()
            (ws.read_only / "earlier.jsonl").write_text(line(trace(0)) + "\n")
            stack.enter_context(mounted(ws.read_only, "--bind", str(ws.read_only)))
            if subprocess.run(["mount", "-o", "remount,ro,bind", str(ws.read_only)]).returncode != 0:
                pytest.skip("cannot remount read-only here: this row is not simulated on this machine")
        yield ws


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` (relative path) -> sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


class InProcessResult:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_in_process(args: list[str]) -> InProcessResult:
    """The CLI's own code path (typer app, build_config, the stage, run_stage's error translation),
    without a new interpreter. An exception that escapes is a failure, printed like a traceback."""
    import traceback

    from cli.main import app

    # a handler left on an earlier invocation's (closed) stderr: let the app set up logging on this one's
    for handler in list(logging.root.handlers):
        if type(handler) is logging.StreamHandler:
            logging.root.removeHandler(handler)
    result = CliRunner().invoke(app, [str(a) for a in args])
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return InProcessResult(result.exit_code, result.stdout, stderr)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_1_and_harms_nothing(case: Case, workspace: Workspace):
    args = case.make_args(workspace)
    watched = [root for root in (workspace.root, workspace.small_disk, workspace.read_only) if root is not None]
    before = {str(root): snapshot(root) for root in watched}
    if case.real:
        result = run_cli(*args)
    elif case.max_memory_mb is not None:
        tracemalloc.start()
        try:
            result = run_in_process(args)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < case.max_memory_mb << 20, f"the failed run allocated {peak >> 20} MiB"
    else:
        result = run_in_process(args)
    assert_user_error(result, *case.needles)
    after = {str(root): snapshot(root) for root in watched}
    if case.needs == "small_disk":  # what a run wrote before the disk filled may stay (a rerun resumes it)
        for root in watched:
            assert {k: v for k, v in after[str(root)].items() if k in before[str(root)]} == before[str(root)]
    else:
        assert after == before, "the failed run changed, removed or created files"


def test_the_table_covers_every_command_and_enough_cases():
    stages = {case.stage for case in CASES}
    assert stages == {"generate", "filter", "train", "eval"}
    assert len(CASES) >= 30 and len({case.id for case in CASES}) == len(CASES)


def test_a_100_mb_line_keeps_the_real_process_small(huge_line, tmp_path):
    """Peak memory of the real command on a 100 MB line, against the same command failing on a
    small bad line: the long line is never held whole, decoded or parsed."""
    small = tmp_path / "small.jsonl"
    small.write_text('{"id": \n')
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")

    def peak_kib(path: Path) -> int:
        command = [sys.executable, "-c", probe, sys.executable, "-m", "cli.main", "filter", str(path), "--out",
                   str(tmp_path / "k.jsonl")]
        output = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**os.environ},
                                check=True).stdout.split()
        assert output[1] == "1"
        return int(output[0])

    growth_mib = (peak_kib(huge_line) - peak_kib(small)) / 1024
    assert growth_mib < 100, f"reading a 100 MB line took {growth_mib:.0f} MiB more than a small bad line"
    assert not (tmp_path / "k.jsonl").exists()
