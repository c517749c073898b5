"""Decontamination: find training prompts that are benchmark problems, copied, disguised or rephrased.

Two stages, each reported with the matched problem, its stage and its score (`Match.to_dict()`):

1. **n-gram** (always): a prompt is contaminated when it holds a meaningful share of a benchmark
   problem's word n-grams (8 words by default, as open-r1 and s1 count them): at least
   `--contamination-share` (0.6) of the problem's distinct n-grams, or that share of the prompt's own
   when they are at least 2n n-grams (a prompt that is a long part of a long problem). One shared
   phrase ('what is the sum of all possible values', 'a palindrome is a number that reads the same')
   is not contamination: it flagged 1.75 % of clean competition prompts when one n-gram was enough. A
   problem shorter than n words is matched whole, against the prompt's own text: the instruction a
   template appends ('Please reason step by step, and put your final answer within \\boxed{}.') is
   recognised and removed first (`strip_instructions`), else no 8-gram of a 5-word problem plus that
   suffix could ever match it.

   Both sides are normalised first (`clean_text`, `words`): format characters (Unicode Cf: U+200B,
   U+00AD, U+2060, …) removed, superscripts as powers (`x²` is `x^2`), look-alike Cyrillic and Greek
   letters as Latin ones in Latin text, NFKC, lowercase; a word is a run of letters or digits, which
   drops punctuation and LaTeX markup (`\\frac{1}{2}` -> `frac 1 2`, `$x+y$` -> `x y`). Each n-gram is
   a 64-bit hash (of the tuple of its words' blake2b ids), stable across processes: a worker can look
   prompts up in an index built elsewhere.

2. **embedding** (`--contamination-embedder MODEL`, a sentence-transformers model id or local path):
   the prompt's problem text (instructions removed) against every benchmark problem by cosine
   similarity of normalised embeddings, top-k per prompt, flagged at `--contamination-threshold`
   (calibrated in benchmarks/RESULTS.md, issue 27 sections). This catches rephrasings and changed numbers, which
   share too few n-grams. Benchmark embeddings are computed once and cached by content (model, its
   output on a probe text, every problem text); prompts are encoded in batches on the GPU when there is
   one, and scored against the benchmark matrix batch by batch, so 1M prompts against 10k problems
   never hold more than one batch of scores.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from distill.config import FREE, MUST_MATCH, Options, require
from distill.errors import ConfigError, InputError

log = logging.getLogger(__name__)

DEFAULT_NGRAM = 8
DEFAULT_SHARE = 0.6
"""Share of a benchmark problem's distinct n-grams a prompt must hold to be contaminated."""
DEFAULT_EMBEDDING_THRESHOLD = 0.85
"""Cosine similarity at which the embedding stage flags a prompt (all-MiniLM-L6-v2, calibrated on
tests/data/decontam_rephrased.jsonl and decontam_clean.jsonl, and checked on real prompts: benchmarks/RESULTS.md)."""
SAME_NUMBERS_FLOOR = 0.55
"""A prompt that writes exactly the numbers of a retrieved problem (two or more) is flagged from this
cosine on: a translation or a rephrasing keeps the numbers while its words, and so its similarity,
drift (an English model puts a French copy at 0.2-0.9)."""
RECENT = 256
"""ContaminationIndex.find remembers this many last lookups."""
DEFAULT_TOP_K = 5
MAX_PROBLEM_TEXT = 300
"""Characters of the matched problem quoted in a match's report."""

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

INSTRUCTIONS = (
    "Please reason step by step, and put your final answer within \\boxed{}.",  # R1, distill's default
    "Return your final response within \\boxed{}.",
    "Put your final answer within \\boxed{}.",
    "Please put your final answer within \\boxed{}.",
    "Let's think step by step and output the final answer within \\boxed{}.",
    "Let's think step by step.",
    "Solve the following math problem step by step.",
    "Solve the following math problem. Make sure to put the answer (and only answer) inside \\boxed{}.",
)
"""Instructions that templates put before or after a problem; removed from a prompt before it is
matched (`strip_instructions`), together with the text around `{problem}` of the templates given."""

# ---------------------------------------------------------------- normalisation

@functools.cache
def _format_characters() -> re.Pattern[str]:
    """Every Unicode Cf character (zero-width space and joiners, soft hyphen, word joiner, bidi marks …),
    found once, on the first text that is not ASCII."""
    return re.compile("[" + "".join(
        re.escape(chr(c)) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf") + "]")
_SUPERSCRIPTS = str.maketrans({"⁰": "^0", "¹": "^1", "²": "^2", "³": "^3", "⁴": "^4", "⁵": "^5", "⁶": "^6",
                               "⁷": "^7", "⁸": "^8", "⁹": "^9", "ⁿ": "^n", "⁺": "^+", "⁻": "^-",
                               "₀": "_0", "₁": "_1", "₂": "_2", "₃": "_3", "₄": "_4", "₅": "_5", "₆": "_6",
                               "₇": "_7", "₈": "_8", "₉": "_9"})
_CONFUSABLES = str.maketrans({
    # Cyrillic letters drawn like Latin ones
    "а": "a", "в": "b", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ɡ": "g",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "Х": "X", "У": "Y", "І": "I", "Ј": "J", "Ѕ": "S",
    # Greek capitals and omicron (α, β, π … are mathematics, not disguise)
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "ο": "o",
})
_CONFUSABLE_CHARACTERS = frozenset(chr(c) for c in _CONFUSABLES)
_TOKEN = re.compile(r"\w+")


def clean_text(text: str) -> str:
    """`text` with its disguises undone, case and markup kept (the embedding stage reads it):
    format characters (Unicode Cf: zero-width spaces, soft hyphens, word joiners) removed,
    superscript and subscript digits as `^2`, `_2`, look-alike letters as Latin ones, then NFKC.

    A look-alike is mapped inside a word that also has Latin letters, or anywhere in a text that is
    mostly Latin; a Russian or Greek translation keeps its own letters."""
    if text.isascii():
        return text
    text = _format_characters().sub("", text).translate(_SUPERSCRIPTS)
    if not _CONFUSABLE_CHARACTERS.isdisjoint(text):
        letters = [c for c in text if c.isalpha()]
        latin = sum(c.isascii() for c in letters) >= len(letters) / 2

        def unmask(word: re.Match) -> str:
            token = word.group()
            if latin or any(c.isascii() and c.isalpha() for c in token):
                return token.translate(_CONFUSABLES)
            return token

        text = _TOKEN.sub(unmask, text)
    return unicodedata.normalize("NFKC", text)


_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The normalised words of `text`: `clean_text`, lowercase, runs of letters and digits only."""
    return _WORD.findall(clean_text(text).lower())


@functools.lru_cache(maxsize=64)
def _instruction_words(instructions: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    found = {tuple(words(instruction)) for instruction in instructions}
    return tuple(sorted((w for w in found if w), key=len, reverse=True))


@functools.lru_cache(maxsize=64)
def _ends(instructions: tuple[tuple[str, ...], ...]) -> frozenset[str]:
    """The first and last words of the instructions: a prompt that neither starts nor ends with one
    has none to strip (most prompts; the check costs two set probes)."""
    return frozenset(word for instruction in instructions for word in (instruction[0], instruction[-1]))


def template_instructions(template: str) -> list[str]:
    """The text a prompt template puts before and after `{problem}` (each side that has words)."""
    before, _, after = template.partition("{problem}")
    return [side for side in (before, after) if words(side)]


def strip_instructions(tokens: list[str], instructions: Sequence[str] = INSTRUCTIONS) -> list[str]:
    """A prompt's words without the instructions a template put at its start or end (each at most once),
    so that what is matched is the problem: `['compute', '2', '3', 'please', 'reason', …]` ->
    `['compute', '2', '3']`. A prompt that is nothing but an instruction stays as it is."""
    instruction_words = _instruction_words(tuple(instructions))
    return _strip_words(tokens, instruction_words, _ends(instruction_words))


def _strip_words(tokens: list[str], instruction_words: tuple[tuple[str, ...], ...], ends: frozenset[str]) -> list[str]:
    if not tokens or (tokens[-1] not in ends and tokens[0] not in ends):
        return tokens
    for instruction in instruction_words:
        size = len(instruction)
        if len(tokens) > size and tuple(tokens[-size:]) == instruction:
            tokens = tokens[:-size]
        if len(tokens) > size and tuple(tokens[:size]) == instruction:
            tokens = tokens[size:]
    return tokens


def strip_instruction_text(text: str, instructions: Sequence[str] = INSTRUCTIONS) -> str:
    """`strip_instructions` on the text itself (the embedding stage reads the problem, not the
    instruction every prompt shares): an instruction at the start or end, compared without case,
    spacing or punctuation, is cut off."""
    text = clean_text(text).strip()
    for instruction in sorted(instructions, key=len, reverse=True):
        pattern = r"\W*".join(re.escape(word) for word in words(instruction))
        if not pattern:
            continue
        end = re.search(r"(?is)(?:^|\W)(" + pattern + r")\W*$", text)
        if end and end.start(1) > 0:
            text = text[:end.start(1)].rstrip()
        start = re.match(r"(?is)\W*(" + pattern + r")\W*", text)
        if start and start.end() < len(text):
            text = text[start.end():]
    return text


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


def _whole_hash(tokens: Sequence[str]) -> int:
    return hash(("whole", *map(_word_id, tokens)))


# ---------------------------------------------------------------- matches


@dataclass(frozen=True)
class Match:
    """Where a prompt overlaps a benchmark."""

    benchmark: str
    problem: int
    """Row of the benchmark problem (from 1)."""
    ngram: str
    """The first shared n-gram, in the prompt's normalised words ('' for the embedding stage)."""
    stage: str = "ngram"
    """What caught it: 'ngram' (a share of n-grams), 'whole' (a short problem, whole), 'embedding' (cosine
    at the threshold) or 'embedding+numbers' (the same numbers, cosine at SAME_NUMBERS_FLOOR)."""
    score: float = 1.0
    """ngram: the larger share of n-grams matched (of the problem's, or of the prompt's); whole: 1.0;
    embedding: the cosine similarity."""
    problem_text: str = ""
    """The matched benchmark problem (its first MAX_PROBLEM_TEXT characters)."""

    def to_dict(self) -> dict[str, object]:
        return {"benchmark": self.benchmark, "problem": self.problem, "ngram": self.ngram, "stage": self.stage,
                "score": round(self.score, 4), "problem_text": self.problem_text}


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_PROBLEM_TEXT else text[:MAX_PROBLEM_TEXT - 1] + "…"


class NgramIndex:
    """Hashed word n-grams of benchmark problems -> the problems that hold them."""

    def __init__(self, n: int = DEFAULT_NGRAM, *, share: float = DEFAULT_SHARE,
                 instructions: Sequence[str] = INSTRUCTIONS):
        if n < 1:
            raise ConfigError(f"--contamination-ngram must be at least 1 (got {n})")
        if not 0 < share <= 1:
            raise ConfigError(f"--contamination-share must be in (0, 1] (got {share})")
        self.n = n
        self.share = share
        self.instructions = tuple(instructions)
        self._instruction_words = _instruction_words(self.instructions)
        self._instruction_ends = _ends(self._instruction_words)
        self.benchmarks: list[str] = []
        self.problems: dict[str, int] = {}
        """Problems per benchmark."""
        self._where: dict[int, int | tuple[int, ...]] = {}
        """n-gram hash -> id of the problem that holds it, or of every problem that does."""
        self._whole: dict[int, int] = {}
        """hash of a short problem's words -> its id."""
        self._sizes: list[int] = []
        """Distinct n-grams per problem id."""
        self._rows: list[tuple[int, int]] = []
        """problem id -> (benchmark index, row from 1)."""
        self.texts: list[str] = []
        """problem id -> its text."""

    def add(self, benchmark: str, problems: Iterable[str]) -> None:
        """Index every problem text of `benchmark` (a problem shorter than n words is indexed whole)."""
        code = len(self.benchmarks)
        self.benchmarks.append(benchmark)
        count = 0
        where = self._where
        for row, text in enumerate(problems, start=1):
            count += 1
            problem = len(self._rows)
            self._rows.append((code, row))
            self.texts.append(text)
            tokens = words(text)
            hashes = set(ngram_hashes(tokens, self.n))
            self._sizes.append(len(hashes))
            if not hashes and tokens:
                self._whole.setdefault(_whole_hash(tokens), problem)
            for value in hashes:
                held = where.get(value)
                if held is None:
                    where[value] = problem
                elif isinstance(held, int):
                    where[value] = (held, problem)
                else:
                    where[value] = (*held, problem)
        self.problems[benchmark] = count

    def __len__(self) -> int:
        return len(self._where)

    def problem_tokens(self, text: str, problem: str | None = None) -> list[str]:
        """The words matched for a prompt: `problem` when the caller knows it, else the prompt's
        words without the instructions a template put around it."""
        if problem is not None:
            return words(problem)
        return _strip_words(words(text), self._instruction_words, self._instruction_ends)

    def find(self, text: str, *, problem: str | None = None) -> Match | None:
        """The benchmark problem `text` holds a share of (see the module), else None. `problem`: the
        prompt's problem text without its template, when the caller has it (generate does)."""
        tokens = self.problem_tokens(text, problem)
        if not tokens:
            return None
        if len(tokens) < self.n:
            whole = self._whole.get(_whole_hash(tokens))
            return None if whole is None else self._match(whole, " ".join(tokens), "whole", 1.0)
        ordered = ngram_hashes(tokens, self.n)
        where = self._where
        shared = set(filter(where.__contains__, ordered))  # in C: most prompts share nothing
        if not shared:
            return None
        hashes = set(ordered)
        counts: dict[int, int] = {}
        for value in shared:
            held = where[value]
            if isinstance(held, int):
                counts[held] = counts.get(held, 0) + 1
            else:
                for problem_id in held:
                    counts[problem_id] = counts.get(problem_id, 0) + 1
        if not counts:
            return None
        best, score = None, 0.0
        prompt_side_minimum = 2 * self.n
        for problem_id, shared in counts.items():
            of_problem = shared / self._sizes[problem_id]
            of_prompt = shared / len(hashes) if shared >= prompt_side_minimum else 0.0
            value = max(of_problem, of_prompt)
            if value >= self.share and value > score:
                best, score = problem_id, value
        if best is None:
            return None
        first = next(start for start, value in enumerate(ordered)
                     if (held := where.get(value)) is not None and (held == best or (
                         isinstance(held, tuple) and best in held)))
        return self._match(best, " ".join(tokens[first:first + self.n]), "ngram", score)

    def _match(self, problem_id: int, ngram: str, stage: str, score: float) -> Match:
        code, row = self._rows[problem_id]
        return Match(self.benchmarks[code], row, ngram, stage, score, _quote(self.texts[problem_id]))


# ---------------------------------------------------------------- the embedding stage


def default_cache_dir() -> Path:
    """Where benchmark embeddings are kept: $DISTILL_CACHE/embeddings, else ~/.cache/distill/embeddings."""
    base = os.environ.get("DISTILL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "distill")
    return Path(base) / "embeddings"


_PROBE = "Find the number of ordered pairs of positive integers (a, b) such that a + b = 10."
"""Encoded once to fingerprint the model's behaviour in the cache key (a path can hold another model)."""


class EmbeddingIndex:
    """Normalised sentence embeddings of benchmark problems, searched by cosine similarity (top-k)."""

    def __init__(self, model: str, *, threshold: float = DEFAULT_EMBEDDING_THRESHOLD, top_k: int = DEFAULT_TOP_K,
                 batch_size: int = 64, device: str | None = None, cache_dir: str | os.PathLike | None = None):
        if not -1 <= threshold <= 1:
            raise ConfigError(f"--contamination-threshold must be a cosine similarity in [-1, 1] (got {threshold})")
        if top_k < 1:
            raise ConfigError(f"--contamination-top-k must be at least 1 (got {top_k})")
        self.model_name = model
        self.threshold = threshold
        self.top_k = top_k
        self.batch_size = batch_size
        self.device = device
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.embeddings: Any = None
        """float32 array (problems × dimension), rows normalised; row i is NgramIndex problem id i."""
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # a check travels to worker processes: the benchmark matrix goes with it, the model is
        # loaded again there on first use
        return {**self.__dict__, "_model": None}

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_embedder(self.model_name, self.device)
        return self._model

    def fingerprint(self) -> str:
        """The model's name and its embedding of a fixed probe text: the cache key's model part."""
        probe = self.encode([_PROBE])[0]
        return f"{self.model_name}\0" + ",".join(f"{x:.4f}" for x in probe[:16])

    def encode(self, texts: Sequence[str]) -> Any:
        import numpy as np

        vectors = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def build(self, problems: Sequence[str]) -> None:
        """Embed the benchmark problems, or read their embeddings from the cache (keyed by the
        model's fingerprint and every problem text)."""
        import numpy as np

        digest = hashlib.sha256(self.fingerprint().encode("utf-8"))
        for text in problems:
            digest.update(b"\0" + clean_text(text).encode("utf-8"))
        path = self.cache_dir / f"{digest.hexdigest()[:32]}.npy"
        if path.exists():
            cached = np.load(path)
            if cached.shape[0] == len(problems):
                self.embeddings = cached
                log.info("decontamination: benchmark embeddings from %s", path)
                return
        self.embeddings = self.encode([clean_text(text) for text in problems])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.partial.npy")
            np.save(partial, self.embeddings)
            os.replace(partial, path)
        except OSError as exc:  # a read-only home still decontaminates, only again next time
            log.warning("decontamination: could not cache benchmark embeddings at %s: %s", path, exc)

    def search(self, texts: Sequence[str]) -> list[list[tuple[int, float]]]:
        """Top-k (problem id, cosine) of each text, best first; in batches, on the model's device."""
        import torch

        if self.embeddings is None or len(self.embeddings) == 0 or not texts:
            return [[] for _ in texts]
        model = self.model
        device = getattr(model, "device", torch.device("cpu"))
        matrix = torch.from_numpy(self.embeddings).to(device)
        k = min(self.top_k, matrix.shape[0])
        found: list[list[tuple[int, float]]] = []
        chunk = max(self.batch_size * 16, 1)
        for start in range(0, len(texts), chunk):
            batch = [text or " " for text in texts[start:start + chunk]]
            with torch.inference_mode():
                vectors = model.encode(batch, batch_size=self.batch_size, normalize_embeddings=True,
                                       convert_to_tensor=True, show_progress_bar=False).to(device, torch.float32)
                scores, ids = torch.topk(vectors @ matrix.T, k, dim=1)
            found += [list(zip(row_ids, row_scores)) for row_ids, row_scores in
                      zip(ids.cpu().tolist(), scores.cpu().tolist(), strict=True)]
        return found


def load_embedder(model: str, device: str | None = None) -> Any:
    """A sentence-transformers model from a local path or a Hub id, on the GPU when there is one."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ConfigError("--contamination-embedder needs sentence-transformers: "
                          "pip install 'distill[decontam]'") from None
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return SentenceTransformer(model, device=device)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"--contamination-embedder: cannot load {model!r} ({first}); give a local "
                          "sentence-transformers model directory or a Hub id reachable from here") from None


# ---------------------------------------------------------------- both stages

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _numbers(text: str) -> Counter[str]:
    """The numbers a text writes, as a multiset: '$x^2 - 9x = 27$' -> {2, 9, 27}."""
    return Counter(_NUMBER.findall(clean_text(text)))



class ContaminationIndex:
    """The n-gram stage and, when an embedder is given, the embedding stage, over the same problems."""

    def __init__(self, ngrams: NgramIndex, embeddings: EmbeddingIndex | None = None):
        self.ngrams = ngrams
        self.embeddings = embeddings
        self._numbers: list[Counter[str]] | None = None
        self._recent: dict[tuple[str, str | None], Match | None] = {}
        """The last RECENT lookups: a prompt's samples come one after another to the filter's check,
        and with an embedder each lookup encodes the prompt."""

    @property
    def benchmarks(self) -> list[str]:
        return self.ngrams.benchmarks

    @property
    def problems(self) -> dict[str, int]:
        return self.ngrams.problems

    @property
    def n(self) -> int:
        return self.ngrams.n

    def __len__(self) -> int:
        return len(self.ngrams)

    def find(self, text: str, *, problem: str | None = None) -> Match | None:
        """The first stage's match for one prompt (n-gram, then embedding), else None."""
        key = (text, problem)
        if key not in self._recent:
            if len(self._recent) >= RECENT:
                self._recent.pop(next(iter(self._recent)))
            self._recent[key] = self.find_many([text], problems=None if problem is None else [problem])[0]
        return self._recent[key]

    def find_many(self, texts: Sequence[str], *, problems: Sequence[str | None] | None = None) -> list[Match | None]:
        """`find` for many prompts: the n-gram stage on each, the embedding stage in batches on the rest.
        `problems`: each prompt's problem text without its template, where the caller has it."""
        problems = list(problems) if problems is not None else [None] * len(texts)
        matches = [self.ngrams.find(text, problem=problem) for text, problem in zip(texts, problems, strict=True)]
        if self.embeddings is None:
            return matches
        pending = [i for i, match in enumerate(matches) if match is None]
        queries = [problems[i] if problems[i] is not None else
                   strip_instruction_text(texts[i], self.ngrams.instructions) for i in pending]
        for i, query, hits in zip(pending, queries, self.embeddings.search(queries), strict=True):
            matches[i] = self._embedding_match(query, hits)
        return matches

    def _embedding_match(self, query: str, hits: list[tuple[int, float]]) -> Match | None:
        """The best retrieved problem at the threshold, else the best one that writes the same numbers
        as the prompt at SAME_NUMBERS_FLOOR."""
        if hits and hits[0][1] >= self.embeddings.threshold:  # type: ignore[union-attr]
            return self.ngrams._match(hits[0][0], "", "embedding", hits[0][1])
        numbers = _numbers(query)
        if sum(numbers.values()) < 2:
            return None
        for problem_id, score in hits:
            if score >= SAME_NUMBERS_FLOOR and self._problem_numbers(problem_id) == numbers:
                return self.ngrams._match(problem_id, "", "embedding+numbers", score)
        return None

    def _problem_numbers(self, problem_id: int) -> Counter[str]:
        if self._numbers is None:
            self._numbers = [_numbers(text) for text in self.ngrams.texts]
        return self._numbers[problem_id]

    def scores(self, texts: Sequence[str]) -> list[list[tuple[Match, float]]]:
        """Every prompt's top-k benchmark problems by cosine similarity (the embedding stage's view,
        for calibration and reports), whether or not they pass the threshold."""
        if self.embeddings is None:
            raise ConfigError("scores need --contamination-embedder")
        queries = [strip_instruction_text(text, self.ngrams.instructions) for text in texts]
        return [[(self.ngrams._match(problem_id, "", "embedding", score), score) for problem_id, score in hits]
                for hits in self.embeddings.search(queries)]


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


def build_index(sources: Sequence[str], n: int = DEFAULT_NGRAM, *, share: float = DEFAULT_SHARE,
                embedder: str | None = None, threshold: float = DEFAULT_EMBEDDING_THRESHOLD,
                top_k: int = DEFAULT_TOP_K, batch_size: int = 64, cache_dir: str | os.PathLike | None = None,
                templates: Sequence[str] = (), device: str | None = None) -> ContaminationIndex:
    """Load every benchmark named by `sources` and index its problems: n-grams always, embeddings with
    `embedder`. `templates`: prompt templates whose text around `{problem}` is removed before matching
    (besides INSTRUCTIONS)."""
    from distill.prompts import iter_rows

    instructions = [*INSTRUCTIONS, *(text for template in templates for text in template_instructions(template))]
    index = NgramIndex(n, share=share, instructions=instructions)
    embeddings = EmbeddingIndex(embedder, threshold=threshold, top_k=top_k, batch_size=batch_size, device=device,
                                cache_dir=cache_dir) if embedder else None
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
    if embeddings is not None:
        embeddings.build(index.texts)
    return ContaminationIndex(index, embeddings)


@dataclass(kw_only=True)
class DecontaminationOptions(Options):
    """Which benchmarks training prompts must not overlap (filter's contamination check, generate's skip)."""

    panel: ClassVar[str] = "Decontamination"
    decontaminate: list[str] | None = field(default=None, metadata=MUST_MATCH)
    """Benchmarks whose problems must not be training prompts: files or Hub datasets, FILE#COLUMN to name the problem column, 'default' for MATH-500, AIME 2024/2025, GPQA-Diamond and LiveCodeBench."""
    contamination_ngram: int = field(default=DEFAULT_NGRAM, metadata=MUST_MATCH)
    """Words per n-gram compared (after lowercasing, dropping punctuation, LaTeX markup, invisible characters and look-alike letters)."""
    contamination_share: float = field(default=DEFAULT_SHARE, metadata=MUST_MATCH)
    """A prompt is contaminated when it holds this share of a benchmark problem's n-grams (or they make this share of its own, at least 2n of them); one shared phrase is not enough."""
    contamination_embedder: str | None = field(default=None, metadata=MUST_MATCH)
    """Also compare prompts with benchmark problems by meaning: a sentence-transformers model (Hub id or local path); needs distill[decontam]."""
    contamination_threshold: float = field(default=DEFAULT_EMBEDDING_THRESHOLD, metadata=MUST_MATCH)
    """With --contamination-embedder: the cosine similarity at which a prompt counts as a benchmark problem (0.85 is calibrated for all-MiniLM-L6-v2; a prompt with exactly a problem's numbers counts from 0.55)."""
    contamination_top_k: int = field(default=DEFAULT_TOP_K, metadata=FREE)
    """With --contamination-embedder: benchmark problems retrieved per prompt."""
    contamination_cache: str | None = field(default=None, metadata=FREE)
    """With --contamination-embedder: directory of cached benchmark embeddings (default: $DISTILL_CACHE/embeddings or ~/.cache/distill/embeddings)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.contamination_ngram >= 1, "contamination_ngram",
                f"must be at least 1 (got {self.contamination_ngram})")
        require(0 < self.contamination_share <= 1, "contamination_share",
                f"must be in (0, 1] (got {self.contamination_share})")
        require(-1 <= self.contamination_threshold <= 1, "contamination_threshold",
                f"must be a cosine similarity in [-1, 1] (got {self.contamination_threshold})")
        require(self.contamination_top_k >= 1, "contamination_top_k",
                f"must be at least 1 (got {self.contamination_top_k})")

    def contamination_index(self, templates: Sequence[str] = ()) -> ContaminationIndex:
        """`build_index` with every option of this group; `templates`: the prompt templates in use."""
        return build_index(self.decontaminate or [], self.contamination_ngram, share=self.contamination_share,
                           embedder=self.contamination_embedder, threshold=self.contamination_threshold,
                           top_k=self.contamination_top_k, cache_dir=self.contamination_cache, templates=templates)
