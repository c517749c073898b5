"""What a policy does before and after `distill rl`, on seeded samples: the mean language reward and the
share of mixed-language samples (GRPO's effect), the per-token KL to a teacher (on-policy distillation's).

The same prompts, seed and sampler on both sides of a comparison, so a difference is the policy's.
The tests and benchmarks/bench_rl.py measure runs with these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Messages = list[dict[str, str]]


@dataclass
class Samples:
    ids: Any
    """prompt and completion token ids, one row per sample (n rows per prompt, in prompt order)"""
    attention_mask: Any
    prompt_length: int
    model: Any
    tokenizer: Any

    def texts(self) -> list[str]:
        return self.tokenizer.batch_decode(self.ids[:, self.prompt_length:], skip_special_tokens=True)


def seeded_samples(model_dir: str, prompts: Sequence[Messages], *, max_new_tokens: int, n: int,
                   seed: int = 1, template_kwargs: dict[str, Any] | None = None) -> Samples:
    """n samples per prompt at temperature 1 (the rollouts' sampling), from one seeded generate call; the
    prompts rendered with `template_kwargs` (--chat-template-kwargs) as in the rollouts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    batch = tokenizer.apply_chat_template(list(prompts), add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True, padding=True, **(template_kwargs or {}))
    torch.manual_seed(seed)
    with torch.no_grad():
        ids = model.generate(**batch, do_sample=True, temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens,
                             num_return_sequences=n, pad_token_id=tokenizer.pad_token_id)
    start = batch["input_ids"].shape[1]
    mask = (ids != tokenizer.pad_token_id).long()
    mask[:, :start] = batch["attention_mask"].repeat_interleave(n, 0)
    return Samples(ids, mask, start, model, tokenizer)


def language_consistency(model_dir: str, prompts: Sequence[Messages], *, max_new_tokens: int, n: int,
                         prefill: str = "<think>\n", seed: int = 1) -> dict[str, float]:
    """The mean language reward of the samples (those with words to score) and the share of them that mix
    languages (a reward strictly between 0 and 1). `prefill` is what the chat template writes into the
    generation prompt, as in the rollouts."""
    from distill.rl.rewards import as_record, language_score

    samples = seeded_samples(model_dir, prompts, max_new_tokens=max_new_tokens, n=n, seed=seed)
    scores = [language_score(as_record(prompts[i // n], text, prefill=prefill))
              for i, text in enumerate(samples.texts())]
    scored = [score for score in scores if score is not None]
    return {"mean_reward": sum(scored) / len(scored), "mixed_share": sum(0 < s < 1 for s in scored) / len(scored),
            "scored": len(scored)}


def per_token_kl(student_dir: str, teacher_dir: str, prompts: Sequence[Messages], *, max_new_tokens: int, n: int,
                 seed: int = 1) -> float:
    """Mean KL(student ‖ teacher) per completion token on the student's samples: what on-policy
    distillation minimises (reverse KL, --jsd-beta 1), with the teacher reading each prompt in its own
    chat template as in training (`distill.rl.trainers.teacher_prompt`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.backends.hf import left_padded
    from distill.rl.trainers import teacher_prompt

    samples = seeded_samples(student_dir, prompts, max_new_tokens=max_new_tokens, n=n, seed=seed)
    teacher = AutoModelForCausalLM.from_pretrained(teacher_dir)
    teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    start = samples.prompt_length
    completion, completion_mask = samples.ids[:, start:], samples.attention_mask[:, start:]
    weights = completion_mask.float()
    rows = []
    for row, ids in enumerate(completion.tolist()):
        ids, unscored = teacher_prompt(samples.tokenizer, teacher_tokenizer, prompts[row // n], ids)
        rows.append(ids)
        weights[row, :unscored] = 0
    prompt_ids, prompt_mask = left_padded(rows, teacher_tokenizer.pad_token_id or 0, completion.device)
    width = prompt_ids.shape[1]
    with torch.no_grad():
        ours = samples.model(samples.ids, attention_mask=samples.attention_mask).logits[:, start - 1:-1]
        theirs = teacher(torch.cat([prompt_ids, completion], 1),
                         attention_mask=torch.cat([prompt_mask, completion_mask], 1)).logits[:, width - 1:-1]
    ours, theirs = ours.log_softmax(-1), theirs.log_softmax(-1)
    kl = (ours.exp() * (ours - theirs)).sum(-1)
    return float((kl * weights).sum() / weights.sum())
