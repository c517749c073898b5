"""`distill demo`: the whole pipeline, offline, on a CPU, in a few minutes.

No real teacher can be downloaded here, so the demo first trains a tiny one on a synthetic,
verifiable task (`distill.demo.task`: add four digits in three written steps) whose training
traces carry the failure modes the filter exists for, at stated rates. Then the real stages run
on it, through the same library functions as the commands:

    generate (n samples per prompt) → filter (every check) → train a smaller student on the kept
    traces, and a second one on all traces → eval the teacher and both students on held-out problems

Everything is seeded and written under --out; the figures are whatever the run measures.

A finished or interrupted demo in --out is never resumed or replaced silently: the run stops with
one error line unless --overwrite is given, which deletes the earlier run first (only a directory
the demo itself created, recognised by its `.distill-demo` marker, is ever deleted).
"""

from __future__ import annotations

import json
import logging
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distill.config import FREE, MUST_MATCH, Options, config_dict, require
from distill.demo import task
from distill.demo.models import CHATML_TEMPLATE, Shape, save_initial_model, train_teacher
from distill.errors import DistillError, OutputError
from distill.filter.config import default_workers
from distill.report import markdown_table, new_figure, save_curves
from distill.runs import claim
from distill.shards import concatenate, shard_configs
from distill.tiny import build_tokenizer
from distill.traces import JsonlWriter, write_json

log = logging.getLogger("distill.demo")

MARKER = ".distill-demo"
"""Written first into --out: the only kind of directory --overwrite deletes."""
TEMPLATE = "{problem}"
"""The prompt is the problem alone ('Compute 6 + 7 + 4 + 4.'): every model here learns the task from
its traces, and an instruction line would only add tokens to train on."""
# Sampling from the models' own distribution: at the R1 settings (temperature 0.6, top-p 0.95) a
# habit a tiny model learned at 10 % falls out of the nucleus and disappears, which would hide both
# the teacher's faults and what a student picked up from them.
TEMPERATURE = 1.0
TOP_P = 1.0
MAX_TOKENS = 160
"""Sampling limit: a clean trace takes about 50 tokens, each loop line 17, so loops of 7 lines or more
run into it."""
# The loop line has 11 words; the filter's default (a 20-word span 4 times) is sized for R1's
# paragraph-long loops, so the demo looks for a 10-word span 3 times.
REPETITION_NGRAM = 10
REPETITION_MAX_COUNT = 3
LEARNING_RATE = 3e-3
"""Tiny models from random weights learn fast at a rate a hundred times the 1e-5 of real students."""
VOCAB_SIZE = 600
STUDENT_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_end|>", "<|im_start|>", "<|object_ref_start|>", "<|object_ref_end|>")
"""Qwen2.5's first five added tokens, in the order of the teacher's (R1) special tokens they stand beside."""
GENERATE_BATCH = 100
"""hf backend: prompts per generate() call (× n rows)."""
STUDENT_MAX_TOKENS = 256
"""distill train --max-seq-len of the students: the longest trace (160 tokens and the prompt) fits. Each
optimizer step is two packs of half the batch (--batch-tokens, --grad-accum 2): packed rows pay attention
over the whole row on a CPU (no flash-attention), so 384-token packs train ~20 % faster than 768-token ones."""
RL_ROLLOUTS = 8
"""--full: rollouts per prompt (GRPO's group)."""
RL_PROMPTS_PER_STEP = 2
"""--full: prompts (groups) per optimizer step of every rl run."""
GRPO_LR = 1e-4
"""--full: GRPO's learning rate (1e-3 traded accuracy for the language reward: 57 % → 1 %)."""
ON_POLICY_LR = 5e-4
"""--full: on-policy distillation's learning rate (at 1e-4 the divergence of student-all fell only
0.089 → 0.071 in 100 steps)."""


@dataclass(frozen=True)
class Scale:
    """How big everything is: the full demo, or the quick one CI runs."""
    teacher_problems: int
    teacher_steps: int
    teacher_batch: int
    teacher: Shape
    student: Shape
    student_tokens: int
    """Training budget of each student in tokens (prompt + target): both get the same, so what differs
    between them is the data they learn from, not how long they learn."""
    student_batch_tokens: int
    """Tokens per optimizer step of a student (in two packs of half as many)."""
    prompts: int
    heldout: int
    rl_steps: int
    """--full: optimizer steps of each GRPO and on-policy run (RL_PROMPTS_PER_STEP × RL_ROLLOUTS rollouts a step)."""


# The teacher's accuracy climbs steeply with its steps (three layers, seed 0: 12 % after 300 steps of 16
# traces, 22 % after 400, 54 % after 600; twice the rate did worse), so it gets 700, past the climb on every
# seed tried (52-71 % on seeds 0-2). Two layers learned the task as well as three, for three quarters of the
# compute; so do the students, which stay smaller than the teacher.
FULL = Scale(teacher_problems=3000, teacher_steps=700, teacher_batch=16,
             teacher=Shape(hidden=128, layers=2, intermediate=384),
             student=Shape(hidden=96, layers=2, intermediate=384),
             student_tokens=800_000, student_batch_tokens=768, prompts=1600, heldout=200, rl_steps=200)
QUICK = Scale(teacher_problems=800, teacher_steps=300, teacher_batch=16,
              teacher=Shape(hidden=96, layers=2, intermediate=384),
              student=Shape(hidden=64, layers=2, intermediate=256),
              student_tokens=40_000, student_batch_tokens=768, prompts=128, heldout=32, rl_steps=4)


@dataclass(kw_only=True)
class DemoConfig(Options):
    out: str = field(default="demo", metadata=FREE)
    """Directory for everything the demo writes: data, models, traces, the stages' reports and plots, demo.json, demo.md."""
    quick: bool = field(default=False, metadata=MUST_MATCH)
    """Reduced sizes (about a minute; what CI runs): the pipeline runs end to end, but the models learn little."""
    full: bool = field(default=False, metadata=MUST_MATCH)
    """Also the other half of the R1 recipe after SFT (about two minutes more): GRPO with the filter's rule rewards
    (accuracy, format, language) on both students, and on-policy distillation from the teacher on student-all;
    three more rows on the same held-out problems."""
    seed: int = field(default=0, metadata=MUST_MATCH)
    """Seed of the problems, the faults, every model's weights, the sampling and the data order."""
    overwrite: bool = field(default=False, metadata=FREE)
    """Delete an earlier demo run in --out and start again (without it, an existing run is an error)."""
    wrong_rate: float = field(default=0.1, metadata=MUST_MATCH)
    """Share of the teacher's training traces with an arithmetic slip carried on to a wrong answer."""
    mixed_language_rate: float = field(default=0.1, metadata=MUST_MATCH)
    """Share of the teacher's training traces with a Chinese sentence inside the English reasoning."""
    loop_rate: float = field(default=0.1, metadata=MUST_MATCH)
    """Share of the teacher's training traces that re-check one step 3 to 10 times ('Wait, let me check that again.')."""
    prompts: int | None = field(default=None, metadata=MUST_MATCH)
    """Problems the teacher is sampled on (default: 1,600; 128 with --quick)."""
    heldout: int | None = field(default=None, metadata=MUST_MATCH)
    """Held-out problems the teacher and both students are evaluated on (default: 200; 32 with --quick)."""
    n: int = field(default=2, metadata=MUST_MATCH)
    """Samples per prompt from the teacher (distill generate --n). The task has one correct, clean trace per
    problem, which the filter keeps once, so more problems with fewer samples each give the kept student more
    to learn from than the reverse (1,600 × 2 rather than 800 × 4: 1,240 kept traces instead of 680)."""
    eval_n: int = field(default=2, metadata=MUST_MATCH)
    """Samples per held-out problem and model (distill eval --n)."""
    threads: int = field(default=1, metadata=FREE)
    """torch threads: models this small gain little from more, and lose much when the cores are shared."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.out), "out", "must name a directory such as demo/")
        for name in ("wrong_rate", "mixed_language_rate", "loop_rate"):
            value = getattr(self, name)
            require(0 <= value < 1, name, f"must be in [0, 1) (got {value})")
        faulty = self.wrong_rate + self.mixed_language_rate + self.loop_rate
        require(faulty < 1, "loop_rate", f"with --wrong-rate and --mixed-language-rate must add up to less than 1 "
                                         f"(got {faulty:g}): some traces must be clean")
        require(self.prompts is None or self.prompts >= 1, "prompts", f"must be at least 1 (got {self.prompts})")
        require(self.heldout is None or self.heldout >= 1, "heldout", f"must be at least 1 (got {self.heldout})")
        require(self.n >= 1, "n", f"must be at least 1 (got {self.n})")
        require(self.eval_n >= 1, "eval_n", f"must be at least 1 (got {self.eval_n})")
        require(self.threads >= 1, "threads", f"must be at least 1 (got {self.threads})")
        problems = self.scale.teacher_problems + self.prompt_count + self.heldout_count
        require(problems <= task.DISTINCT_PROBLEMS, "prompts",
                f"and --heldout ask for more problems than exist: the teacher's {self.scale.teacher_problems:,} "
                f"+ {self.prompt_count:,} prompts + {self.heldout_count:,} held out > {task.DISTINCT_PROBLEMS:,}")

    @property
    def scale(self) -> Scale:
        return QUICK if self.quick else FULL

    @property
    def prompt_count(self) -> int:
        return self.prompts if self.prompts is not None else self.scale.prompts

    @property
    def heldout_count(self) -> int:
        return self.heldout if self.heldout is not None else self.scale.heldout

    @property
    def rates(self) -> dict[str, float]:
        return {"wrong": self.wrong_rate, "mixed_language": self.mixed_language_rate, "loop": self.loop_rate}


@dataclass
class ModelRow:
    """One model of the demo's table: what it was trained on and what eval measured."""
    model: str
    path: str
    parameters: int
    trained_on: str
    train_examples: int
    """Examples the model was trained on (the teacher: its synthetic traces)."""
    accuracy: float
    """pass@1 on the held-out problems (distill eval)."""
    mixed_language: float
    """Share of samples whose reasoning or answer is not in the prompt's language (distill eval)."""
    loops: float
    """Share of samples with at least one re-check line ('Wait, …'): a loop started, finished or not."""
    truncated: float
    """Share of samples cut by the sampling limit (distill eval)."""
    mean_tokens: float
    train_s: float
    eval_s: float


@dataclass
class DemoResult:
    """What `run_demo` returns and writes to demo.json: the table, the filter's counts, the time per phase."""
    out: str
    models: list[ModelRow]
    stage_s: dict[str, float]
    """Wall-clock seconds per phase: data, teacher, generate, filter, train, eval."""
    stage_cpu_s: dict[str, float]
    """CPU seconds (user + system) per phase, the worker processes' included (their start-up is not: it is
    in the whole command's CPU time that benchmarks/bench_demo.py measures)."""
    total_s: float
    traces: dict[str, Any]
    """What generate produced and the filter kept: counts, finish reasons, reject reasons."""
    sampling: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["models"] = {row.model: asdict(row) for row in self.models}
        return data

    def table(self) -> str:
        headers = ["model", "trained on", "params", "accuracy", "mixed language", "loops", "truncated", "tokens",
                   "train s", "eval s"]
        rows = [[m.model, m.trained_on, f"{m.parameters / 1e6:.2f}M", f"{m.accuracy:.1%}", f"{m.mixed_language:.1%}",
                 f"{m.loops:.1%}", f"{m.truncated:.1%}", round(m.mean_tokens, 1), round(m.train_s, 1),
                 round(m.eval_s, 1)] for m in self.models]
        return markdown_table(headers, rows)

    def stage_line(self) -> str:
        stages = " · ".join(f"{name} {seconds:.0f} s" for name, seconds in self.stage_s.items())
        return f"time: {stages} · total {self.total_s:.0f} s"

    def filter_line(self) -> str:
        reasons = ", ".join(f"{check} {count:,}" for check, count in self.traces["rejected_by"].items()) or "none"
        return (f"filter: kept {self.traces['kept']:,} of {self.traces['generated']:,} teacher traces "
                f"({self.traces['prompts']:,} prompts × {self.traces['n']}); rejected by {reasons} "
                "(a trace may fail several checks)")

    def format(self) -> str:
        heldout = self.traces["heldout"]
        return "\n".join([
            f"distill demo: {heldout:,} held-out problems × {self.sampling['eval_n']} samples per model, sampled at "
            f"temperature {self.sampling['temperature']:g}, top-p {self.sampling['top_p']:g}, at most "
            f"{self.sampling['max_tokens']} tokens",
            self.table(), "", self.filter_line(), self.stage_line(),
            f"reports and plots: {self.out} (summary: {self.files['summary']}, table: {self.files['markdown']})",
            f"look at the traces, the rejects and every model's answers: distill view {self.out}"])

    def markdown(self) -> str:
        return "\n".join([
            "# distill demo", "",
            f"Teacher trained on synthetic traces with {self.config['wrong_rate']:.0%} wrong answers, "
            f"{self.config['mixed_language_rate']:.0%} mixed-language and {self.config['loop_rate']:.0%} looping; "
            "students trained on the filter's kept traces and on all well-formed traces; every model evaluated "
            f"on {self.traces['heldout']:,} held-out problems × {self.sampling['eval_n']} samples "
            f"(temperature {self.sampling['temperature']:g}, top-p {self.sampling['top_p']:g}, "
            f"at most {self.sampling['max_tokens']} tokens)."
            + (" With --full, the students then trained further with `distill rl`: GRPO with the filter's rule "
               "rewards (accuracy, format, language consistency; rows +grpo) and on-policy distillation from the "
               "teacher (reverse KL per token; row +on-policy)." if self.config.get("full") else ""), "",
            self.table(), "", self.filter_line() + ".", "", self.stage_line() + ".", ""])


# ---------------------------------------------------------------- the run


def prepare_out(out: Path, *, overwrite: bool) -> Path:
    """Refuse an existing run (or a directory that is not the demo's) unless --overwrite; then start it empty."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give a directory such as demo/")
    if out.is_dir() and any(out.iterdir()):
        ours = (out / MARKER).exists()
        if not ours:
            raise OutputError(f"--out {out} exists and holds files the demo did not write; give a new or empty "
                              "directory (--overwrite only ever deletes an earlier demo run)")
        if not overwrite:
            state = "a finished" if (out / "demo.json").exists() else "an unfinished"
            raise OutputError(f"--out {out} already holds {state} demo run; pass --overwrite to delete it and "
                              "run again, or choose another --out")
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("written by distill demo; --overwrite deletes this directory\n")
    except OSError as exc:
        raise OutputError(f"cannot write --out {out}: {exc.strerror}; choose a writable directory") from None
    return out


def run_demo(cfg: DemoConfig) -> DemoResult:
    """Train a tiny faulty teacher, run generate → filter → train (kept and all) → eval, and report."""
    with claim({"--out": Path(cfg.out)}, {}, directories=("--out",)):
        out = prepare_out(Path(cfg.out), overwrite=cfg.overwrite)
        with torch_threads(cfg.threads):
            return _run(cfg, out)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch threads, then restore the previous number (a notebook goes on)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its children that have ended (the students' processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class _Clock:
    """Wall-clock and CPU seconds per phase, and the numbered progress line that opens each. CPU time
    is what a phase costs whatever else runs on the machine (wall time on a shared one is not)."""

    def __init__(self, full: bool = False) -> None:
        self.phases = ("data", "teacher", "generate", "filter", "train", *(("rl",) if full else ()), "eval")
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.workers: Workers | None = None
        self._phase: str | None = None
        self._since = self.started
        self._cpu_since = self._cpu()

    def _cpu(self) -> float:
        return cpu_seconds() + (self.workers.cpu_s if self.workers is not None else 0.0)

    def start(self, phase: str, message: str) -> None:
        self.stop()
        self._phase, self._since, self._cpu_since = phase, time.perf_counter(), self._cpu()
        log.info("[%d/%d] %s: %s", self.phases.index(phase) + 1, len(self.phases), phase, message)

    def stop(self) -> None:
        if self._phase is not None:
            self.seconds[self._phase] = round(time.perf_counter() - self._since, 2)
            self.cpu[self._phase] = round(self._cpu() - self._cpu_since, 2)
            self._phase = None

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self.started, 2)


@dataclass
class DemoModels:
    """The demo's data and models before the pipeline runs: what `build_offline_models` returns."""
    teacher: Path
    """The trained teacher (R1-style chat template)."""
    student: Path
    """Random initial weights of the student (Qwen2.5-style chat template), to fine-tune with distill train."""
    teacher_data: Path
    prompts: Path
    """Problems to sample the teacher on (id, problem, answer)."""
    heldout: Path
    """Held-out problems to evaluate on (id, problem, answer)."""
    teacher_examples: int
    teacher_params: int
    student_params: int
    teacher_train_s: float


def _make_data(cfg: DemoConfig, out: Path) -> tuple[list[dict[str, Any]], DemoModels]:
    """Problem files, the teacher's training traces, both tokenizers and the initial weights."""
    scale = cfg.scale
    problems = task.split_problems(cfg.seed, {"teacher": scale.teacher_problems, "prompts": cfg.prompt_count,
                                              "heldout": cfg.heldout_count})
    records = list(task.teacher_records(problems["teacher"], cfg.rates, template=TEMPLATE, seed=cfg.seed))
    models = DemoModels(teacher=out / "teacher", student=out / "students" / "init",
                        teacher_data=out / "data" / "teacher-train.jsonl", prompts=out / "data" / "prompts.jsonl",
                        heldout=out / "data" / "heldout.jsonl", teacher_examples=len(records), teacher_params=0,
                        student_params=0, teacher_train_s=0.0)
    _write_jsonl(models.teacher_data, records)
    _write_jsonl(models.prompts, task.problem_rows(problems["prompts"]))
    _write_jsonl(models.heldout, task.problem_rows(problems["heldout"]))
    # the tokenizers learn the task's text: the prompts, the reasoning and the foreign sentences of the faults,
    # and the role names the students' ChatML template writes as text (one token each, as in Qwen's
    # vocabulary, instead of the ten single letters that would otherwise start every example)
    corpus = [r["completion"] for r in records] + [r["messages"][0]["content"] for r in records] \
        + ["user\nassistant\n"] * 100
    teacher_tokenizer = build_tokenizer("r1", corpus, VOCAB_SIZE, digits=True)
    models.teacher_params = save_initial_model(models.teacher, teacher_tokenizer, "r1", scale.teacher, seed=cfg.seed)
    # the students are Qwen2.5-style (ChatML template), the teacher R1-style: as in the real recipe, where
    # R1-Distill-Qwen renamed Qwen2.5's added tokens and kept its base vocabulary, both learn one vocabulary
    # from one corpus behind five special tokens, so the teacher can score a student's tokens id by id
    # (on-policy distillation, --full); the students' end of turn has the id of the teacher's end of
    # sentence, so the teacher scores stopping as stopping
    student_tokenizer = build_tokenizer("qwen", corpus, VOCAB_SIZE, digits=True, template=CHATML_TEMPLATE,
                                        special=STUDENT_SPECIAL_TOKENS)
    models.student_params = save_initial_model(models.student, student_tokenizer, "qwen", scale.student,
                                               seed=cfg.seed + 1)
    return records, models


def _train_teacher(cfg: DemoConfig, models: DemoModels, records: list[dict[str, Any]],
                   workers: Workers | None = None) -> None:
    """Train the teacher in this process, or in all `workers` together."""
    scale = cfg.scale
    started = time.perf_counter()
    options = dict(steps=scale.teacher_steps, batch_size=scale.teacher_batch, lr=LEARNING_RATE, seed=cfg.seed,
                   log_every=max(1, scale.teacher_steps // 8))
    if workers:
        with tempfile.TemporaryDirectory(prefix="distill-demo-") as scratch:
            rendezvous = str(Path(scratch) / "rendezvous")
            losses = workers.run([(_teacher_process, rank, len(workers), rendezvous, models.teacher, records, options)
                                  for rank in range(len(workers))])[0]
    else:
        losses = train_teacher(models.teacher, records, **options)
    models.teacher_train_s = round(time.perf_counter() - started, 2)
    save_curves(models.teacher / "loss.png", {"train loss": ([s for s, _ in losses], [v for _, v in losses])},
                title="demo teacher", xlabel="step", ylabel="loss (per trained token)")
    write_json(models.teacher / "train.json", {"examples": len(records), "steps": scale.teacher_steps,
                                               "batch_size": scale.teacher_batch, "lr": LEARNING_RATE,
                                               "final_loss": losses[-1][1], "elapsed_s": models.teacher_train_s,
                                               "fault_rates": cfg.rates, "losses": losses})


def build_offline_models(directory: str | Path, *, quick: bool = True, seed: int = 0, threads: int = 1) -> DemoModels:
    """The demo's teacher trained on its synthetic task (about 15 s with `quick`), a random student,
    and prompt and benchmark files of the task, in `directory`: everything the pipeline needs
    offline (the notebook's tiny mode runs on it). Prompts are rendered with the template '{problem}'."""
    cfg = DemoConfig(out=str(directory), quick=quick, seed=seed, threads=threads)
    out = Path(directory)
    with torch_threads(cfg.threads):
        records, models = _make_data(cfg, out)
        _train_teacher(cfg, models, records)
    return models


def _run(cfg: DemoConfig, out: Path) -> DemoResult:
    clock = _Clock(cfg.full)
    workers = clock.workers = Workers(2, cfg.threads) if default_workers() >= 2 else None
    try:
        result = _pipeline(cfg, out, clock, workers)
    except BaseException:
        if workers is not None:
            workers.close(stop=True)  # a teacher process may be waiting for one that failed
        raise
    if workers is not None:
        workers.close()
    return result


def _pipeline(cfg: DemoConfig, out: Path, clock: _Clock, workers: Workers | None) -> DemoResult:
    from distill.eval import EvalConfig, evaluate
    from distill.filter import FilterConfig, filter_traces
    from distill.generate import GenerateConfig
    from distill.train import TrainConfig

    scale = cfg.scale
    paths = {name: out / rel for name, rel in (
        ("traces", "traces.jsonl"), ("kept", "kept.jsonl"), ("all", "all.jsonl"),
        ("student_kept", "students/kept"), ("student_all", "students/all"), ("eval", "eval/results.json"),
        ("summary", "demo.json"), ("markdown", "demo.md"), ("plot", "demo.png"))}

    rates = ", ".join(f"{name.replace('_', ' ')} {rate:.0%}" for name, rate in cfg.rates.items())
    clock.start("data", f"{scale.teacher_problems:,} synthetic teacher traces ({rates}), {cfg.prompt_count:,} "
                        f"prompts, {cfg.heldout_count:,} held-out problems → {out / 'data'}")
    records, models = _make_data(cfg, out)
    paths.update(teacher=models.teacher, prompts=models.prompts, heldout=models.heldout)
    teacher_params, student_params = models.teacher_params, models.student_params

    clock.start("teacher", f"training a {scale.teacher.describe(teacher_params)} on them: "
                           f"{scale.teacher_steps} steps of {scale.teacher_batch} traces"
                           + (f", in {len(workers)} processes" if workers else ""))
    _train_teacher(cfg, models, records, workers)
    teacher_train_s = models.teacher_train_s

    sampling = {"temperature": TEMPERATURE, "top_p": TOP_P, "max_tokens": MAX_TOKENS, "n": cfg.n,
                "eval_n": cfg.eval_n, "seed": cfg.seed}
    clock.start("generate", f"sampling the teacher {cfg.n} times on each of {cfg.prompt_count:,} prompts "
                            f"(hf backend, temperature {TEMPERATURE:g}, top-p {TOP_P:g}, at most {MAX_TOKENS} tokens)"
                            + (f", in {len(workers)} shards at the same time" if workers else ""))
    generated = generate_traces(GenerateConfig(
        prompts=str(paths["prompts"]), teacher=str(paths["teacher"]), out=str(paths["traces"]), backend="hf",
        template=TEMPLATE, n=cfg.n, temperature=TEMPERATURE, top_p=TOP_P, max_tokens=MAX_TOKENS, seed=cfg.seed,
        batch_size=GENERATE_BATCH), workers)
    log.info("generate: %s records, finish reasons %s", f"{generated['records']:,}", generated["finish_reasons"])

    clock.start("filter", "every check on the teacher's traces → kept.jsonl; the format check alone (what a "
                          "trainer can read at all) → all.jsonl")
    kept = filter_traces(FilterConfig(traces=str(paths["traces"]), out=str(paths["kept"]), seed=cfg.seed,
                                      repetition_ngram=REPETITION_NGRAM, repetition_max_count=REPETITION_MAX_COUNT))
    everything = filter_traces(FilterConfig(traces=str(paths["traces"]), out=str(paths["all"]), checks=["format"]))
    log.info("filter: kept %s of %s traces; %s well-formed", f"{kept.kept:,}", f"{kept.input_records:,}",
             f"{everything.kept:,}")
    if not kept.kept:
        raise DistillError(f"the filter kept none of the teacher's {kept.input_records:,} traces (see "
                           f"{kept.report_path}), so there is nothing to train a student on; lower the fault rates "
                           "or run the full demo instead of --quick")

    sizes = {name: epoch_tokens(paths[data], models.student) for name, data in (("kept", "kept"), ("all", "all"))}
    configs = {name: TrainConfig(
        kept=str(paths[name]), student=str(models.student), out=str(paths[f"student_{name}"]), method="full",
        max_seq_len=STUDENT_MAX_TOKENS, batch_tokens=scale.student_batch_tokens // 2, grad_accum=2,
        epochs=round(scale.student_tokens / sizes[name], 2),
        lr=LEARNING_RATE, warmup_ratio=0.05, seed=cfg.seed, save_steps=0, logging_steps=50) for name in sizes}
    clock.start("train", f"two {scale.student.describe(student_params)} students, {scale.student_tokens:,} tokens "
                         f"each: one on the {kept.kept:,} kept traces ({configs['kept'].epochs:g} epochs), one on all "
                         f"{everything.kept:,} ({configs['all'].epochs:g} epochs)"
                         + (", at the same time" if workers else ""))
    trained = train_students(configs, workers)

    labels = {"teacher": paths["teacher"], "student-kept": paths["student_kept"], "student-all": paths["student_all"]}
    improved: dict[str, Any] = {}
    if cfg.full:
        runs = rl_configs(cfg, paths, out / "rl")
        clock.start("rl", f"GRPO (rewards accuracy, format, language) on student-kept and student-all, on-policy "
                          f"distillation from the teacher on student-all: {scale.rl_steps} steps of "
                          f"{RL_PROMPTS_PER_STEP} prompts × {RL_ROLLOUTS} rollouts each" + (", two at a time" if workers else ""))
        improved = improve_students(runs, workers)
        labels = {"teacher": paths["teacher"], "student-kept": paths["student_kept"],
                  "student-kept+grpo": Path(runs["student-kept+grpo"].out), "student-all": paths["student_all"],
                  "student-all+grpo": Path(runs["student-all+grpo"].out),
                  "student-all+on-policy": Path(runs["student-all+on-policy"].out)}
    clock.start("eval", f"{', '.join(labels)} on {cfg.heldout_count:,} held-out problems × {cfg.eval_n} samples")
    results = evaluate(EvalConfig(
        model=[f"{label}={path}" for label, path in labels.items()], data=str(paths["heldout"]),
        out=str(paths["eval"]), backend="hf", template=TEMPLATE, n=cfg.eval_n, temperature=TEMPERATURE,
        top_p=TOP_P, max_tokens=MAX_TOKENS, seed=cfg.seed, batch_size=GENERATE_BATCH))
    clock.stop()

    scores = {s.model: s for s in results.scores}
    training = {"teacher": (teacher_params, f"{len(records):,} synthetic", len(records), teacher_train_s),
                "student-kept": (student_params, f"{kept.kept:,} kept", trained["kept"].data.examples,
                                 trained["kept"].elapsed_s),
                "student-all": (student_params, f"{everything.kept:,} all", trained["all"].data.examples,
                                trained["all"].elapsed_s)}
    for label, result in improved.items():
        method = "GRPO" if result.objective == "grpo" else "on-policy"
        training[label] = (student_params, f"+ {method}, {result.steps} steps",
                           result.steps * RL_PROMPTS_PER_STEP * RL_ROLLOUTS, round(result.elapsed_s, 2))
    rows = []
    for label, path in labels.items():
        params, trained_on, examples, train_s = training[label]
        score = scores[label]
        rows.append(ModelRow(model=label, path=str(path), parameters=params, trained_on=trained_on,
                             train_examples=examples, accuracy=score.pass_at_1, mixed_language=score.mixed_language,
                             loops=loop_share(score.traces), truncated=score.truncated, mean_tokens=score.mean_completion_tokens, train_s=train_s,
                             eval_s=round(score.generate_s + score.grade_s, 2)))
    result = DemoResult(
        out=str(out), models=rows, stage_s=dict(clock.seconds), stage_cpu_s=dict(clock.cpu),
        total_s=clock.total,
        traces={"prompts": cfg.prompt_count, "n": cfg.n, "heldout": cfg.heldout_count,
                "generated": generated["records"], "finish_reasons": generated["finish_reasons"],
                "well_formed": everything.kept, "kept": kept.kept, "rejected": kept.rejected,
                "rejected_by": {check: counts["rejected"] for check, counts in kept.data["checks"].items()
                                if counts["rejected"]}},
        sampling=sampling, config=config_dict(cfg),
        files={"summary": str(paths["summary"]), "markdown": str(paths["markdown"]), "plot": str(paths["plot"]),
               "teacher": str(paths["teacher"]), "traces": str(paths["traces"]),
               **({"generate_shards": generated["shards"]} if generated["shards"] else {}), "kept": str(paths["kept"]),
               "all": str(paths["all"]), "filter_report": kept.report_path, "all_report": everything.report_path,
               "student_kept": str(paths["student_kept"]), "student_all": str(paths["student_all"]),
               **{label: str(path) for label, path in labels.items() if "+" in label}, "eval": results.output})
    save_comparison(paths["plot"], rows)
    write_json(paths["summary"], result.to_dict())
    paths["markdown"].write_text(result.markdown(), encoding="utf-8")
    return result


def epoch_tokens(kept: Path, student: Path) -> int:
    """Tokens in one epoch over `kept` as distill train renders it for `student` (prompt + target)."""
    from transformers import AutoTokenizer

    from distill.traces import iter_jsonl
    from distill.train import probe_chat_format, render_example

    tokenizer = AutoTokenizer.from_pretrained(student)
    fmt = probe_chat_format(tokenizer)
    return sum(len(render_example(record, tokenizer, chat_format=fmt)["input_ids"]) for _, record in iter_jsonl(kept))


class Workers:
    """One spawned process per core (two), started with the run so that their imports (torch,
    transformers: seconds each) happen while the main process writes the data. They train the
    teacher together (DistributedDataParallel), generate a shard each, then train one student
    each: two cores do the work of one in half the time. A failure in one is raised here as it
    was raised there; a failed or interrupted demo stops them (`close(stop=True)`), and a killed
    one takes them with it (`_end_with_parent`)."""

    def __init__(self, count: int, threads: int):
        import multiprocessing

        from pebble import ProcessPool

        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch state forked mid-run
        level = logging.getLogger().getEffectiveLevel()
        self.pools = [ProcessPool(max_workers=1, initializer=_start_worker, initargs=(threads, level), context=context)
                      for _ in range(count)]
        for pool in self.pools:
            pool.schedule(int)  # starts the process, whose initializer imports what the stages need
        self.cpu_s = 0.0
        """CPU seconds the workers' tasks took (a worker's own CPU time counts in this process's only once it ends)."""

    def __len__(self) -> int:
        return len(self.pools)

    def run(self, calls: list[tuple[Any, ...]]) -> list[Any]:
        """calls[i] = (function, *args), run in worker i; the results in order. The first failure is raised
        at once (the teacher's processes wait for each other: the caller stops the other one)."""
        import concurrent.futures

        futures = [pool.schedule(_measured, args=call) for pool, call in zip(self.pools, calls)]
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        for future in futures:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        results = [future.result() for future in futures]
        self.cpu_s += sum(cpu for _, cpu in results)
        return [result for result, _ in results]

    def close(self, *, stop: bool = False) -> None:
        """Let the workers finish and end (or, with `stop`, end them now)."""
        for pool in self.pools:
            pool.stop() if stop else pool.close()
        for pool in self.pools:
            pool.join()


def _measured(function: Any, *args: Any) -> tuple[Any, float]:
    """function(*args) and the CPU seconds it took."""
    started = time.process_time()
    return function(*args), time.process_time() - started


def _end_with_parent() -> None:
    """Have the kernel end this worker when the demo's process ends, even killed with SIGKILL (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import os
    import signal

    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent ended before the call
        os._exit(1)


def _start_worker(threads: int, level: int) -> None:
    _end_with_parent()
    import torch

    import distill.train  # noqa: F401 - transformers' Trainer, accelerate: imported before the first task needs them

    torch.set_num_threads(threads)
    logging.basicConfig(level=level, stream=sys.stderr, datefmt="%H:%M:%S",
                        format="%(asctime)s %(name)s: %(message)s")


def _label_logs(label: str) -> None:
    """Prefix this worker's log lines with what it is doing ('[student-kept]')."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(f"%(asctime)s [{label}] %(name)s: %(message)s", datefmt="%H:%M:%S"))


def _teacher_process(rank: int, world_size: int, rendezvous: str, path: Path, records: list[dict[str, Any]],
                     options: dict[str, Any]) -> list[tuple[int, float]]:
    """One of the processes training the teacher together (see `train_teacher`)."""
    from datetime import timedelta

    import torch.distributed as dist

    _label_logs("teacher")
    # the timeout only ends a wait for a process that died; a step takes well under a second
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size,
                            timeout=timedelta(minutes=2))
    try:
        return train_teacher(path, records, rank=rank, world_size=world_size, **options)
    finally:
        dist.destroy_process_group()


def _train_student(label: str, cfg: Any) -> Any:
    from distill.train import train

    _label_logs(label)
    return train(cfg)


def _generate_shard(cfg: Any) -> Any:
    from distill.generate import generate

    _label_logs(f"generate {cfg.shard}")
    return generate(cfg)


def generate_traces(cfg: Any, workers: Workers | None) -> dict[str, Any]:
    """distill generate; with `workers`, one shard in each at the same time (`--shard I/N`: shards
    concatenate to the full run), each with its own file and summary, then joined into cfg.out
    (`distill.shards`). The records written and their finish reasons."""
    from distill.generate import generate

    if not workers:
        summary = generate(cfg)
        return {"records": summary.records, "finish_reasons": summary.finish_reasons, "shards": []}
    configs = shard_configs(cfg, len(workers))
    summaries = workers.run([(_generate_shard, shard_cfg) for shard_cfg in configs])
    shards = [Path(shard_cfg.out) for shard_cfg in configs]
    concatenate(shards, cfg.out)
    finish_reasons: Counter[str] = Counter()
    for summary in summaries:
        finish_reasons.update(summary.finish_reasons)
    return {"records": sum(s.records for s in summaries), "finish_reasons": dict(finish_reasons),
            "shards": [str(path) for path in shards]}


def train_students(configs: dict[str, Any], workers: Workers | None) -> dict[str, Any]:
    """distill train for every config; with two `workers`, each in one of them at the same time
    (two students on two cores take the time of one)."""
    from distill.train import train

    if workers is None or len(workers) < len(configs):
        return {name: train(cfg) for name, cfg in configs.items()}
    results = workers.run([(_train_student, f"student-{name}", cfg) for name, cfg in configs.items()])
    return dict(zip(configs, results))


def rl_configs(cfg: DemoConfig, paths: dict[str, Path], out: Path) -> dict[str, Any]:
    """--full: the distill rl runs, by row label. Every run starts from an SFT student on the prompts the
    teacher was sampled on (the held-out problems stay held out), samples as eval does, and trains all weights."""
    from distill.rl import RLConfig

    common = dict(prompts=str(paths["prompts"]), template=TEMPLATE, method="full", num_generations=RL_ROLLOUTS,
                  prompts_per_step=RL_PROMPTS_PER_STEP, max_completion_tokens=MAX_TOKENS, temperature=TEMPERATURE,
                  top_p=TOP_P,
                  max_steps=cfg.scale.rl_steps, seed=cfg.seed, save_steps=0, rollout_backend="hf",
                  logging_steps=max(1, cfg.scale.rl_steps // 4))
    grpo = dict(objective="grpo", rewards=["accuracy", "format", "language"], kl_coef=0.0, lr=GRPO_LR)
    return {
        "student-kept+grpo": RLConfig(student=str(paths["student_kept"]), out=str(out / "student-kept+grpo"),
                                      **common, **grpo),
        "student-all+grpo": RLConfig(student=str(paths["student_all"]), out=str(out / "student-all+grpo"),
                                     **common, **grpo),
        "student-all+on-policy": RLConfig(student=str(paths["student_all"]), out=str(out / "student-all+on-policy"),
                                          objective="on-policy", teacher=str(paths["teacher"]), lr=ON_POLICY_LR,
                                          **common)}


def _improve(runs: list[tuple[str, Any]]) -> list[Any]:
    from distill.rl import rl

    results = []
    for label, cfg in runs:
        _label_logs(label)
        results.append(rl(cfg))
    return results


def improve_students(runs: dict[str, Any], workers: Workers | None) -> dict[str, Any]:
    """distill rl for every run; with two `workers`, the on-policy run (the slowest: two models per step)
    in one and the two GRPO runs one after the other in the other."""
    if workers is None or len(workers) < 2:
        return dict(zip(runs, _improve(list(runs.items()))))
    slow = [(label, cfg) for label, cfg in runs.items() if cfg.objective == "on-policy"]
    rest = [(label, cfg) for label, cfg in runs.items() if cfg.objective != "on-policy"]
    first, second = workers.run([(_improve, slow), (_improve, rest)])
    done = dict(zip([label for label, _ in slow + rest], first + second))
    return {label: done[label] for label in runs}


def loop_share(traces: str | Path) -> float:
    """Share of the records in `traces` whose completion starts a loop (`task.has_loop_line`)."""
    from distill.shape import CANONICAL
    from distill.traces import iter_jsonl

    loops = [task.has_loop_line(CANONICAL.full_text(record)) for _, record in iter_jsonl(traces)]
    return sum(loops) / len(loops) if loops else 0.0


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write `rows` as a fresh file (a notebook cell run twice must not append them again)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with JsonlWriter(path) as writer:
        writer.write(rows)


def save_comparison(path: Path, rows: list[ModelRow]) -> Path:
    """Grouped bars: accuracy and the shares of mixed-language, looping and truncated samples of every model."""
    metrics = (("accuracy", "accuracy"), ("mixed_language", "mixed language"), ("loops", "loops"),
               ("truncated", "truncated"))
    fig, ax = new_figure((8, 4))
    width = 0.8 / len(rows)
    for index, row in enumerate(rows):
        xs = [m + (index - (len(rows) - 1) / 2) * width for m in range(len(metrics))]
        values = [getattr(row, key) for key, _ in metrics]
        bars = ax.bar(xs, values, width, label=row.model)
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], padding=2, fontsize=8)
    ax.set_xticks(range(len(metrics)), [label for _, label in metrics])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share of held-out samples")
    ax.set_title("distill demo: teacher vs students (kept traces / all traces)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def read_summary(out: str | Path) -> dict[str, Any]:
    """The demo.json of a finished run in `out`."""
    return json.loads((Path(out) / "demo.json").read_text(encoding="utf-8"))
