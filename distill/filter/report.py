"""What `distill filter` reports: counts per check, per prompt, the length and
language-score distributions, throughput; the JSON report, its plots and the
terminal table.

Statistics are accumulated record by record (lengths and scores in compact
arrays, 4-8 bytes a record; one counter per prompt), so a resumed run rebuilds
them by reading its own outputs back.
"""

from __future__ import annotations

import json
import statistics
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import OutputError
from distill.filter.config import check_names

POLICY = ("Cheap checks (format, finish, length, language, repetition and the fast part of correctness: "
          "answer extraction, equal strings or numbers, letters) run on every record. math-verify and the code "
          "sandbox run only on records that every cheap check passed; on the others the correctness verdict is "
          "null and filter_details.not_run says so. Selection runs on the records that passed everything. "
          "rejected_by lists every check whose verdict is false (and correctness when it is null under "
          "--drop-unverified).")


def percentiles(values: array | list) -> dict[str, float]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, int(q * n))]

    return {"count": n, "mean": round(statistics.fmean(ordered), 4), "min": ordered[0], "p10": at(0.10),
            "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": ordered[-1]}


RATE_BUCKETS = ("0", "(0, 0.25]", "(0.25, 0.5]", "(0.5, 0.75]", "(0.75, 1)", "1")


def _rate_bucket(rate: float) -> str:
    if rate <= 0 or rate >= 1:
        return "0" if rate <= 0 else "1"
    return next(label for upper, label in zip((0.25, 0.5, 0.75, 1.0), RATE_BUCKETS[1:5]) if rate <= upper)


@dataclass
class FilterStats:
    checks: list[str]
    kept: int = 0
    rejected: int = 0
    verdicts: dict[str, Counter] = field(default_factory=dict)
    rejected_by: Counter = field(default_factory=Counter)
    sole_reason: Counter = field(default_factory=Counter)
    reasons: dict[str, Counter] = field(default_factory=dict)
    """check -> why it decided so (format problem, correctness reason) -> count."""
    languages: Counter = field(default_factory=Counter)
    kept_tokens: array = field(default_factory=lambda: array("q"))
    rejected_tokens: array = field(default_factory=lambda: array("q"))
    unknown_tokens: int = 0
    language_scores: array = field(default_factory=lambda: array("d"))
    reference_kinds: Counter = field(default_factory=Counter)
    prompts: dict[str, list[int]] = field(default_factory=dict)
    """prompt id -> [samples, kept]."""

    def __post_init__(self) -> None:
        for check in self.checks:
            self.verdicts.setdefault(check, Counter())
            self.reasons.setdefault(check, Counter())

    @property
    def total(self) -> int:
        return self.kept + self.rejected

    def add(self, record: dict[str, Any], kept: bool) -> None:
        """Count one output record (with its verdicts, filter_details and rejected_by)."""
        verdicts = record.get("verdicts", {})
        details = record.get("filter_details", {})
        not_run = set(details.get("not_run", ()))
        for check in self.checks:
            verdict = verdicts.get(check)
            key = "not_run" if check in not_run else {True: "pass", False: "fail", None: "unknown"}[verdict]
            self.verdicts[check][key] += 1
        if "format" in details:
            self.reasons["format"][details["format"]] += 1
        if "correctness" in details and "correctness" in self.reasons:
            self.reasons["correctness"][details["correctness"]] += 1
        if "correctness" in self.checks:
            self.reference_kinds[str(details.get("reference_kind"))] += 1
        if kept:
            self.kept += 1
        else:
            self.rejected += 1
            reasons = record.get("rejected_by", [])
            self.rejected_by.update(reasons)
            if len(reasons) == 1:
                self.sole_reason[reasons[0]] += 1
        tokens = details.get("tokens")
        if isinstance(tokens, int):
            (self.kept_tokens if kept else self.rejected_tokens).append(tokens)
        else:
            self.unknown_tokens += 1
        if details.get("language"):
            self.languages[details["language"]] += 1
        if isinstance(details.get("language_score"), (int, float)):
            self.language_scores.append(details["language_score"])
        counts = self.prompts.setdefault(str(record.get("prompt_id")), [0, 0])
        counts[0] += 1
        counts[1] += int(kept)

    def prompt_summary(self) -> dict[str, Any]:
        rates = [kept / samples for samples, kept in self.prompts.values()]
        without = [pid for pid, (_, kept) in self.prompts.items() if kept == 0]
        buckets = Counter(_rate_bucket(rate) for rate in rates)
        return {
            "total": len(self.prompts),
            "with_kept": len(self.prompts) - len(without),
            "without_kept": len(without),
            "mean_pass_rate": round(statistics.fmean(rates), 4) if rates else None,
            "pass_rate_histogram": {bucket: buckets.get(bucket, 0) for bucket in RATE_BUCKETS},
            "kept_per_prompt": dict(sorted(Counter(kept for _, kept in self.prompts.values()).items())),
            "examples_without_kept": without[:20],
        }


@dataclass
class FilterReport:
    """The result of `filter_traces`: what went where and why, as written to report.json."""

    kept_path: str
    rejects_path: str
    report_path: str
    data: dict[str, Any]
    plots: list[str] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return self.data["records"]["kept"]

    @property
    def rejected(self) -> int:
        return self.data["records"]["rejected"]

    @property
    def input_records(self) -> int:
        return self.data["records"]["input"]

    def to_dict(self) -> dict[str, Any]:
        return self.data

    @classmethod
    def load(cls, kept: Path, rejects: Path, report: Path) -> FilterReport:
        """The report a finished run wrote, as this run's result (a rerun that had nothing to do)."""
        try:
            data = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OutputError(f"{report} is unreadable ({exc}); pass --overwrite to filter again") from None
        if isinstance(data.get("throughput"), dict):  # this run filtered nothing
            data["throughput"] = {**data["throughput"], "new_records": 0, "elapsed_s": 0.0, "records_per_s": 0.0}
        return cls(kept_path=str(kept), rejects_path=str(rejects), report_path=str(report), data=data,
                   plots=list(data.get("plots", [])))

    def format(self) -> str:
        from distill.report import markdown_table

        data = self.data
        rows = []
        for check, counts in data["checks"].items():
            rows.append([check, counts["pass"], counts["fail"], counts["unknown"], counts["not_run"],
                         counts["rejected"], counts["sole_reason"]])
        table = markdown_table(["check", "pass", "fail", "null", "not run", "rejected", "only reason"], rows)
        records = data["records"]
        sign = "=" if records["kept_plus_rejected_equals_input"] else "≠"
        lines = [table, "",
                 f"kept {records['kept']:,} + rejected {records['rejected']:,} {sign} input {records['input']:,}"
                 f" ({records['kept'] / max(records['input'], 1):.1%} kept)"]
        prompts = data["prompts"]
        lines.append(f"prompts with ≥1 kept sample: {prompts['with_kept']:,} of {prompts['total']:,}"
                     + (f" (mean pass rate {prompts['mean_pass_rate']:.1%})" if prompts["mean_pass_rate"] is not None
                        else ""))
        lengths = data["lengths"]["all"]
        if lengths.get("count"):
            limit = data["lengths"]["max_tokens"]
            lines.append(f"tokens ({data['lengths']['source']}): p50 {lengths['p50']:,} p90 {lengths['p90']:,} "
                         f"p99 {lengths['p99']:,} max {lengths['max']:,}"
                         + (f", limit {limit:,}" if limit else ", no --max-tokens limit"))
        correctness = data.get("correctness")
        if correctness and correctness.get("notes"):
            lines.extend(f"note: {note}" for note in correctness["notes"])
        throughput = data["throughput"]
        lines.append(f"{throughput['new_records']:,} records in {throughput['elapsed_s']:.1f} s "
                     f"({throughput['records_per_s']:,.1f} records/s, {throughput['workers']} workers)")
        lines.append(f"kept → {self.kept_path}; rejected → {self.rejects_path}; report → {self.report_path}")
        return "\n".join(lines)


def build_report(stats: FilterStats, *, cfg_dict: dict[str, Any], paths: dict[str, str], length_source: str,
                 grading: dict[str, Any] | None, elapsed: float, new_records: int, workers: int,
                 notes: list[str]) -> dict[str, Any]:
    checks = {}
    for check in stats.checks:
        counts = stats.verdicts[check]
        checks[check] = {"pass": counts["pass"], "fail": counts["fail"], "unknown": counts["unknown"],
                         "not_run": counts["not_run"], "rejected": stats.rejected_by[check],
                         "sole_reason": stats.sole_reason[check]}
        if stats.reasons.get(check):
            checks[check]["reasons"] = dict(stats.reasons[check].most_common())
    everything = array("q", stats.kept_tokens)
    everything.extend(stats.rejected_tokens)
    data: dict[str, Any] = {
        "complete": True,
        "input": paths["input"],
        "outputs": {"kept": paths["kept"], "rejects": paths["rejects"]},
        "records": {"input": stats.total, "kept": stats.kept, "rejected": stats.rejected,
                    "kept_plus_rejected_equals_input": stats.kept + stats.rejected == stats.total},
        "checks": checks,
        "policy": POLICY,
        "prompts": stats.prompt_summary(),
        "lengths": {"source": length_source, "max_tokens": cfg_dict.get("max_tokens"),
                    "all": percentiles(everything), "kept": percentiles(stats.kept_tokens),
                    "rejected": percentiles(stats.rejected_tokens), "unknown": stats.unknown_tokens},
        "language": {"target": cfg_dict.get("language"), "languages": dict(stats.languages.most_common()),
                     "threshold": cfg_dict.get("language_threshold"),
                     "max_foreign_run": cfg_dict.get("language_max_foreign_run"),
                     "score": percentiles(stats.language_scores),
                     "below_threshold": sum(1 for s in stats.language_scores
                                            if s < (cfg_dict.get("language_threshold") or 0))},
        "throughput": {"new_records": new_records, "elapsed_s": round(elapsed, 3),
                       "records_per_s": round(new_records / elapsed, 2) if elapsed > 0 else 0.0,
                       "workers": workers},
        "config": cfg_dict,
    }
    if "correctness" in stats.checks:
        data["correctness"] = {"reference_kinds": dict(stats.reference_kinds.most_common()),
                               "this_run": grading or {}, "notes": notes}
    return data


def save_plots(stats: FilterStats, report_path: Path, *, max_tokens: int | None, threshold: float) -> list[str]:
    """reject reasons (bar), lengths kept vs rejected (histogram + limit), language scores (histogram)."""
    from distill.report import save_bar, save_histogram
    base = report_path.name.removesuffix(".json").removesuffix(".report")

    def beside(suffix: str) -> Path:
        return report_path.with_name(f"{base}.{suffix}")

    plots = []
    reasons = {check: stats.rejected_by[check] for check in check_names() if stats.rejected_by[check]}
    plots.append(save_bar(beside("reject-reasons.png"), reasons or {"(none rejected)": 0},
                          title=f"Reject reasons ({stats.rejected:,} of {stats.total:,} rejected; "
                                "a record may have several)", xlabel="records"))
    if stats.kept_tokens or stats.rejected_tokens:
        plots.append(save_histogram(beside("lengths.png"),
                                    {"kept": list(stats.kept_tokens), "rejected": list(stats.rejected_tokens)},
                                    title="Completion length", xlabel="tokens", vline=max_tokens,
                                    vline_label=f"--max-tokens {max_tokens:,}" if max_tokens else None))
    if stats.language_scores:
        plots.append(save_histogram(beside("language.png"), {"records": list(stats.language_scores)},
                                    title="Language consistency (share of words in the target language)",
                                    xlabel="score", vline=threshold, vline_label=f"threshold {threshold}"))
    return [str(p) for p in plots]
