"""`distill eval`: sample benchmark problems from one or more models, grade them like the
filter does, and report what the DeepSeek-R1 paper's tables report.

Sampling is `distill generate` itself (same backends, same prompt rendering,
resumable: a killed eval picks up where it stopped), into one traces file per
model beside the results. Grading is `distill.grading` (the filter's
correctness check); the mixed-language rate is the filter's language check.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.backends.vllm_engine import cpu_attention_refusal
from distill.chat import load_tokenizer, looks_local, thinking_switch
from distill.config import FREE, flag, one_of, project, require
from distill.errors import ConfigError, IncompleteRun, ModelError, OutputError
from distill.eval.metrics import majority_vote, mean_pass_at_k
from distill.generate import GenerateConfig, GenerateSummary, generate
from distill.options import BackendOptions, PromptOptions, SamplingOptions
from distill.report import markdown_table, save_bar
from distill.runs import COMPLETE, RunManifest, claim, file_digest, fingerprint, nothing_to_do
from distill.sandbox.limits import SandboxLimits
from distill.traces import JsonlWriter, check_writable, read_traces, sidecar, write_json

log = logging.getLogger(__name__)

MODES = ("thinking", "non-thinking")
"""The modes of a hybrid-thinking model --modes can evaluate it in."""


@dataclass(kw_only=True)
class EvalConfig(PromptOptions, SamplingOptions, BackendOptions, SandboxLimits):
    model: list[str] = field(metadata=FREE)
    """Models to evaluate, repeatable: a local directory or Hub id, optionally labelled as NAME=PATH."""
    data: str = field(metadata=FREE)
    """Benchmark: a local .jsonl/.json/.parquet/.csv file or a Hub dataset name[:config][@split]."""
    out: str = field(default="results.json", metadata=FREE)
    """Summary JSON; per-problem results (<name>.problems.jsonl), each model's traces and a PNG go beside it."""
    workers: int | None = field(default=None, metadata=FREE)
    """Processes grading answers with math-verify (default: every core)."""
    verify_timeout: float = field(default=5.0, metadata=FREE)
    """Seconds math-verify may spend on one answer; a timeout counts as not correct and as ungraded."""
    language: str = field(default="auto", metadata=FREE)
    """Language the completions should be written in, for the mixed-language rate ('auto': the prompt's)."""
    modes: list[str] = field(default_factory=list, metadata=FREE)
    """Evaluate each hybrid-thinking model in these modes side by side, a row each: thinking, non-thinking (its template's switch, enable_thinking or thinking, set over --chat-template-kwargs); default: the template as it renders."""
    overwrite: bool = field(default=False, metadata=FREE)
    """Sample again instead of reusing (or resuming) each model's traces from an earlier run."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.model), "model", "needs at least one model (repeat --model for a side-by-side table)")
        labels = [label for label, _ in self.models]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{flag('model')}: two models share the name "
                              f"{next(x for x in labels if labels.count(x) > 1)!r}; label them as NAME=PATH")
        allowed = "labels may use letters, digits, '.', '_' and '-' (other characters count as '-')"
        for spec in self.model:
            name, sep, _ = spec.partition("=")
            if sep and "/" in name and not Path(spec).expanduser().exists():
                raise ConfigError(f"{flag('model')} {spec}: the label {name!r} holds a '/' (or, as a path, it does "
                                  f"not exist); {allowed}")
        seen: dict[str, str] = {}
        for label in labels:
            other = seen.setdefault(slug(label), label)
            if other != label:
                raise ConfigError(f"{flag('model')}: the labels {other!r} and {label!r} would share the files "
                                  f"{Path(self.out).stem}.{slug(label)}.*; give labels that differ once {allowed}")
        require(bool(self.data), "data", "is required")
        require(self.out.endswith(".json"), "out", f"must be a .json file such as results.json (got {self.out!r})")
        require(self.workers is None or self.workers >= 1, "workers", "must be at least 1")
        require(self.verify_timeout > 0, "verify_timeout", "must be positive")
        for mode in self.modes:
            one_of(mode, "modes", MODES)
        require(len(set(self.modes)) == len(self.modes), "modes", "names a mode twice")

    @property
    def models(self) -> list[tuple[str, str]]:
        """(label, model) pairs: NAME=PATH, or the path's last component as its name."""
        pairs = []
        for spec in self.model:
            name, sep, path = spec.partition("=")
            if not sep or not name or "/" in name:
                path, name = spec, Path(spec.rstrip("/")).name or spec
            pairs.append((name, path))
        return pairs


@dataclass
class ModelScores:
    model: str
    path: str
    problems: int
    samples: int
    pass_at_1: float
    pass_at_k: dict[str, float]
    cons_at_n: float
    mean_completion_tokens: float
    truncated: float
    """Share of samples cut by the length limit (finish_reason 'length')."""
    mixed_language: float
    """Share of samples whose reasoning or answer is not in the target language."""
    ungraded: float
    """Share of samples the grader could not decide (no reference, timeout)."""
    traces: str
    generate_s: float
    grade_s: float
    new_samples: int = 0
    """Samples drawn by this run (0 when earlier samples were reused)."""
    failed_prompts: list[dict[str, str]] = field(default_factory=list)
    """Problems whose sampling failed after its retries (rerun to retry them): {prompt_id, error}."""
    mode: str | None = None
    """The thinking mode sampled in (--modes), None for the template as it renders."""

    @property
    def row(self) -> str:
        """The row's name: the model, and its mode when --modes chose one ('student:non-thinking')."""
        return f"{self.model}:{self.mode}" if self.mode else self.model


@dataclass
class EvalResult:
    output: str
    benchmark: str
    n: int
    scores: list[ModelScores] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"output": self.output, "benchmark": self.benchmark, "n": self.n,
                "models": {s.row: dict(s.__dict__) for s in self.scores}}

    @classmethod
    def load(cls, path: str | Path) -> EvalResult:
        """The result an earlier eval wrote to `path` (its --out)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(output=str(path), benchmark=data["benchmark"], n=data["n"],
                       scores=[ModelScores(**{**scores, "new_samples": 0, "failed_prompts": []})
                               for scores in data["models"].values()])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise OutputError(f"{path} is unreadable ({exc}); pass --overwrite to evaluate again") from None

    @property
    def failure(self) -> IncompleteRun | None:
        """Why the eval is not complete: problems whose sampling failed for some model (None when none did)."""
        failed = [(s.model, f) for s in self.scores for f in s.failed_prompts]
        if not failed:
            return None
        model, first = failed[0]
        return IncompleteRun(len(failed), sum(s.problems + len(s.failed_prompts) for s in self.scores),
                             sum(s.new_samples for s in self.scores),
                             f"{model}: {first['prompt_id']}: {first['error']}")

    def table(self) -> str:
        ks = list(self.scores[0].pass_at_k) if self.scores else []
        modes = any(s.mode for s in self.scores)
        headers = ["model", *(["mode"] if modes else []), "pass@1", *(f"pass@{k}" for k in ks), f"cons@{self.n}",
                   "tokens", "truncated", "mixed lang", "ungraded"]
        rows = [[s.model, *([s.mode or "-"] if modes else []), round(s.pass_at_1, 4), *(round(s.pass_at_k[k], 4) for k in ks), round(s.cons_at_n, 4),
                 round(s.mean_completion_tokens, 1), f"{s.truncated:.1%}", f"{s.mixed_language:.1%}",
                 f"{s.ungraded:.1%}"] for s in self.scores]
        return markdown_table(headers, rows)

    def format(self) -> str:
        problems = self.scores[0].problems if self.scores else 0
        return (f"{self.benchmark}: {problems} problems, n={self.n} samples each\n{self.table()}\n"
                f"results: {self.output} (per problem: {sidecar(self.output, 'problems.jsonl')})")


def pass_ks(n: int) -> list[int]:
    """The k of pass@k worth reporting for n samples: powers of two up to n, and n itself (k > 1)."""
    ks = [k for k in (2, 4, 8, 16, 32, 64, 128) if k < n]
    return [*ks, n] if n > 1 else []


def vote_key(answer: str | None) -> Any:
    """What a majority vote counts as 'the same answer': equal numbers (1/2 = 0.5), else the normalised text."""
    from distill.grading.normalisation import as_number, normalize_answer

    if answer is None:
        return None
    number = as_number(answer)
    return ("number", number[0]) if number is not None else ("text", normalize_answer(answer))


def slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-") or "model"


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Sample cfg.n completions per problem from every model, grade them and write the results."""
    out = check_writable(cfg.out)
    problems_path = sidecar(out, "problems.jsonl")
    # a mistyped path of a later model must not surface after the earlier ones were sampled
    # (a server, with --backend openai, names its models as it likes)
    missing = [path for _, path in cfg.models if cfg.backend != "openai" and looks_local(path)
               and not Path(path).expanduser().exists()]
    if missing:
        raise ModelError(f"--model {missing[0]}: no such directory; check the path (or give a Hub id such as "
                         "Qwen/Qwen2.5-1.5B)")
    for _, path in cfg.models:
        # checked for every model before the first is sampled (the backend would ask too, naming --teacher)
        refusal = cpu_attention_refusal(path) if cfg.backend == "vllm" else None
        if refusal is not None:
            raise ModelError(f"--model {path}: {refusal}; use --backend hf, or vLLM on a GPU")
        broken = _non_finite_weights(path) if cfg.backend != "openai" else None
        if broken:
            raise ModelError(f"--model {path}: {broken[0]} holds non-finite weights (nan or inf in {broken[1]!r}), "
                             "so every answer would be noise; retrain it (distill train stops a run that diverges)")
    runs = sampling_runs(cfg)  # a mode a model's template cannot take is refused before anything is sampled
    traces_of = {(run.label, run.mode): out.with_name(f"{out.name[:-len('.json')]}.{slug(run.label)}"
                                                      f"{'.' + run.mode if run.mode else ''}.traces.jsonl")
                 for run in runs}
    outputs = {"--out": out, "--out's problems file": problems_path, "--out's plot": out.with_suffix(".png"),
               **{f"the traces of --model {label}" + (f" ({mode})" if mode else ""): path
                  for (label, mode), path in traces_of.items()}}
    inputs = {"--data": cfg.data, "--tokenizer": cfg.tokenizer, **{f"--model {spec}": path
                                                                    for spec, (_, path) in zip(cfg.model, cfg.models)}}
    run = manifest(out)
    outputs["--out's manifest"] = run.path
    with claim(outputs, inputs, locked=("--out",)):
        state = run.resume(run_fingerprint(cfg), overwrite=cfg.overwrite, labels=DATA_DIGEST)
        saved = run.read() if state == COMPLETE else None
        # the models are free (one more --model reuses the others' samples): a complete eval of the same
        # models, none retrained since, has nothing left to do
        if saved is not None and saved.get("models") == cfg.model and saved.get("modes", []) == cfg.modes and \
                out.is_file() and not any(_changed_since(r.path, traces_of[r.label, r.mode]) for r in runs):
            log.info(nothing_to_do(str(out)))
            return EvalResult.load(out)
        result = _evaluate(cfg, out, problems_path, runs, traces_of)
        # written with the results: each model's samples keep their own manifest while the eval runs
        run.write(run_fingerprint(cfg), complete=result.failure is None, models=cfg.model, modes=cfg.modes)
        return result


@dataclass(frozen=True)
class SamplingRun:
    """One row of the table: a model, sampled in one mode (--modes) with these chat-template variables."""
    label: str
    path: str
    mode: str | None
    template_kwargs: str | None
    """--chat-template-kwargs of this row's sampling (JSON), the mode's switch set in it"""


def sampling_runs(cfg: EvalConfig) -> list[SamplingRun]:
    """Every (model, mode) to sample, in table order; ModelError for a model whose template has no thinking
    switch when --modes asks for modes (asking a one-mode template to think or not would change nothing)."""
    runs = []
    for label, path in cfg.models:
        if not cfg.modes:
            runs.append(SamplingRun(label, path, None, cfg.chat_template_kwargs))
            continue
        # a served model's template is its tokenizer's: --tokenizer, else the served name as a local path or Hub id
        source = cfg.tokenizer if cfg.backend == "openai" and cfg.tokenizer not in (None, "none") else path
        switch = thinking_switch(load_tokenizer(source), cfg.template_kwargs)
        if switch is None:
            raise ModelError(f"--model {path}: its chat template has no thinking switch distill knows (enable_thinking, "
                             "thinking; found by rendering it both ways), so --modes cannot put it in "
                             f"{' or '.join(cfg.modes)} mode; evaluate it without --modes")
        for mode in cfg.modes:
            kwargs = {**cfg.template_kwargs, switch: mode == "thinking"}
            runs.append(SamplingRun(label, path, mode, json.dumps(kwargs, sort_keys=True)))
    return runs


def manifest(out: str | Path) -> RunManifest:
    """The run manifest of an eval (`results.json` -> `results.run.json`)."""
    return RunManifest.beside(out, "eval")


DATA_DIGEST = {"data_sha256": "the content of --data"}


def run_fingerprint(cfg: EvalConfig) -> dict[str, Any]:
    """The eval's must-match options and its benchmark by content (a local file can move; a Hub id is its name)."""
    local = Path(cfg.data).expanduser()
    return fingerprint(cfg, data_sha256=file_digest(local) if local.is_file() else cfg.data)


def _evaluate(cfg: EvalConfig, out: Path, problems_path: Path, runs: list[SamplingRun],
              traces_of: dict[tuple[str, str | None], Path]) -> EvalResult:
    result = EvalResult(output=str(out), benchmark=cfg.data, n=cfg.n)
    per_problem: list[dict[str, Any]] = []
    for run in runs:
        label, path, traces = run.label, run.path, traces_of[run.label, run.mode]
        started = time.perf_counter()
        sampled = _sample(cfg, path, traces, run.template_kwargs)
        generated = time.perf_counter()
        scores, problems = _grade(cfg, label, path, traces)
        if run.mode:
            scores.mode = run.mode
            label = scores.row
            for problem in problems:
                problem["mode"] = run.mode
        scores.new_samples, scores.failed_prompts = sampled.new_records, sampled.failed_prompts
        scores.generate_s = round(generated - started, 2)
        scores.grade_s = round(time.perf_counter() - generated, 2)
        result.scores.append(scores)
        per_problem.extend(problems)
        log.info("%s: pass@1 %.4f, cons@%d %.4f over %d problems", label, scores.pass_at_1, cfg.n,
                 scores.cons_at_n, scores.problems)
    if problems_path.exists():
        problems_path.unlink()
    with JsonlWriter(problems_path) as writer:
        writer.write(per_problem)
    write_json(out, result.to_dict())
    save_bar(out.with_suffix(".png"), {s.row: s.pass_at_1 for s in result.scores},
             title=f"pass@1 on {Path(cfg.data).name} (n={cfg.n})", xlabel="pass@1")
    return result


def _sample(cfg: EvalConfig, model: str, traces: Path, template_kwargs: str | None) -> GenerateSummary:
    """Generate (or resume) the model's traces with the eval's prompt and sampling options: generate's
    own resume contract decides whether the samples of an earlier run are complete, resumable or
    refused (other settings); complete ones are reused without loading the model."""
    changed = None if cfg.overwrite else _changed_since(model, traces)
    if changed is not None:
        raise OutputError(f"{traces} holds samples of {model} drawn before {changed} last changed (a retrained "
                          "model?); pass --overwrite to sample it again")
    try:
        return generate(project(GenerateConfig, cfg, prompts=cfg.data, teacher=model, out=str(traces),
                                overwrite=cfg.overwrite, chat_template_kwargs=template_kwargs))
    except OutputError as exc:
        raise OutputError(f"{exc} (the eval keeps each model's samples in {traces}; pass --overwrite to "
                          "sample again)") from None


def _non_finite_weights(model: str) -> tuple[str, str] | None:
    """(file, tensor) of the first nan or inf in a local model's safetensors weights, if any."""
    import torch
    from safetensors import safe_open

    root = Path(model).expanduser()
    for file in sorted(root.glob("*.safetensors")) if root.is_dir() else []:
        with safe_open(str(file), framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensor = weights.get_tensor(name)
                if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                    return file.name, name
    return None


def _changed_since(model: str, traces: Path) -> Path | None:
    """A file of the local model directory modified after `traces` was last written, if any: samples
    of an older version of the model must not be reused or resumed."""
    root = Path(model).expanduser()
    if not traces.exists() or not root.is_dir():
        return None
    written = traces.stat().st_mtime_ns
    return next((p for p in sorted(root.iterdir()) if p.is_file() and p.stat().st_mtime_ns > written), None)


def _grade(cfg: EvalConfig, label: str, model: str, traces: Path) -> tuple[ModelScores, list[dict[str, Any]]]:
    from distill.checks.language import LanguageCheck, LanguageOptions
    from distill.filter.config import default_workers
    from distill.grading.extraction import extract_answer
    from distill.grading_pool import GradingPool
    from distill.shape import CANONICAL

    # the traces are generate's, so in the canonical shape; the language check is the filter's with its defaults
    shape, language = CANONICAL, LanguageCheck(LanguageOptions(language=cfg.language))
    records = [record for _, record in read_traces(traces)]
    with GradingPool(cfg.workers or default_workers(), timeout=cfg.verify_timeout,
                     sandbox_limits=SandboxLimits.of(cfg)) as pool:
        grades = pool.grade_many((shape.answer(r), r["reference"]) for r in records)
    by_prompt: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        by_prompt.setdefault(record["prompt_id"], []).append(index)
    problems, counts = [], []
    majority_right = 0
    for prompt_id, indices in by_prompt.items():
        indices.sort(key=lambda i: records[i]["sample"])
        verdicts = [grades[i].verdict for i in indices]
        answers = [extract_answer(shape.answer(records[i])) for i in indices]
        keys = [vote_key(a) for a in answers]
        winner, votes = majority_vote(keys)
        voted = next((verdicts[j] for j, key in enumerate(keys) if winner is not None and key == winner), False)
        majority_right += voted is True
        correct = sum(v is True for v in verdicts)
        counts.append((len(indices), correct))
        problems.append({
            "model": label, "prompt_id": prompt_id, "reference": records[indices[0]]["reference"],
            "n": len(indices), "correct": correct, "pass@1": correct / len(indices),
            "majority_answer": answers[keys.index(winner)] if winner is not None else None,
            "majority_votes": votes, "majority_correct": voted is True, "answers": answers, "verdicts": verdicts,
            "finish_reasons": [records[i]["finish_reason"] for i in indices],
            "completion_tokens": [records[i].get("completion_tokens") for i in indices],
        })
    samples = len(records)
    tokens = [r["completion_tokens"] for r in records if isinstance(r.get("completion_tokens"), int)]
    mixed = sum(language.run(r) is False for r in records)
    scores = ModelScores(
        model=label, path=model, problems=len(problems), samples=samples,
        pass_at_1=mean_pass_at_k(counts, 1),
        # a problem with fewer than k samples (a prompt that failed to generate) has no pass@k
        pass_at_k={str(k): mean_pass_at_k([c for c in counts if c[0] >= k], k) for k in pass_ks(cfg.n)},
        cons_at_n=majority_right / len(problems) if problems else 0.0,
        mean_completion_tokens=sum(tokens) / len(tokens) if tokens else 0.0,
        truncated=sum(r["finish_reason"] == "length" for r in records) / samples if samples else 0.0,
        mixed_language=mixed / samples if samples else 0.0,
        ungraded=sum(g.verdict is None for g in grades) / samples if samples else 0.0,
        traces=str(traces), generate_s=0.0, grade_s=0.0)
    return scores, problems
