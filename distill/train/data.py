"""Kept traces -> tokenized examples (cached on disk) -> padding-free packed micro-batches.

Tokens of all examples live in one flat int32 file with an index of
(offset, length, prompt tokens), memory-mapped, so 800k long traces cost no
RAM and the ranks of a multi-GPU job share one copy. Rank 0 writes it once;
a resumed run reuses it when the kept file, tokenizer and template are the same.

A micro-batch is a pack of whole examples whose lengths sum to at most a token
budget, concatenated into one row with `position_ids` restarting at 0 for each
example (transformers' `DataCollatorWithFlattening`). Attention kernels keep
the examples apart (flash-attention by the sequence boundaries, sdpa/eager by a
block-diagonal mask built from the position ids), so there is no padding and no
cross-contamination. Packs are formed once from a seeded shuffle; each epoch
visits them in an order drawn from (seed, epoch) alone, so a resumed run sees
exactly the batches an uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Sampler

from distill.errors import InputError
from distill.progress import is_main_process
from distill.traces import read_traces
from distill.train.render import IGNORE_INDEX, ChatFormat, encode_targets, render_texts

log = logging.getLogger(__name__)

KEPT_FIELDS = ("id", "messages", "completion")
CACHE_VERSION = 2  # 2: teacher text tokenized with split_special_tokens


@dataclass
class TokenizedData:
    """Every example of the kept file, tokenized: `tokens[offset:offset + length]`, the first
    `prompt_tokens` of which are the (masked) prompt."""
    tokens: np.ndarray
    index: np.ndarray
    """int64 [n, 3]: offset, length, prompt tokens"""
    teachers: dict[str, int]

    def __len__(self) -> int:
        return len(self.index)

    @property
    def lengths(self) -> np.ndarray:
        return self.index[:, 1]

    def example(self, i: int) -> dict[str, list[int]]:
        offset, length, prompt_tokens = (int(v) for v in self.index[i])
        input_ids = self.tokens[offset:offset + length].tolist()
        return {"input_ids": input_ids, "labels": [IGNORE_INDEX] * prompt_tokens + input_ids[prompt_tokens:]}


def data_fingerprint(kept_digest: str, tokenizer: Any, fmt: ChatFormat, limit: int | None) -> str:
    """Identity of a tokenized cache: the kept file's bytes, the tokenizer, its template and --limit."""
    vocab = sorted(tokenizer.get_vocab().items())
    parts = [str(CACHE_VERSION), kept_digest, str(limit), tokenizer.chat_template or "", repr(fmt),
             hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def iter_kept(path: str | Path, limit: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, record) of the kept file, checked; InputError when it holds no record."""
    count = 0
    for line, record in read_traces(path, required=KEPT_FIELDS):
        if limit is not None and count >= limit:
            return
        count += 1
        yield line, record
    if count == 0:
        raise InputError("holds no records; run distill filter first, or check that you passed the kept "
                         "file and not an empty one", path=str(path))


def validate_kept(path: str | Path, limit: int | None, fmt: ChatFormat | None = None) -> None:
    """Read the whole kept file once (fields, duplicate ids, an answer in every completion and a reasoning
    unless the student's template has a non-thinking mode, `fmt`); raise InputError naming the line,
    before anything is written to --out."""
    from distill.train.render import NO_REASONING, split_record

    for line, record in iter_kept(path, limit):
        try:
            reasoning, _ = split_record(record)
            if reasoning is None and not (fmt is not None and fmt.has_plain_mode):
                raise ValueError(NO_REASONING)
        except ValueError as exc:
            raise InputError(str(exc), path=str(path), line=line, field="completion") from None
        problem = prompt_problem(record["messages"])
        if problem:
            raise InputError(problem, path=str(path), line=line, field="messages")


PROMPT_ROLES = ("system", "user", "assistant")


def prompt_problem(messages: Any) -> str | None:
    """Why these prompt messages cannot precede the teacher's completion as the assistant's turn, or None."""
    if not messages:
        return "is empty: the prompt must have at least one user message"
    for number, message in enumerate(messages, 1):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in PROMPT_ROLES:
            return (f"message {number} has role {role!r}, which chat templates do not render as a turn; use "
                    f"{', '.join(PROMPT_ROLES)}")
    if messages[-1]["role"] == "assistant":
        return ("ends with an assistant turn, so the completion would be a second assistant turn after it; "
                "end the prompt with a user message")
    return None


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def tokenize_kept(kept: str | Path, tokenizer: Any, fmt: ChatFormat, directory: Path, *,
                  limit: int | None = None, batch_size: int = 256) -> TokenizedData:
    """Render and tokenize every kept record into `directory` (tokens.bin, index.npy, meta.json).

    Records stream through in batches, so memory stays flat whatever the file size. A record whose
    completion has no reasoning or no answer is an InputError naming its line.
    """
    directory.mkdir(parents=True, exist_ok=True)
    index: list[tuple[int, int, int]] = []
    teachers: Counter[str] = Counter()
    offset = 0
    with (directory / "tokens.bin").open("wb") as handle:
        for batch in _batches(iter_kept(kept, limit), batch_size):
            texts = []
            for line, record in batch:
                try:
                    texts.append(render_texts(record, tokenizer, fmt))
                except ValueError as exc:
                    raise InputError(str(exc), path=str(kept), line=line, field="completion") from None
                teachers[str(record.get("teacher") or "unknown")] += 1
            prompts = tokenizer([p for p, _ in texts], add_special_tokens=False)["input_ids"]
            targets = encode_targets([t for _, t in texts], tokenizer, fmt)
            for prompt_ids, target_ids in zip(prompts, targets):
                ids = np.asarray(prompt_ids + target_ids, dtype=np.int32)
                handle.write(ids.tobytes())
                index.append((offset, len(ids), len(prompt_ids)))
                offset += len(ids)
    np.save(directory / "index.npy", np.asarray(index, dtype=np.int64).reshape(-1, 3))
    (directory / "teachers.json").write_text(json.dumps(dict(teachers), ensure_ascii=False), encoding="utf-8")
    return load_tokenized(directory)


def load_tokenized(directory: Path) -> TokenizedData:
    index = np.load(directory / "index.npy")
    size = (directory / "tokens.bin").stat().st_size
    tokens = np.memmap(directory / "tokens.bin", dtype=np.int32, mode="r") if size else np.zeros(0, np.int32)
    teachers = json.loads((directory / "teachers.json").read_text(encoding="utf-8"))
    return TokenizedData(tokens=tokens, index=index, teachers=teachers)


def cached_tokenize(kept: str | Path, tokenizer: Any, fmt: ChatFormat, cache: Path, fingerprint: str, *,
                    limit: int | None = None) -> TokenizedData:
    """`tokenize_kept` into `cache`, reusing it when its fingerprint matches; written whole or not at all."""
    meta = cache / "meta.json"
    if meta.is_file():
        try:
            if json.loads(meta.read_text(encoding="utf-8")).get("fingerprint") == fingerprint:
                if is_main_process():
                    log.info("reusing the tokenized data in %s", cache)
                return load_tokenized(cache)
        except (OSError, ValueError):
            pass
    staging = cache.with_name(cache.name + ".incomplete")
    shutil.rmtree(staging, ignore_errors=True)
    tokenize_kept(kept, tokenizer, fmt, staging, limit=limit)
    (staging / "meta.json").write_text(json.dumps({"fingerprint": fingerprint}), encoding="utf-8")
    shutil.rmtree(cache, ignore_errors=True)
    os.replace(staging, cache)
    return load_tokenized(cache)


def select_by_length(lengths: Sequence[int], max_seq_len: int) -> tuple[list[int], list[int]]:
    """(indices that fit, indices longer than max_seq_len). Long examples are dropped, never truncated:
    a cut trace teaches the student to stop mid-thought, or never to answer."""
    keep = [i for i, n in enumerate(lengths) if n <= max_seq_len]
    drop = [i for i, n in enumerate(lengths) if n > max_seq_len]
    return keep, drop


def pack_by_tokens(lengths: Sequence[int], budget: int, *, seed: int, open_packs: int = 16) -> list[list[int]]:
    """Group example indices into packs of at most `budget` tokens.

    The examples are shuffled with `seed`, then each goes into the first of the last `open_packs`
    packs with room for it, else into a new pack (first fit over a window: nearly full packs, still
    a random mix of lengths, O(n) time). Indices of examples longer than the budget are an error.
    """
    if any(n > budget for n in lengths):
        raise ValueError("an example is longer than the token budget")
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    packs: list[list[int]] = []
    room: list[int] = []
    window: list[int] = []
    for i in order:
        for p in window:
            if room[p] >= lengths[i]:
                packs[p].append(i)
                room[p] -= lengths[i]
                break
        else:
            packs.append([i])
            room.append(budget - lengths[i])
            window.append(len(packs) - 1)
            if len(window) > open_packs:
                window.pop(0)
    return packs


def split_to_multiple(packs: list[list[int]], lengths: Sequence[int], multiple: int) -> list[list[int]]:
    """Split the largest packs in two until their number is a multiple of `multiple` (the number of
    processes), so that every rank gets the same number of micro-batches and none is repeated."""
    packs = [list(p) for p in packs]
    while len(packs) % multiple:
        splittable = [i for i, p in enumerate(packs) if len(p) > 1]
        if not splittable:
            break
        largest = max(splittable, key=lambda i: sum(lengths[j] for j in packs[i]))
        pack = packs.pop(largest)
        packs[largest:largest] = [pack[: len(pack) // 2], pack[len(pack) // 2:]]
    return packs


class PackedExamples(Dataset):
    """A map-style dataset whose item i is pack i: a list of {"input_ids", "labels"} examples."""

    def __init__(self, data: TokenizedData, packs: list[list[int]]):
        self.data = data
        self.packs = packs

    def __len__(self) -> int:
        return len(self.packs)

    def __getitem__(self, i: int) -> list[dict[str, list[int]]]:
        return [self.data.example(j) for j in self.packs[i]]


class PackedCollator:
    """Collate a DataLoader batch of packs into one padding-free row (input_ids, labels, position_ids)."""

    def __init__(self, *, flash_attention: bool = False):
        from transformers import DataCollatorWithFlattening

        # Flash-attention takes the sequence boundaries directly (cu_seq_lens); the other kernels
        # rebuild them from position_ids, which restart at 0 for every example.
        self.flatten = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX,
                                                  return_flash_attn_kwargs=flash_attention)

    def __call__(self, packs: list[list[dict[str, list[int]]]]) -> dict[str, Any]:
        return self.flatten([example for pack in packs for example in pack])


def pack_order(count: int, seed: int, epoch: int) -> list[int]:
    """The order packs are visited in an epoch: a function of (seed, epoch) alone."""
    order = list(range(count))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return order


class PackOrderSampler(Sampler[int]):
    """Sampler over pack indices in `pack_order(count, seed, epoch)`; the Trainer sets the epoch."""

    def __init__(self, count: int, seed: int):
        self.count, self.seed, self.epoch = count, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[int]:
        return iter(pack_order(self.count, self.seed, self.epoch))
