"""`distill train`: supervised fine-tuning of a student on kept traces (full, LoRA or QLoRA),
from one CPU to FSDP clusters under `accelerate launch`."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distill.chat import ensure_chat_template, load_tokenizer, render_prompt
from distill.config import config_dict
from distill.errors import ConfigError, InputError, ModelError
from distill.progress import is_main_process
from distill.runs import COMPLETE, fingerprint
from distill.traces import content_digest
from distill.train.config import DataStats, TrainConfig, TrainResult
from distill.train.data import (
    PackedCollator,
    PackedExamples,
    PackOrderSampler,
    TokenizedData,
    cached_tokenize,
    data_fingerprint,
    iter_kept,
    pack_by_tokens,
    select_by_length,
    split_to_multiple,
    tokenize_kept,
    validate_kept,
)
from distill.train.plan import TrainPlan, resolve_plan
from distill.train.render import (
    NO_REASONING,
    ChatFormat,
    check_trained_span,
    probe_chat_format,
    render_example,
    show_example,
    split_record,
)
from distill.training.checkpoints import CHECKPOINTS, remove_all
from distill.training.rundir import RunStart, check_out, finish, saved_summary, training_run

log = logging.getLogger("distill.train")


def _quiet_libraries() -> None:
    # bitsandbytes warns at import on CPUs with AVX512-BF16 that an optional Hub kernel is missing
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


def load_student_tokenizer(cfg: TrainConfig) -> tuple[Any, str]:
    """(tokenizer, where its chat template comes from)."""
    from distill.training.modeling import has_tokenizer_files

    source = cfg.tokenizer or cfg.student
    if not has_tokenizer_files(source):
        raise ModelError(f"{source} holds no tokenizer (tokenizer.json or tokenizer_config.json); copy the "
                         "tokenizer files of its base model into it, or pass --tokenizer")
    tokenizer = load_tokenizer(source)
    if cfg.chat_template:
        path = Path(cfg.chat_template)
        if not path.is_file():
            raise ConfigError(f"--chat-template {path}: file not found (give a Jinja template file)")
        tokenizer.chat_template = path.read_text(encoding="utf-8")
        try:
            render_prompt(tokenizer, [{"role": "user", "content": "2 + 2?"}])
        except ModelError as exc:
            raise ModelError(f"--chat-template {path}: {exc}; fix the template") from None
        return tokenizer, f"`{path.name}` (given with --chat-template)"
    if not getattr(tokenizer, "chat_template", None):
        ensure_chat_template(tokenizer, source)
        return tokenizer, "distill's default `User: … Assistant:` template (the student had none)"
    return tokenizer, "the student's own"


def data_stats(data: TokenizedData, keep: Sequence[int], drop: Sequence[int]) -> DataStats:
    lengths = data.lengths
    prompts = data.index[:, 2]
    kept_lengths = [int(lengths[i]) for i in keep]
    return DataStats(records=len(data), examples=len(keep), dropped_too_long=len(drop),
                     tokens=sum(kept_lengths), trained_tokens=int(sum(int(lengths[i] - prompts[i]) for i in keep)),
                     dropped_tokens=int(sum(int(lengths[i]) for i in drop)),
                     longest=max(kept_lengths, default=0), shortest=min(kept_lengths, default=0),
                     teachers=dict(data.teachers))


def select_examples(data: TokenizedData, max_seq_len: int) -> tuple[list[int], DataStats]:
    keep, drop = select_by_length(data.lengths.tolist(), max_seq_len)
    stats = data_stats(data, keep, drop)
    if not keep:
        raise InputError(f"every one of the {len(data):,} examples is longer than --max-seq-len {max_seq_len:,} "
                         f"tokens (the shortest has {int(data.lengths.min()):,}); raise --max-seq-len")
    return keep, stats


PREFLIGHT_SCAN = 10_000
"""Records the preflight reads looking for one example of each thinking mode."""


def mode_examples(cfg: TrainConfig, tokenizer: Any, fmt: ChatFormat,
                  scan: int = PREFLIGHT_SCAN) -> list[tuple[dict[str, Any], dict[str, list[int]]]]:
    """The first record of each mode the data holds (with reasoning; without) among the first `scan`, rendered
    and checked: a mode whose rendering would not teach the student to answer and stop is refused."""
    found: dict[bool, tuple[dict[str, Any], dict[str, list[int]]]] = {}
    for count, (line, record) in enumerate(iter_kept(cfg.kept, cfg.limit), start=1):
        try:
            reasoning, _ = split_record(record)
            if reasoning is None and not fmt.has_plain_mode:
                raise ValueError(NO_REASONING)
        except ValueError as exc:
            raise InputError(str(exc), path=cfg.kept, line=line, field="completion") from None
        if (reasoning is not None) in found:
            if count >= scan or len(found) == 2:
                break
            continue
        example = render_example(record, tokenizer, chat_format=fmt)
        problems = check_trained_span(example, tokenizer, fmt, reasoning)
        if problems:
            raise ModelError(f"refusing to train: on {cfg.kept}:{line}, {'; and '.join(problems)}; "
                             "run with --preflight to see the rendered example")
        found[reasoning is not None] = (record, example)
        if count >= scan or len(found) == 2:
            break
    return [found[mode] for mode in (True, False) if mode in found]


def thinking_line(fmt: ChatFormat) -> str:
    """How the template's modes are used, for the preflight and the run's log."""
    if fmt.switch is None:
        return "one mode (no thinking switch): every record trains with its reasoning"
    return (f"hybrid, switched by {fmt.switch!r}: records with reasoning render with {fmt.kwargs(True)}, records "
            f"without with {fmt.kwargs(False)} (the template's empty think block is prompt, not target)")


def preflight_report(cfg: TrainConfig, tokenizer: Any, fmt: ChatFormat, template_source: str,
                     examples: list[tuple[dict[str, Any], dict[str, list[int]]]], stats: DataStats) -> str:
    shown = []
    for record, example in examples:
        prompt_tokens = sum(1 for label in example["labels"] if label == -100)
        trained_tokens = len(example["input_ids"]) - prompt_tokens
        mode = "thinking" if split_record(record)[0] is not None else "non-thinking"
        shown += [f"example        {record.get('id')} ({mode} mode): {prompt_tokens:,} prompt tokens (masked) + "
                  f"{trained_tokens:,} trained tokens; the trained span is between ⟦ ⟧:", "",
                  show_example(example, tokenizer), ""]
    return "\n".join([
        f"student        {cfg.student} ({cfg.method})",
        f"chat template  {template_source}",
        f"thinking       {thinking_line(fmt)}",
        f"end of turn    {fmt.end_of_turn!r} (id {fmt.end_of_turn_id}): ends every target, trained, and saved "
        "in generation_config.eos_token_id",
        f"pre-filled     {fmt.prefill!r} (the target starts after it)" if fmt.prefill else
        "pre-filled     nothing (the target starts with <think>)",
        *shown,
        f"data           {stats.line(cfg.max_seq_len)}",
        f"               longest kept {stats.longest:,} tokens, shortest {stats.shortest:,}",
        "checks         the reasoning, the answer and the end-of-turn token are in the loss: OK",
    ])


STAGE = "train"
LABELS = {"kept_sha256": "the content of KEPT", "student_identity": "the content of --student",
          "processes": "the number of processes"}
"""How a refused resume names the fingerprint's derived keys (the others are shown as their flags)"""


def run_settings(cfg: TrainConfig, plan: TrainPlan) -> dict[str, Any]:
    """The fingerprint a resumed run must match: the kept file by its content, the student by its identity,
    the resolved lr."""
    return fingerprint(cfg, lr=plan.learning_rate, kept_sha256=plan.kept_sha256,
                       student_identity=plan.student_identity, processes=plan.processes)


def check_resume(cfg: TrainConfig, plan: TrainPlan) -> RunStart:
    """Where cfg.out stands for this run (new, to resume, or complete), checked against its fingerprint
    before any model is loaded; OutputError naming each changed must-match flag."""
    return check_out(Path(cfg.out), STAGE, run_settings(cfg, plan), overwrite=cfg.overwrite, labels=LABELS)


def train(cfg: TrainConfig, *, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Fine-tune cfg.student on cfg.kept into cfg.out (see the README's `distill train` section).

    With cfg.preflight, only renders and checks the data and returns the report. A rerun with the
    settings of an unfinished run resumes it; of a complete one, returns its result without training.
    `callbacks` are extra transformers TrainerCallbacks (a notebook's progress display, say).
    """
    _quiet_libraries()
    from distill.train.modeling import check_liger
    from distill.train.trainer import training_arguments
    from distill.training.modeling import Hardware, check_bitsandbytes, check_student

    out = Path(cfg.out)
    hw = Hardware.detect()
    if cfg.liger:
        check_liger(hw)
    if cfg.method == "qlora":
        version = check_bitsandbytes(hw.device)
        log.info("bitsandbytes %s runs NF4 on %s", version, hw.device)
    tokenizer, template_source = load_student_tokenizer(cfg)
    fmt = probe_chat_format(tokenizer, cfg.template_kwargs)
    log.info("chat template: %s", thinking_line(fmt))

    if cfg.preflight:
        examples = mode_examples(cfg, tokenizer, fmt)
        with tempfile.TemporaryDirectory(prefix="distill-preflight-") as scratch:
            data = tokenize_kept(cfg.kept, tokenizer, fmt, Path(scratch), limit=cfg.limit)
            _, stats = select_examples(data, cfg.max_seq_len)
            report = preflight_report(cfg, tokenizer, fmt, template_source, examples, stats)
        return TrainResult(out=str(out), student=cfg.student, method=cfg.method, data=stats, preflight=report,
                           config=config_dict(cfg))
    # everything a user can get wrong is checked before --out is touched: a failed start leaves it as it was
    mode_examples(cfg, tokenizer, fmt, scan=1)
    validate_kept(cfg.kept, cfg.limit, fmt)
    check_student(cfg.student)
    plan = resolve_plan(cfg, hw, chat_format=fmt, template_source=template_source, vocab_size=len(tokenizer),
                        kept_sha256=content_digest(cfg.kept))
    args = training_arguments(cfg, plan, out / CHECKPOINTS, out=out)
    if args.world_size != plan.processes:  # a launcher that does not set WORLD_SIZE
        plan = dataclasses.replace(plan, processes=args.world_size)
    inputs = {"KEPT": cfg.kept, "--student": cfg.student, "--tokenizer": cfg.tokenizer,
              "--chat-template": cfg.chat_template}
    with training_run(out, STAGE, inputs, lambda: check_resume(cfg, plan), record={"plan": plan.to_dict()}) as start:
        if start.state == COMPLETE:
            return TrainResult.from_summary(saved_summary(out))
        return _train(cfg, plan, args, tokenizer, callbacks, start)


def _train(cfg: TrainConfig, plan: TrainPlan, args: Any, tokenizer: Any, callbacks: Sequence[Any],
           start: RunStart) -> TrainResult:
    from distill.train.loss import disable_chunked_loss, enable_chunked_loss
    from distill.train.modeling import count_parameters, load_student
    from distill.train.trainer import DistillTrainer, StepLogger

    out = Path(cfg.out)
    main = is_main_process()
    with args.main_process_first(desc="tokenize"):
        fingerprint = data_fingerprint(plan.kept_sha256, tokenizer, plan.chat_format, cfg.limit)
        data = cached_tokenize(cfg.kept, tokenizer, plan.chat_format, out / "data", fingerprint, limit=cfg.limit)
    keep, stats = select_examples(data, cfg.max_seq_len)
    if main:
        log.info("data: %s", stats.line(cfg.max_seq_len))
        if stats.dropped_too_long:
            log.warning("%d examples (%.1f%% of all tokens) are longer than --max-seq-len %d and are left out",
                        stats.dropped_too_long, 100 * stats.dropped_token_share, cfg.max_seq_len)
    lengths = data.lengths.tolist()
    packs = pack_by_tokens([lengths[i] for i in keep], cfg.micro_batch_tokens, seed=cfg.seed)
    packs = split_to_multiple([[keep[j] for j in pack] for pack in packs], lengths, plan.processes)

    model = load_student(cfg, plan)
    if plan.chunked_loss and not enable_chunked_loss(model, cfg.loss_chunk_tokens):
        plan = dataclasses.replace(plan, chunked_loss=False)  # an adapter on the output head: nothing to chunk
    trainable, total = count_parameters(model)
    if main:
        log.info("%s: %s training of %s (%s); %s of %s parameters trained; %d packed micro-batches per epoch of "
                 "at most %s tokens, %d per step; %s", out, cfg.method, cfg.student, plan.student_identity,
                 f"{trainable:,}", f"{total:,}", len(packs), f"{cfg.micro_batch_tokens:,}",
                 cfg.grad_accum * plan.processes, ", ".join(f"{k} {v}" for k, v in plan.rows()))
    trainer = DistillTrainer(
        model=model, args=args, train_dataset=PackedExamples(data, packs), processing_class=tokenizer,
        data_collator=PackedCollator(flash_attention=plan.flash_attention),
        callbacks=[StepLogger(), *callbacks], pack_sampler=PackOrderSampler(len(packs), cfg.seed),
        checkpoint_meta={"fingerprint": start.fingerprint}, keep_checkpoints=cfg.keep_checkpoints,
        max_bad_steps=cfg.max_bad_steps)

    resume_from = start.resume_from
    started = time.perf_counter()
    tokens_before = 0
    if resume_from is not None:
        state_file = resume_from / "trainer_state.json"
        tokens_before = json.loads(state_file.read_text(encoding="utf-8")).get("num_input_tokens_seen", 0)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    elapsed = time.perf_counter() - started
    disable_chunked_loss(model)
    return _save(cfg, plan, trainer, tokenizer, stats, elapsed=elapsed,
                 tokens=trainer.state.num_input_tokens_seen - tokens_before, resume_from=resume_from)


def _save(cfg: TrainConfig, plan: TrainPlan, trainer: Any, tokenizer: Any, stats: DataStats, *, elapsed: float,
          tokens: int, resume_from: Path | None) -> TrainResult:
    import torch

    from distill.train.outputs import (
        generation_config,
        loss_points,
        model_card,
        run_loss,
        save_loss_curve,
        set_end_of_turn,
    )
    from distill.training.modeling import merge_adapter

    out = Path(cfg.out)
    trainer.check_finite_weights()
    model = trainer.model
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    gen = generation_config(base, tokenizer, plan.chat_format)
    set_end_of_turn(tokenizer, plan.chat_format)
    base.generation_config = gen
    base.config.use_cache = True
    trainer.save_model(str(out))  # all ranks: FSDP gathers the full weights for rank 0
    main = trainer.is_world_process_zero()
    merged_dir = None
    history = trainer.state.log_history
    _, losses = loss_points(history)
    result = TrainResult(out=str(out), student=cfg.student, method=cfg.method, data=stats,
                         steps=trainer.state.global_step, epochs=float(trainer.state.epoch or 0),
                         final_loss=losses[-1] if losses else None, elapsed_s=round(elapsed, 3),
                         tokens_per_s=round(tokens / elapsed, 1) if elapsed > 0 else 0.0,
                         resumed_from=str(resume_from) if resume_from else None, config=config_dict(cfg))
    if main:
        gen.save_pretrained(out)
        tokenizer.save_pretrained(out)
        if cfg.merge:
            dtype = torch.bfloat16 if plan.hardware.bf16 else torch.float32
            merged_dir = merge_adapter(cfg.student, out, out / "merged", dtype=dtype, tokenizer=tokenizer,
                                       gen_config=gen)
            result.merged = str(merged_dir)
            log.info("merged model written to %s", merged_dir)
        curve = save_loss_curve(out / "loss.png", history, title=f"distill train: {out.name}")
        card = model_card(cfg, plan, result, has_curve=curve is not None)
        (out / "README.md").write_text(card, encoding="utf-8")
        if merged_dir is not None:
            (merged_dir / "README.md").write_text(card.replace("library_name: peft", "library_name: transformers")
                                                  .replace("](loss.png)", "](../loss.png)"), encoding="utf-8")
    trainer.accelerator.wait_for_everyone()
    if main:
        remove_all(out / CHECKPOINTS)
        shutil.rmtree(out / "data", ignore_errors=True)  # the tokenized cache only serves resuming
        result.files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        summary = result.to_dict()
        summary.update(plan=plan.to_dict(), log_history=history, train_loss=run_loss(history))
        finish(out, STAGE, summary)
    trainer.accelerator.wait_for_everyone()
    return result
