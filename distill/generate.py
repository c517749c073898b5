"""`distill generate`: sample long chain-of-thought traces from a teacher, resumably.

Each finished prompt's n samples are appended to the output and flushed at once.
Rerunning the same command after a crash repairs a torn last line, skips every
id already written and produces the rest; the output never holds an id twice.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.backends import GenerationRequest, SamplingParams, make_backend, resolve_backend
from distill.config import FREE, MUST_MATCH, require
from distill.decontam import DecontaminationOptions
from distill.errors import IncompleteRun, InputError, OutputError
from distill.options import BackendOptions, PromptOptions, RayOptions, SamplingOptions
from distill.progress import Progress
from distill.prompts import Prompt, load_prompts, parse_shard
from distill.report import save_completion_lengths
from distill.runs import COMPLETE, NEW, RunManifest, claim, fingerprint, nothing_to_do
from distill.traces import (
    JsonlWriter,
    check_writable,
    intact_length,
    is_shard_directory,
    last_lines_start,
    prompt_text,
    read_traces,
    sidecar,
    write_json,
)

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class GenerateConfig(PromptOptions, SamplingOptions, BackendOptions, DecontaminationOptions, RayOptions):
    prompts: str = field(metadata=FREE)
    """Prompts: a local .jsonl/.json/.parquet/.csv file or a Hub dataset name[:config][@split]."""
    teacher: str = field(metadata=MUST_MATCH)
    """Teacher model: a local directory or Hub id (for --backend openai, the served model name)."""
    out: str = field(metadata=FREE)
    """Output traces file (.jsonl), or with --ray a directory of shards with a manifest.json (every stage reads it as one trace file); a summary is written beside it as <name>.summary.json."""
    shard: str | None = field(default=None, metadata=FREE)
    """Process only shard I of N ('I/N', I from 0): contiguous slices, so shards concatenate to the full run."""
    overwrite: bool = field(default=False, metadata=FREE)
    """Replace an existing output instead of resuming it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_shard(self.shard)
        require(bool(self.teacher), "teacher", "is required")
        require(self.ray is not None or not self.out.endswith("/"), "out",
                "must be a file path such as traces.jsonl (a directory of shards is what --ray writes)")


@dataclass
class GenerateSummary:
    output: str
    teacher: str
    backend: str
    prompts: int
    records: int
    new_records: int
    finish_reasons: dict[str, int]
    completion_tokens: dict[str, float]
    elapsed_s: float
    tokens_per_s: float
    retries: int = 0
    failed_prompts: list[dict[str, str]] = field(default_factory=list)
    complete: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    contaminated_prompts: list[dict[str, Any]] = field(default_factory=list)
    """Prompts skipped by --decontaminate, each with the benchmark, row and n-gram it shares."""
    startup_s: float | None = None
    """--ray: seconds from the pipeline's start to its first record (mostly the engines starting)."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def failure(self) -> IncompleteRun | None:
        """Why the run is not complete: prompts that failed after their retries (None when none did)."""
        if not self.failed_prompts:
            return None
        first = self.failed_prompts[0]
        return IncompleteRun(len(self.failed_prompts), self.prompts, self.new_records,
                             f"{first['prompt_id']}: {first['error']}")

    def format(self) -> str:
        finish = ", ".join(f"{k} {v}" for k, v in sorted(self.finish_reasons.items())) or "none"
        tokens = self.completion_tokens
        lines = [
            f"output            {self.output}",
            f"records           {self.records} ({self.new_records} new) for {self.prompts} prompts",
            f"finish reasons    {finish}",
            f"completion tokens mean {tokens.get('mean', 0):,.0f}, p50 {tokens.get('p50', 0):,.0f}, "
            f"p90 {tokens.get('p90', 0):,.0f}, max {tokens.get('max', 0):,.0f}",
            f"throughput        {self.tokens_per_s:,.1f} tok/s over {self.elapsed_s:.1f} s ({self.backend})"
            + (f", the first record after {self.startup_s:.1f} s (the engines' start)"
               if self.startup_s is not None else ""),
        ]
        if self.contaminated_prompts:
            first = self.contaminated_prompts[0]
            how = (f"shares '{first['ngram']}' with" if first.get("stage", "ngram") == "ngram" else
                   f"matches ({first.get('stage')}, score {first.get('score')})")
            lines.append(f"decontaminated    {len(self.contaminated_prompts)} prompts skipped (first: {first['prompt_id']} "
                         f"{how} {first['benchmark']} row {first['problem']})")
        if self.failed_prompts:
            lines.append(f"FAILED prompts    {len(self.failed_prompts)} (rerun the same command to retry them; "
                         f"first: {self.failed_prompts[0]['prompt_id']}: {self.failed_prompts[0]['error']})")
        return "\n".join(lines)


def _decontaminate(prompts: list[Any], cfg: GenerateConfig) -> list[dict[str, Any]]:
    """The prompts that overlap a --decontaminate benchmark: no teacher time is spent on them. The index
    knows the template, so a short problem is matched whole without the instruction it appends."""
    index = cfg.contamination_index(templates=[cfg.template])
    texts = [prompt_text({"messages": p.messages}) for p in prompts]  # the text the contamination check reads
    skipped = [{"prompt_id": p.prompt_id, **match.to_dict()}
               for p, match in zip(prompts, index.find_many(texts), strict=True) if match is not None]
    log.info("decontamination: %d of %d prompts overlap a benchmark and are skipped", len(skipped), len(prompts))
    return skipped


def finished_summary(cfg: GenerateConfig, out: Path, prompts: int, records: set[str], finishes: list[str],
                     tokens: list[int], params: dict[str, Any], skipped: list[dict[str, Any]]) -> GenerateSummary:
    """The summary of a rerun that found its output complete with these settings (it says so, and does
    nothing): the records already written, counted as they are."""
    log.info(nothing_to_do(f"{out} ({len(records)} records)"))
    return GenerateSummary(
        output=str(out), teacher=cfg.teacher, backend="none", prompts=prompts, records=len(records), new_records=0,
        finish_reasons={reason: finishes.count(reason) for reason in sorted(set(finishes))},
        completion_tokens=_token_stats(tokens), elapsed_s=0.0, tokens_per_s=0.0, params={**params, "n": cfg.n},
        contaminated_prompts=skipped)


def finish_run(cfg: GenerateConfig, out: Path, summary_path: Path, summary: GenerateSummary,
               tokens: list[int]) -> GenerateSummary:
    """The end of a run that generated (the file and the --ray runs): its summary and length plot written,
    the output marked complete when every record asked for is there and no prompt failed."""
    write_json(summary_path, summary.to_dict())
    save_completion_lengths(sidecar(out, "lengths.png"), tokens, max_tokens=cfg.max_tokens)
    if summary.complete and not summary.failed_prompts:
        manifest(out).update(complete=True)
    if summary.failed_prompts:
        log.warning("%d prompts failed (listed in %s)", len(summary.failed_prompts), summary_path)
    return summary


def _token_stats(counts: list[int]) -> dict[str, float]:
    if not counts:
        return {"total": 0, "mean": 0, "p50": 0, "p90": 0, "max": 0}
    ordered = sorted(counts)
    return {"total": sum(ordered), "mean": statistics.fmean(ordered), "p50": ordered[len(ordered) // 2],
            "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], "max": ordered[-1]}


def _sampling(cfg: GenerateConfig) -> SamplingParams:
    return SamplingParams(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens,
                          seed=cfg.seed)


def _params_dict(params: SamplingParams) -> dict[str, Any]:
    return {"temperature": params.temperature, "top_p": params.top_p, "max_tokens": params.max_tokens,
            "seed": params.seed}


def _read_existing(out: Path, cfg: GenerateConfig,
                   by_id: dict[str, Prompt]) -> tuple[set[str], list[str], list[int], int, list[str]]:
    """Ids already written, with their finish reasons and token counts, the size to cut the file back
    to before appending and what that cut removes. The file is not changed here; the run's settings
    were already checked against its manifest (`check_resume`).

    A crash mid-write leaves a torn last line: it is cut off. A prompt's samples are written in one
    write() call, so only the last prompt of the file can be incomplete. Its lines are cut off too
    and the prompt is generated again whole: every prompt's samples stay on consecutive lines, which
    the filter's per-prompt selection relies on.
    """
    keep = intact_length(out)
    repairs = []
    if keep < out.stat().st_size:
        repairs.append(f"removed a torn last line ({out.stat().st_size - keep} bytes) left by an interrupted run; "
                       "its record will be produced again")
    done: set[str] = set()
    finishes: list[str] = []
    tokens: list[int] = []
    group: list[dict[str, Any]] = []  # the records of the last prompt read so far

    def commit(records: list[dict[str, Any]]) -> None:
        for record in records:
            done.add(record["id"])
            finishes.append(record["finish_reason"])
            if isinstance(record.get("completion_tokens"), int):
                tokens.append(record["completion_tokens"])

    required = ("id", "prompt_id", "sample", "messages", "completion", "finish_reason")
    for line, record in read_traces(out, required=required, end=keep):
        prompt = by_id.get(record["prompt_id"])
        # the settings that shape a prompt are in the manifest; this catches the PROMPTS file itself
        # edited between the runs (another problem text or answer under the same id)
        if prompt is not None and (record["messages"], record.get("reference")) != (
                prompt.messages, json.loads(json.dumps(prompt.reference))):  # as the record holds it
            field_ = "messages" if record["messages"] != prompt.messages else "reference"
            raise OutputError(f"{out}:{line}: prompt {record['prompt_id']!r} has other {field_} in this run (the "
                              "PROMPTS file changed under the same id); pass --overwrite to replace the output "
                              "or choose another --out")
        if group and group[0]["prompt_id"] != record["prompt_id"]:
            commit(group)
            group = []
        group.append({k: record.get(k) for k in ("id", "prompt_id", "finish_reason", "completion_tokens")})
    if group and len(group) < cfg.n and group[0]["prompt_id"] in by_id:
        keep = last_lines_start(out, len(group), end=keep)
        repairs.append(f"removed {len(group)} of {cfg.n} samples of prompt {group[0]['prompt_id']!r}, cut short "
                       "by an interrupted run; the prompt will be generated again whole")
    else:
        commit(group)
    return done, finishes, tokens, keep, repairs


def manifest(out: str | Path) -> RunManifest:
    """The run manifest of a generate output (`traces.jsonl` -> `traces.run.json`)."""
    return RunManifest.beside(out, "generate")


def check_resume(cfg: GenerateConfig, out: Path) -> str:
    """NEW, RESUME or COMPLETE for this run on `out`, before anything is loaded: OutputError when `out`
    was written with other must-match settings (each named with its flag), or not by distill generate."""
    if not (out.exists() and out.stat().st_size):
        return NEW  # no record written (a run that stopped at its first request): nothing to resume or protect
    state = manifest(out).resume(fingerprint(cfg), overwrite=cfg.overwrite)
    if state == NEW and not cfg.overwrite:
        raise OutputError(f"{out} exists but has no run manifest ({manifest(out).path.name}): it was not written "
                          "by this version of distill generate, so its settings are unknown; pass --overwrite to "
                          "replace it or choose another --out")
    return state


def generate(cfg: GenerateConfig) -> GenerateSummary:
    """Generate cfg.n samples for every prompt into cfg.out, resuming what a previous run left; with
    cfg.ray, as a Ray Data pipeline into a directory of shards (distill.raydata)."""
    if cfg.ray is not None:
        from distill.raydata import generate_on_ray

        return generate_on_ray(cfg)
    if is_shard_directory(cfg.out):
        raise OutputError(f"--out {cfg.out} is a directory of shards written by a run with --ray; add --ray to "
                          "resume it, or give a file path such as traces.jsonl")
    out = check_writable(cfg.out)
    summary_path = sidecar(out, "summary.json")
    with claim({"--out": out, "--out's summary": summary_path, "--out's manifest": manifest(out).path},
               {"PROMPTS": cfg.prompts, "--teacher": cfg.teacher, "--tokenizer": cfg.tokenizer}, locked=("--out",)):
        state = check_resume(cfg, out)
        return _generate(cfg, out, summary_path, state)


def run_prompts(cfg: GenerateConfig) -> tuple[list[Prompt], list[dict[str, Any]]]:
    """The prompts this run generates for (after --limit, --shard and --decontaminate) and those
    --decontaminate skipped; the same for a run on one machine and one on Ray."""
    prompts = load_prompts(cfg.prompts, prompt_column=cfg.prompt_column, answer_column=cfg.answer_column,
                           id_column=cfg.id_column, template=cfg.template, system=cfg.system,
                           limit=cfg.limit, shard=cfg.shard)
    skipped = _decontaminate(prompts, cfg) if cfg.decontaminate else []
    if skipped:
        prompts = [p for p in prompts if p.prompt_id not in {s["prompt_id"] for s in skipped}]
        if not prompts:
            raise InputError("every prompt overlaps a --decontaminate benchmark: nothing is left to generate",
                             path=cfg.prompts)
    return prompts, skipped


def _generate(cfg: GenerateConfig, out: Path, summary_path: Path, state: str) -> GenerateSummary:
    prompts, skipped = run_prompts(cfg)
    params = _sampling(cfg)
    params_dict = _params_dict(params)
    by_id = {p.prompt_id: p for p in prompts}
    expected = {f"{p.prompt_id}:{s}" for p in prompts for s in range(cfg.n)}

    done: set[str] = set()
    finishes: list[str] = []
    tokens: list[int] = []
    keep, repairs = None, []  # the size an existing output is cut back to (a torn line, a prompt cut short)
    if out.exists() and not cfg.overwrite:
        done, finishes, tokens, keep, repairs = _read_existing(out, cfg, by_id)
        if state == COMPLETE and expected <= done and not repairs and summary_path.exists():
            # --limit and --shard are free: the manifest's 'complete' covers the prompts its run asked
            # for, so it is only trusted when this run asks for no record that is not written
            return finished_summary(cfg, out, len(prompts), done & expected, finishes, tokens, params_dict, skipped)
        if done:
            log.info("resuming %s: %d of %d records already written", out, len(done & expected), len(expected))
        if done - expected:
            log.warning("%s holds %d records that are not part of this run (another --limit or --shard?)",
                        out, len(done - expected))

    requests = [GenerationRequest(p.prompt_id, p.messages, index=i,
                                  pending=any(f"{p.prompt_id}:{s}" not in done for s in range(cfg.n)))
                for i, p in enumerate(prompts)]
    pending = sum(r.pending for r in requests)
    backend_name = resolve_backend(cfg.backend) if pending else "none"
    failed: list[dict[str, str]] = []
    new_records = new_tokens = retries = 0
    backend = make_backend(cfg.teacher, cfg, seed=cfg.seed, name=backend_name) if pending else None
    if backend is not None:
        try:
            backend.check(params)
        except BaseException:
            backend.close()
            raise
    # Only now that the teacher is loaded is the output touched: a run that cannot start leaves it as it was.
    if cfg.overwrite:
        out.unlink(missing_ok=True)
        summary_path.unlink(missing_ok=True)
    elif keep is not None and keep < out.stat().st_size:
        os.truncate(out, keep)
        for repair in repairs:
            log.warning("%s: %s", out, repair)
    # the manifest is written before the first record, so every record on disk has its settings recorded
    if cfg.overwrite or manifest(out).read() is None or pending:
        manifest(out).write(fingerprint(cfg), complete=False)
    progress = Progress("generate", total=len(prompts), initial=len(prompts) - pending)
    if backend is not None:
        try:
            with JsonlWriter(out) as writer:
                for result in backend.generate(requests, params):
                    if result.error is not None:
                        failed.append({"prompt_id": result.key, "error": result.error})
                        progress.update(1)
                        continue
                    prompt = by_id[result.key]
                    records = [_record(prompt, s, sample, result.prompt_tokens, cfg, params_dict)
                               for s, sample in enumerate(result.samples)
                               if f"{prompt.prompt_id}:{s}" not in done]
                    writer.write(records)
                    for record in records:
                        done.add(record["id"])
                        finishes.append(record["finish_reason"])
                        if isinstance(record["completion_tokens"], int):
                            tokens.append(record["completion_tokens"])
                            new_tokens += record["completion_tokens"]
                    new_records += len(records)
                    progress.update(1, tokens=sum(s.completion_tokens or 0 for s in result.samples))
            retries = getattr(backend, "retries", 0)
        finally:
            progress.close()
            backend.close()
    elapsed = progress.elapsed
    summary = GenerateSummary(
        output=str(out), teacher=cfg.teacher, backend=backend_name, prompts=len(prompts),
        records=len(done & expected), new_records=new_records,
        finish_reasons={reason: finishes.count(reason) for reason in sorted(set(finishes))},
        completion_tokens=_token_stats(tokens), elapsed_s=round(elapsed, 3),
        tokens_per_s=round(new_tokens / elapsed, 2) if elapsed > 0 else 0.0, retries=retries,
        failed_prompts=failed, complete=expected <= done, params={**params_dict, "n": cfg.n},
        contaminated_prompts=skipped)
    return finish_run(cfg, out, summary_path, summary, tokens)


def _record(prompt: Prompt, sample_index: int, sample: Any, prompt_tokens: int | None,
            cfg: GenerateConfig, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"{prompt.prompt_id}:{sample_index}",
        "prompt_id": prompt.prompt_id,
        "sample": sample_index,
        "messages": prompt.messages,
        "reference": prompt.reference,
        "completion": sample.text,
        "finish_reason": sample.finish_reason,
        "completion_tokens": sample.completion_tokens,
        "prompt_tokens": prompt_tokens,
        "teacher": cfg.teacher,
        "params": params,
        "source": prompt.source,
    }
