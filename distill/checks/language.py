"""The language check, and the mixed-language detection it runs: is a chain of thought written in one language?

The DeepSeek-R1 paper rewards "language consistency", the share of the chain of
thought written in the target language. Measured naively that share punishes
what is not language at all, so before counting anything we mask

- LaTeX (`$…$`, `$$…$$`, `\\(…\\)`, `\\[…\\]`, `\\begin{…}…\\end{…}`, `\\commands`),
- code (fenced blocks and `inline code`) and URLs,
- numbers and identifiers (single letters, `x_1`, `camelCase`, `ABC`, `gcd`, `sin`: `is_notation`),
- foreign terms the prompt itself contains (a quoted “最小值” in English
  reasoning about a Chinese problem, "Fibonacci" in Chinese reasoning).

What is left is split into units: a word of a script written with spaces
(Latin, Cyrillic, Greek, Arabic, …) or one character of Chinese or Japanese.
Each unit belongs to a writing system (script); the target language names the
scripts it is written in. Two numbers decide the verdict:

- `score`: share of units in the target's scripts (the R1 consistency share);
- `foreign_run`: the longest run of foreign units not interrupted by a target
  unit (math and punctuation do not interrupt it). One Chinese sentence in a
  long English trace barely moves the share, but it is a run of 10+ units.

Why this design (measured in benchmarks/compare_language_id.py, see
benchmarks/RESULTS.md): the script pass alone had perfect precision on the
labelled set and caught the Chinese/English mixes R1 produces at ~0.2 ms a
trace, but cannot see a switch between two languages of one script (English
inside French reasoning). py3langid on whole Latin-script sentences (six words
or more, among a few candidate languages) adds that with no loss of precision;
a scan for the other candidates' function words decides which sentences it
has to look at, so an English trace costs ~0.1 ms more. lingua was as
accurate per sentence but four times slower, and its mixed-text mode flagged
half the clean traces.
"""

from __future__ import annotations

import bisect
import re
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from distill.checks.base import Check, CheckSummary, ThisRun, Verdict
from distill.config import MUST_MATCH, Options, one_of, require
from distill.report import percentiles
from distill.shape import CANONICAL, THINK_CLOSE, THINK_OPEN, TraceShape
from distill.traces import prompt_text

# Unicode blocks of the scripts we tell apart. Han and kana count per character (no spaces);
# the others per word.
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_KANA = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9d"
_HANGUL = "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"
_SCRIPTS: dict[str, str] = {
    "Han": f"[{_HAN}]+",
    "Kana": f"[{_KANA}]+",
    "Hangul": f"[{_HANGUL}]+",
    "Latin": f"[{_LATIN}]+(?:['’][{_LATIN}]+)*",
    "Cyrillic": "[\u0400-\u04ff]+",
    "Greek": "[\u0370-\u03ff\u1f00-\u1fff]+",
    "Arabic": "[\u0600-\u06ff\u0750-\u077f]+",
    "Hebrew": "[\u0590-\u05ff]+",
    "Devanagari": "[\u0900-\u097f]+",
    "Thai": "[\u0e00-\u0e7f]+",
}
_PER_CHARACTER = {"Han", "Kana", "Thai"}
_UNIT = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _SCRIPTS.items()))

# language code -> the scripts its text is written in
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    "zh": frozenset({"Han"}),
    "ja": frozenset({"Han", "Kana"}),
    "ko": frozenset({"Hangul"}),
    "ru": frozenset({"Cyrillic"}), "uk": frozenset({"Cyrillic"}), "bg": frozenset({"Cyrillic"}),
    "sr": frozenset({"Cyrillic"}), "kk": frozenset({"Cyrillic"}),
    "el": frozenset({"Greek"}),
    "ar": frozenset({"Arabic"}), "fa": frozenset({"Arabic"}), "ur": frozenset({"Arabic"}),
    "he": frozenset({"Hebrew"}),
    "hi": frozenset({"Devanagari"}), "mr": frozenset({"Devanagari"}), "ne": frozenset({"Devanagari"}),
    "th": frozenset({"Thai"}),
}
LATIN_LANGUAGES = ("en", "fr", "de", "es", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs", "sk",
                   "ro", "hu", "tr", "vi", "id", "ms", "ca", "hr", "sl", "et", "lv", "lt", "sw", "tl")
LATIN_CANDIDATES = ("en", "fr", "de", "es", "it", "pt")
"""Latin-script languages py3langid chooses among by default (few labels: fewer confusions)."""
SCRIPT_LANGUAGE = {"Han": "zh", "Kana": "ja", "Hangul": "ko", "Cyrillic": "ru", "Greek": "el", "Arabic": "ar",
                   "Hebrew": "he", "Devanagari": "hi", "Thai": "th", "Latin": "en"}
"""The language reported for a prompt detected by its script (Latin prompts count as 'en')."""

# Greek letters are math (α, β, θ, π) unless the text is Greek.
_NEUTRAL_UNLESS_TARGET = {"Greek"}

# Markup that is not language: code, math, URLs, LaTeX commands (three passes, the order matters:
# code first, since `$` inside code is not math).
_MARKUP = [
    re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]*`", re.DOTALL),                     # code
    re.compile(r"\$\$.*?\$\$|\\\[.*?\\\]|\\begin\{([a-zA-Z*]+)\}.*?\\end\{\1\}|\$[^$]{0,2000}?\$|\\\(.*?\\\)",
               re.DOTALL),                                                                        # math
    re.compile(r"https?://\S+|www\.\S+|\\[a-zA-Z]+"),                                           # URLs, \commands
]
# Words that are notation, not language: math functions and common code words.
_NOTATION_WORDS = frozenset({
    "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "log", "ln",
    "lg", "exp", "lim", "max", "min", "sup", "inf", "gcd", "lcm", "mod", "det", "dim", "ker", "deg", "arg", "var",
    "cov", "sgn", "def", "int", "float", "str", "len", "print", "return", "import", "lambda", "mathrm", "frac",
    "sqrt", "cdot", "times", "boxed", "text"})
# The same as patterns, for text that goes to a classifier (identifiers are ASCII: \w and \b must
# not reach into Chinese text, where '3个' is a number and a word).
_JOINERS = "=+\\-*/^<>≤≥≠±∓×÷·∘√∛∫∮∑∏∂∇∞→←↔⇒⇔≈≡∝∈∉⊂⊆∪∩′″⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻ⁿ₀₁₂₃₄₅₆₇₈₉0-9"
_IDENTIFIERS = [
    # plain-text math: a short letter run joined to an operator, a superscript or a number is a
    # variable or a unit ('du = 2t dt', 'du/dx = -1/x²', '60 km/h'), not a word py3langid may weigh
    re.compile(rf"\b[A-Za-z]{{1,3}}(?=\s*[{_JOINERS}])|(?<=[{_JOINERS}])\s*[A-Za-z]{{1,3}}\b", re.ASCII),
    re.compile(r"\b[A-Za-z_]\w*\.[A-Za-z_]\w*\b", re.ASCII),                        # np.linspace, arr.shape
    re.compile(r"[A-Za-z_]*\d[\w.]*|\b\w*_\w*\b", re.ASCII),                      # numbers, x1, a_n, 3.14
    re.compile(r"\b[a-z]+[A-Z]\w*\b", re.ASCII),                                    # camelCase identifiers
    re.compile(r"\b[A-Z]{1,4}s?\b|\b[a-zA-Z]\b", re.ASCII),                         # ABC, GCD, single letters
    re.compile(r"\b(?:" + "|".join(sorted(_NOTATION_WORDS)) + r")\b", re.ASCII),
]
_QUOTED = re.compile(r"“([^”\n]{1,80})”|\"([^\"\n]{1,80})\"|「([^」\n]{1,80})」|『([^』\n]{1,80})』|"
                     r"‘([^’\n]{1,80})’|'([^'\n]{1,80})'")
_WORD = re.compile(r"[A-Za-z]{2,}", re.ASCII)
_FOREIGN_FOR_LATIN = re.compile(f"[{_HAN}{_KANA}{_HANGUL}\u0400-\u04ff\u0600-\u06ff\u0590-\u05ff"
                                "\u0900-\u097f\u0e00-\u0e7f]")
_FOREIGN_FOR_LATIN_RUN = re.compile(
    f"{_FOREIGN_FOR_LATIN.pattern}+(?:[\\s，。、；：？！]+{_FOREIGN_FOR_LATIN.pattern}+)*")
"""A run of non-Latin script, its spaces and full-width punctuation included (one Chinese sentence)."""


def _keep_foreign_script(span: re.Match) -> str:
    """A code or math span as spaces, but for the runs of non-Latin script inside it: prose hidden in a
    code fence, `inline code` or `\\text{}` (Chinese reasoning in a comment, a string, a formula's
    text) is still language, while the code and the notation are not. Latin words inside are dropped:
    identifiers and keywords are English whatever the language of the text."""
    runs = _FOREIGN_FOR_LATIN_RUN.findall(span.group())
    return " " + " ".join(runs) + " " if runs else " "


def mask_markup(text: str) -> str:
    """`text` with code, LaTeX (math and commands) and URLs replaced by spaces, except the runs of
    non-Latin script inside code and math (see `_keep_foreign_script`)."""
    for pattern in _MARKUP[:2]:
        text = pattern.sub(_keep_foreign_script, text)
    return _MARKUP[2].sub(" ", text)


def mask_non_language(text: str) -> str:
    """`text` with markup, numbers and identifiers replaced by spaces (what a classifier should see)."""
    text = mask_markup(text)
    for pattern in _IDENTIFIERS:
        text = pattern.sub(" ", text)
    return text


def is_notation(script: str, token: str) -> bool:
    """A Latin token that names a variable, a point, a function or an identifier, not a word:
    x, ABC, GCD, gcd, camelCase."""
    if script != "Latin":
        return False
    if len(token) == 1 or token in _NOTATION_WORDS:
        return True
    if token.isascii() and (token.isupper() or token.rstrip("s").isupper()) and len(token) <= 5:
        return True
    return not (token.islower() or token.istitle() or token.isupper())  # camelCase, iPhone-like names


def target_scripts(language: str) -> frozenset[str]:
    """The scripts a language is written in ('en' -> {'Latin'}, 'zh' -> {'Han'})."""
    return LANGUAGE_SCRIPTS.get(language.lower().split("-")[0], frozenset({"Latin"}))


def known_language(language: str) -> bool:
    code = language.lower().split("-")[0]
    return code in LANGUAGE_SCRIPTS or code in LATIN_LANGUAGES


def script_units(text: str) -> list[tuple[str, str]]:
    """(script, token) for each language unit of `text`, in order; Han/kana runs stay whole here."""
    return [(m.lastgroup, m.group()) for m in _UNIT.finditer(mask_markup(text))  # type: ignore[misc]
            if not is_notation(m.lastgroup, m.group())]  # type: ignore[arg-type]


def _weight(script: str, token: str) -> int:
    return len(token) if script in _PER_CHARACTER else 1


@lru_cache(maxsize=1024)  # the n samples of a prompt share it
def detect_language(prompt: str, latin_candidates: tuple[str, ...] = ()) -> str | None:
    """The language of a prompt: by its dominant script ('zh', 'ja', 'ru', …); a Latin-script
    prompt is told apart among `latin_candidates` by py3langid when it is sure, else 'en'.

    The R1 instruction ('Please reason step by step…') that generate appends is
    ignored, so a short Chinese problem is not taken for English.
    """
    from distill.options import R1_INSTRUCTION

    prompt = prompt.replace(R1_INSTRUCTION, " ")
    counts: dict[str, int] = {}
    for script, token in script_units(prompt):
        counts[script] = counts.get(script, 0) + _weight(script, token)
    counts.pop("Greek", None)
    if not counts:
        return None
    if counts.get("Kana", 0) * 10 >= sum(counts.values()):
        return "ja"
    script = max(counts, key=lambda s: (counts[s], s))
    if script == "Latin" and len(latin_candidates) > 1 and counts["Latin"] >= 4:
        code, probability = latin_identifier(latin_candidates).classify(mask_non_language(prompt))
        # a wrong non-English target would flag every English trace: only a sure call moves it
        if probability >= 0.9:
            return code
    return SCRIPT_LANGUAGE[script]


@lru_cache(maxsize=8)
def latin_identifier(candidates: tuple[str, ...]):
    """py3langid restricted to `candidates` (fewer labels, fewer confusions on short math prose)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(candidates))
    return identifier


_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")
MIN_IDENTIFIED_WORDS = 6
"""Latin sentences shorter than this (after masking) are not given to py3langid: too little to tell."""


# Function words of the default candidate languages, none of them an English word or usual math
# notation. A sentence of six words in one of these languages has at least one; a text with none
# of the other candidates' words has no sentence py3langid needs to see (one regex scan instead of
# a model call per sentence: most traces stop there).
FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset({
        "the", "is", "are", "was", "were", "we", "this", "that", "what", "which", "with", "have", "has",
        "of", "and", "if", "then", "let", "but", "not", "there", "where", "when"
    }),
    "fr": frozenset({
        "le", "la", "les", "des", "est", "une", "dans", "pour", "que", "qui", "avec", "sur", "pas",
        "ce", "cette", "nous", "vous", "il", "elle", "sont", "du", "au", "aux", "donc", "mais", "je",
        "se", "ne", "sa", "ses", "leur", "très", "être", "avoir", "et"
    }),
    "es": frozenset({
        "el", "los", "las", "es", "una", "por", "para", "con", "del", "que", "se", "lo", "como", "pero",
        "más", "está", "entonces", "esto", "esta"
    }),
    "de": frozenset({
        "der", "das", "und", "ist", "nicht", "ein", "eine", "mit", "auf", "für", "von", "zu", "den",
        "dem", "des", "sich", "auch", "wir", "ich", "dass", "wenn", "dann", "oder", "aber", "wird"
    }),
    "it": frozenset({
        "il", "la", "le", "di", "che", "gli", "della", "delle", "sono", "una", "uno", "con", "nel",
        "alla", "questo", "quindi", "anche", "come", "ma"
    }),
    "pt": frozenset({
        "da", "das", "dos", "uma", "não", "que", "com", "para", "por", "mais", "se", "ao", "na",
        "então", "isso", "esta"
    }),
}


_LETTERS = re.compile(r"[^\W\d_]+")
# ASCII punctuation and digits to spaces: `text.translate(...).split()` is the text's words, at C speed
_NOT_A_WORD = str.maketrans({c: " " for c in "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~0123456789"})


@lru_cache(maxsize=32)
def _foreign_words(language: str, candidates: tuple[str, ...]) -> frozenset[str] | None:
    """Words of the other candidates that are not words of `language`; None when a candidate has no list."""
    others = [c for c in candidates if c != language]
    if any(c not in FUNCTION_WORDS for c in others):
        return None
    return frozenset().union(*(FUNCTION_WORDS[c] for c in others)) - FUNCTION_WORDS.get(language, frozenset())


def _latin_sentence_is_foreign(sentence: str, language: str, candidates: tuple[str, ...]) -> bool:
    """A sentence of at least MIN_IDENTIFIED_WORDS words, all in Latin script, that py3langid
    places in another language than `language` (markup and identifiers masked first)."""
    masked = mask_non_language(sentence)
    units = [m.lastgroup for m in _UNIT.finditer(masked)]
    if len(units) < MIN_IDENTIFIED_WORDS or any(script != "Latin" for script in units):
        return False
    return latin_identifier(candidates).classify(masked)[0] != language


def _foreign_latin_sentences(text: str, language: str, candidates: tuple[str, ...]) -> list[tuple[int, int]]:
    """Spans (in `text`) of Latin-script sentences py3langid puts in another language."""
    foreign_words = _foreign_words(language, candidates)
    hits = None
    if foreign_words is not None:
        if foreign_words.isdisjoint(text.lower().translate(_NOT_A_WORD).split()):
            return []
        hits = [m.start() for m in _LETTERS.finditer(text) if m.group().lower() in foreign_words]
    spans = []
    for sentence in _SENTENCE.finditer(text):
        start, end = sentence.span()
        if hits is not None and bisect.bisect_left(hits, end) == bisect.bisect_left(hits, start):
            continue  # no word of another candidate language in it
        if end - start >= 2 * MIN_IDENTIFIED_WORDS and _latin_sentence_is_foreign(sentence.group(), language,
                                                                                   candidates):
            spans.append((start, end))
    return spans


@lru_cache(maxsize=256)
def _prompt_terms(prompt: str) -> tuple[frozenset[str], str]:
    """Lower-cased words of the prompt, and the prompt text for substring look-ups of CJK runs."""
    words = frozenset(m.group().lower() for m in re.finditer(_SCRIPTS["Latin"], prompt))
    return words, prompt


def _mask_quoted_prompt_terms(text: str, prompt: str) -> str:
    if not prompt:
        return text

    def keep_or_mask(match: re.Match) -> str:
        quoted = next(g for g in match.groups() if g is not None)
        return " " if quoted.strip() and quoted.strip() in prompt else match.group()

    return _QUOTED.sub(keep_or_mask, text)


@dataclass(frozen=True)
class LanguageMeasure:
    score: float | None
    """Share of language units in the target's scripts (None: no language units at all)."""
    foreign_run: int
    """Longest run of foreign-script units not interrupted by a target unit."""
    units: int
    """Language units counted (target + foreign)."""
    foreign_example: str = ""
    """The start of the longest foreign run, to show in the rejects file."""


def measure_language(text: str, language: str, prompt: str = "",
                     latin_candidates: tuple[str, ...] = ()) -> LanguageMeasure:
    """Score `text` for being written in `language` (a code such as 'en' or 'zh').

    With `latin_candidates` (and a Latin-script target among them), sentences of
    six or more Latin words are also identified by py3langid, so French reasoning
    for a French prompt written partly in English is caught too.
    """
    scripts = target_scripts(language)
    identify_latin = scripts == {"Latin"} and language in latin_candidates and len(latin_candidates) > 1
    text = mask_markup(_mask_quoted_prompt_terms(text, prompt))
    foreign_sentences = _foreign_latin_sentences(text, language, latin_candidates) if identify_latin else []
    if scripts == {"Latin"} and not foreign_sentences and not _FOREIGN_FOR_LATIN.search(text):
        # nothing but Latin letters (and Greek math): nothing is foreign, no need to look at every word
        words = len(_WORD.findall(text))
        return LanguageMeasure(1.0 if words else None, 0, words)
    prompt_words, prompt_chars = _prompt_terms(prompt)
    next_sentence = 0
    target = foreign = run = longest = 0
    run_start = longest_start = longest_end = 0
    for match in _UNIT.finditer(text):
        script, token = match.lastgroup, match.group()
        if is_notation(script, token):  # type: ignore[arg-type]
            continue
        in_foreign_sentence = False
        if foreign_sentences:
            while next_sentence < len(foreign_sentences) and foreign_sentences[next_sentence][1] <= match.start():
                next_sentence += 1
            in_foreign_sentence = (next_sentence < len(foreign_sentences)
                                   and foreign_sentences[next_sentence][0] <= match.start())
        if script in scripts and not in_foreign_sentence:
            target += _weight(script, token)  # type: ignore[arg-type]
            run = 0
            continue
        if script in _NEUTRAL_UNLESS_TARGET:
            continue
        if prompt and (token in prompt_chars if script in _PER_CHARACTER else token.lower() in prompt_words):
            continue  # a term the prompt itself uses
        weight = _weight(script, token)  # type: ignore[arg-type]
        foreign += weight
        if run == 0:
            run_start = match.start()
        run += weight
        if run > longest:
            longest, longest_start, longest_end = run, run_start, match.end()
    units = target + foreign
    example = " ".join(text[longest_start:longest_end].split())[:60] if longest else ""
    return LanguageMeasure(round(target / units, 4) if units else None, longest, units, example)


def language_verdict(measure: LanguageMeasure, *, min_score: float, max_foreign_run: int,
                     min_units: int = 3) -> bool | None:
    """False when the share is below `min_score` or a foreign run reaches `max_foreign_run` units;
    None when the text has fewer than `min_units` language units (all math: cannot tell)."""
    if measure.score is None or measure.units < min_units:
        return None
    return measure.score >= min_score and measure.foreign_run < max_foreign_run


# ---------------------------------------------------------------- the check

LANGUAGE_DETECTORS = ("script", "script+langid")


@dataclass(kw_only=True)
class LanguageOptions(Options):
    language: str = field(default="auto", metadata=MUST_MATCH)
    """language: the language reasoning and answer must be written in ('auto': the prompt's, or en, zh, ja, ru, …)."""
    language_threshold: float = field(default=0.95, metadata=MUST_MATCH)
    """language: least share of the text's words in the target language (the R1 consistency share)."""
    language_max_foreign_run: int = field(default=4, metadata=MUST_MATCH)
    """language: reject a run of this many consecutive foreign words (Chinese: characters), e.g. one Chinese sentence in English."""
    language_detector: str = field(default="script+langid", metadata=MUST_MATCH)
    """language: 'script' (Unicode scripts: zh/en/ja/ru… mixes) or 'script+langid' (also py3langid on Latin sentences: English in French)."""
    language_candidates: list[str] = field(default_factory=lambda: list(LATIN_CANDIDATES),
                                           metadata=MUST_MATCH)
    """language: the Latin-script languages script+langid tells apart (prompts and sentences)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.language == "auto" or known_language(self.language), "language",
                f"must be 'auto' or a language code such as en, zh, ja, ko, ru, fr (got {self.language!r})")
        require(0 <= self.language_threshold <= 1, "language_threshold", "must be in [0, 1]")
        require(self.language_max_foreign_run >= 1, "language_max_foreign_run", "must be at least 1")
        one_of(self.language_detector, "language_detector", LANGUAGE_DETECTORS)
        unknown_latin = [code for code in self.language_candidates if code not in LATIN_LANGUAGES]
        require(not unknown_latin, "language_candidates",
                f"must be Latin-script language codes among {', '.join(LATIN_LANGUAGES)} (got {unknown_latin})")

    @property
    def latin_candidates(self) -> tuple[str, ...]:
        """The languages py3langid chooses among; () for the script-only detector."""
        return tuple(self.language_candidates) if self.language_detector == "script+langid" else ()


class LanguageSummary(CheckSummary):
    """The report's `language`: the target languages found, the score distribution and its histogram."""

    # every report has it, so that a run without the language check says no language was measured
    always = True

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.languages: Counter[str] = Counter()
        self.scores = array("d")  # 8 bytes a record: a resumed run reads its whole output back into it

    def add(self, record: dict[str, Any], details: dict[str, Any], kept: bool) -> None:
        if details.get("language"):
            self.languages[details["language"]] += 1
        if isinstance(details.get("language_score"), (int, float)):
            self.scores.append(details["language_score"])

    def write(self, data: dict[str, Any], this_run: ThisRun) -> None:
        threshold = self.cfg.language_threshold
        data["language"] = {"target": self.cfg.language, "languages": dict(self.languages.most_common()),
                            "threshold": threshold, "max_foreign_run": self.cfg.language_max_foreign_run,
                            "score": percentiles(self.scores),
                            "below_threshold": sum(1 for score in self.scores if score < (threshold or 0))}

    def plots(self, beside: Callable[[str], Path]) -> list[Path]:
        from distill.report import save_histogram

        if not self.scores:
            return []
        threshold = self.cfg.language_threshold
        return [save_histogram(beside("language.png"), {"records": list(self.scores)},
                               title="Language consistency (share of words in the target language)",
                               xlabel="score", vline=threshold, vline_label=f"threshold {threshold}")]


@dataclass(frozen=True)
class LanguageCheck(Check):
    """Reasoning and answer written in the target language (the detection above)."""

    name: ClassVar[str] = "language"
    option_group: ClassVar[type[Options]] = LanguageOptions
    summary: ClassVar[type[CheckSummary]] = LanguageSummary
    options: LanguageOptions = field(default_factory=LanguageOptions)
    shape: TraceShape = CANONICAL

    @property
    def fields(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("messages",) if self.options.language == "auto" else ()

    def warm_up(self) -> None:
        if len(self.options.latin_candidates) > 1:
            # py3langid's model once here (0.3 s): forked workers inherit it instead of each decompressing it
            latin_identifier(self.options.latin_candidates)

    def target(self, record: dict[str, Any]) -> str | None:
        """The language the trace must be written in: the configured one, or for 'auto' the prompt's."""
        if self.options.language == "auto":
            return detect_language(prompt_text(record), self.options.latin_candidates)
        return self.options.language

    def measure(self, record: dict[str, Any]) -> tuple[str | None, LanguageMeasure | None]:
        """(target language, measure of reasoning + answer); (None, None) when the target is unknown."""
        target = self.target(record)
        if target is None:
            return None, None
        candidates = self.options.latin_candidates
        if candidates and target in LATIN_LANGUAGES and target not in candidates:
            candidates = (*candidates, target)
        text = self.shape.full_text(record).replace(THINK_OPEN, " ").replace(THINK_CLOSE, " ")
        return target, measure_language(text, target, prompt_text(record), candidates)

    def run(self, record: dict[str, Any], details: dict[str, Any] | None = None) -> Verdict:
        details = {} if details is None else details
        target, measure = self.measure(record)
        details["language"] = target
        if measure is None:
            return None
        verdict = language_verdict(measure, min_score=self.options.language_threshold,
                                   max_foreign_run=self.options.language_max_foreign_run)
        details["language_score"] = measure.score
        if measure.foreign_run:
            details["foreign_run"] = measure.foreign_run
            if verdict is False:
                details["foreign_text"] = measure.foreign_example
        return verdict
