"""Selection among the samples of one prompt that passed every other check: a check of its own kind,
which sees a prompt's samples together instead of one record."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from distill.backends.base import derive_seed
from distill.checks.base import Selectable
from distill.config import MUST_MATCH, Options, one_of, project, require

SELECT_POLICIES = ("random", "shortest", "first")


def select_samples(completions: Sequence[str], lengths: Sequence[int | None], *, prompt_id: str,
                   keep_per_prompt: int | None, select_by: str = "random", seed: int = 0) -> list[bool]:
    """Which of one prompt's passing samples (in input order) to keep.

    An exact duplicate of an earlier completion is dropped (it would double that
    sample's weight in training). Of the rest at most `keep_per_prompt` stay:
    'random' draws from a seed derived from `seed` and the prompt id (so the
    choice does not depend on chunking or worker count), 'shortest' keeps the
    fewest tokens (ties: input order), 'first' keeps input order.
    """
    keep = [False] * len(completions)
    seen: set[str] = set()
    unique: list[int] = []
    for index, text in enumerate(completions):
        if text not in seen:
            seen.add(text)
            unique.append(index)
    if keep_per_prompt is not None and len(unique) > keep_per_prompt:
        if select_by == "random":
            unique = sorted(random.Random(derive_seed(seed, "select", prompt_id)).sample(unique, keep_per_prompt))
        elif select_by == "shortest":
            by_length = sorted(unique, key=lambda i: (lengths[i] if lengths[i] is not None
                                                      else len(completions[i]), i))
            unique = sorted(by_length[:keep_per_prompt])
        else:
            unique = unique[:keep_per_prompt]
    for index in unique:
        keep[index] = True
    return keep


@dataclass(kw_only=True)
class SelectionOptions(Options):
    keep_per_prompt: int | None = field(default=None, metadata=MUST_MATCH)
    """selection: keep at most this many passing samples per prompt (default: all)."""
    select_by: str = field(default="random", metadata=MUST_MATCH)
    """selection: which samples --keep-per-prompt keeps: random (seeded), shortest, or first."""
    seed: int = field(default=0, metadata=MUST_MATCH)
    """selection: seed of the random choice (each prompt draws from a seed derived from it and the prompt id)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.keep_per_prompt is None or self.keep_per_prompt >= 1, "keep_per_prompt",
                f"must be at least 1 (got {self.keep_per_prompt})")
        one_of(self.select_by, "select_by", SELECT_POLICIES)


@dataclass(frozen=True)
class Selection(Selectable):
    """Keeps at most --keep-per-prompt of a prompt's samples that passed every other check, and no exact
    duplicate. It runs last, on whole prompts, so the filter keeps each prompt's samples together."""

    name: ClassVar[str] = "selection"
    option_group: ClassVar[type[Options]] = SelectionOptions
    options_that_need_it: ClassVar[tuple[str, ...]] = ("keep_per_prompt",)
    options: SelectionOptions = field(default_factory=SelectionOptions)

    @classmethod
    def from_config(cls, cfg: Any) -> Selection:
        return cls(project(SelectionOptions, cfg))

    def keep(self, completions: Sequence[str], lengths: Sequence[int | None], prompt_id: str) -> list[bool]:
        """Which of one prompt's passing samples to keep (see select_samples)."""
        return select_samples(completions, lengths, prompt_id=prompt_id, keep_per_prompt=self.options.keep_per_prompt,
                              select_by=self.options.select_by, seed=self.options.seed)
