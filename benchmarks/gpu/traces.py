"""Kept-trace files of exact token lengths for the training benchmarks.

The byte-level pre-tokenizer splits text at spaces and the BPE never merges across pieces, so
the token count of a text of space-separated words is the sum of its words' counts: lengths
can be hit exactly without tokenizing whole traces in a loop.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

WORDS = ["let", "me", "check", "the", "sum", "again", "so", "we", "get", "seven", "plus", "five", "equals",
         "twelve", "then", "multiply", "by", "three", "wait", "that", "is", "not", "right", "because",
         "remainder", "two", "hmm", "okay", "answer", "follows", "x", "=", "4", "+", "(", ")", "derivative"]


def word_costs(tokenizer: Any) -> dict[str, int]:
    """Tokens of ' word' (a word after a space) for every word of the bank."""
    return {w: len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) for w in WORDS}


def reasoning_of(tokens: int, costs: dict[str, int], rng: random.Random) -> str:
    """Space-separated words whose tokens add up to exactly `tokens` (≥ 1) when preceded by a space."""
    ones = [w for w, c in costs.items() if c == 1]
    if not ones:
        raise ValueError("no word of the bank is a single token; extend WORDS")
    words: list[str] = []
    left = tokens
    while left > 0:
        word = rng.choice(WORDS)
        if costs[word] > left:
            word = rng.choice(ones)
        words.append(word)
        left -= costs[word]
    return " ".join(words)


def record(i: int, reasoning: str) -> dict[str, Any]:
    return {"id": f"g{i}:0", "prompt_id": f"g{i}", "sample": 0,
            "messages": [{"role": "user", "content": f"Problem {i}: what is {i} * 7 + 12?"}],
            "completion": f"<think>\n{reasoning}\n</think>\n\nThe answer is \\boxed{{{7 * i + 12}}}.",
            "reference": str(7 * i + 12), "finish_reason": "stop", "teacher": "bench"}


def rendered_length(rec: dict[str, Any], tokenizer: Any) -> int:
    """Tokens of the record as distill train renders it (prompt + target)."""
    from distill.train.render import probe_chat_format, render_example

    return len(render_example(rec, tokenizer, chat_format=probe_chat_format(tokenizer))["input_ids"])


def exact_record(i: int, total_tokens: int, tokenizer: Any, costs: dict[str, int], rng: random.Random) -> dict:
    """A record that renders to exactly `total_tokens` tokens (within 2 when the template merges an edge)."""
    probe = record(i, reasoning_of(1, costs, random.Random(0)))
    overhead = rendered_length(probe, tokenizer) - 1
    rec = record(i, reasoning_of(max(1, total_tokens - overhead), costs, rng))
    error = rendered_length(rec, tokenizer) - total_tokens
    if error:  # a merge at the edge of the reasoning: shift by the difference once
        rec = record(i, reasoning_of(max(1, total_tokens - overhead - error), costs, rng))
    return rec


def write_kept(path: Path, tokenizer: Any, *, total_tokens: int, max_len: int, median: int = 3000,
               sigma: float = 0.8, seed: int = 0) -> dict[str, Any]:
    """R1-like traces with log-normal lengths (median `median` tokens, clipped to [256, max_len]) until
    about `total_tokens`; returns their count and lengths."""
    rng = random.Random(seed)
    costs = word_costs(tokenizer)
    rows, lengths, total = [], [], 0
    overhead = rendered_length(record(0, reasoning_of(1, costs, random.Random(0))), tokenizer) - 1
    while total < total_tokens:
        length = int(min(max(rng.lognormvariate(math.log(median), sigma), 256), max_len))
        rows.append(record(len(rows), reasoning_of(length - overhead, costs, rng)))
        lengths.append(length)
        total += length
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"examples": len(rows), "tokens": total, "median": sorted(lengths)[len(lengths) // 2],
            "longest": max(lengths), "shortest": min(lengths)}
