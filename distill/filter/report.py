"""What `distill filter` reports: counts per check, per prompt, throughput, and each check's
own section (distill.checks: the length and language-score distributions, what the grading pool and
the judge did); the JSON report, its plots and the terminal table.

Statistics are accumulated record by record (lengths and scores in compact
arrays, 4-8 bytes a record; one counter per prompt), so a resumed run rebuilds
them by reading its own outputs back.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.checks.base import CheckSummary, ThisRun
from distill.checks.registry import check_names, registered
from distill.config import config_dict
from distill.errors import OutputError

if TYPE_CHECKING:
    from distill.filter.config import FilterConfig

POLICY = ("Cheap checks (format, finish, length, language, repetition and the fast part of correctness: "
          "answer extraction, equal strings or numbers, letters) run on every record. math-verify and the code "
          "sandbox run only on records that every cheap check passed; on the others the correctness verdict is "
          "null and filter_details.not_run says so. Selection runs on the records that passed everything. "
          "rejected_by lists every check whose verdict is false (and correctness when it is null under "
          "--drop-unverified).")


RATE_BUCKETS = ("0", "(0, 0.25]", "(0.25, 0.5]", "(0.5, 0.75]", "(0.75, 1)", "1")


def _rate_bucket(rate: float) -> str:
    if rate <= 0 or rate >= 1:
        return "0" if rate <= 0 else "1"
    return next(label for upper, label in zip((0.25, 0.5, 0.75, 1.0), RATE_BUCKETS[1:5]) if rate <= upper)


@dataclass
class FilterStats:
    checks: list[str]
    summaries: dict[str, CheckSummary] = field(default_factory=dict)
    """check -> its part of the report (distill.checks), shown every record."""
    kept: int = 0
    rejected: int = 0
    verdicts: dict[str, Counter] = field(default_factory=dict)
    rejected_by: Counter = field(default_factory=Counter)
    sole_reason: Counter = field(default_factory=Counter)
    prompts: dict[str, list[int]] = field(default_factory=dict)
    """prompt id -> [samples, kept]."""

    def __post_init__(self) -> None:
        for check in self.checks:
            self.verdicts.setdefault(check, Counter())

    @classmethod
    def of(cls, cfg: FilterConfig) -> FilterStats:
        """Empty statistics of a run of `cfg`, with the report part of every check it runs (and of every
        check whose section each report has)."""
        summaries = {name: check.summary(name, cfg) for name, check in registered().items()
                     if check.summary is not None and (name in cfg.checks or check.summary.always)}
        return cls([name for name in check_names() if name in cfg.checks], summaries)

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
        if kept:
            self.kept += 1
        else:
            self.rejected += 1
            reasons = record.get("rejected_by", [])
            self.rejected_by.update(reasons)
            if len(reasons) == 1:
                self.sole_reason[reasons[0]] += 1
        for summary in self.summaries.values():
            summary.add(record, details, kept)
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
        for check in registered().values():
            if check.summary is not None:
                lines.extend(check.summary.lines(data))
        throughput = data["throughput"]
        lines.append(f"{throughput['new_records']:,} records in {throughput['elapsed_s']:.1f} s "
                     f"({throughput['records_per_s']:,.1f} records/s, {throughput['workers']} workers)")
        lines.append(f"kept → {self.kept_path}; rejected → {self.rejects_path}; report → {self.report_path}")
        return "\n".join(lines)


def build_report(stats: FilterStats, cfg: FilterConfig, this_run: ThisRun, *, paths: dict[str, str], elapsed: float,
                 new_records: int, workers: int) -> dict[str, Any]:
    checks = {}
    for check in stats.checks:
        counts = stats.verdicts[check]
        checks[check] = {"pass": counts["pass"], "fail": counts["fail"], "unknown": counts["unknown"],
                         "not_run": counts["not_run"], "rejected": stats.rejected_by[check],
                         "sole_reason": stats.sole_reason[check]}
    data: dict[str, Any] = {
        "complete": True,
        "input": paths["input"],
        "outputs": {"kept": paths["kept"], "rejects": paths["rejects"]},
        "records": {"input": stats.total, "kept": stats.kept, "rejected": stats.rejected,
                    "kept_plus_rejected_equals_input": stats.kept + stats.rejected == stats.total},
        "checks": checks,
        "policy": POLICY,
        "prompts": stats.prompt_summary(),
    }
    for summary in stats.summaries.values():
        summary.write(data, this_run)
    data["throughput"] = {"new_records": new_records, "elapsed_s": round(elapsed, 3),
                          "records_per_s": round(new_records / elapsed, 2) if elapsed > 0 else 0.0,
                          "workers": workers}
    data["config"] = config_dict(cfg)
    return data


def save_plots(stats: FilterStats, report_path: Path) -> list[str]:
    """Reject reasons (bar), then each check's own plots (lengths kept vs rejected, language scores)."""
    from distill.report import save_bar
    base = report_path.name.removesuffix(".json").removesuffix(".report")

    def beside(suffix: str) -> Path:
        return report_path.with_name(f"{base}.{suffix}")

    plots = []
    reasons = {check: stats.rejected_by[check] for check in check_names() if stats.rejected_by[check]}
    plots.append(save_bar(beside("reject-reasons.png"), reasons or {"(none rejected)": 0},
                          title=f"Reject reasons ({stats.rejected:,} of {stats.total:,} rejected; "
                                "a record may have several)", xlabel="records"))
    for summary in stats.summaries.values():
        plots.extend(summary.plots(beside))
    return [str(p) for p in plots]
