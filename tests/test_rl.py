"""`distill rl`: the rule rewards on literal completions (and the judge where the rules cannot tell),
GRPO and on-policy distillation with the real TRL trainers on tiny models, a real SIGKILL mid-save and
the resume, an adapter student's KL reference, and bad input refused before --out is touched.

The trainers run in this process on one thread: on 2 shared cores, torch's second thread only waits
at every tiny matmul (several times slower), and the killed CLI run is compared bit for bit with an
in-process one, so both must reduce in the same order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.rl import RLConfig, rl
from distill.rl.measure import language_consistency, per_token_kl
from distill.rl.rewards import (
    JudgedCorrectness,
    accuracy_score,
    accuracy_scores,
    as_record,
    format_score,
    language_score,
    overlong_score,
    reward_functions,
)
from tests.conftest import ROOT, assert_user_error, run_cli, write_jsonl
from tests.scripted_server import ScriptedChatServer, field_of
from tests.test_bad_inputs import run_in_process

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


# ---------------------------------------------------------------- the judge, for what the rules leave open

# a rule false negative: the same words in another order (the rules compare text as written)
REWORDED = "<think>\nwork it out\n</think>\n\nThe answer is \\boxed{\\text{right isosceles}}."


def judge_reply(prompt: str, call: int) -> str:
    """A scripted judge (not a model: a tiny one cannot judge): right for the reworded triangle."""
    answer = field_of(prompt, "ANSWER")
    if "garbage" in answer:
        return "I cannot decide."
    same = answer == "\\text{right isosceles}"
    return f"VERDICT: {'CORRECT' if same else 'INCORRECT'}\nREASON: scripted"


def judged(server, tmp_path, **options) -> JudgedCorrectness:
    from distill.judge import JudgeOptions

    settings = dict(judge="judge-model", judge_base_url=server.base_url, judge_attempts=1, **options)
    return JudgedCorrectness.of(JudgeOptions(**settings), out=str(tmp_path / "student-rl"))


def test_the_judge_grades_the_accuracy_reward_where_the_rules_cannot(tmp_path):
    triangle = [{"role": "user", "content": "What kind of triangle has sides 1, 1 and sqrt(2)?"}]
    haiku = [{"role": "user", "content": "Write a haiku about rain."}]
    records = [as_record(triangle, REWORDED, "isosceles right"),                                # rules: wrong
               as_record(triangle, REWORDED.replace("right", "obtuse"), "isosceles right"),       # rules: wrong
               as_record(PROMPT, "<think>\nAdd.\n</think>\n\n\\boxed{4}", "5"),              # a plain number
               as_record(PROMPT, "<think>\nAdd.\n</think>\n\n\\boxed{5}", "5"),              # rules: right
               as_record(triangle, "<think>\nstill thinking: right isosceles", "isosceles right"),
               as_record(haiku, "<think>\nw\n</think>\n\ngarbage", None)]                   # rules: cannot tell
    assert accuracy_scores(records) == [0.0, 0.0, 0.0, 1.0, 0.0, None]
    with ScriptedChatServer(judge_reply) as server:
        judge = judged(server, tmp_path)
        try:
            # the reworded answer is right; a plain number's False and the rules' True stand; an unclosed
            # think block has no final answer to show (the judge never sees reasoning); no verdict: rules stand
            assert accuracy_scores(records, judge) == [1.0, 0.0, 0.0, 1.0, 0.0, None]
            assert len(server.graded) == 3 and not any("work it out" in call for call in server.calls)
            assert judge.stats.judged == 3 and judge.stats.unparsed == 1
            # the reward function TRL calls, its verdicts now from the cache (beside --out)
            accuracy = reward_functions(["accuracy"], judge=judge)[0]
            columns = dict(prompts=[triangle, triangle], completions=[[{"role": "assistant", "content": REWORDED}]] * 2,
                           reference_json=[json.dumps("isosceles right")] * 2)
            assert accuracy(**columns) == [1.0, 1.0] and len(server.graded) == 3
        finally:
            judge.close()
        assert (tmp_path / "student-rl.judge-cache.jsonl").is_file()
        strict = judged(server, tmp_path, judge_unknown="reject")  # no verdict counts as wrong
        try:
            assert accuracy_scores(records[-1:], strict) == [0.0]
        finally:
            strict.close()


# ---------------------------------------------------------------- the trainers, for real


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_models):
    """A student with the R1-Distill template, a peaked teacher sharing its tokenizer, a LoRA adapter on the
    student (a `distill train --method lora` output), and a student of another vocabulary."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM


    root = tmp_path_factory.mktemp("rl-models")
    # a confident teacher: its distribution is far from the random student's
    student, _ = student_and_teacher(root, "r1", seed=1, confidence=6)
    adapter = get_peft_model(AutoModelForCausalLM.from_pretrained(student),
                             LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    with torch.no_grad():  # a trained adapter: base+adapter is another model than the base
        for name, parameter in adapter.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    adapter.save_pretrained(root / "adapter")
    return {"student": student, "teacher": root / "teacher", "adapter": root / "adapter", "other": tiny_models["qwen"]}


@pytest.fixture
def prompts(tmp_path):
    return write_jsonl(tmp_path / "prompts.jsonl", [{"id": f"q{i}", "problem": f"What is {i} + {i + 1}?",
                                                     "answer": str(2 * i + 1)} for i in range(8)])


EVAL_PROMPTS = [[{"role": "user", "content": f"What is {i} + {i + 1}?\nPlease reason step by step, and put your "
                                             "final answer within \\boxed{}."}] for i in range(4)]


def mean_language_reward(model_dir) -> float:
    return language_consistency(str(model_dir), EVAL_PROMPTS, max_new_tokens=8, n=8)["mean_reward"]


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


def test_on_policy_distillation_lowers_the_per_token_kl_to_the_teacher(models, prompts, tmp_path):
    out = tmp_path / "opd"
    result = rl(RLConfig(prompts=str(prompts), student=str(models["student"]), out=str(out), objective="on-policy",
                         teacher=str(models["teacher"]), method="lora", lora_r=8, num_generations=4,
                         max_completion_tokens=12, max_steps=6, lr=1e-2, save_steps=0))
    assert (out / "adapter_config.json").is_file()  # a LoRA student: the adapter is what is saved
    before, after = (per_token_kl(str(student), str(models["teacher"]), EVAL_PROMPTS, max_new_tokens=12, n=4)
                     for student in (models["student"], out))
    assert after < 0.7 * before, (before, after)
    assert result.after["divergence"] < result.before["divergence"]


def first_step_kl(result) -> float:
    history = json.loads((Path(result.out) / "train_summary.json").read_text())["log_history"]
    return next(entry["kl"] for entry in history if "kl" in entry)


def test_the_kl_reference_of_an_adapter_student_is_the_adapter(models, prompts, tmp_path):
    """The KL term pulls towards the policy the run starts from. For a `distill train` adapter that is
    base+adapter, trained in full (merged) or as the adapter itself: both start at KL 0 exactly, which
    the bare base (a KL far from 0) would not."""
    settings = dict(prompts=str(prompts), student=str(models["adapter"]), rewards=["format", "language"],
                    num_generations=2, max_completion_tokens=4, max_steps=1, kl_coef=0.1, save_steps=0)
    full = rl(RLConfig(**settings, out=str(tmp_path / "full"), method="full"))
    assert first_step_kl(full) == 0.0
    assert (tmp_path / "full" / "model.safetensors").is_file() and not (tmp_path / "full" / "reference").exists()
    lora = rl(RLConfig(**settings, out=str(tmp_path / "lora"), method="lora", merge=True))
    assert first_step_kl(lora) == 0.0
    saved = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert saved["r"] == 4 and not (tmp_path / "lora" / "ref").exists()  # the adapter kept training, alone
    assert lora.merged and (tmp_path / "lora" / "merged" / "model.safetensors").is_file()  # --merge: a plain model
    # KL 0 says something: the base alone (what TRL would load as the reference) is another model
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(models["student"])
    tokens = torch.tensor([[5, 17, 42, 99]])
    with torch.no_grad():
        alone = base(tokens).logits
        adapted = PeftModel.from_pretrained(base, models["adapter"])(tokens).logits
    assert (alone - adapted).abs().max() > 0.1


def test_grpo_with_a_judge_scores_accuracy_through_it(models, tmp_path):
    """A run's accuracy reward asks the judge: a scripted one calls every final answer right, where the rules
    call each of the tiny student's (which never writes a cost function) wrong. A student without a think
    template (the tiny Qwen) answers from its first token, so every rollout has a final answer to judge."""
    prompts = write_jsonl(tmp_path / "cost.jsonl", [{"id": f"c{i}", "problem": f"Cost function {i}?",
                                                     "answer": f"C(n) = {i}n + 500"} for i in range(4)])
    with ScriptedChatServer(lambda prompt, call: "VERDICT: CORRECT\nREASON: scripted") as server:
        result = rl(RLConfig(prompts=str(prompts), student=str(models["other"]), out=str(tmp_path / "judged"),
                             method="full", rewards=["accuracy"], num_generations=2, max_completion_tokens=4,
                             max_steps=2, kl_coef=0.0, save_steps=0, judge="judge-model",
                             judge_base_url=server.base_url))
        assert server.graded and all(field_of(call, "ANSWER") is not None for call in server.graded)
    assert result.judge["judged"] == len(server.graded) and result.before["accuracy"] > 0
    assert (tmp_path / "judged.judge-cache.jsonl").is_file()


# ---------------------------------------------------------------- a real SIGKILL while a checkpoint is written


def test_rl_killed_mid_save_resumes_to_the_uninterrupted_result(models, tmp_path):
    """The real command, SIGKILLed while its third checkpoint is being written; rerun with another must-match
    setting, it is refused naming it; the same command again (no --resume needed) continues from the second
    checkpoint, in the run's second epoch (4 prompts, 4 steps an epoch), and ends with the weights and reward
    log of an uninterrupted run (tests/test_crash_resume.py kills it 20 times); once more, it does nothing
    and exits 0."""
    from safetensors.torch import load_file

    from distill.training.checkpoints import last_checkpoint
    from tests.test_crash_resume import step_log

    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"id": f"q{i}", "problem": f"What is {i} + {i + 1}?",
                                                         "answer": str(2 * i + 1)} for i in range(4)])
    settings = dict(prompts=str(prompts), student=str(models["student"]), method="full",
                    rewards=["format", "language"], num_generations=2, max_completion_tokens=4, max_steps=6,
                    save_steps=2, lr=1e-3, kl_coef=0.001)
    reference = rl(RLConfig(**settings, out=str(tmp_path / "reference")))
    out = tmp_path / "killed"
    args = ["rl", prompts, "--student", models["student"], "--out", out, "--method", "full", "--rewards",
            "format,language", "--num-generations", "2", "--max-completion-tokens", "4", "--max-steps", "6",
            "--save-steps", "2", "--lr", "1e-3", "--kl-coef", "0.001"]
    process = subprocess.Popen([sys.executable, "-m", "cli.main", *map(str, args)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    staging = out / "checkpoints" / ".staging-6"
    deadline = time.monotonic() + 300
    while not staging.exists():
        assert process.poll() is None, "the run ended before its third save"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert last_checkpoint(out / "checkpoints").name == "checkpoint-4" and not (out / "train_summary.json").exists()

    refused = run_in_process([*args, "--lr", "0.5"])
    assert_user_error(refused, "cannot resume it: --lr 0.001 → 0.5", "--overwrite")
    result = rl(RLConfig(**settings, out=str(out)))
    assert result.resumed_from and result.resumed_from.endswith("checkpoint-4") and result.steps == 6
    weights, expected = load_file(out / "model.safetensors"), load_file(tmp_path / "reference" / "model.safetensors")
    assert all(weights[name].equal(expected[name]) for name in expected)
    summary, uninterrupted = (json.loads((path / "train_summary.json").read_text()) for path in (out, tmp_path / "reference"))
    assert step_log(summary) == step_log(uninterrupted) and reference.steps == 6
    assert not (out / "checkpoints").exists()
    written = (out / "model.safetensors").stat().st_mtime_ns
    again = run_cli(*args, "--save-steps", "3")  # a free option changed: still the same run
    assert again.returncode == 0, again.stderr
    assert "is already complete with these settings: nothing to do" in again.stderr
    assert "6 steps on 4 prompts" in again.stdout and (out / "model.safetensors").stat().st_mtime_ns == written


# ---------------------------------------------------------------- a diverging run: the guard distill train has


@pytest.mark.parametrize("steps", [1, 3])
def test_a_diverging_run_stops_in_one_line_and_saves_no_model(models, prompts, tmp_path, steps):
    """The guard under the config's own refusal: a run whose weights turn nan (an lr of inf, set past the
    config's check, as a diverging run would) stops in one line. One step: the guard refuses to save them;
    more: the next rollouts sample from nan probabilities, and the guard says why the run broke."""
    from distill.errors import TrainingError

    out = tmp_path / "inf"
    cfg = RLConfig(prompts=str(prompts), student=str(models["student"]), out=str(out), method="full",
                   rewards=["format", "language"], num_generations=2, max_completion_tokens=4, max_steps=steps,
                   save_steps=0)
    cfg.lr = float("inf")  # what `--lr inf` is refused for up front (next test)
    with pytest.raises(TrainingError) as stopped:
        rl(cfg)
    message = str(stopped.value)
    assert "after step 1 the weights are no longer finite" in message and "lower --lr (it is inf)" in message
    assert "no model was saved" in message and "\n" not in message
    assert not (out / "model.safetensors").exists() and not (out / "train_summary.json").exists()


@pytest.mark.parametrize("flag, value", [("--lr", "inf"), ("--accuracy-weight", "nan"), ("--epochs", "inf")])
def test_non_finite_hyperparameters_are_refused_before_anything_is_written(models, prompts, tmp_path, flag, value):
    out = tmp_path / "refused"
    result = run_in_process(["rl", prompts, "--student", models["student"], "--out", out, flag, value])
    assert_user_error(result, f"{flag} must be a finite number (got {value})")
    assert not out.exists()


def test_a_missing_teacher_is_named_as_the_teacher(models, prompts, tmp_path):
    result = run_in_process(["rl", prompts, "--student", models["student"], "--out", tmp_path / "o",
                             "--objective", "on-policy", "--teacher", tmp_path / "no-teacher", "--num-generations", "2"])
    assert_user_error(result, "teacher")
    assert "student" not in next(line for line in result.stderr.splitlines() if line.startswith("error:"))


# ---------------------------------------------------------------- bad input: one line, exit 1, nothing written


def test_a_teacher_with_another_tokenizer_is_refused_naming_both_vocabularies(models, prompts, tmp_path):
    out = tmp_path / "never"
    result = run_in_process(["rl", prompts, "--student", models["student"], "--out", out, "--objective",
                             "on-policy", "--teacher", models["other"], "--num-generations", "2"])
    from transformers import AutoTokenizer

    sizes = [len(AutoTokenizer.from_pretrained(models[name]).get_vocab()) for name in ("student", "other")]
    assert_user_error(result, "do not share a tokenizer", f"({sizes[0]:,}-token vocabulary)",
                      f"({sizes[1]:,}-token vocabulary)")
    assert not out.exists()


def test_a_teacher_whose_chat_markers_differ_shares_the_tokenizer(models, tmp_path, caplog):
    """As the R1-Distill-Qwen teachers and the Qwen2.5 students: the same base vocabulary, other added tokens
    at the same ids (R1-Distill's '<｜User｜>' is Qwen2.5's '<|im_start|>'). Accepted, with a warning."""
    from transformers import AutoTokenizer

    from distill.rl.run import check_same_tokenizer

    renamed = tmp_path / "teacher-tokenizer"
    AutoTokenizer.from_pretrained(models["student"]).save_pretrained(renamed)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (renamed / name).is_file():
            text = (renamed / name).read_text(encoding="utf-8")
            (renamed / name).write_text(text.replace("<｜User｜>", "<|im_start|>"), encoding="utf-8")
    student, teacher = AutoTokenizer.from_pretrained(models["student"]), AutoTokenizer.from_pretrained(renamed)
    assert teacher.convert_ids_to_tokens(2) == "<|im_start|>" and student.get_vocab() != teacher.get_vocab()
    with caplog.at_level("WARNING", logger="distill.rl"):
        check_same_tokenizer("student", student, "teacher", teacher)
    assert "1 added tokens differ (id 2 is '<｜User｜>' for the student, '<|im_start|>' for the teacher)" in caplog.text


def test_the_teacher_reads_each_prompt_in_its_own_chat_template():
    """TRL's DistillationTrainer gives the teacher the student's token ids, the prompt in the student's
    template. The demo's students (ChatML, as Qwen2.5) and teacher (R1-Distill: '<｜User｜>…<｜Assistant｜>'
    and a pre-filled '<think>\\n') share a base vocabulary but not a chat format: scored after a ChatML
    prompt, with the '<think>' its template writes for it scored as a prediction, the teacher gave the
    student's tokens 0.40 nats of divergence each instead of 0.017, and 100 steps took the demo's student from
    88 % to 13 % accuracy. The teacher reads its own rendering; a think opening the student wrote is
    its prompt, not scored; one the student's template wrote is its prompt too."""
    from distill.demo.models import CHATML_TEMPLATE
    from distill.demo.run import STUDENT_SPECIAL_TOKENS
    from distill.rl.trainers import teacher_prompt
    from distill.tiny import build_tokenizer

    corpus = ["<think>\nFirst, 2 + 3 = 5.\n</think>\n\nThe answer is \\boxed{5}.", "What is 2 + 3?", "user\nassistant\n"] * 20
    teacher = build_tokenizer("r1", corpus, 300, digits=True)
    student = build_tokenizer("qwen", corpus, 300, digits=True, template=CHATML_TEMPLATE, special=STUDENT_SPECIAL_TOKENS)
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    answer = "First, 2 + 3 = 5.\n</think>\n\nThe answer is \\boxed{5}."

    def ids(tokenizer, text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    completion = ids(student, "<think>\n" + answer)
    prompt, unscored = teacher_prompt(student, teacher, messages, completion)
    assert teacher.decode(prompt) == "<｜begin▁of▁sentence｜><｜User｜>What is 2 + 3?<｜Assistant｜>"
    assert unscored == 2 and student.decode(completion[:unscored]) == "<think>\n"
    # the teacher then reads exactly what its template and the completion make together
    assert teacher.decode(prompt + completion) == teacher.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False) + answer

    prompt, unscored = teacher_prompt(student, teacher, messages, ids(student, answer))  # no think opening
    assert teacher.decode(prompt).endswith("<｜Assistant｜><think>\n") and unscored == 0

    prompt, unscored = teacher_prompt(student, student, messages, completion)  # one template: nothing changes
    assert prompt == ids(student, student.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    assert unscored == 0

    prompt, unscored = teacher_prompt(teacher, student, messages, ids(teacher, answer))  # the student's prefill
    assert student.decode(prompt) == "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    assert unscored == 0


def test_prompts_without_references_are_refused_when_accuracy_is_a_reward(models, tmp_path):
    out = tmp_path / "never"
    bare = write_jsonl(tmp_path / "bare.jsonl", [{"problem": "What is 1 + 1?"}, {"problem": "What is 2 + 2?"}])
    result = run_in_process(["rl", bare, "--student", models["student"], "--out", out])
    assert_user_error(result, "bare.jsonl:1", "no reference answer", "--answer-column", "--judge")
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


def test_a_judge_without_the_accuracy_reward_is_refused(models, prompts, tmp_path):
    result = run_in_process(["rl", prompts, "--student", models["student"], "--out", tmp_path / "never",
                             "--rewards", "format", "--judge", "m", "--judge-base-url", "http://127.0.0.1:9/v1"])
    assert_user_error(result, "--judge", "accuracy")
    assert not (tmp_path / "never").exists()


# ---------------------------------------------------------------- rollouts by a colocated vLLM engine (vllm-cpu here)


def test_vllm_rollouts_refuse_a_head_size_the_cpu_engine_lacks(models, prompts, tmp_path):
    """vLLM's CPU attention runs a fixed set of head sizes; the tiny student's 16 is not among them."""
    pytest.importorskip("vllm")
    import torch

    if torch.cuda.is_available():
        pytest.skip("the CPU engine's limits: this machine trains on a GPU")
    result = run_in_process(["rl", prompts, "--student", models["student"], "--out", tmp_path / "never",
                             "--rollout-backend", "vllm"])
    assert_user_error(result, "--rollout-backend vllm", "CPU attention runs head sizes", "has 16",
                      "--rollout-backend hf")
    assert not (tmp_path / "never").exists()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_vllm_rollouts_follow_the_policy(prompts, tmp_path, monkeypatch, method):
    """GRPO with rollouts from TRL's colocated vLLM engine (vllm-cpu on this machine, ~40 s to start on 2
    cores). TRL logs how far the engine's log-probabilities of the sampled tokens are from the policy's:
    after each step's update they stay as close as at the start while the policy moves far from where it
    began (the KL to the start), so every step's weights reached the engine."""
    pytest.importorskip("vllm")
    from distill.tiny import save_tiny

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache (vLLM's CPU default is a share of memory)
    student = save_tiny(tmp_path / "student", "r1", corpus=MIXED_CORPUS, vocab_size=400, hidden_size=128, heads=2,
                        kv_heads=1)  # head size 64, which vLLM's CPU attention runs
    result = rl(RLConfig(prompts=str(prompts), student=str(student), out=str(tmp_path / "out"), method=method,
                         rewards=["language"], num_generations=4, max_completion_tokens=8, max_steps=3,
                         lr=1e-2 if method == "full" else 5e-2, kl_coef=0.001, save_steps=0, rollout_backend="vllm"))
    history = json.loads((tmp_path / "out" / "train_summary.json").read_text())["log_history"]
    steps = [entry for entry in history if "reward" in entry]
    assert len(steps) == 3 and result.steps == 3
    gaps = [entry["sampling/sampling_logp_difference/mean"] for entry in steps]
    assert max(gaps) < 0.01, gaps
    assert steps[-1]["kl"] > 10 * max(gaps), (steps[-1]["kl"], gaps)


@pytest.mark.parametrize("max_steps", [None, "2"])
def test_on_policy_with_fewer_prompts_than_a_step_takes_is_refused_up_front(models, prompts, tmp_path, max_steps):
    """8 prompts, --num-generations 16 (the default): no on-policy step, with or without --max-steps (was: a
    ValueError traceback, or 'training 0 steps', exit 0 and an untrained adapter saved as a finished run)."""
    out = tmp_path / "o"
    result = run_in_process(["rl", prompts, "--student", models["student"], "--out", out, "--objective", "on-policy",
                             "--teacher", models["student"], *(["--max-steps", max_steps] if max_steps else [])])
    assert_user_error(result, "8 prompts make no step", "give at least 16 prompts", "--num-generations")
    assert not out.exists()


def test_the_plan_line_states_the_step_arithmetic():
    from distill.rl.run import plan_steps

    grpo = RLConfig(prompts="p.jsonl", student="s", out="o", num_generations=4, prompts_per_step=2, epochs=1.5)
    assert plan_steps(grpo, 9) == (8, "9 prompts × 4 completions, 2 prompts a step = 5 steps an epoch, "
                                      "× 1.5 epochs = 8 optimizer steps")
    on_policy = RLConfig(prompts="p.jsonl", student="s", out="o", objective="on-policy", teacher="t",
                         num_generations=4, max_steps=3)
    assert plan_steps(on_policy, 9) == (3, "9 prompts ÷ (4 a micro-batch × 1 micro-batches a step) = 2 steps an "
                                           "epoch, --max-steps 3")


def test_no_vllm_version_warning_from_trl_with_hf_rollouts(models, prompts, tmp_path):
    """TRL's 'supports vLLM 0.22-0.31' warning came five times even with hf rollouts: distill knows it is noise."""
    result = run_cli("rl", prompts, "--student", models["student"], "--out", tmp_path / "quiet", "--method", "full",
                     "--rewards", "format", "--num-generations", "2", "--max-completion-tokens", "4", "--max-steps",
                     "1", "--save-steps", "0", "--rollout-backend", "hf")
    assert result.returncode == 0, result.stderr
    assert "TRL currently supports vLLM" not in result.stderr


# ---------------------------------------------------------------- hybrid-thinking templates (issue 26)


def test_each_side_renders_its_prompt_with_its_own_template_kwargs():
    """A Qwen3-style student in non-thinking mode and a DeepSeek-V3.1-style teacher asked to think: the
    student's prompt ends in its empty think block, the teacher's in the open one its `thinking` writes.
    Without the kwargs each would render its template's default (the V3.1 teacher: thinking off)."""
    from distill.rl.trainers import teacher_prompt
    from distill.tiny import build_tokenizer

    corpus = ["<think>\nFirst, 2 + 3 = 5.\n</think>\n\nThe answer is \\boxed{5}.", "What is 2 + 3?"] * 20
    student, teacher = build_tokenizer("qwen3", corpus, 300), build_tokenizer("v31", corpus, 300)
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    answer = student("The answer is 5.", add_special_tokens=False)["input_ids"]
    prompt, unscored = teacher_prompt(student, teacher, messages, answer, student_kwargs={"enable_thinking": False},
                                      teacher_kwargs={"thinking": True})
    assert teacher.decode(prompt).endswith("<｜User｜>What is 2 + 3?<｜Assistant｜><think>") and unscored == 0
    prompt, _ = teacher_prompt(student, teacher, messages, answer, student_kwargs={"enable_thinking": False})
    assert teacher.decode(prompt).endswith("<｜Assistant｜></think>")  # the teacher's default: thinking off
    # the student's own rendering, as the rollouts see it (TRL renders with the same kwargs)
    prompt, _ = teacher_prompt(teacher, student, messages, answer, teacher_kwargs={"enable_thinking": False})
    assert student.decode(prompt).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def student_and_teacher(root: Path, family: str, *, seed: int, confidence: float = 1.0) -> tuple[Path, Path]:
    """A tiny student of `family` in root/student, and in root/teacher a teacher sharing its tokenizer: the
    same architecture with other random weights (its output layer scaled by `confidence`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.tiny import save_tiny

    student = save_tiny(root / "student", family, corpus=MIXED_CORPUS, vocab_size=400)
    teacher = AutoModelForCausalLM.from_pretrained(student)
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in teacher.parameters():
            parameter.copy_(torch.randn_like(parameter) * parameter.std().clamp(min=0.02))
        teacher.lm_head.weight.mul_(confidence)
    teacher.save_pretrained(root / "teacher")
    AutoTokenizer.from_pretrained(student).save_pretrained(root / "teacher")
    return student, root / "teacher"


@pytest.fixture(scope="module")
def qwen3_pair(tmp_path_factory):
    """A tiny Qwen3 (architecture and template) student, and a teacher sharing its tokenizer."""
    return student_and_teacher(tmp_path_factory.mktemp("qwen3"), "qwen3", seed=2)


def test_on_policy_distillation_of_a_qwen3_student_takes_both_sides_template_kwargs(qwen3_pair, prompts, tmp_path,
                                                                                   caplog):
    """The policy samples in non-thinking mode (--chat-template-kwargs), the teacher reads in thinking mode
    (--teacher-chat-template-kwargs); both are must-match: a rerun with the other mode is refused naming it."""
    from transformers import AutoConfig

    student, teacher = qwen3_pair
    assert AutoConfig.from_pretrained(student).model_type == "qwen3"
    out = tmp_path / "qwen3-opd"
    args = ["rl", prompts, "--student", student, "--out", out, "--objective", "on-policy", "--teacher", teacher,
            "--method", "full", "--num-generations", "2", "--max-completion-tokens", "4", "--max-steps", "1",
            "--save-steps", "0", "--teacher-chat-template-kwargs", '{"enable_thinking": true}']
    caplog.set_level("INFO", logger="distill.rl")
    done = run_in_process([*args, "--chat-template-kwargs", '{"enable_thinking": false}'])
    assert done.returncode == 0, done.stderr
    assert "hybrid, switched by 'enable_thinking'; the rollouts are in non-thinking mode" in caplog.text
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 1 and summary["config"]["chat_template_kwargs"] == '{"enable_thinking": false}'
    refused = run_in_process([*args, "--chat-template-kwargs", '{"enable_thinking": true}'])
    assert_user_error(refused, "--chat-template-kwargs", "--overwrite")


def test_teacher_template_kwargs_only_apply_on_policy():
    from distill.errors import ConfigError

    with pytest.raises(ConfigError, match="--teacher-chat-template-kwargs only applies to --objective on-policy"):
        RLConfig(prompts="p.jsonl", student="s", out="o", teacher_chat_template_kwargs="{}")
    with pytest.raises(ConfigError, match="--teacher-chat-template-kwargs must be a JSON object"):
        RLConfig(prompts="p.jsonl", student="s", out="o", objective="on-policy", teacher="t",
                 teacher_chat_template_kwargs="[true]")
