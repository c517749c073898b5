"""One kept trace -> the tokens the student trains on, with the prompt masked.

The conversation is the record's prompt messages, then one assistant turn

    <think>\\n{reasoning}\\n</think>\\n\\n{answer}<end-of-turn>

The prompt is rendered by the student's chat template with
`add_generation_prompt=True`, exactly as it will be at inference. The assistant
target is rendered by us and appended, because templates cannot be trusted
with it: DeepSeek-R1-Distill templates delete everything up to `</think>` in
assistant turns (the reasoning would silently vanish from the data), and newer
ones pre-fill `<think>\\n` in the generation prompt (the target must then
start inside the think block, or the student learns to write the tag twice).

Hybrid-thinking templates (Qwen3's `enable_thinking`, DeepSeek-V3.1's `thinking`) are probed
for their switch: a record with reasoning is rendered in thinking mode, a record without
(writing, factual QA: the R1 recipe's non-reasoning data) in the template's non-thinking mode,
whose empty think block is the template's own prompt text, not target. A template without such
a mode trains only records with reasoning.

The end-of-turn token is the one the template closes assistant turns with
(`<|im_end|>`, `<|eot_id|>`, `<｜end▁of▁sentence｜>`, or EOS for the default
template). It ends the target and is trained, so the student learns to stop.

Prompt and target are tokenized separately and concatenated: that is how the
tokens look at inference, where the prompt is tokenized and the model writes
the rest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from distill.chat import THINKING_SWITCHES, render_prompt, thinking_switch
from distill.errors import InputError, ModelError
from distill.shape import CANONICAL, THINK_CLOSE, THINK_OPEN, generation_prefill, join_reasoning

IGNORE_INDEX = -100
# an assistant message that no template rewrites (no '</think>' in it)
_PROBE = "distill-probe-0d1e"
_PROBE_PROMPT = [{"role": "user", "content": "What is 2 + 2?"}]


@dataclass(frozen=True)
class ChatFormat:
    """What a student's chat template does, found out once per run by rendering a probe."""
    end_of_turn: str
    """the special token that closes an assistant turn"""
    end_of_turn_id: int
    prefill: str
    """the start of a think block the template writes into the generation prompt ('<think>\\n' or '')"""
    switch: str | None = None
    """the template variable that turns thinking on and off (hybrid families), None for a one-mode template"""
    template_kwargs: str = "{}"
    """--chat-template-kwargs as JSON text (the base of both modes' variables)"""

    def kwargs(self, thinking: bool) -> dict[str, Any]:
        """The template variables of one mode: the user's, with the switch set to the mode."""
        values = json.loads(self.template_kwargs)
        return {**values, self.switch: thinking} if self.switch else values

    @property
    def has_plain_mode(self) -> bool:
        """The template can render a turn without reasoning (a non-thinking mode)."""
        return self.switch is not None


def _special_tokens(tokenizer: Any) -> list[str]:
    names = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(token, "special", False):
            names.add(token.content)
    return sorted(names, key=len, reverse=True)


def first_special_token(text: str, specials: list[str]) -> str | None:
    """The special token that occurs first in `text` (the longest one where two start at the same place)."""
    best: tuple[int, int, str] | None = None
    for token in specials:
        position = text.find(token)
        if position >= 0 and (best is None or (position, -len(token)) < best[:2]):
            best = (position, -len(token), token)
    return best[2] if best else None


def probe_chat_format(tokenizer: Any, template_kwargs: dict[str, Any] | None = None) -> ChatFormat:
    """Probe the tokenizer's chat template for its end-of-turn token, its generation prefill and its
    thinking switch (with `template_kwargs`, the --chat-template-kwargs, as the base of every render).

    Raises ModelError when the template cannot train a reasoning student: it closes an empty think
    block in the generation prompt in thinking mode too (or has no thinking mode), drops assistant
    text, or ends assistant turns without a special token.
    """
    base = dict(template_kwargs or {})
    switch = thinking_switch(tokenizer, base)
    prompt = render_prompt(tokenizer, _PROBE_PROMPT, {**base, switch: True} if switch else base)
    if re.search(re.escape(THINK_CLOSE) + r"\s*$", prompt):
        raise ModelError("the chat template closes an empty think block in the generation prompt "
                         f"(it ends with {prompt[-24:]!r}) and has no thinking switch distill knows "
                         f"({', '.join(THINKING_SWITCHES)}), so the student would be trained to reason where it "
                         "is told not to; pass --chat-template-kwargs with the variable that turns its thinking "
                         "on, or --chat-template with a template that leaves the assistant turn open")
    try:
        full = tokenizer.apply_chat_template([*_PROBE_PROMPT, {"role": "assistant", "content": _PROBE}],
                                             tokenize=False)
    except Exception as exc:  # a user's Jinja template: say which template failed, not where in jinja
        raise ModelError(f"the chat template failed to render an assistant turn: {exc}") from None
    if not isinstance(full, str):
        full = full[0]
    at = full.rfind(_PROBE)
    if at < 0:
        raise ModelError("the chat template drops the text of assistant turns, so it cannot show where a "
                         "turn ends; pass --chat-template with a template that renders assistant messages")
    suffix = full[at + len(_PROBE):]
    token = first_special_token(suffix, _special_tokens(tokenizer))
    if token is None:
        pieces = len(tokenizer(suffix, add_special_tokens=False)["input_ids"]) if suffix else 0
        if suffix.strip():
            what = f"with {suffix!r}, which is no special token of this tokenizer ({pieces} ordinary tokens)"
        else:
            what = f"with only {suffix!r}" if suffix else "with nothing"
        raise ModelError(f"the chat template ends an assistant turn {what}, so the student could never learn "
                         "to stop; pass --chat-template with a template whose assistant turns end with the "
                         "tokenizer's EOS or end-of-turn token")
    token_id = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int) or token_id == getattr(tokenizer, "unk_token_id", None):
        raise ModelError(f"the end-of-turn token {token!r} is not in the tokenizer's vocabulary")
    return ChatFormat(end_of_turn=token, end_of_turn_id=token_id, prefill=generation_prefill(prompt), switch=switch,
                      template_kwargs=json.dumps(base, sort_keys=True))


def split_target(record: dict[str, Any]) -> tuple[str, str]:
    """(reasoning, answer) of a kept record's completion; ValueError saying what is missing.

    Kept records are in the canonical shape: whatever shape the teacher's traces had (a reasoning
    field, other think tags), distill filter wrote the kept ones as one `<think>` block and the answer.
    """
    if not isinstance(record.get("completion"), str):
        raise ValueError("must be a string")
    parts = CANONICAL.split(record)
    if parts is None:
        raise ValueError("has no single <think>…</think> block at its start, so there is no reasoning to "
                         "train on; keep only well-formed traces (distill filter's format check; for traces "
                         "that keep their reasoning in a field or between other tags, filter them with "
                         "--reasoning-field or --think-open/--think-close, which writes them with a <think> block)")
    reasoning, answer = parts
    if not reasoning:
        raise ValueError("has an empty <think></think> block (no reasoning to train on)")
    if not answer:
        raise ValueError("has nothing after </think> (no answer to train on; was it cut off by max_tokens?)")
    return reasoning, answer


NO_REASONING = ("has no single <think>…</think> block with reasoning, and the student's chat template has no "
                "non-thinking mode to train such a record in (no thinking switch such as enable_thinking); keep "
                "only well-formed traces (distill filter's format check; for traces that keep their reasoning in "
                "a field or between other tags, filter them with --reasoning-field or --think-open/--think-close, "
                "which writes them with a <think> block), or train a hybrid-thinking student (Qwen3, "
                "DeepSeek-V3.1 templates) on records without reasoning")


def split_record(record: dict[str, Any]) -> tuple[str | None, str]:
    """(reasoning, answer) of a kept record; reasoning None for a record without any (no think block at
    all, or an empty one: non-reasoning data such as writing or factual QA); ValueError when there is
    no answer, or a think block that is malformed."""
    completion = record.get("completion")
    if not isinstance(completion, str):
        raise ValueError("must be a string")
    if THINK_OPEN not in completion and THINK_CLOSE not in completion:
        if not completion.strip():
            raise ValueError("is empty (no answer to train on)")
        return None, completion.strip()
    parts = CANONICAL.split(record)
    if parts is not None and not parts[0] and parts[1]:
        return None, parts[1]
    return split_target(record)


def target_text(reasoning: str, answer: str, *, prefill: str, end_of_turn: str) -> str:
    """The assistant text that is trained: `<think>\\n{reasoning}\\n</think>\\n\\n{answer}{end_of_turn}`,
    less what the template already pre-filled of the think block."""
    text = join_reasoning(reasoning, answer)
    if prefill:
        # the generation prompt ends with '<think>' (and whitespace); the target starts inside the block
        text = text[len(prefill):] if text.startswith(prefill) else text[len(THINK_OPEN):].lstrip()
    return text + end_of_turn


def render_texts(record: dict[str, Any], tokenizer: Any, fmt: ChatFormat) -> tuple[str, str]:
    """(prompt text, target text) of a record; ValueError naming what is wrong with its completion.

    A record with reasoning renders in thinking mode; one without, in the template's non-thinking mode,
    where the empty think block the template writes itself is prompt and the target is the answer."""
    reasoning, answer = split_record(record)
    if reasoning is None:
        if not fmt.has_plain_mode:
            raise ValueError(NO_REASONING)
        prompt = render_prompt(tokenizer, record["messages"], fmt.kwargs(False))
        return prompt, answer + fmt.end_of_turn
    prompt = render_prompt(tokenizer, record["messages"], fmt.kwargs(True))
    return prompt, target_text(reasoning, answer, prefill=generation_prefill(prompt), end_of_turn=fmt.end_of_turn)


def encode_targets(targets: list[str], tokenizer: Any, fmt: ChatFormat) -> list[list[int]]:
    """Token ids of target texts (each ending with the end-of-turn token). The teacher's text is tokenized
    as text: a literal `<|im_end|>` inside a completion becomes ordinary tokens, not the control token
    (trained, it would teach the student to stop mid-answer); only the final end of turn is the real one."""
    texts = [target.removesuffix(fmt.end_of_turn) for target in targets]
    ids = tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return [[*row, fmt.end_of_turn_id] for row in ids]


def encode(prompt: str, target: str, tokenizer: Any, fmt: ChatFormat) -> tuple[list[int], int]:
    """(token ids, number of prompt tokens): prompt and target tokenized apart, as at inference."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return prompt_ids + encode_targets([target], tokenizer, fmt)[0], len(prompt_ids)


def mask_prompt(input_ids: list[int], prompt_tokens: int) -> list[int]:
    """Labels: -100 over the prompt, the token ids over the target (the model shifts them itself)."""
    return [IGNORE_INDEX] * prompt_tokens + list(input_ids[prompt_tokens:])


def render_example(record: dict[str, Any], tokenizer: Any, *,
                   chat_format: ChatFormat | None = None) -> dict[str, list[int]]:
    """A kept trace as `{"input_ids", "labels"}` for `tokenizer`: the prompt (masked with -100), then
    `<think>\\n{reasoning}\\n</think>\\n\\n{answer}` and the template's end-of-turn token (trained).

    `chat_format` is what `probe_chat_format(tokenizer)` returns; pass it when rendering many records.
    """
    fmt = chat_format or probe_chat_format(tokenizer)
    try:
        prompt, target = render_texts(record, tokenizer, fmt)
    except ValueError as exc:
        raise InputError(str(exc), field="completion") from None
    input_ids, prompt_tokens = encode(prompt, target, tokenizer, fmt)
    return {"input_ids": input_ids, "labels": mask_prompt(input_ids, prompt_tokens)}


def check_trained_span(example: dict[str, list[int]], tokenizer: Any, fmt: ChatFormat,
                       reasoning: str | None) -> list[str]:
    """Why this rendered example would not teach the student to reason (None: a non-thinking example) and
    stop ([] when it would)."""
    problems = []
    labels = example["labels"]
    trained = [token for token in labels if token != IGNORE_INDEX]
    if not trained:
        return ["no token is trained"]
    if trained[-1] != fmt.end_of_turn_id:
        problems.append(f"the end-of-turn token {fmt.end_of_turn!r} does not end the trained span")
    trained_text = tokenizer.decode(trained, skip_special_tokens=False)
    if reasoning is not None and (reasoning.strip()[:40] not in trained_text or THINK_CLOSE not in trained_text):
        problems.append("the reasoning is not in the trained span")
    if reasoning is None and THINK_OPEN in trained_text:
        problems.append("a think block is in the trained span of a record without reasoning")
    first = next(i for i, token in enumerate(labels) if token != IGNORE_INDEX)
    if any(token == IGNORE_INDEX for token in labels[first:]):
        problems.append("the trained span has masked holes")
    return problems


def show_example(example: dict[str, list[int]], tokenizer: Any, *, open_mark: str = "⟦", close_mark: str = "⟧",
                 max_chars: int = 1200) -> str:
    """The example as text with the trained span between marks; a long span is elided in the middle."""
    labels = example["labels"]
    first = next((i for i, token in enumerate(labels) if token != IGNORE_INDEX), len(labels))
    prompt = tokenizer.decode(example["input_ids"][:first], skip_special_tokens=False)
    trained = tokenizer.decode(example["input_ids"][first:], skip_special_tokens=False)
    if len(trained) > max_chars:
        head, tail = trained[: max_chars * 2 // 3], trained[-max_chars // 3:]
        hidden = len(trained) - len(head) - len(tail)
        trained = f"{head} … [{hidden:,} characters not shown] … {tail}"
    return f"{prompt}{open_mark}{trained}{close_mark}"
