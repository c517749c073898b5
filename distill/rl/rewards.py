"""The rule rewards of `distill rl`: the filter's own checks turned into numbers per completion.

As in the DeepSeek-R1 paper: accuracy (the answer graded exactly as `distill filter`
grades it: math-verify, letters, the sandbox for code), format (reasoning inside
`<think>…</think>`), and language consistency (the share of the chain of thought
written in the target language, a continuous score); plus DAPO's soft overlong
penalty as an option.

Each reward reads the filter through ONE adapter function below (`_correct`,
`_well_formed`, `_language_share`), which builds the filter's registered check
object. Where a judge is configured (`--judge MODEL`), the accuracy reward asks
it, through the filter's judge check, about what the rules leave open, exactly
as the filter does (`JudgedCorrectness`).

A reward is a TRL reward function: `reward(prompts, completions, completion_ids,
**columns) -> list[float | None]`; None (cannot tell: no reference, a math-verify
timeout, no language in the text) is left out of the mean instead of counted as 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from distill.checks import CHECKS, Pending, Verdict
from distill.checks.language import LanguageOptions
from distill.shape import CANONICAL, THINK_CLOSE, THINK_OPEN

REWARDS = ("accuracy", "format", "language", "overlong")

RewardFunc = Callable[..., list[float | None]]


# ---------------------------------------------------------------- the adapters onto the filter's checks


# the filter's own check objects, from its registry: a reward is graded exactly as the filter grades
def _correct(record: dict[str, Any]) -> bool | None:
    return CHECKS["correctness"]().run(record)


def _well_formed(record: dict[str, Any]) -> bool:
    return bool(CHECKS["format"]().run(record))


def _language_share(record: dict[str, Any], language: str) -> float | None:
    _, measure = CHECKS["language"](LanguageOptions(language=language)).measure(record)
    return None if measure is None else measure.score


class JudgedCorrectness:
    """The filter's judge check (distill.checks.judge.JudgeCheck) over one batch of rollouts at a time.

    The rules grade first; the rollouts they leave open (no verdict; with --judge-overrule-false, a False
    on a reference that is not a plain number) go to the judge together, in one batch, and its verdict
    replaces the rules'. The judge sees the problem, the reference and the final answer, never the
    reasoning, so a rollout whose think block never closed keeps the rules' verdict. No verdict from the
    judge: the rules' verdict stands (--judge-unknown keep) or the rollout counts as wrong (reject)."""

    def __init__(self, check: Any):
        self.check = check
        self._pool: Any = None

    @classmethod
    def of(cls, options: Any, *, out: str, rank: int = 0) -> JudgedCorrectness:
        """From a config holding the judge options (distill.judge.JudgeOptions); the verdict cache sits beside
        `out` unless --judge-cache names one (one file per process: the processes judge their own rollouts)."""
        from distill.config import project
        from distill.judge import JudgeOptions
        from distill.traces import sidecar

        cache = options.judge_cache or str(sidecar(out, "judge-cache.jsonl"))
        if rank:
            cache = str(Path(cache).with_suffix(f".rank{rank}.jsonl"))
        return cls(CHECKS["judge"](project(JudgeOptions, options), cache=cache))

    def open(self) -> JudgedCorrectness:
        """Start the judge's engine (a server is checked, a local model loaded) before the first batch."""
        if self._pool is None:
            self._pool = self.check.open_pool(1)
        return self

    @property
    def stats(self) -> Any:
        from distill.judge import JudgeStats

        return self._pool.stats if self._pool is not None else JudgeStats()

    def settle(self, records: Sequence[dict[str, Any]], verdicts: Sequence[Verdict]) -> list[Verdict]:
        """The verdicts, with the judge's in place of the rules' where the rules left the record to it."""
        asked: dict[int, Pending] = {}
        for index, (record, verdict) in enumerate(zip(records, verdicts, strict=True)):
            if not has_final_answer(record):
                continue
            pending = self.check.start(record, {})
            if isinstance(pending, Pending) and self.check.wants(pending, {"correctness": verdict}):
                asked[index] = pending
        settled = list(verdicts)
        if not asked:
            return settled
        batch = self.open()._pool.batch()
        for index, pending in asked.items():
            batch.add(*pending.args, index)
        batch.submit()
        for indices, result in batch.results():
            judged = self.check.finish(result, {})
            for index in indices:
                if judged is not None:
                    settled[index] = judged
                elif self.check.reject_unknown:
                    settled[index] = False
        return settled

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


def has_final_answer(record: dict[str, Any]) -> bool:
    """A closed think block followed by the answer, or no think markers at all (the whole text answers)."""
    text = record["completion"]
    return CANONICAL.split(record) is not None or (THINK_OPEN not in text and THINK_CLOSE not in text)


# ---------------------------------------------------------------- one completion as a trace record


def _text(completion: Any) -> str:
    """TRL passes a conversational completion as [{'role': 'assistant', 'content': …}]."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def as_record(prompt: Any, completion: Any, reference: Any = None, *, prefill: str = "") -> dict[str, Any]:
    """The trace record the filter would see for this rollout. `prefill` is what the chat template
    already wrote into the generation prompt ('<think>\\n' for R1-Distill), so the completion the
    student produced starts after it."""
    messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
    return {"messages": messages, "completion": prefill + _text(completion), "reference": reference}


def reasoning_record(record: dict[str, Any]) -> dict[str, Any]:
    """The record with the chain of thought alone as its completion (the whole text when there is
    no well-formed think block): the paper scores the language of the CoT."""
    parts = CANONICAL.split(record)
    return {**record, "completion": parts[0] if parts else record["completion"]}


# ---------------------------------------------------------------- scores of one record


def accuracy_score(record: dict[str, Any]) -> float | None:
    """1.0 correct, 0.0 wrong or no answer, None when it cannot be told (no reference, timeout)."""
    return accuracy_scores([record])[0]


def accuracy_scores(records: Sequence[dict[str, Any]], judge: JudgedCorrectness | None = None) -> list[float | None]:
    """accuracy_score of each record, with the judge (when given) grading what the rules leave open."""
    verdicts = [_correct(record) for record in records]
    if judge is not None:
        verdicts = judge.settle(records, verdicts)
    return [None if verdict is None else float(verdict) for verdict in verdicts]


def format_score(record: dict[str, Any]) -> float:
    """1.0 for one non-empty think block followed by a non-empty answer, else 0.0."""
    return float(_well_formed(record))


def language_score(record: dict[str, Any], language: str = "auto") -> float | None:
    """Share of the chain of thought in the target language (the prompt's for 'auto'), in [0, 1]."""
    return _language_share(reasoning_record(record), language)


def overlong_score(tokens: int, max_tokens: int, buffer: int) -> float:
    """DAPO's soft overlong punishment: 0 up to max_tokens - buffer, then falling linearly to -1 at
    max_tokens (where the completion was cut)."""
    start = max_tokens - buffer
    if tokens <= start:
        return 0.0
    if tokens >= max_tokens:
        return -1.0
    return (start - tokens) / buffer


# ---------------------------------------------------------------- TRL reward functions


def reward_functions(names: Sequence[str], *, prefill: str = "", language: str = "auto",
                     max_completion_tokens: int = 0, overlong_buffer: int = 0,
                     judge: JudgedCorrectness | None = None) -> list[RewardFunc]:
    """The TRL reward functions for `names`, in that order. Each is named after its reward, so TRL
    logs it as rewards/<name>/mean; accuracy reads the dataset's `reference_json` column (the
    reference as JSON: a number, a string, a list, or a code task's tests), and asks `judge` about
    what the rules leave open."""

    def records(prompts: list[Any], completions: list[Any], references: list[Any]) -> list[dict[str, Any]]:
        return [as_record(p, c, r, prefill=prefill) for p, c, r in zip(prompts, completions, references, strict=True)]

    def accuracy(prompts, completions, reference_json, **_: Any) -> list[float | None]:
        references = [json.loads(r) for r in reference_json]
        return accuracy_scores(records(prompts, completions, references), judge)

    def well_formed(prompts, completions, **_: Any) -> list[float | None]:
        return [format_score(r) for r in records(prompts, completions, [None] * len(prompts))]

    def consistent(prompts, completions, **_: Any) -> list[float | None]:
        # a chain of thought in formulas only has no language to score: neutral (1.0), never None, which
        # TRL sums as 0 and so would score an honest formula-only trace below gibberish
        scores = [language_score(r, language) for r in records(prompts, completions, [None] * len(prompts))]
        return [1.0 if score is None else score for score in scores]

    def overlong(prompts, completions, completion_ids, **_: Any) -> list[float | None]:
        return [overlong_score(len(ids), max_completion_tokens, overlong_buffer) for ids in completion_ids]

    table = {"accuracy": accuracy, "format": well_formed, "language": consistent, "overlong": overlong}
    for name, func in table.items():
        func.__name__ = name
    return [table[name] for name in names]
