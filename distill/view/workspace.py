"""What the page asks for, as plain data: the sources, an overview, a page of records, one record, the
samples of one prompt. The web server (distill.view.server) and the static export (distill.view.export)
both answer from here, so the two show the same thing.

Records are addressed by source number and record number (`n`, the record's place in its source), never by
a path: the only files read are the ones the sources were built from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.view.index import MAX_PROMPT_SAMPLES, RecordQuery, SourceIndex
from distill.view.records import preview, record_view
from distill.view.sources import EVAL, FILTER, Source, resolve_sources

MAX_PER_PAGE = 200


class NotFound(DistillError):
    """The page asked for a source or record that is not there."""


@dataclass
class Workspace:
    indexes: list[SourceIndex]

    @classmethod
    def open(cls, paths: list[str], cache_dir: Path) -> Workspace:
        """Resolve the PATHs into sources and open (or build) the index of each."""
        sources = resolve_sources(paths)
        indexes: list[SourceIndex] = []
        try:
            for source in sources:
                indexes.append(SourceIndex.open(source, cache_dir))
        except BaseException:
            for index in indexes:
                index.close()
            raise
        return cls(indexes)

    def close(self) -> None:
        for index in self.indexes:
            index.close()

    @property
    def records(self) -> int:
        return sum(index.records for index in self.indexes)

    def index(self, src: int) -> SourceIndex:
        if not 0 <= src < len(self.indexes):
            raise NotFound(f"no source {src}")
        return self.indexes[src]

    # ------------------------------------------------------------ answers

    def sources(self) -> list[dict[str, Any]]:
        return [{"src": src, "kind": index.source.kind, "name": index.source.name, "records": index.records,
                 "files": [{"name": s.path.name, "role": s.role, "records": counts["records"]}
                           for s, counts in zip(index.source.segments, index.overview["segments"])],
                 "checks": sorted(index.checks, key=index.checks.__getitem__),
                 "models": [s.role for s in index.source.segments] if index.source.kind == EVAL else [],
                 "languages": [row["value"] for row in index.overview["languages"]],
                 "finish": [row["value"] for row in index.overview["finish"]],
                 "judge": [row["value"] for row in index.overview["judge"]],
                 "contamination": [row["value"] for row in index.overview["contamination"]]}
                for src, index in enumerate(self.indexes)]

    def overview(self, src: int) -> dict[str, Any]:
        index = self.index(src)
        return {**index.overview, "src": src, "name": index.source.name, "records": index.records,
                "report": _report_numbers(index.source)}

    def records_page(self, src: int, query: RecordQuery) -> dict[str, Any]:
        index = self.index(src)
        query.per_page = max(1, min(query.per_page, MAX_PER_PAGE))
        query.page = max(1, query.page)
        total, rows = index.query(query)
        for row, record in zip(rows, index.read_many(rows)):
            row.update(preview(record))
        return {"src": src, "total": total, "page": query.page, "per_page": query.per_page, "rows": rows}

    def record(self, src: int, n: int) -> dict[str, Any]:
        index = self.index(src)
        row = index.row(n)
        if row is None:
            raise NotFound(f"no record {n} in source {src}")
        return self.record_answer(src, row, index.read(row))

    def record_answer(self, src: int, row: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        index = self.index(src)
        return {"src": src, "row": row, "record": record_view(record), "of": index.records, "kind": index.source.kind}

    def prompt(self, src: int, prompt_id: str) -> dict[str, Any]:
        """Every sample of one prompt: kept beside rejected (filter), the models side by side (eval)."""
        index = self.index(src)
        rows = index.rows_of_prompt(prompt_id)
        if not rows:
            raise NotFound(f"no prompt {prompt_id!r} in source {src}")
        records = index.read_many(rows)
        groups: dict[str, list[dict[str, Any]]] = {}
        for row, record in zip(rows, records):
            view = record_view(record, with_reasoning=False)
            group = row["model"] if index.source.kind == EVAL else row["status"] if index.source.kind == FILTER \
                else row["file"]
            groups.setdefault(str(group), []).append({"row": row, "record": view})
        first = record_view(records[0], with_reasoning=False)
        return {"src": src, "kind": index.source.kind, "prompt_id": prompt_id, "messages": first["messages"],
                "reference": first["reference"], "reference_is_code": first["reference_is_code"],
                "groups": [{"label": label, "cards": cards} for label, cards in groups.items()],
                "truncated": len(rows) >= MAX_PROMPT_SAMPLES}


def _report_numbers(source: Source) -> dict[str, Any]:
    """The stage reports' own numbers (what `distill filter` / `generate` / `eval` printed), where present."""
    out: dict[str, Any] = {}
    report = source.report("report")
    if report is not None:
        correctness = report.get("correctness") if isinstance(report.get("correctness"), dict) else {}
        this_run = correctness.get("this_run") if isinstance(correctness.get("this_run"), dict) else {}
        out["filter"] = {key: report.get(key) for key in ("records", "checks", "prompts", "lengths", "language",
                                                          "throughput", "policy")}
        out["filter"]["notes"] = correctness.get("notes") or []
        out["filter"]["judge"] = this_run.get("judge")
        config = report.get("config") if isinstance(report.get("config"), dict) else {}
        out["filter"]["config"] = {key: config.get(key) for key in ("checks", "max_tokens", "tokenizer", "language",
                                                                    "language_threshold", "keep_per_prompt", "judge")
                                   if key in config}
    summary = source.report("summary")
    if summary is not None:
        out["generate"] = {key: summary.get(key) for key in (
            "teacher", "backend", "prompts", "records", "finish_reasons", "completion_tokens", "tokens_per_s",
            "elapsed_s", "params", "complete")}
        out["generate"]["failed_prompts"] = len(summary.get("failed_prompts") or [])
    results = source.report("results")
    if results is not None:
        out["eval"] = {"benchmark": results.get("benchmark"), "n": results.get("n"), "models": [
            {key: scores.get(key) for key in ("model", "problems", "samples", "pass_at_1", "pass_at_k", "cons_at_n",
                                              "mean_completion_tokens", "truncated", "mixed_language", "ungraded")}
            for scores in (results.get("models") or {}).values() if isinstance(scores, dict)]}
    return out
