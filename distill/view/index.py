"""The index of a source: where each record starts in its file, and the small fields the list filters and
sorts by, in a SQLite file built once and kept in a cache directory under the content hash of the files.

A record is never held longer than it takes to show it: a page of the list, a record, the samples of a
prompt are read from the files at the offsets the index holds (seek, read one line). Building the index
streams the files once (`distill.traces.iter_jsonl`, which checks every line) and holds one batch of rows;
SQLite's page cache is bounded. A million records give an index of about 100 MB and a server of well under
that in memory.

The content hash reads the size and up to 6 MiB of each file (all of a small file; of a large one its
head, its tail and 64 KiB at 62 evenly spaced places), so opening a large cached file does not read it
all again. Each record read is checked against the id the index holds, so a file edited in place since
(a change the samples missed) is reported, not shown wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import DistillError, InputError, OutputError
from distill.traces import check_trace, intact_length, iter_jsonl
from distill.view.records import searchable
from distill.view.sources import EVAL, FILTER, Source

log = logging.getLogger(__name__)

INDEX_VERSION = 1
"""The layout of the index file; an index of another version is rebuilt."""
UNFILTERED, KEPT, REJECTED = 0, 1, 2
STATUS_NAMES = {UNFILTERED: "unfiltered", KEPT: "kept", REJECTED: "rejected"}
VERDICT_CODES = {True: 1, False: 2, None: 3}
"""Two bits per check in `records.verdicts`: 0 = no verdict for that check."""
VERDICT_VALUES = {"true": 1, "false": 2, "null": 3}
_VERDICT_NAMES = {code: name for name, code in VERDICT_VALUES.items()}
MAX_CHECKS = 31
RATE_BUCKETS = (("0", 0.0, 0.0), ("(0, 0.25]", 0.0, 0.25), ("(0.25, 0.5]", 0.25, 0.5), ("(0.5, 0.75]", 0.5, 0.75),
                ("(0.75, 1)", 0.75, 1.0), ("1", 1.0, 1.0))
"""Per-prompt pass rate buckets: the filter report's."""
BATCH_ROWS = 5000
HISTOGRAM_BINS = 40
MAX_PROMPT_SAMPLES = 256
"""Most samples shown side by side for one prompt."""
CACHE_LIMIT_BYTES = 4 << 30
"""The cache directory is pruned, least recently used first, to this size."""
SEARCH_CACHE = 16
"""Full-text searches whose matches are kept (per source)."""

_HEAD_TAIL = 1 << 20
_SAMPLE = 64 << 10
_SAMPLES = 62
_WHOLE = 2 * _HEAD_TAIL + _SAMPLES * _SAMPLE

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE checks (k INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE records (
    n INTEGER PRIMARY KEY,      -- the record's number in the source (the address the page uses)
    seg INTEGER NOT NULL,       -- which file of the source
    line INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    id TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    sample INTEGER,
    status INTEGER NOT NULL,    -- 0 unfiltered, 1 kept, 2 rejected
    rejected INTEGER NOT NULL,  -- bit k: rejected_by names check k
    verdicts INTEGER NOT NULL,  -- bits 2k, 2k+1: check k's verdict (1 true, 2 false, 3 null, 0 none)
    not_run INTEGER NOT NULL,   -- bit k: check k did not run (filter_details.not_run)
    tokens INTEGER,             -- filter_details.tokens, else completion_tokens
    language TEXT,
    language_score REAL,
    finish TEXT,
    judge TEXT,                 -- what the judge did: overturned, confirmed, decided right/wrong, no verdict
    contamination TEXT,         -- the benchmark the prompt shares an n-gram with
    grade INTEGER,              -- eval: 1 right, 0 wrong, -1 ungraded
    passed INTEGER              -- kept (filter) or right (eval): the per-prompt pass rate counts it
);
"""


# ---------------------------------------------------------------- content hash and cache


def content_hash(path: Path, end: int) -> str:
    """sha256 of the first `end` bytes' size and content (all of it up to ~6 MiB, else a sample; see above)."""
    digest = hashlib.sha256(f"{end}\n".encode())
    with path.open("rb") as handle:
        if end <= _WHOLE:
            digest.update(handle.read(end))
        else:
            places = [0, *(_HEAD_TAIL + i * (end - 2 * _HEAD_TAIL - _SAMPLE) // (_SAMPLES - 1)
                           for i in range(_SAMPLES)), end - _HEAD_TAIL]
            sizes = [_HEAD_TAIL, *([_SAMPLE] * _SAMPLES), _HEAD_TAIL]
            for place, size in zip(places, sizes):
                handle.seek(place)
                digest.update(handle.read(size))
    return digest.hexdigest()


def source_key(source: Source, ends: list[int]) -> str:
    """The cache name of a source's index: its kind, its files' roles and contents, and the eval grades."""
    digest = hashlib.sha256(f"distill-view-index {INDEX_VERSION} {source.kind}\n".encode())
    for segment, end in zip(source.segments, ends):
        digest.update(f"{segment.role}\n{content_hash(segment.path, end)}\n".encode())
    problems = source.reports.get("problems")
    if problems is not None:
        digest.update(content_hash(problems, problems.stat().st_size).encode())
    return digest.hexdigest()[:32]


def prune_cache(directory: Path, keep: set[Path], limit: int = CACHE_LIMIT_BYTES) -> None:
    """Remove the least recently used indexes (not those in `keep`) until the directory holds at most `limit`."""
    files = sorted(directory.glob("*.sqlite"), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    for path in files:
        if total <= limit:
            return
        if path not in keep:
            total -= path.stat().st_size
            with contextlib.suppress(OSError):
                path.unlink()


# ---------------------------------------------------------------- building


class StaleIndex(DistillError):
    """A file changed after its index was built."""


def _records_with_offsets(path: Path, end: int) -> Iterator[tuple[int, int, int, dict[str, Any]]]:
    """(line, offset, length, record) of every record in the first `end` bytes of `path`.

    The records come from `iter_jsonl` (every line checked, errors naming file and line); a second handle
    follows it line by line for the offsets (the same bytes, just read, so from the page cache)."""
    with path.open("rb") as handle:
        line_no, position, start, length = 0, 0, 0, 0
        for number, record in iter_jsonl(path, end=end):
            while line_no < number:
                raw = handle.readline()
                start, length = position, len(raw)
                position += length
                line_no += 1
            yield number, start, length, record


def _check_filter_fields(record: dict[str, Any], path: str, line: int) -> None:
    verdicts = record.get("verdicts")
    if verdicts is not None and not (isinstance(verdicts, dict)
                                     and all(v in (True, False, None) for v in verdicts.values())):
        raise InputError("must be an object of check: true, false or null", path=path, line=line, field="verdicts")
    rejected_by = record.get("rejected_by")
    if rejected_by is not None and not (isinstance(rejected_by, list) and all(isinstance(c, str) for c in rejected_by)):
        raise InputError("must be a list of check names", path=path, line=line, field="rejected_by")
    details = record.get("filter_details")
    if details is not None and not isinstance(details, dict):
        raise InputError("must be an object", path=path, line=line, field="filter_details")


def judge_outcome(verdicts: dict[str, Any], details: dict[str, Any]) -> str | None:
    """What the judge did with a record: None when it was not asked (the rules settled it, or no judge)."""
    if "judge" not in verdicts or "judge" in (details.get("not_run") or ()):
        return None
    verdict = verdicts["judge"]
    if verdict is None:
        return "no verdict" if "judge" in details else None
    rule = details.get("correctness_by_rules")
    if rule is False:
        return "overturned (wrong → right)" if verdict else "confirmed wrong"
    if rule is None:
        return "decided right" if verdict else "decided wrong"
    return "agreed"


class _Builder:
    def __init__(self, con: sqlite3.Connection, source: Source):
        self.con, self.source = con, source
        self.checks: dict[str, int] = {}
        self.rows: list[tuple[Any, ...]] = []
        self.n = 0
        self.generation_limit: int | None = None
        self.shifts: dict[tuple[str, ...], list[int]] = {}

    def check_no(self, name: str, path: str, line: int, field: str) -> int:
        if name not in self.checks:
            if len(self.checks) >= MAX_CHECKS:
                raise InputError(f"more than {MAX_CHECKS} different check names; the viewer tells at most "
                                 f"{MAX_CHECKS} apart", path=path, line=line, field=field)
            self.checks[name] = len(self.checks)
        return self.checks[name]

    def add(self, seg: int, line: int, offset: int, length: int, record: dict[str, Any], path: str) -> None:
        check_trace(record, path, line)
        _check_filter_fields(record, path, line)
        verdicts = record.get("verdicts") or {}
        details = record.get("filter_details") or {}
        rejected_by = record.get("rejected_by") or []
        verdict_bits = rejected_bits = not_run_bits = 0
        if verdicts:
            names = tuple(verdicts)  # the same checks in the same order on nearly every line: their places once
            shifts = self.shifts.get(names)
            if shifts is None:
                shifts = self.shifts[names] = [2 * self.check_no(name, path, line, "verdicts") for name in names]
            for shift, verdict in zip(shifts, verdicts.values()):
                verdict_bits |= VERDICT_CODES[verdict] << shift
        for name in rejected_by:
            rejected_bits |= 1 << self.check_no(name, path, line, "rejected_by")
        for name in details.get("not_run") or ():
            if isinstance(name, str):
                not_run_bits |= 1 << self.check_no(name, path, line, "filter_details")
        status = REJECTED if rejected_by else KEPT if "verdicts" in record else UNFILTERED
        tokens = details.get("tokens")
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            tokens = record.get("completion_tokens")
        language = details.get("language") if isinstance(details.get("language"), str) else None
        score = details.get("language_score")
        score = float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None
        contamination = details.get("contamination")
        benchmark = contamination.get("benchmark") if isinstance(contamination, dict) else None
        params = record.get("params")
        limit = params.get("max_tokens") if isinstance(params, dict) else None
        if isinstance(limit, int) and not isinstance(limit, bool):
            self.generation_limit = max(self.generation_limit or 0, limit)
        passed = None
        if self.source.kind == FILTER:
            passed = int(status == KEPT)
        self.rows.append((self.n, seg, line, offset, length, record["id"], record["prompt_id"], record["sample"], status,
                          rejected_bits, verdict_bits, not_run_bits, tokens, language, score,
                          record.get("finish_reason"), judge_outcome(verdicts, details),
                          str(benchmark) if benchmark is not None else None, None, passed))
        self.n += 1
        if len(self.rows) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        self.con.executemany(f"INSERT INTO records VALUES ({', '.join('?' * 20)})", self.rows)
        self.rows.clear()


def build_index(source: Source, ends: list[int], path: Path) -> None:
    """Index `source` (each file's first `ends[i]` bytes) into the SQLite file `path`, written whole or not at all."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    started = time.perf_counter()
    total_bytes, done_bytes, last_log = sum(ends), 0, started
    try:
        con = sqlite3.connect(tmp)
    except sqlite3.Error as exc:
        raise OutputError(f"cannot write the index {tmp}: {exc}; choose another --cache-dir") from None
    try:
        con.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-16000;" + SCHEMA)
        builder = _Builder(con, source)
        for seg, (segment, end) in enumerate(zip(source.segments, ends)):
            for line, offset, length, record in _records_with_offsets(segment.path, end):
                builder.add(seg, line, offset, length, record, str(segment.path))
                if time.perf_counter() - last_log > 10:
                    last_log = time.perf_counter()
                    log.info("indexing %s: %.0f%% (%s records)", source.name,
                             100 * (done_bytes + offset) / max(total_bytes, 1), f"{builder.n:,}")
            done_bytes += end
        builder.flush()
        if builder.n == 0:
            raise InputError("no records: the file is empty", path=str(source.segments[0].path))
        if source.kind == EVAL:
            _grade_eval(con, source)
        con.executemany("INSERT INTO checks VALUES (?, ?)", [(k, name) for name, k in builder.checks.items()])
        con.executescript("""
            CREATE INDEX records_prompt ON records(prompt_id, seg, sample);
            CREATE INDEX records_tokens ON records(tokens);
            CREATE TABLE prompts AS
                SELECT prompt_id, CASE WHEN grade IS NULL THEN -1 ELSE seg END AS model, COUNT(*) AS samples,
                       SUM(passed) AS passed, CAST(SUM(passed) AS REAL) / COUNT(*) AS rate
                FROM records WHERE passed IS NOT NULL GROUP BY prompt_id, model;
            CREATE INDEX prompts_rate ON prompts(rate, prompt_id);
        """)
        meta = {"version": INDEX_VERSION, "kind": source.kind, "records": builder.n,
                "generation_limit": builder.generation_limit,
                "segments": [{"path": str(s.path), "role": s.role, "bytes": end}
                             for s, end in zip(source.segments, ends)],
                "build_s": round(time.perf_counter() - started, 3)}
        con.execute("INSERT INTO meta VALUES ('index', ?)", (json.dumps(meta),))
        con.execute("INSERT INTO meta VALUES ('overview', ?)", (json.dumps(_overview(con, source, builder.generation_limit)),))
        con.commit()
        con.close()
        os.replace(tmp, path)
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    elapsed = time.perf_counter() - started
    log.info("indexed %s: %s records in %.1f s (%s records/s)", source.name, f"{builder.n:,}", elapsed,
             f"{builder.n / max(elapsed, 1e-9):,.0f}")


def _grade_eval(con: sqlite3.Connection, source: Source) -> None:
    """Each eval sample's grade, from results.problems.jsonl (a problem's verdicts are in sample order)."""
    problems = source.reports.get("problems")
    if problems is None:
        return
    seg_of = {segment.role: seg for seg, segment in enumerate(source.segments)}
    updates = []
    for _, row in iter_jsonl(problems):
        seg = seg_of.get(str(row.get("model")))
        verdicts = row.get("verdicts")
        if seg is None or not isinstance(verdicts, list):
            continue
        samples = con.execute("SELECT n FROM records WHERE seg = ? AND prompt_id = ? ORDER BY sample",
                              (seg, str(row.get("prompt_id")))).fetchall()
        for (n,), verdict in zip(samples, verdicts):
            grade = {True: 1, False: 0}.get(verdict, -1)
            updates.append((grade, int(grade == 1), n))
        if len(updates) >= BATCH_ROWS:
            con.executemany("UPDATE records SET grade = ?, passed = ? WHERE n = ?", updates)
            updates.clear()
    con.executemany("UPDATE records SET grade = ?, passed = ? WHERE n = ?", updates)


def _bins(con: sqlite3.Connection, column: str, classes: str, low: float, high: float,
          bins: int = HISTOGRAM_BINS) -> list[dict[str, Any]]:
    width = (high - low) / bins if high > low else 1
    counts: dict[int, dict[str, int]] = {}
    for bucket, cls, count in con.execute(
            f"SELECT MIN(CAST(({column} - ?) / ? AS INTEGER), ?), {classes}, COUNT(*) FROM records "
            f"WHERE {column} IS NOT NULL GROUP BY 1, 2", (low, width, bins - 1)):
        counts.setdefault(int(bucket), {})[str(cls)] = count
    return [{"lo": low + i * width, "hi": low + (i + 1) * width, "counts": counts.get(i, {})}
            for i in range(bins if high > low else 1)]


def _class_expression(kind: str) -> str:
    """How the histograms split records: kept/rejected (filter), right/wrong (eval), the finish reason (traces)."""
    if kind == FILTER:
        return "CASE status WHEN 1 THEN 'kept' WHEN 2 THEN 'rejected' ELSE 'unfiltered' END"
    if kind == EVAL:
        return "CASE grade WHEN 1 THEN 'right' WHEN 0 THEN 'wrong' WHEN -1 THEN 'ungraded' ELSE 'not graded' END"
    return "COALESCE(finish, '?')"


def _nice_width(raw: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, … tokens at least `raw`: bin edges a reader can read."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= raw:
                return step * scale
        scale *= 10


def length_limit(source: Source, generation_limit: int | None) -> tuple[int | None, str | None]:
    """The length limit the histogram marks and whose it is: the filter's --max-tokens, else generate's."""
    report = source.report("report")
    if report is not None:
        lengths = report.get("lengths") if isinstance(report.get("lengths"), dict) else {}
        if isinstance(lengths.get("max_tokens"), int):
            return lengths["max_tokens"], "filter"
    return generation_limit, "generate" if generation_limit is not None else None


def _overview(con: sqlite3.Connection, source: Source, generation_limit: int | None) -> dict[str, Any]:
    """What the overview page charts, computed once with the index (so it costs nothing to open)."""
    checks = [name for _, name in con.execute("SELECT k, name FROM checks ORDER BY k")]
    data: dict[str, Any] = {"kind": source.kind}
    data["status"] = {STATUS_NAMES[s]: c for s, c in con.execute("SELECT status, COUNT(*) FROM records GROUP BY 1")}
    data["segments"] = [{"role": source.segments[seg].role, "records": count}
                        for seg, count in con.execute("SELECT seg, COUNT(*) FROM records GROUP BY seg ORDER BY seg")]
    rows = []
    for k, name in enumerate(checks):
        (passed, failed, null, not_run, rejected, sole) = con.execute(
            f"SELECT SUM((verdicts >> {2 * k} & 3) = 1), SUM((verdicts >> {2 * k} & 3) = 2), "
            f"SUM((verdicts >> {2 * k} & 3) = 3 AND (not_run >> {k} & 1) = 0), SUM(not_run >> {k} & 1), "
            f"SUM(rejected >> {k} & 1), SUM(rejected = {1 << k}) FROM records").fetchone()
        rows.append({"check": name, "pass": passed or 0, "fail": failed or 0, "null": null or 0,
                     "not_run": not_run or 0, "rejected": rejected or 0, "sole_reason": sole or 0})
    data["checks"] = rows
    low, high, unknown = con.execute(
        "SELECT MIN(tokens), MAX(tokens), SUM(tokens IS NULL) FROM records").fetchone()
    limit, limit_by = length_limit(source, generation_limit)
    top = max(high or 0, limit or 0)
    width = _nice_width(top / HISTOGRAM_BINS) if top else 1
    bins = max(1, math.ceil((top + 1) / width))
    data["tokens"] = {"min": low, "max": high, "unknown": unknown or 0, "limit": limit, "limit_by": limit_by,
                      "bins": _bins(con, "tokens", _class_expression(source.kind), 0, bins * width, bins)
                      if high is not None else []}
    data["language_score"] = {"bins": _bins(con, "language_score", "'records'", 0.0, 1.0)} if con.execute(
        "SELECT 1 FROM records WHERE language_score IS NOT NULL LIMIT 1").fetchone() else None
    for name, column in (("languages", "language"), ("finish", "finish"), ("judge", "judge"),
                         ("contamination", "contamination")):
        data[name] = [{"value": value, "records": count} for value, count in con.execute(
            f"SELECT {column}, COUNT(*) FROM records WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1")]
    models = [(-1, None)] if source.kind != EVAL else [(seg, s.role) for seg, s in enumerate(source.segments)]
    data["pass_rate"] = []
    for seg, label in models:
        buckets = []
        for name, _, _ in RATE_BUCKETS:
            condition, values = rate_condition(name)
            buckets.append({"bucket": name, "prompts": con.execute(
                f"SELECT COUNT(*) FROM prompts WHERE model = ? AND {condition}", (seg, *values)).fetchone()[0]})
        prompts = con.execute("SELECT COUNT(*), SUM(passed > 0) FROM prompts WHERE model = ?", (seg,)).fetchone()
        if prompts[0]:
            data["pass_rate"].append({"model": label, "prompts": prompts[0], "with_passed": prompts[1] or 0,
                                      "buckets": buckets})
    if source.kind == EVAL:
        data["models"] = [{"model": source.segments[seg].role, "samples": samples, "right": right or 0,
                           "wrong": wrong or 0, "ungraded": ungraded or 0} for seg, samples, right, wrong, ungraded
                          in con.execute("SELECT seg, COUNT(*), SUM(grade = 1), SUM(grade = 0), SUM(grade = -1) "
                                         "FROM records GROUP BY seg ORDER BY seg")]
    return data


def rate_condition(bucket: str) -> tuple[str, list[Any]]:
    """SQL on prompts.rate for a RATE_BUCKETS label: '0' and '1' exactly, the others half-open (low, high]."""
    for name, low, high in RATE_BUCKETS:
        if name == bucket:
            if low == high:
                return "rate = ?", [low]
            if high == 1.0:
                return "rate > ? AND rate < ?", [low, high]
            return "rate > ? AND rate <= ?", [low, high]
    raise KeyError(bucket)


# ---------------------------------------------------------------- queries


@dataclass
class RecordQuery:
    """The record list's filters (all combine), its order and its page."""

    status: str | None = None
    """kept, rejected, unfiltered (filter and traces); right, wrong, ungraded (eval)"""
    rejected_by: str | None = None
    verdicts: list[tuple[str, str]] = field(default_factory=list)
    """(check, true|false|null|not_run)"""
    min_tokens: int | None = None
    max_tokens: int | None = None
    language: str | None = None
    finish: str | None = None
    prompt_id: str | None = None
    model: str | None = None
    judge: str | None = None
    contamination: str | None = None
    pass_rate: str | None = None
    text: str | None = None
    text_in: str = "all"
    """where the text is looked for: all, prompt, reasoning, answer"""
    sort: str = "file"
    """file (the files' order), tokens or -tokens"""
    page: int = 1
    per_page: int = 50


TEXT_PLACES = ("all", "prompt", "reasoning", "answer")
SORTS = {"file": "n", "tokens": "tokens IS NULL, tokens, n", "-tokens": "tokens IS NULL, tokens DESC, n"}
_NEEDLE = re.compile(r"[A-Za-z0-9 ]{3,}")


class SourceIndex:
    """One source's index, open for queries (thread-safe: one connection behind a lock)."""

    def __init__(self, source: Source, path: Path):
        self.source, self.path = source, path
        self.con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self.con.execute("PRAGMA cache_size=-8000")
        self.con.execute("PRAGMA temp_store=FILE")
        self.lock = threading.Lock()
        self.meta = json.loads(self.con.execute("SELECT value FROM meta WHERE key = 'index'").fetchone()[0])
        self.overview = json.loads(self.con.execute("SELECT value FROM meta WHERE key = 'overview'").fetchone()[0])
        self.checks = {name: k for k, name in self.con.execute("SELECT k, name FROM checks")}
        self._searches: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._search_no = 0

    @classmethod
    def open(cls, source: Source, cache_dir: Path) -> SourceIndex:
        """The source's index from the cache, built first when the cache has none for these contents."""
        ends = [intact_length(segment.path) for segment in source.segments]
        for segment, end in zip(source.segments, ends):
            if end < segment.path.stat().st_size:
                log.warning("%s: its last line is incomplete (a run still writing it, or killed); showing the "
                            "records before it", segment.path)
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the index cache {cache_dir}: {exc.strerror}; choose another "
                              "--cache-dir") from None
        path = cache_dir / f"{source_key(source, ends)}.sqlite"
        if path.exists():
            try:
                index = cls(source, path)
                if index.meta.get("version") == INDEX_VERSION:
                    os.utime(path)
                    log.info("%s: %s records (index from the cache)", source.name, f"{index.records:,}")
                    return index
                index.close()
            except (sqlite3.Error, TypeError, ValueError):
                pass
            path.unlink(missing_ok=True)
        build_index(source, ends, path)
        prune_cache(cache_dir, keep={path})
        return cls(source, path)

    def close(self) -> None:
        self.con.close()

    @property
    def records(self) -> int:
        return int(self.meta["records"])

    # ------------------------------------------------------------ filters

    def _where(self, query: RecordQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        status = {"kept": "status = 1", "rejected": "status = 2", "unfiltered": "status = 0",
                  "right": "grade = 1", "wrong": "grade = 0", "ungraded": "grade = -1"}
        if query.status:
            clauses.append(status.get(query.status, "0"))
        if query.rejected_by:
            k = self.checks.get(query.rejected_by)
            clauses.append(f"(rejected >> {k} & 1) = 1" if k is not None else "0")
        for check, value in query.verdicts:
            k = self.checks.get(check)
            if k is None:
                clauses.append("0")
            elif value == "not_run":
                clauses.append(f"(not_run >> {k} & 1) = 1")
            elif value in VERDICT_VALUES:
                clauses.append(f"(verdicts >> {2 * k} & 3) = {VERDICT_VALUES[value]}"
                               + (f" AND (not_run >> {k} & 1) = 0" if value == "null" else ""))
            else:
                clauses.append("0")
        if query.min_tokens is not None:
            clauses.append("tokens >= ?")
            params.append(query.min_tokens)
        if query.max_tokens is not None:
            clauses.append("tokens <= ?")
            params.append(query.max_tokens)
        for column in ("language", "finish", "prompt_id", "judge", "contamination"):
            value = getattr(query, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        seg = None
        if query.model is not None:
            seg = next((i for i, s in enumerate(self.source.segments) if s.role == query.model), None)
            clauses.append("seg = ?" if seg is not None else "0")
            params.extend([seg] if seg is not None else [])
        if query.pass_rate:
            try:
                condition, values = rate_condition(query.pass_rate)
            except KeyError:
                clauses.append("0")
            else:
                model = "records.seg" if self.source.kind == EVAL else "-1"
                clauses.append(f"EXISTS (SELECT 1 FROM prompts p WHERE p.prompt_id = records.prompt_id "
                               f"AND p.model = {model} AND {condition.replace('rate', 'p.rate')})")
                params.extend(values)
        if query.text:
            clauses.append(f"n IN (SELECT n FROM temp.{self._search(query.text, query.text_in)})")
        return (" AND ".join(clauses) or "1"), params

    def query(self, query: RecordQuery) -> tuple[int, list[dict[str, Any]]]:
        """(records matching, the rows of the asked page: index fields only)."""
        with self.lock:
            where, params = self._where(query)
            total = self.con.execute(f"SELECT COUNT(*) FROM records WHERE {where}", params).fetchone()[0]
            order = SORTS.get(query.sort, "n")
            cursor = self.con.execute(f"SELECT * FROM records WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
                                      [*params, query.per_page, (query.page - 1) * query.per_page])
            return total, [self._row(cursor.description, values) for values in cursor.fetchall()]

    def rows_of_prompt(self, prompt_id: str) -> list[dict[str, Any]]:
        """The samples of one prompt: per file (model) in order, kept before rejected, by sample."""
        with self.lock:
            cursor = self.con.execute("SELECT * FROM records WHERE prompt_id = ? ORDER BY seg, status, sample LIMIT ?",
                                      (prompt_id, MAX_PROMPT_SAMPLES))
            return [self._row(cursor.description, values) for values in cursor.fetchall()]

    def prompt_rate(self, row: dict[str, Any]) -> str | None:
        """The pass-rate bucket (RATE_BUCKETS) of the row's prompt (for an eval: with the row's model)."""
        model = row["seg"] if self.source.kind == EVAL else -1
        with self.lock:
            found = self.con.execute("SELECT rate FROM prompts WHERE prompt_id = ? AND model = ?",
                                     (row["prompt_id"], model)).fetchone()
        if found is None or found[0] is None:
            return None
        rate = found[0]
        return next(name for name, low, high in RATE_BUCKETS
                    if (low == high == rate) or (low < rate <= high and not (high == 1.0 and rate == 1.0)))

    def row(self, n: int) -> dict[str, Any] | None:
        with self.lock:
            cursor = self.con.execute("SELECT * FROM records WHERE n = ?", (n,))
            values = cursor.fetchone()
            return None if values is None else self._row(cursor.description, values)

    def _row(self, description: Any, values: tuple[Any, ...]) -> dict[str, Any]:
        raw = dict(zip((d[0] for d in description), values))
        names = {k: name for name, k in self.checks.items()}
        segment = self.source.segments[raw["seg"]]
        row = {key: raw[key] for key in ("n", "seg", "line", "offset", "length", "id", "prompt_id", "sample", "tokens",
                                         "language", "finish", "judge", "contamination")}
        row["status"] = STATUS_NAMES[raw["status"]]
        row["rejected_by"] = [names[k] for k in sorted(names) if raw["rejected"] >> k & 1]
        row["verdicts"] = {names[k]: "not_run" if raw["not_run"] >> k & 1 else _VERDICT_NAMES[raw["verdicts"] >> 2 * k & 3]
                           for k in sorted(names) if raw["verdicts"] >> 2 * k & 3}
        row["grade"] = {1: "right", 0: "wrong", -1: "ungraded"}.get(raw["grade"])
        row["file"] = segment.path.name
        row["model"] = segment.role if self.source.kind == EVAL else None
        return row

    # ------------------------------------------------------------ reading records

    def read(self, row: dict[str, Any], handles: dict[int, Any] | None = None) -> dict[str, Any]:
        """The record at the row's offset (StaleIndex when the file no longer holds it there)."""
        segment = self.source.segments[row["seg"]]
        handle = handles.get(row["seg"]) if handles is not None else None
        if handle is None:
            try:
                handle = segment.path.open("rb")
            except OSError as exc:
                raise StaleIndex(f"{segment.path}: cannot read it any more ({exc.strerror}); restart distill "
                                 "view") from None
            if handles is not None:
                handles[row["seg"]] = handle
        try:
            handle.seek(row["offset"])
            raw = handle.read(row["length"])
            record = json.loads(raw)
        except (OSError, ValueError):
            record = None
        finally:
            if handles is None:
                handle.close()
        if not isinstance(record, dict) or record.get("id") != row["id"]:
            raise StaleIndex(f"{segment.path}:{row['line']}: the file changed since it was indexed (record "
                             f"{row['id']!r} is not there any more); restart distill view to index it again")
        return record

    def read_many(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        handles: dict[int, Any] = {}
        try:
            return [self.read(row, handles) for row in rows]
        finally:
            for handle in handles.values():
                handle.close()

    # ------------------------------------------------------------ full-text search

    def _search(self, text: str, where: str) -> str:
        """The temp table of the records whose prompt / reasoning / answer holds `text` (case-insensitive),
        found by reading every record once; the last SEARCH_CACHE searches are kept. Called under the lock."""
        key = (text, where)
        if key in self._searches:
            self._searches.move_to_end(key)
            return self._searches[key]
        started = time.perf_counter()
        folded = text.casefold()
        # a cheap first pass on the raw line: a run of ASCII letters, digits and spaces appears as it is in the
        # JSON text (no writer escapes those), so a line without it (in any case) cannot match
        runs = _NEEDLE.findall(text)
        needle = max(runs, key=len).lower().encode() if runs else None
        matches = array("q")
        for seg, segment in enumerate(self.source.segments):
            with segment.path.open("rb") as handle:
                for n, offset, length in self.con.execute(
                        "SELECT n, offset, length FROM records WHERE seg = ? ORDER BY n", (seg,)):
                    handle.seek(offset)
                    raw = handle.read(length)
                    if needle is not None and needle not in raw.lower():
                        continue
                    try:
                        record = json.loads(raw)
                    except ValueError:
                        continue
                    if folded in searchable(record, where).casefold():
                        matches.append(n)
        self._search_no += 1
        table = f"search_{self._search_no}"
        self.con.execute(f"CREATE TEMP TABLE {table} (n INTEGER PRIMARY KEY)")
        self.con.executemany(f"INSERT INTO temp.{table} VALUES (?)", ((n,) for n in matches))
        self._searches[key] = table
        if len(self._searches) > SEARCH_CACHE:
            _, old = self._searches.popitem(last=False)
            self.con.execute(f"DROP TABLE temp.{old}")
        log.info("search %r in %s: %s matches in %.2f s", text, self.source.name, f"{len(matches):,}",
                 time.perf_counter() - started)
        return table
