"""Decontamination: find training prompts that overlap benchmark problems.

A prompt is contaminated when it shares one word n-gram (8 words by default, as
open-r1 and s1 do) with a benchmark problem. Both sides are normalised first, so
a copy that was re-cased, re-spaced or re-punctuated still matches: text is
NFKC-folded and lowercased, and a "word" is a run of letters or digits, which
drops punctuation and LaTeX markup (`\\frac{1}{2}` -> `frac 1 2`, `$x+y$` ->
`x y`). Each n-gram is a 64-bit hash (of the tuple of its words' blake2b ids),
so the index of every default benchmark is a few hundred thousand integers in
one dict, and looking up a prompt costs a tuple hash and a dict probe per
n-gram. The hashes are stable across processes: a worker can look prompts up in
an index built elsewhere.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from distill.config import MUST_MATCH, Options, require
from distill.errors import ConfigError, InputError

log = logging.getLogger(__name__)

DEFAULT_NGRAM = 8

# name -> (dataset spec for distill.prompts.iter_rows, problem column): the benchmarks of the eval
# recipes and the ones open-r1 decontaminates against.
DEFAULT_BENCHMARKS: dict[str, tuple[str, str]] = {
    "math-500": ("HuggingFaceH4/MATH-500@test", "problem"),
    "aime-2024": ("HuggingFaceH4/aime_2024@train", "problem"),
    "aime-2025": ("yentinglin/aime_2025@train", "problem"),
    "gpqa-diamond": ("Idavidrein/gpqa:gpqa_diamond@train", "Question"),
    "livecodebench": ("livecodebench/code_generation_lite@test", "question_content"),
}
DEFAULT = "default"
"""The word in a --decontaminate list that stands for every DEFAULT_BENCHMARKS entry."""

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The normalised words of `text`: NFKC, lowercase, runs of letters and digits only."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


_WORD_IDS: dict[str, int] = {}


def _word_id(word: str) -> int:
    """A 64-bit id of a word that is the same in every process (str hashes are salted per process)."""
    value = _WORD_IDS.get(word)
    if value is None:
        if len(_WORD_IDS) > 1 << 20:
            _WORD_IDS.clear()
        value = _WORD_IDS[word] = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(),
                                                 "little", signed=True)
    return value


def ngram_hashes(tokens: Sequence[str], n: int) -> list[int]:
    """One 64-bit hash per n-gram of `tokens` (none when there are fewer than n).

    A tuple of ints hashes the same in every process, and hashing the tuples in C is several times
    faster than joining the words into strings."""
    ids = [_word_id(word) for word in tokens]
    return list(map(hash, zip(*(ids[k:] for k in range(n))))) if len(ids) >= n else []


@dataclass(frozen=True)
class Match:
    """Where a prompt overlaps a benchmark."""

    benchmark: str
    problem: int
    """Row of the benchmark problem (from 1)."""
    ngram: str
    """The shared n-gram, in the prompt's normalised words."""

    def to_dict(self) -> dict[str, object]:
        return {"benchmark": self.benchmark, "problem": self.problem, "ngram": self.ngram}


class NgramIndex:
    """Hashed word n-grams of benchmark problems -> (benchmark, problem row)."""

    def __init__(self, n: int = DEFAULT_NGRAM):
        if n < 1:
            raise ConfigError(f"--contamination-ngram must be at least 1 (got {n})")
        self.n = n
        self.benchmarks: list[str] = []
        self._where: dict[int, tuple[int, int]] = {}
        self.problems: dict[str, int] = {}

    def add(self, benchmark: str, problems: Iterable[str]) -> None:
        """Index every problem text of `benchmark` (a problem shorter than n words is indexed whole)."""
        code = len(self.benchmarks)
        self.benchmarks.append(benchmark)
        count = 0
        for row, text in enumerate(problems, start=1):
            count += 1
            tokens = words(text)
            for value in ngram_hashes(tokens, min(self.n, len(tokens))):
                self._where.setdefault(value, (code, row))
        self.problems[benchmark] = count

    def __len__(self) -> int:
        return len(self._where)

    def find(self, text: str) -> Match | None:
        """The first n-gram of `text` found in a benchmark, else None."""
        tokens = words(text)
        if not tokens:
            return None
        # a prompt shorter than n words can only match a benchmark problem that is as short (indexed whole)
        n = min(self.n, len(tokens))
        where = self._where
        for start, value in enumerate(ngram_hashes(tokens, n)):
            hit = where.get(value)
            if hit is not None:
                return Match(self.benchmarks[hit[0]], hit[1], " ".join(tokens[start:start + n]))
        return None


def expand_sources(sources: Sequence[str]) -> list[tuple[str, str, str]]:
    """(name, dataset spec, problem column) per --decontaminate entry; 'default' expands to the default set.

    An entry is a local file or Hub dataset (`name[:config][@split]`), optionally `SPEC#COLUMN` to name
    the problem column (default: problem)."""
    expanded: list[tuple[str, str, str]] = []
    for entry in sources:
        if entry == DEFAULT:
            expanded.extend((name, spec, column) for name, (spec, column) in DEFAULT_BENCHMARKS.items())
            continue
        spec, _, column = entry.partition("#")
        if not spec:
            raise ConfigError(f"--decontaminate: empty benchmark in {entry!r}; give FILE or DATASET[#COLUMN]")
        expanded.append((spec, spec, column or "problem"))
    seen: set[str] = set()
    return [item for item in expanded if not (item[0] in seen or seen.add(item[0]))]


def build_index(sources: Sequence[str], n: int = DEFAULT_NGRAM) -> NgramIndex:
    """Load every benchmark named by `sources` and index its problems."""
    from distill.prompts import iter_rows

    index = NgramIndex(n)
    for name, spec, column in expand_sources(sources):
        def problems(spec: str = spec, column: str = column) -> Iterable[str]:
            for line, row in iter_rows(spec):
                if column not in row:
                    columns = ", ".join(sorted(row)) or "none"
                    raise InputError(f"no column '{column}' (columns here: {columns}); name it as "
                                     f"--decontaminate {spec}#COLUMN", path=spec, line=line)
                value = row[column]
                if not isinstance(value, str):
                    raise InputError(f"must be text, got {type(value).__name__}", path=spec, line=line,
                                     field=column)
                yield value

        try:
            index.add(name, problems())
        except InputError as exc:
            if spec in (s for s, _ in DEFAULT_BENCHMARKS.values()):
                raise InputError(f"{exc}; offline, pass local copies with --decontaminate FILE[#COLUMN] "
                                 "instead of 'default'") from None
            raise
        log.info("decontamination: %s, %d problems", name, index.problems[name])
    return index


@dataclass(kw_only=True)
class DecontaminationOptions(Options):
    """Which benchmarks training prompts must not overlap (filter's contamination check, generate's skip)."""

    panel: ClassVar[str] = "Decontamination"
    decontaminate: list[str] | None = field(default=None, metadata=MUST_MATCH)
    """Benchmarks whose problems must not be training prompts: files or Hub datasets, FILE#COLUMN to name the problem column, 'default' for MATH-500, AIME 2024/2025, GPQA-Diamond and LiveCodeBench."""
    contamination_ngram: int = field(default=DEFAULT_NGRAM, metadata=MUST_MATCH)
    """A prompt sharing one run of this many words (after lowercasing, dropping punctuation and LaTeX markup) with a benchmark problem counts as contaminated."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.contamination_ngram >= 1, "contamination_ngram",
                f"must be at least 1 (got {self.contamination_ngram})")
