"""What the student is trained on: masks under the Qwen, Llama-3 and R1-Distill templates (literal
expectations), the default template, the templates the preflight refuses, and the pure data helpers
(target text, length selection, packing, pack order, the padding-free collator)."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from distill.chat import DEFAULT_CHAT_TEMPLATE
from distill.errors import InputError, ModelError
from distill.tiny import QWEN_TEMPLATE, build_tokenizer
from distill.train import probe_chat_format, render_example
from distill.train.data import (
    PackedCollator,
    pack_by_tokens,
    pack_order,
    select_by_length,
    split_to_multiple,
)
from distill.train.render import (
    IGNORE_INDEX,
    check_trained_span,
    first_special_token,
    show_example,
    split_target,
    target_text,
)

RECORD = {"id": "q:0", "messages": [{"role": "user", "content": "What is 2 + 3?"}],
          "completion": "<think>\nTwo plus three is five.\n</think>\n\nThe answer is 5."}
TARGET = "<think>\nTwo plus three is five.\n</think>\n\nThe answer is 5."

EXPECTED = {
    "qwen": ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
             "<|im_start|>assistant\n",
             TARGET + "<|im_end|>"),
    "llama": ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 3?<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n",
              TARGET + "<|eot_id|>"),
    # the template pre-fills '<think>\n': the target starts inside the think block, the tag is not repeated
    "r1": ("<｜begin▁of▁sentence｜><｜User｜>What is 2 + 3?<｜Assistant｜><think>\n",
           "Two plus three is five.\n</think>\n\nThe answer is 5.<｜end▁of▁sentence｜>"),
}
END_OF_TURN = {"qwen": "<|im_end|>", "llama": "<|eot_id|>", "r1": "<｜end▁of▁sentence｜>"}


def split(example, tokenizer):
    labels = example["labels"]
    first = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    return (tokenizer.decode(example["input_ids"][:first], skip_special_tokens=False),
            tokenizer.decode(example["input_ids"][first:], skip_special_tokens=False), first)


@pytest.mark.parametrize("family", ["qwen", "llama", "r1"])
def test_prompt_is_masked_and_reasoning_answer_end_of_turn_are_trained(family, tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models[family])
    example = render_example(RECORD, tokenizer)
    prompt, trained, first = split(example, tokenizer)
    assert (prompt, trained) == EXPECTED[family]
    assert example["labels"][:first] == [IGNORE_INDEX] * first
    assert example["labels"][first:] == example["input_ids"][first:]  # unshifted: the model shifts
    assert example["labels"][-1] == tokenizer.convert_tokens_to_ids(END_OF_TURN[family])
    # exactly the tokens inference sees: the rendered prompt tokenized alone, then the target alone
    prompt_ids = tokenizer(EXPECTED[family][0], add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(EXPECTED[family][1], add_special_tokens=False)["input_ids"]
    assert example["input_ids"] == prompt_ids + target_ids


def test_r1_template_would_delete_the_reasoning_if_it_rendered_the_target(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["r1"])
    through_template = tokenizer.apply_chat_template(
        [*RECORD["messages"], {"role": "assistant", "content": RECORD["completion"]}], tokenize=False)
    assert "Two plus three" not in through_template  # the trap
    _, trained, _ = split(render_example(RECORD, tokenizer), tokenizer)
    assert trained.startswith("Two plus three is five.\n</think>")
    assert "<think>" not in trained


def test_base_model_without_template_gets_the_default_one():
    tokenizer = build_tokenizer("qwen")
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE  # what load_student_tokenizer sets for a base model
    example = render_example(RECORD, tokenizer)
    prompt, trained, _ = split(example, tokenizer)
    assert prompt == "User: What is 2 + 3?\n\nAssistant: "
    assert trained == TARGET + "<|im_end|>"  # the default template ends assistant turns with EOS


def test_end_of_turn_differs_from_eos_like_a_qwen_base_model():
    tokenizer = build_tokenizer("qwen")
    tokenizer.eos_token = "<|endoftext|>"  # Qwen2.5 base: EOS <|endoftext|>, ChatML turns end with <|im_end|>
    fmt = probe_chat_format(tokenizer)
    assert (fmt.end_of_turn, fmt.prefill) == ("<|im_end|>", "")
    assert render_example(RECORD, tokenizer, chat_format=fmt)["labels"][-1] == fmt.end_of_turn_id


def test_target_text_literals():
    assert target_text("r", "a", prefill="", end_of_turn="<E>") == "<think>\nr\n</think>\n\na<E>"
    assert target_text("r", "a", prefill="<think>\n", end_of_turn="<E>") == "r\n</think>\n\na<E>"
    assert target_text("r", "a", prefill="<think>", end_of_turn="<E>") == "\nr\n</think>\n\na<E>"
    assert target_text("r", "a", prefill="<think>\n\n", end_of_turn="<E>") == "r\n</think>\n\na<E>"
    assert split_target({"completion": "  <think>\n a b \n</think>\n\n x "}) == ("a b", "x")


@pytest.mark.parametrize(("completion", "reason"), [
    # no reasoning: refused for a one-mode template (a hybrid one trains it in its non-thinking mode)
    ("The answer is 5.", "no single <think>…</think> block with reasoning.* no non-thinking mode"),
    ("<think>\n\n</think>\n\n5", "no single <think>…</think> block with reasoning.* no non-thinking mode"),
    ("<think>\nthinking and thinking", "no single <think>…</think> block"),
    ("<think>\nreasoning\n</think>\n\n", "nothing after </think>"),
    ("<think>a</think><think>b</think> 5", "no single <think>…</think> block"),
])
def test_records_without_reasoning_or_answer_are_refused(completion, reason, tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["qwen"])
    with pytest.raises(InputError, match=reason):
        render_example({**RECORD, "completion": completion}, tokenizer)


CHATML_ON_LLAMA = QWEN_TEMPLATE
QWEN3_NO_THINKING = QWEN_TEMPLATE.replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n'")
NO_END_OF_TURN = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                  "{% if add_generation_prompt %}assistant: {% endif %}")
DROPS_ASSISTANT = ("{% for m in messages %}{% if m['role'] != 'assistant' %}{{ m['content'] }}{% endif %}{% endfor %}"
                   "{% if add_generation_prompt %}<|im_start|>{% endif %}")


@pytest.mark.parametrize(("family", "template", "reason"), [
    ("llama", CHATML_ON_LLAMA, "'<|im_end|>\\\\n', which is no special token of this tokenizer"),
    ("qwen", QWEN3_NO_THINKING, "closes an empty think block in the generation prompt"),
    ("qwen", NO_END_OF_TURN, "ends an assistant turn with only '\\\\n', so the student could never learn"),
    ("qwen", DROPS_ASSISTANT, "drops the text of assistant turns"),
])
def test_templates_that_cannot_train_a_reasoning_student_are_refused(family, template, reason):
    tokenizer = build_tokenizer(family)
    tokenizer.chat_template = template
    with pytest.raises(ModelError, match=reason):
        probe_chat_format(tokenizer)


def test_trained_span_check_names_what_is_missing(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["qwen"])
    fmt = probe_chat_format(tokenizer)
    example = render_example(RECORD, tokenizer, chat_format=fmt)
    assert check_trained_span(example, tokenizer, fmt, "Two plus three is five.") == []
    no_stop = {"input_ids": example["input_ids"][:-1], "labels": example["labels"][:-1]}
    assert check_trained_span(no_stop, tokenizer, fmt, "Two plus three is five.") == [
        "the end-of-turn token '<|im_end|>' does not end the trained span"]
    first = example["labels"].index(tokenizer.convert_tokens_to_ids("</think>"))
    answer_only = {"input_ids": example["input_ids"], "labels": [IGNORE_INDEX] * first + example["labels"][first:]}
    assert check_trained_span(answer_only, tokenizer, fmt, "Two plus three is five.") == [
        "the reasoning is not in the trained span"]


def test_show_example_marks_the_trained_span(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    shown = show_example(render_example(RECORD, tokenizer), tokenizer)
    assert shown == EXPECTED["llama"][0] + "⟦" + EXPECTED["llama"][1] + "⟧"
    long = {**RECORD, "completion": "<think>\n" + "step. " * 500 + "\n</think>\n\nfive"}
    shown = show_example(render_example(long, tokenizer), tokenizer, max_chars=300)
    assert "characters not shown" in shown and shown.endswith("five<|eot_id|>⟧")


def test_first_special_token_prefers_the_earliest_then_the_longest():
    assert first_special_token("<|im_end|>\n", ["<|im_end|>", "<|endoftext|>"]) == "<|im_end|>"
    assert first_special_token("\n</s><s>", ["<s>", "</s>"]) == "</s>"
    assert first_special_token("<|eot|><|eot_id|>", ["<|eot|>", "<|eot_id|>"]) == "<|eot|>"
    assert first_special_token("\n\n", ["</s>"]) is None


def test_select_by_length_drops_never_truncates():
    assert select_by_length([10, 50, 20, 51, 5], 50) == ([0, 1, 2, 4], [3])
    assert select_by_length([60, 70], 50) == ([], [0, 1])


def test_packs_respect_the_budget_cover_every_example_once_and_are_seeded():
    lengths = [5, 3, 4, 2, 6, 8, 1, 7, 3, 3]
    packs = pack_by_tokens(lengths, 8, seed=0)
    assert sorted(i for pack in packs for i in pack) == list(range(10))
    assert all(sum(lengths[i] for i in pack) <= 8 for pack in packs)
    assert len(packs) == 6  # 42 tokens in 6 packs of 8: first fit leaves little room
    assert packs == pack_by_tokens(lengths, 8, seed=0)
    assert packs != pack_by_tokens(lengths, 8, seed=1)
    with pytest.raises(ValueError):
        pack_by_tokens([9], 8, seed=0)


def test_split_to_multiple_gives_every_rank_the_same_number_of_packs():
    lengths = [4, 4, 2, 2, 1]
    assert split_to_multiple([[0, 1], [2, 3, 4]], lengths, 3) == [[0], [1], [2, 3, 4]]
    assert split_to_multiple([[0, 1], [2, 3, 4]], lengths, 2) == [[0, 1], [2, 3, 4]]
    assert split_to_multiple([[0], [1], [2]], lengths, 2) == [[0], [1], [2]]  # nothing to split


def test_pack_order_is_a_function_of_seed_and_epoch():
    assert sorted(pack_order(10, 0, 0)) == list(range(10))
    assert pack_order(10, 0, 0) == pack_order(10, 0, 0)
    assert pack_order(10, 0, 0) != pack_order(10, 0, 1)
    assert pack_order(10, 0, 1) != pack_order(10, 1, 1)


def test_collator_flattens_a_pack_without_padding():
    pack = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8, 9], "labels": [-100, 9]}]
    batch = PackedCollator()([pack])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    # the first label of each example is -100: the last token of one never predicts the next one's first
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, 9]]
    assert "attention_mask" not in batch
    flash = PackedCollator(flash_attention=True)([pack])
    assert flash["cu_seq_lens_q"].tolist() == [0, 3, 5] and flash["max_length_q"] == 3


@pytest.mark.parametrize("family", ["qwen", "llama", "r1"])
def test_special_token_text_in_a_completion_is_trained_as_ordinary_text(family, tmp_path, tiny_models):
    from distill.train.data import tokenize_kept

    tokenizer = AutoTokenizer.from_pretrained(tiny_models[family])
    fmt = probe_chat_format(tokenizer)
    stop = END_OF_TURN[family]
    record = {**RECORD, "completion": f"<think>\nA turn ends with {stop} in ChatML.\n</think>\n\nSo {stop} it is."}
    example = render_example(record, tokenizer, chat_format=fmt)
    _, trained_text, first = split(example, tokenizer)
    trained = example["input_ids"][first:]
    # the one real end-of-turn token is the last; the two written by the teacher are ordinary pieces
    assert trained.count(fmt.end_of_turn_id) == 1 and trained[-1] == fmt.end_of_turn_id
    assert trained_text.count(stop) == 3 and trained_text.endswith(f"So {stop} it is.{stop}")
    assert check_trained_span(example, tokenizer, fmt, "A turn ends with") == []
    # the on-disk training data is tokenized the same way
    kept = tmp_path / "kept.jsonl"
    kept.write_text(json.dumps({**record, "prompt_id": "q", "sample": 0}) + "\n")
    data = tokenize_kept(kept, tokenizer, fmt, tmp_path / "data")
    assert data.example(0) == example


@pytest.mark.parametrize(("messages", "reason"), [
    ([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "ends with an assistant turn"),
    ([{"role": "bot", "content": "hi"}, {"role": "user", "content": "2+2?"}], "message 1 has role 'bot'"),
    ([], "is empty"),
])
def test_prompts_that_cannot_precede_the_completion_are_refused(messages, reason, tmp_path):
    from distill.train.data import validate_kept

    kept = tmp_path / "kept.jsonl"
    kept.write_text(json.dumps({**RECORD, "messages": [{"role": "user", "content": "1+1?"}]}) + "\n"
                    + json.dumps({**RECORD, "id": "q:1", "messages": messages}) + "\n")
    with pytest.raises(InputError, match=rf"kept.jsonl:2: field 'messages': {reason}"):
        validate_kept(kept, None)


# ---------------------------------------------------------------- hybrid-thinking students (issue 26)


def test_a_hybrid_student_trains_reasoning_in_thinking_mode_and_plain_records_in_its_other_mode(tmp_path):
    """A DeepSeek-V3.1-style template (closes an empty think block unless `thinking`): it was refused."""
    from distill.tiny import save_tiny
    from distill.train.render import probe_chat_format

    tokenizer = AutoTokenizer.from_pretrained(save_tiny(tmp_path / "v31", "v31"))
    fmt = probe_chat_format(tokenizer)
    assert fmt.switch == "thinking" and fmt.prefill == "<think>" and fmt.kwargs(False) == {"thinking": False}
    reasoning = render_example({**RECORD, "completion": "<think>\nadd two and two\n</think>\n\n4"}, tokenizer,
                               chat_format=fmt)
    shown = show_example(reasoning, tokenizer)
    assert shown.endswith("<｜Assistant｜><think>⟦\nadd two and two\n</think>\n\n4<｜end▁of▁sentence｜>⟧")
    for plain in ("4", "<think>\n\n</think>\n\n4"):  # no think block, or an empty one
        shown = show_example(render_example({**RECORD, "completion": plain}, tokenizer, chat_format=fmt), tokenizer)
        # the template's own empty think block is prompt; the target is the answer and the end of turn
        assert shown.endswith("<｜Assistant｜></think>⟦4<｜end▁of▁sentence｜>⟧"), shown


def test_a_qwen3_student_trains_both_modes_as_its_template_renders_them():
    """Qwen3's template: thinking mode (its default) leaves the assistant turn open, non-thinking writes
    '<think>\\n\\n</think>\\n\\n' into the prompt; an assistant turn keeps its reasoning only after the last
    user turn. distill renders the target itself, so neither rule can drop the reasoning."""
    tokenizer = build_tokenizer("qwen3")
    fmt = probe_chat_format(tokenizer)
    assert (fmt.switch, fmt.prefill, fmt.end_of_turn) == ("enable_thinking", "", "<|im_end|>")
    assert fmt.kwargs(True) == {"enable_thinking": True}
    reasoning = render_example({**RECORD, "completion": "<think>\nadd two and two\n</think>\n\n4"}, tokenizer,
                               chat_format=fmt)
    assert show_example(reasoning, tokenizer).endswith(
        "<|im_start|>assistant\n⟦<think>\nadd two and two\n</think>\n\n4<|im_end|>⟧")
    plain = render_example({**RECORD, "completion": "4"}, tokenizer, chat_format=fmt)
    assert show_example(plain, tokenizer).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n⟦4<|im_end|>⟧")
    # with the user's own kwargs as the base of both modes
    fmt = probe_chat_format(tokenizer, {"enable_thinking": False})
    assert fmt.switch == "enable_thinking" and fmt.prefill == "" and fmt.kwargs(True) == {"enable_thinking": True}
