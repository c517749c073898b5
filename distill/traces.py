"""JSONL trace files: a reader that names file, line and field on bad input, and
an append-only writer that a killed run can resume.

The trace record (one JSON object per line) is the contract between stages; see
the design doc. A crash can leave the last line of an output cut in half (the
"torn" line): `repair_torn_tail` finds and removes it before a resumed run
appends, so the record it held is simply generated again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import InputError, OutputError

log = logging.getLogger(__name__)

FINISH_REASONS = ("stop", "length")

# field -> (accepted types, description used in error messages)
_TRACE_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "id": ((str,), "a string"),
    "prompt_id": ((str,), "a string"),
    "sample": ((int,), "an integer"),
    "messages": ((list,), "a list of {role, content} messages"),
    "reference": ((str, dict, list, int, float, type(None)), "a string, an object or null"),
    "completion": ((str,), "a string"),
    "finish_reason": ((str,), "'stop' or 'length'"),
    "completion_tokens": ((int, type(None)), "an integer"),
}
TRACE_REQUIRED = ("id", "prompt_id", "sample", "messages", "reference", "completion", "finish_reason")
MAX_LINE_BYTES = 64 << 20
"""Longest JSONL line read (a 32k-token trace is ~130 kB; stdio code tests can reach MBs): a longer one is an
error, so a wrong or corrupt file costs at most this much memory."""


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class _NonStandard(Exception):
    """A value Python's json reads but standard JSON (or the int-string limit) does not allow."""


@dataclass(frozen=True)
class _Unreadable:
    why: str


def _constant(text: str) -> Any:
    return _Unreadable(f"{text} is not standard JSON (other readers refuse it, and it would be written back); "
                       "write null or a number")


def _integer(text: str) -> Any:
    digits = len(text.lstrip("-"))
    if digits > 4300:  # Python's int-string limit: int() raises ValueError beyond it
        return _Unreadable(f"an integer of {digits:,} digits, more than can be read (4,300); "
                           "write it as a string")
    return int(text)


def _float(text: str) -> Any:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e999: standard JSON, but it would be written back as Infinity
        return _Unreadable(f"{text} is beyond the largest floating-point number; write it as a string")
    return value


def _refuse(make: Any) -> Any:
    def refuse(text: str) -> Any:
        value = make(text)
        if isinstance(value, _Unreadable):
            raise _NonStandard
        return value
    return refuse


_STRICT_JSON = json.JSONDecoder(parse_constant=_refuse(_constant), parse_int=_refuse(_integer),
                                parse_float=_refuse(_float))
_LENIENT_JSON = json.JSONDecoder(parse_constant=_constant, parse_int=_integer, parse_float=_float)


def _find_non_standard(value: Any, where: str = "") -> tuple[str | None, str]:
    """(field path, reason) of the first `_Unreadable` in a leniently decoded record."""
    if isinstance(value, _Unreadable):
        return where or None, value.why
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _find_non_standard(item, f"{where}[{key}]" if isinstance(key, int) else
                                   f"{where}.{key}" if where else key)
        if found[1]:
            return found
    return None, ""


def _deep_field(text: str) -> str | None:
    """The top-level key whose value nests deepest past what a reader handles (a scan: no recursion)."""
    depth, key, last_string, start, in_string, escaped = 0, None, None, 0, False, False
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                if depth == 1:
                    last_string = text[start:i]
        elif char == '"':
            in_string, start = True, i + 1
        elif char in "[{":
            depth += 1
            if depth == 2:
                key = last_string
            if depth > 500:
                return key
        elif char in "]}":
            depth -= 1
    return None


def _read_line(handle: Any, limit: int | None) -> bytes | bytearray:
    """The next line, read in pieces: never more than about MAX_LINE_BYTES + 1 bytes (nor `limit`) are held."""
    budget = MAX_LINE_BYTES + 1 if limit is None else min(MAX_LINE_BYTES + 1, limit)
    line = handle.readline(min(budget, 1 << 20))
    if not line or line.endswith(b"\n") or len(line) == budget:
        return line
    grown = bytearray(line)  # a long line: grown in place, never joined from a copy of its pieces
    while len(grown) < budget:
        part = handle.readline(min(budget - len(grown), 1 << 20))
        if not part:
            break
        grown += part
        if part.endswith(b"\n"):
            break
    return grown


def iter_jsonl(path: str | Path, *, end: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line (of the first `end` bytes, which must end a
    line); raise InputError naming the line.

    A trace directory (`distill generate --ray`: shards listed in a manifest.json) reads as one file:
    its shards in the manifest's order, line numbers counted on through them as in the joined file;
    an error names the shard and its own line."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=str(path))
    if path.is_dir():
        if end is not None:
            raise ValueError("`end` applies to a file, not to a trace directory")
        offset = 0
        for shard in _shards(path):
            number = 0
            for number, obj in iter_jsonl(shard):
                yield offset + number, obj
            offset += number
        return
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=str(path)) from None
    with handle:
        number, offset = 0, 0
        while raw := _read_line(handle, None if end is None else end - offset):
            number, offset = number + 1, offset + len(raw)
            if len(raw) > MAX_LINE_BYTES:  # checked before decoding: memory stays at the cap
                raise InputError(f"line longer than {MAX_LINE_BYTES >> 20} MiB: not a record of this format "
                                 "(a binary file, or a JSON array saved as one line?); give a .jsonl file with one "
                                 "JSON object per line", path=str(path), line=number)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8",
                                 path=str(path), line=number) from None
            if not text.strip():
                continue
            # decoded without its line end: a record cut short is then reported at the column where the line
            # ends, not at column 1 of the 'next line' the decoder would see after the newline
            record_text = text.removesuffix("\n").removesuffix("\r")
            try:
                obj = _STRICT_JSON.decode(record_text)
            except json.JSONDecodeError as exc:
                torn = (" (the last line is cut off: a crashed run?)" if not raw.endswith(b"\n") else
                        " (the line ends before the record does: cut off?)" if exc.pos >= len(record_text) else "")
                raise InputError(f"malformed JSON at column {exc.colno}: {exc.msg}{torn}",
                                 path=str(path), line=number) from None
            except _NonStandard:
                where, why = _find_non_standard(_LENIENT_JSON.decode(text))
                raise InputError(why, path=str(path), line=number, field=where) from None
            except RecursionError:
                raise InputError("nested deeper than JSON readers handle; flatten the record",
                                 path=str(path), line=number, field=_deep_field(text)) from None
            if not isinstance(obj, dict):
                raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=str(path), line=number)
            if _SURROGATE_ESCAPE.search(raw):  # valid JSON, but no UTF-8 text (output file, tokenizer) can hold it
                try:
                    json.dumps(obj, ensure_ascii=False).encode("utf-8")
                except UnicodeEncodeError:
                    raise InputError("holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff without its "
                                     "pair), which is not text; remove or repair that escape",
                                     path=str(path), line=number) from None
            yield number, obj


def check_trace(record: dict[str, Any], path: str, line: int,
                required: Iterable[str] = TRACE_REQUIRED) -> None:
    """Raise InputError if `record` lacks a required trace field or has one of the wrong type."""
    required = tuple(required)
    for name in required:
        if name not in record:
            raise InputError(f"missing (a trace record needs {', '.join(TRACE_REQUIRED)})",
                             path=path, line=line, field=name)
    for name in [*required, *(n for n in _TRACE_FIELDS if n in record and n not in required)]:
        types, description = _TRACE_FIELDS.get(name, ((object,), "a value"))
        value = record[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise InputError(f"must be {description}, got {json.dumps(value)[:60]}",
                             path=path, line=line, field=name)
    if "finish_reason" in record and record["finish_reason"] not in FINISH_REASONS:
        raise InputError(f"must be 'stop' or 'length', got {record['finish_reason']!r}",
                         path=path, line=line, field="finish_reason")
    for message in record.get("messages", []) if "messages" in required else []:
        if not (isinstance(message, dict) and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)):
            raise InputError("every message must be an object with string 'role' and 'content'",
                             path=path, line=line, field="messages")


def read_traces(path: str | Path, required: Iterable[str] = TRACE_REQUIRED, *,
                end: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line, record) from a trace file (its first `end` bytes) or a trace directory (its shards in
    order, lines counted as in the joined file), checking fields and that ids are unique."""
    required = tuple(required)
    path = Path(path)
    if end is not None and path.is_dir():
        raise ValueError("`end` applies to a file, not to a trace directory")
    seen: dict[str, tuple[str, int]] = {}
    offset = 0
    for source in _shards(path) if path.is_dir() else [path]:  # a shard's errors name it and its own line
        line = 0
        for line, record in iter_jsonl(source, end=end):
            check_trace(record, str(source), line, required)
            if "id" in required:
                first = seen.setdefault(record["id"], (str(source), line))
                if first != (str(source), line):
                    where = f"line {first[1]}" if first[0] == str(source) else f"{first[0]}, line {first[1]}"
                    raise InputError(f"duplicate id {record['id']!r} (first on {where})",
                                     path=str(source), line=line, field="id")
            yield offset + line, record
        offset += line


# ---------------------------------------------------------------- a directory of shards (the reading side)

SHARD_MANIFEST = "manifest.json"
"""The file that makes a directory a trace directory: its shards, in order, with their record counts."""
SHARD_FORMAT = "distill-shards"
def is_shard_directory(path: str | Path) -> bool:
    """True for a directory written as shards (`distill generate --ray`): it holds a manifest.json."""
    path = Path(path)
    return path.is_dir() and (path / SHARD_MANIFEST).is_file()


def read_shard_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a shard directory: {"format", "version", "shards": [{"file", "records"}], "records"}.

    InputError (naming the directory) when it has none or one that is not ours."""
    import json

    directory = Path(directory)
    path = directory / SHARD_MANIFEST
    if not path.is_file():
        raise InputError(f"is a directory without a {SHARD_MANIFEST}, so not a trace directory written by distill "
                         "generate --ray; give a .jsonl file or such a directory", path=str(directory))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable ({exc}); rerun the generate command that wrote it to rewrite it",
                         path=str(path)) from None
    shards = data.get("shards") if isinstance(data, dict) else None
    if (not isinstance(data, dict) or data.get("format") != SHARD_FORMAT or not isinstance(shards, list)
            or not all(isinstance(s, dict) and isinstance(s.get("file"), str) and "/" not in s["file"]
                       for s in shards)):
        raise InputError(f"not a distill shard manifest (format {SHARD_FORMAT!r} with a list of shard files)",
                         path=str(path))
    return data


def shard_files(directory: str | Path) -> list[Path]:
    """The shard files of a trace directory, in the order its manifest lists them (the run's order)."""
    directory = Path(directory)
    return [directory / shard["file"] for shard in read_shard_manifest(directory)["shards"]]


def _shards(directory: Path) -> list[Path]:
    """The shard files of a trace directory, in order; InputError for any other directory."""
    files = shard_files(directory)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InputError(f"its manifest lists {', '.join(missing)}, which is missing; rerun the generate "
                         "command that wrote it to repair it", path=str(directory))
    return files


def is_trace_directory(path: str | Path) -> bool:
    """True for a directory of shards with a manifest (what `distill generate --ray` writes)."""
    return is_shard_directory(path)


def content_digest(path: str | Path) -> str:
    """sha256 of a trace file's bytes; of a trace directory, of its shards' bytes in order (the same as
    the joined file's, so a directory and its `concatenate`d file count as the same input)."""
    import hashlib

    path = Path(path)
    digest = hashlib.sha256()
    for source in _shards(path) if path.is_dir() else [path]:
        with source.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def prompt_text(record: dict[str, Any]) -> str:
    """The user turns of a record's prompt (`messages`), joined: the text the language, judge and
    contamination checks read, and generate's decontamination skip too."""
    messages = record.get("messages") or []
    return "\n".join(m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user")


def intact_length(path: str | Path) -> int:
    """The size of `path` without an incomplete or unparsable last line (the file is not changed).

    A process killed in the middle of a write leaves a last line without its
    newline. Only the last line is ever considered: damage anywhere else is an
    error for the reader to report, not something to paper over.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb") as handle:
        handle.seek(size - 1)
        search_end = size - 1 if handle.read(1) == b"\n" else size
        line_start, position, chunk = 0, search_end, 1 << 16
        while position > 0:  # scan backwards for the newline that ends the previous line
            start = max(0, position - chunk)
            handle.seek(start)
            cut = handle.read(position - start).rfind(b"\n")
            if cut >= 0:
                line_start = start + cut + 1
                break
            position = start
        handle.seek(line_start)
        last = handle.read()
    complete = last.endswith(b"\n")
    if complete:
        try:
            json.loads(last)
        except (json.JSONDecodeError, UnicodeDecodeError):
            complete = False
    return size if complete else line_start


def repair_torn_tail(path: str | Path) -> int:
    """Cut an incomplete or unparsable last line off `path` (see `intact_length`); return the bytes removed."""
    path = Path(path)
    size = path.stat().st_size
    keep = intact_length(path)
    if keep != size:
        os.truncate(path, keep)
        log.warning("%s: removed a torn last line (%d bytes) left by an interrupted run; "
                    "its record will be produced again", path, size - keep)
    return size - keep


def last_lines_start(path: str | Path, count: int, end: int | None = None) -> int:
    """Byte offset where the last `count` lines of the first `end` bytes (whole lines) of `path` begin."""
    path = Path(path)
    size = path.stat().st_size if end is None else end
    if count <= 0 or size == 0:
        return size
    with path.open("rb") as handle:
        position, chunk, seen = size - 1, 1 << 16, 0  # skip the final newline
        cut = 0
        while position > 0 and seen < count:
            start = max(0, position - chunk)
            handle.seek(start)
            data = handle.read(position - start)
            index = len(data)
            while seen < count:
                index = data.rfind(b"\n", 0, index)
                if index < 0:
                    break
                seen += 1
                cut = start + index + 1
            position = start
    return cut if seen == count else 0


class JsonlWriter:
    """Append-only JSONL output, flushed after every `write` so a killed run loses at most one batch.

    Each `write` issues one write() of whole lines; records never interleave. A write that fails
    (a full disk) is undone: the file is cut back to where it was, so it never ends in half a line.
    """

    def __init__(self, path: str | Path, *, fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                repair_torn_tail(self.path)
            # unbuffered: nothing is left in memory to be flushed (and fail again) at close
            self._handle = self.path.open("ab", buffering=0)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}; "
                              "choose a writable --out location") from None

    def write(self, records: Iterable[dict[str, Any]]) -> int:
        lines = [json.dumps(record, ensure_ascii=False) + "\n" for record in records]
        if not lines:
            return 0
        data = memoryview("".join(lines).encode("utf-8"))
        start = os.fstat(self._handle.fileno()).st_size
        try:
            while data:
                written = self._handle.write(data)
                data = data[written:]
            if self.fsync:
                os.fsync(self._handle.fileno())
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._handle.fileno(), start)
            raise OutputError(f"cannot write {self.path}: {exc.strerror}; free some space or choose another "
                              "location, then rerun the same command to resume") from None
        return len(lines)

    def close(self) -> None:
        if not self._handle.closed:
            with contextlib.suppress(OSError):
                os.fsync(self._handle.fileno())
            self._handle.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_writable(path: str | Path, what: str = "--out") -> Path:
    """Fail early (before any model is loaded) if `path` cannot be created or appended to."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory; give a file path such as {path / 'out.jsonl'}")
    if path.exists() and not path.is_file():  # /dev/full, a FIFO: cannot be read back to resume
        raise OutputError(f"{what} {path} is not a regular file; give a file path such as out.jsonl")
    parent = path.parent
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"cannot write {what} {path}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputError(f"cannot write {what} {path}: permission denied; choose a writable location")
    return path


def write_json(path: str | Path, data: Any, *, fsync: bool = False) -> None:
    """Write a JSON report atomically (temp file + rename), so a crash never leaves half a report; with
    `fsync`, on disk before the rename (a manifest that readers trust)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror}; free some space or choose another location, "
                          "then rerun the same command") from None


def sidecar(path: str | Path, suffix: str) -> Path:
    """`traces.jsonl` + 'summary.json' -> `traces.summary.json`."""
    path = Path(path)
    stem = path.name[: -len(".jsonl")] if path.name.endswith(".jsonl") else path.stem
    return path.with_name(f"{stem}.{suffix}")
