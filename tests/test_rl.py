"""`distill rl`: the rule rewards on literal completions, GRPO and on-policy distillation with the real
TRL trainers on tiny models, resuming, and bad input refused before --out is touched."""

from __future__ import annotations

import json

import pytest

from distill.rl import RLConfig, rl
from distill.rl.rewards import (
    accuracy_score,
    as_record,
    format_score,
    language_score,
    overlong_score,
    reward_functions,
)
from tests.conftest import assert_user_error, run_cli, write_jsonl

PROMPT = [{"role": "user", "content": "What is 2 + 3?\nPlease reason step by step, and put your final answer "
                                      "within \\boxed{}."}]
# the tiny students speak English and Chinese: sampling from them mixes the two, which the language
# reward can teach away within a few steps
MIXED_CORPUS = ["First we add the numbers, then we check the sum again.", "我们先计算七加五等于十二，然后再检查一遍。",
                "So the answer is twelve, because seven plus five is twelve.", "所以答案是十二，因为七加五等于十二。"] * 10


# ---------------------------------------------------------------- the rewards, literally


def record(completion: str, reference="5"):
    return as_record(PROMPT, completion, reference)


def test_accuracy_reward_grades_as_the_filter_does():
    assert accuracy_score(record("<think>\nAdd them.\n</think>\n\nThe answer is \\boxed{5}.")) == 1.0
    assert accuracy_score(record("<think>\nAdd them.\n</think>\n\nThe answer is \\boxed{6}.")) == 0.0
    assert accuracy_score(record("<think>\nAdd them.\n</think>\n\nThe answer is \\boxed{\\frac{10}{2}}.")) == 1.0
    assert accuracy_score(record("<think>\nAdd them.\n</think>\n\nNo idea.")) == 0.0
    assert accuracy_score(record("<think>\nAdd them.\n</think>\n\n\\boxed{5}", reference=None)) is None
    assert accuracy_score(record("<think>\nPick.\n</think>\n\nThe answer is (B).", reference="B")) == 1.0


def test_format_reward_needs_a_closed_think_block_and_an_answer():
    assert format_score(record("<think>\nAdd them.\n</think>\n\nThe answer is \\boxed{5}.")) == 1.0
    assert format_score(record("<think>\nAdd them.\n\nThe answer is \\boxed{5}.")) == 0.0  # missing </think>
    assert format_score(record("<think>\nAdd them.\n</think>\n\n")) == 0.0  # no answer after it
    # the R1-Distill template pre-fills '<think>\n': the rollout starts inside the reasoning
    assert format_score(as_record(PROMPT, "Add them.\n</think>\n\n\\boxed{5}", prefill="<think>\n")) == 1.0


def test_language_reward_is_the_share_of_the_reasoning_in_the_prompts_language():
    english = "<think>\nThen the sum is five here.\n</think>\n\nThe answer is \\boxed{5}."
    half = "<think>\nThen the sum is five here. 然后和是五了\n</think>\n\nThe answer is \\boxed{5}."
    assert language_score(record(english)) == 1.0
    assert language_score(record(half)) == 0.5  # six English words, six Chinese characters
    assert language_score(record("<think>\n然后和是五了\n</think>\n\n\\boxed{5}")) == 0.0
    # for a Chinese target, 'is' (a word the prompt itself uses) is not counted as foreign: 6 of 11
    assert language_score(record(half), language="zh") == 0.5455
    assert language_score(record("<think>\n2 + 3 = 5\n</think>\n\n\\boxed{5}")) is None  # no words at all


def test_overlong_penalty_is_dapos_soft_ramp():
    assert [overlong_score(n, 512, 128) for n in (100, 384, 448, 511, 512)] == [0.0, 0.0, -0.5, -127 / 128, -1.0]


def test_reward_functions_take_trls_arguments_and_are_named_for_the_log():
    funcs = reward_functions(["accuracy", "format", "language", "overlong"], max_completion_tokens=4,
                             overlong_buffer=2)
    assert [f.__name__ for f in funcs] == ["accuracy", "format", "language", "overlong"]
    completions = [[{"role": "assistant", "content": "<think>\nThen the sum is five here.\n</think>\n\n\\boxed{5}"}],
                   [{"role": "assistant", "content": "<think>\nThen the sum is five here. 然后和是五了\n\\boxed{6}"}]]
    columns = dict(prompts=[PROMPT, PROMPT], completions=completions, completion_ids=[[1, 2], [1, 2, 3, 4]],
                   reference_json=[json.dumps("5"), json.dumps("5")], trainer_state=None)
    assert [f(**columns) for f in funcs] == [[1.0, 0.0], [1.0, 0.0], [1.0, 0.5], [0.0, -1.0]]


# ---------------------------------------------------------------- the trainers, for real


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A student with the R1-Distill template, a peaked teacher sharing its tokenizer, and a student of
    another vocabulary."""
    import torch
    from transformers import AutoModelForCausalLM

    from distill.tiny import save_tiny

    root = tmp_path_factory.mktemp("rl-models")
    student = save_tiny(root / "student", "r1", corpus=MIXED_CORPUS, vocab_size=400)
    teacher = AutoModelForCausalLM.from_pretrained(student)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in teacher.parameters():
            parameter.copy_(torch.randn_like(parameter) * parameter.std().clamp(min=0.02))
        teacher.lm_head.weight.mul_(6)  # a confident teacher: its distribution is far from the random student's
    teacher.save_pretrained(root / "teacher")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(student).save_pretrained(root / "teacher")
    return {"student": student, "teacher": root / "teacher", "other": save_tiny(root / "other", "qwen")}


@pytest.fixture
def prompts(tmp_path):
    return write_jsonl(tmp_path / "prompts.jsonl", [{"id": f"q{i}", "problem": f"What is {i} + {i + 1}?",
                                                     "answer": str(2 * i + 1)} for i in range(8)])


EVAL_PROMPTS = [[{"role": "user", "content": f"What is {i} + {i + 1}?\nPlease reason step by step, and put your "
                                             "final answer within \\boxed{}."}] for i in range(4)]


def sample(model_dir, *, max_new_tokens: int, n: int, seed: int = 1):
    """(prompt index, completion ids, model, tokenizer, batch) of n seeded samples per evaluation prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    batch = tokenizer.apply_chat_template(EVAL_PROMPTS, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True, padding=True)
    torch.manual_seed(seed)
    out = model.generate(**batch, do_sample=True, temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens,
                         num_return_sequences=n, pad_token_id=tokenizer.pad_token_id)
    return out, model, tokenizer, batch


def mean_language_reward(model_dir) -> float:
    out, _, tokenizer, batch = sample(model_dir, max_new_tokens=8, n=8)
    texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    scores = [language_score(as_record(EVAL_PROMPTS[i // 8], text, prefill="<think>\n"))
              for i, text in enumerate(texts)]
    scores = [s for s in scores if s is not None]
    return sum(scores) / len(scores)


def test_grpo_raises_the_mean_reward_over_the_untrained_student(models, prompts, tmp_path):
    out = tmp_path / "grpo"
    result = rl(RLConfig(prompts=str(prompts), student=str(models["student"]), out=str(out), method="full",
                         rewards=["language"], num_generations=8, max_completion_tokens=8, max_steps=8, lr=3e-3,
                         kl_coef=0.0, save_steps=0))
    before, after = mean_language_reward(models["student"]), mean_language_reward(out)
    assert after > before + 0.05, (before, after)
    assert result.steps == 8 and set(result.after) >= {"reward", "language", "length"}
    assert (out / "rewards.png").is_file() and (out / "train_summary.json").is_file()
    assert not (out / "checkpoints").exists()


def per_token_kl(student_dir, teacher_dir) -> float:
    """Mean KL(student ‖ teacher) per completion token, on seeded samples of the student."""
    import torch
    from transformers import AutoModelForCausalLM

    out, student, tokenizer, batch = sample(student_dir, max_new_tokens=12, n=4)
    teacher = AutoModelForCausalLM.from_pretrained(teacher_dir)
    start = batch["input_ids"].shape[1]
    mask = (out != tokenizer.pad_token_id).long()
    mask[:, :start] = batch["attention_mask"].repeat_interleave(4, 0)
    with torch.no_grad():
        ours = student(out, attention_mask=mask).logits[:, start - 1:-1].log_softmax(-1)
        theirs = teacher(out, attention_mask=mask).logits[:, start - 1:-1].log_softmax(-1)
    kl = (ours.exp() * (ours - theirs)).sum(-1)
    weights = mask[:, start:].float()
    return float((kl * weights).sum() / weights.sum())


def test_on_policy_distillation_lowers_the_per_token_kl_to_the_teacher(models, prompts, tmp_path):
    out = tmp_path / "opd"
    result = rl(RLConfig(prompts=str(prompts), student=str(models["student"]), out=str(out), objective="on-policy",
                         teacher=str(models["teacher"]), method="lora", lora_r=8, num_generations=4,
                         max_completion_tokens=12, max_steps=6, lr=1e-2, save_steps=0))
    assert (out / "adapter_config.json").is_file()  # a LoRA student: the adapter is what is saved
    before, after = per_token_kl(models["student"], models["teacher"]), per_token_kl(out, models["teacher"])
    assert after < 0.7 * before, (before, after)
    assert result.after["divergence"] < result.before["divergence"]


class StopAt:
    """A kill between two steps, seen from inside: the run stops after `step` like a Ctrl-C would."""

    def __new__(cls, step: int):
        from transformers import TrainerCallback

        class _Stop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == step:
                    raise KeyboardInterrupt

        return _Stop()


def test_an_interrupted_run_resumes_from_its_last_checkpoint(models, prompts, tmp_path):
    out = tmp_path / "resumed"
    settings = dict(prompts=str(prompts), student=str(models["student"]), out=str(out), method="full",
                    rewards=["format", "language"], num_generations=2, max_completion_tokens=4, max_steps=3,
                    save_steps=2, kl_coef=0.0)
    with pytest.raises(KeyboardInterrupt):
        rl(RLConfig(**settings), callbacks=[StopAt(3)])
    assert (out / "checkpoints" / "checkpoint-2").is_dir() and not (out / "train_summary.json").exists()
    refused = run_cli("rl", prompts, "--student", models["student"], "--out", out, "--method", "full",
                      "--rewards", "format,language", "--num-generations", "2", "--max-completion-tokens", "4",
                      "--max-steps", "3", "--save-steps", "2", "--kl-coef", "0", "--resume", "--lr", "0.5")
    assert_user_error(refused, "--resume", "lr")  # a resumed run with other settings is refused
    result = rl(RLConfig(**settings, resume=True))
    assert result.resumed_from and result.resumed_from.endswith("checkpoint-2")
    assert result.steps == 3 and (out / "train_summary.json").is_file()


# ---------------------------------------------------------------- bad input: one line, exit 1, nothing written


def test_a_teacher_with_another_tokenizer_is_refused_naming_both_vocabularies(models, prompts, tmp_path):
    out = tmp_path / "never"
    result = run_cli("rl", prompts, "--student", models["student"], "--out", out, "--objective", "on-policy",
                     "--teacher", models["other"])
    from transformers import AutoTokenizer

    sizes = [len(AutoTokenizer.from_pretrained(models[name]).get_vocab()) for name in ("student", "other")]
    assert_user_error(result, "do not share a tokenizer", f"({sizes[0]:,}-token vocabulary)",
                      f"({sizes[1]:,}-token vocabulary)")
    assert not out.exists()


def test_prompts_without_references_are_refused_when_accuracy_is_a_reward(models, tmp_path):
    out = tmp_path / "never"
    bare = write_jsonl(tmp_path / "bare.jsonl", [{"problem": "What is 1 + 1?"}, {"problem": "What is 2 + 2?"}])
    result = run_cli("rl", bare, "--student", models["student"], "--out", out)
    assert_user_error(result, "bare.jsonl:1", "no reference answer", "--answer-column")
    assert not out.exists()


def test_a_reward_weight_that_is_not_a_number_is_refused(models, prompts, tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    recipe = tmp_path / "weights.yaml"
    recipe.write_text("format_weight: high\n")
    result = run_cli("rl", prompts, "--student", models["student"], "--out", out, "--config", recipe)
    assert_user_error(result, "weights.yaml", "key 'format_weight' must be a number", "'high'")
    # on the command line it is a usage error (exit 2, the CLI contract), caught before anything runs
    flag = run_cli("rl", prompts, "--student", models["student"], "--out", out, "--format-weight", "high")
    assert flag.returncode == 2 and "--format-weight" in flag.stderr and "Traceback" not in flag.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
