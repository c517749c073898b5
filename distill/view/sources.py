"""What the PATHs of `distill view` are: each becomes one or more sources, a source being one list of
records read from one or more files (its segments) with the reports written beside them.

    traces   a trace file (generate's traces.jsonl, with traces.summary.json), or a directory of shards
             read in name order as one file (traces.shard-0-of-4.jsonl …, or any *.jsonl files)
    filter   a filter output: kept.jsonl then kept.rejects.jsonl, with kept.report.json
    eval     an eval result: results.json, each model's results.<label>.traces.jsonl, and the grades of
             results.problems.jsonl

A run directory (the demo's, or any directory holding stage outputs) gives every source found in it.
Any file of a filter output or an eval result stands for the whole of it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import InputError
from distill.traces import TRACE_REQUIRED, sidecar

TRACES, FILTER, EVAL = "traces", "filter", "eval"
KINDS = (TRACES, FILTER, EVAL)

_SHARD = re.compile(r"^(?P<base>.+)\.shard-(?P<index>\d+)-of-(?P<count>\d+)\.jsonl$")
_EVAL_TRACES = re.compile(r"^(?P<stem>.+?)\.(?P<label>[A-Za-z0-9._-]+)\.traces\.jsonl$")
_NOT_TRACES = (".filter-progress.jsonl", ".judge-cache.jsonl", ".problems.jsonl")
"""Sidecar files that hold no trace records (a run directory's walk passes them by)."""
_MAX_DEPTH = 3
"""How deep a run directory is searched for stage outputs."""
_MAX_JSON_BYTES = 16 << 20


@dataclass(frozen=True)
class Segment:
    """One file of a source."""

    path: Path
    role: str
    """'traces', 'kept', 'rejects', or for an eval the model's label"""


@dataclass
class Source:
    kind: str
    """traces, filter or eval"""
    name: str
    """how it is shown: the path it was found at"""
    segments: list[Segment]
    reports: dict[str, Path] = field(default_factory=dict)
    """'summary', 'manifest', 'report' (filter), 'results' and 'problems' (eval) → file"""

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        return self.kind, tuple(str(s.path.resolve()) for s in self.segments)

    def report(self, name: str) -> dict[str, Any] | None:
        """A JSON report of the source, None when it is missing or unreadable (a report is not needed)."""
        path = self.reports.get(name)
        if path is None or not path.is_file() or path.stat().st_size > _MAX_JSON_BYTES:
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


def resolve_sources(paths: list[str]) -> list[Source]:
    """The sources of the PATHs given, each once, in the order given (a run directory's in pipeline order)."""
    sources: dict[tuple[str, tuple[str, ...]], Source] = {}
    for given in paths:
        path = Path(given).expanduser()
        if not path.exists():
            raise InputError("no such file or directory; give a trace file, a filter output (kept.jsonl), an eval "
                             "result (results.json) or a run directory", path=given)
        found = _directory_sources(path) if path.is_dir() else [_file_source(path)]
        for source in found:
            sources.setdefault(source.key, source)
    return list(sources.values())


# ---------------------------------------------------------------- one file


def _file_source(path: Path) -> Source:
    name = path.name
    if name.endswith(".json"):
        data = _read_json(path)
        if _is_eval_result(data):
            return _eval_source(path, data)
        if name.endswith(".report.json") and isinstance(data, dict) and "checks" in data:
            kept = path.with_name(name[: -len(".report.json")] + ".jsonl")
            return _filter_source(kept, report=path)
        if name.endswith(".summary.json"):
            return _traces_source(path.with_name(name[: -len(".summary.json")] + ".jsonl"))
        raise InputError("not a trace file (.jsonl), a filter report (.report.json) or an eval result (a .json "
                         "with 'benchmark' and 'models')", path=str(path))
    if not name.endswith(".jsonl"):
        raise InputError("not a .jsonl trace file, a .json report or result, or a directory", path=str(path))
    if name.endswith(".rejects.jsonl"):
        return _filter_source(path.with_name(name[: -len(".rejects.jsonl")] + ".jsonl"), rejects=path)
    if name.endswith(".problems.jsonl"):
        results = path.with_name(name[: -len(".problems.jsonl")] + ".json")
        data = _read_json(results) if results.is_file() else None
        if _is_eval_result(data):
            return _eval_source(results, data)
    match = _EVAL_TRACES.match(name)
    if match:
        results = path.with_name(match["stem"] + ".json")
        data = _read_json(results) if results.is_file() else None
        if _is_eval_result(data):
            return _eval_source(results, data)
    if _is_filter_output(path):
        return _filter_source(path)
    return _traces_source(path)


def _read_json(path: Path) -> Any:
    if path.stat().st_size > _MAX_JSON_BYTES:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_eval_result(data: Any) -> bool:
    return isinstance(data, dict) and "benchmark" in data and isinstance(data.get("models"), dict)


def _manifest_stage(output: Path) -> str | None:
    data = _read_json(sidecar(output, "run.json")) if sidecar(output, "run.json").is_file() else None
    return data.get("stage") if isinstance(data, dict) else None


def _looks_like_traces(path: Path) -> bool:
    """Whether the first record of a .jsonl file has every field of a trace record (a run directory's other
    JSON-lines files, prompts and training data, are passed by)."""
    try:
        with path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    return isinstance(record, dict) and all(name in record for name in TRACE_REQUIRED)
    except (OSError, ValueError):
        return False
    return False


def _is_filter_output(path: Path) -> bool:
    return (sidecar(path, "rejects.jsonl").is_file() or sidecar(path, "report.json").is_file()
            or _manifest_stage(path) == "filter")


def _traces_source(path: Path, name: str | None = None) -> Source:
    reports = {key: sidecar(path, suffix) for key, suffix in (("summary", "summary.json"), ("manifest", "run.json"))
               if sidecar(path, suffix).is_file()}
    return Source(TRACES, name or str(path), [Segment(path, TRACES)], reports)


def _filter_source(kept: Path, *, report: Path | None = None, rejects: Path | None = None) -> Source:
    report = report or sidecar(kept, "report.json")
    rejects = rejects or sidecar(kept, "rejects.jsonl")
    data = _read_json(report) if report.is_file() else None
    if not rejects.is_file() and isinstance(data, dict):
        # a --rejects elsewhere: the report names it (as given to filter, so relative to where it ran or to here)
        named = (data.get("outputs") or {}).get("rejects")
        for candidate in ([Path(named), report.parent / Path(named).name] if isinstance(named, str) else []):
            if candidate.is_file():
                rejects = candidate
                break
    segments = [Segment(path, role) for path, role in ((kept, "kept"), (rejects, "rejects")) if path.is_file()]
    if not segments:
        raise InputError("neither the kept file nor its rejects file exists beside this report", path=str(report))
    reports = {"report": report} if report.is_file() else {}
    if sidecar(kept, "run.json").is_file():
        reports["manifest"] = sidecar(kept, "run.json")
    return Source(FILTER, str(kept if kept.is_file() else rejects), segments, reports)


def _eval_source(results: Path, data: dict[str, Any]) -> Source:
    segments = []
    for label, scores in data["models"].items():
        stored = scores.get("traces") if isinstance(scores, dict) else None
        # beside results.json under the name eval gave it (the results moved with their traces), else the path
        # eval wrote (relative to where it ran)
        candidates = [results.parent / Path(stored).name, Path(stored)] if isinstance(stored, str) else []
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise InputError(f"the traces of model {label!r} ({stored}) are missing; an eval result is read with "
                             "its results.<model>.traces.jsonl files beside it", path=str(results))
        segments.append(Segment(path, str(label)))
    if not segments:
        raise InputError("an eval result without models", path=str(results), field="models")
    reports = {"results": results}
    if sidecar(results, "problems.jsonl").is_file():
        reports["problems"] = sidecar(results, "problems.jsonl")
    return Source(EVAL, str(results), segments, reports)


# ---------------------------------------------------------------- directories


def _jsonl_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith(".jsonl")
                  and not p.name.startswith(".") and not p.name.endswith(_NOT_TRACES))


def _is_shard_directory(directory: Path) -> bool:
    """A directory that is one trace file in parts: a generate manifest inside (the shard-directory format),
    or only *.jsonl files and nothing that marks a run directory (stage reports, subdirectories with outputs)."""
    manifest = _read_json(directory / "run.json") if (directory / "run.json").is_file() else None
    if isinstance(manifest, dict) and manifest.get("stage") == "generate":
        return True
    return bool(_jsonl_files(directory)) and not _has_stage_outputs(directory, 0)


def _has_stage_outputs(directory: Path, depth: int) -> bool:
    for entry in _entries(directory):
        if entry.is_file() and entry.name.endswith((".report.json", ".summary.json", ".run.json", ".rejects.jsonl")):
            return True
        if entry.is_file() and entry.name.endswith(".json") and _is_eval_result(_read_json(entry)):
            return True
        if entry.is_dir() and depth + 1 < _MAX_DEPTH and _has_stage_outputs(entry, depth + 1):
            return True
    return False


def _entries(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise InputError(f"cannot read the directory: {exc.strerror}", path=str(directory)) from None


def _is_model_directory(directory: Path) -> bool:
    return (directory / "config.json").is_file() or any(directory.glob("*.safetensors"))


def _directory_sources(directory: Path) -> list[Source]:
    if _is_shard_directory(directory):
        segments = [Segment(path, TRACES) for path in _jsonl_files(directory)]
        return [Source(TRACES, f"{directory}{os.sep}", segments)]
    found: list[Source] = []
    _walk(directory, 0, found)
    if not found:
        raise InputError("holds no trace files, filter outputs or eval results (searched "
                         f"{_MAX_DEPTH} levels deep)", path=str(directory))
    order = {kind: index for index, kind in enumerate(KINDS)}
    # pipeline order (generate, filter, eval); the run's own outputs before those in subdirectories (data/)
    return sorted(found, key=lambda s: (order[s.kind], len(Path(s.name).relative_to(directory).parts), s.name))


def _walk(directory: Path, depth: int, found: list[Source]) -> None:
    entries = _entries(directory)
    members: set[Path] = set()
    for entry in entries:  # eval results first: their traces files are generate outputs too
        if entry.is_file() and entry.name.endswith(".json") and not entry.name.endswith(
                (".report.json", ".summary.json", ".run.json")):
            data = _read_json(entry)
            if _is_eval_result(data):
                source = _eval_source(entry, data)
                found.append(source)
                members.update(s.path.resolve() for s in source.segments)
    shards: dict[tuple[str, str], list[Path]] = {}
    for entry in entries:
        if not entry.is_file() or not entry.name.endswith(".jsonl") or entry.resolve() in members:
            continue
        if entry.name.endswith(_NOT_TRACES) or entry.name.endswith(".rejects.jsonl"):
            continue
        shard = _SHARD.match(entry.name)
        if shard:
            shards.setdefault((shard["base"], shard["count"]), []).append(entry)
        elif _is_filter_output(entry):
            found.append(_filter_source(entry))
        elif (sidecar(entry, "summary.json").is_file() or _manifest_stage(entry) == "generate"
              or _looks_like_traces(entry)):
            found.append(_traces_source(entry))
    for (base, count), parts in sorted(shards.items()):
        if (directory / f"{base}.jsonl").is_file():
            continue  # already joined into the whole run's file
        parts.sort(key=lambda p: int(_SHARD.match(p.name)["index"]))  # type: ignore[index]
        found.append(Source(TRACES, str(directory / f"{base}.shard-*-of-{count}.jsonl"),
                            [Segment(p, TRACES) for p in parts]))
    if depth + 1 >= _MAX_DEPTH:
        return
    for entry in entries:
        if entry.is_dir() and not _is_model_directory(entry):
            manifest = _read_json(entry / "run.json") if (entry / "run.json").is_file() else None
            if isinstance(manifest, dict) and manifest.get("stage") == "generate" and _jsonl_files(entry):
                found.append(Source(TRACES, f"{entry}{os.sep}", [Segment(p, TRACES) for p in _jsonl_files(entry)]))
            else:
                _walk(entry, depth + 1, found)
