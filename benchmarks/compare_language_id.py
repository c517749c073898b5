"""Which language identification should the filter's language check use?

Measures precision, recall and speed of mixed-language detection on the
language part of the labelled set (benchmarks/filter_evalset.py: English and
Chinese R1-style traces, clean ones with hard negatives — heavy LaTeX, code,
variable names, prompt terms in the other script — and ones with a sentence,
a paragraph, a short fragment or a third language injected).

Every method sees the same masked text (LaTeX, code, numbers, identifiers and
quoted prompt terms removed: distill.checks.language.mask_non_language), the
same target language (detected from the prompt) and the same verdict rule
(share of target-language units ≥ 0.95 and no run of ≥ 4 foreign units), so
only the identification differs:

- script: Unicode script of each word / CJK character (distill --language-detector script);
- script + py3langid on Latin sentences (distill's default, --language-detector script+langid):
  then py3langid on Latin-only sentences of ≥ 6 words, among en/fr/de/es/it/pt;
- script, no masking: the script pass without masking (what masking buys);
- py3langid / sentence: py3langid on each sentence, restricted to the languages of the set;
- lingua / mixed: lingua's detect_multiple_languages_of on the whole text;
- lingua / sentence: lingua's detect_language_of on each sentence.

    pip install py3langid lingua-language-detector
    python benchmarks/compare_language_id.py              # 1,200 traces, ~2 min on 2 cores
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable

from filter_evalset import CASES, build_evalset

from distill.checks.language import (
    LATIN_CANDIDATES,
    LanguageCheck,
    LanguageOptions,
    _mask_quoted_prompt_terms,
    mask_non_language,
    script_units,
    target_scripts,
)
from distill.report import markdown_table
from distill.shape import CANONICAL
from distill.traces import prompt_text

LANGUAGES = ["en", "zh", "ja", "fr", "de", "es", "ru"]
MIN_SCORE, MAX_RUN = 0.95, 4
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*|\n+")


def _units(text: str) -> int:
    return sum(len(t) if s in ("Han", "Kana") else 1 for s, t in script_units(text) if s != "Greek")


def _verdict_from_segments(segments: list[tuple[bool, int]]) -> bool | None:
    """segments: (is target language, units) in order -> the shared verdict rule."""
    target = sum(u for is_target, u in segments if is_target)
    foreign = sum(u for is_target, u in segments if not is_target)
    run = longest = 0
    for is_target, units in segments:
        run = 0 if is_target else run + units
        longest = max(longest, run)
    if target + foreign < 3:
        return None
    return target / (target + foreign) >= MIN_SCORE and longest < MAX_RUN


def _prepared(record: dict) -> tuple[str, str, str]:
    target = LanguageCheck().target(record) or "en"  # the default options: py3langid among LATIN_CANDIDATES
    text = CANONICAL.full_text(record).replace("<think>", " ").replace("</think>", " ")
    return target, text, prompt_text(record)


def distill_method(latin_candidates: tuple[str, ...]) -> Callable[[dict], bool | None]:
    # no candidates: the script-only detector
    options = LanguageOptions(language_threshold=MIN_SCORE, language_max_foreign_run=MAX_RUN,
                              language_candidates=list(latin_candidates),
                              language_detector="script+langid" if latin_candidates else "script")
    check = LanguageCheck(options)

    def method(record: dict) -> bool | None:
        return check.run(record)

    return method


def method_script_unmasked(record: dict) -> bool | None:
    target, text, _ = _prepared(record)
    scripts = target_scripts(target)
    import distill.checks.language as language

    segments = [(s in scripts, len(t) if s in ("Han", "Kana") else 1)
                for s, t in ((m.lastgroup, m.group()) for m in language._UNIT.finditer(text)) if s != "Greek"]
    return _verdict_from_segments(segments)


def _sentences(record: dict) -> tuple[str, list[str]]:
    target, text, prompt = _prepared(record)
    masked = mask_non_language(_mask_quoted_prompt_terms(text, prompt))
    return target, [s for s in _SENTENCE_END.split(masked) if s and _units(s)]


def make_py3langid() -> Callable[[str], str]:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(LANGUAGES)
    return lambda text: identifier.classify(text)[0]


def make_lingua() -> tuple[Callable[[str], str | None], object]:
    from lingua import Language, LanguageDetectorBuilder

    languages = [Language.ENGLISH, Language.CHINESE, Language.JAPANESE, Language.FRENCH, Language.GERMAN,
                 Language.SPANISH, Language.RUSSIAN]
    detector = LanguageDetectorBuilder.from_languages(*languages).with_preloaded_language_models().build()

    def classify(text: str) -> str | None:
        language = detector.detect_language_of(text)
        return language.iso_code_639_1.name.lower() if language is not None else None

    return classify, detector


def sentence_method(classify: Callable[[str], str | None]) -> Callable[[dict], bool | None]:
    def method(record: dict) -> bool | None:
        target, sentences = _sentences(record)
        return _verdict_from_segments([(classify(s) in (target, None), _units(s)) for s in sentences])

    return method


def lingua_mixed_method(detector) -> Callable[[dict], bool | None]:
    def method(record: dict) -> bool | None:
        target, text, prompt = _prepared(record)
        masked = mask_non_language(_mask_quoted_prompt_terms(text, prompt))
        segments = []
        for result in detector.detect_multiple_languages_of(masked):
            code = result.language.iso_code_639_1.name.lower()
            segments.append((code == target, _units(masked[result.start_index:result.end_index])))
        return _verdict_from_segments(segments)

    return method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    weights = {"clean": 0.40, "clean_latex_code": 0.10, "clean_refrains": 0.05, "clean_quoted_prompt_term": 0.12,
               "lang_sentence": 0.12, "lang_paragraph": 0.05, "lang_clause": 0.08, "lang_third_language": 0.08}
    cases = {name: (share, CASES[name][1]) for name, share in weights.items()}
    records = build_evalset(args.prompts, seed=args.seed, zh_share=0.4, cases=cases)
    labels = ["language" in r["source"]["faults"] for r in records]
    py3langid = make_py3langid()
    lingua_classify, lingua_detector = make_lingua()
    methods = {
        "script (distill --language-detector script)": distill_method(()),
        "script + py3langid (distill default)": distill_method(LATIN_CANDIDATES),
        "script, no masking": method_script_unmasked,
        "py3langid / sentence": sentence_method(py3langid),
        "lingua / mixed": lingua_mixed_method(lingua_detector),
        "lingua / sentence": sentence_method(lingua_classify),
    }
    rows = []
    per_case: dict[str, dict[str, str]] = {}
    for name, method in methods.items():
        method(records[0])  # warm-up (model loading)
        start = time.perf_counter()
        verdicts = [method(r) for r in records]
        elapsed = time.perf_counter() - start
        tp = sum(1 for v, y in zip(verdicts, labels) if v is False and y)
        fp = sum(1 for v, y in zip(verdicts, labels) if v is False and not y)
        fn = sum(1 for v, y in zip(verdicts, labels) if v is not False and y)
        rows.append([name, tp, fp, fn, round(tp / (tp + fp), 3) if tp + fp else float("nan"),
                     round(tp / (tp + fn), 3) if tp + fn else float("nan"), round(len(records) / elapsed, 1),
                     round(elapsed / len(records) * 1000, 2)])
        for case in weights:
            group = [(v, y) for v, y, r in zip(verdicts, labels, records) if r["source"]["case"] == case]
            if not group:
                continue
            rejected = sum(1 for v, _ in group if v is False)
            per_case.setdefault(case, {})[name] = f"{rejected}/{len(group)}"
    chars = sum(len(r["completion"]) for r in records) / len(records)
    mixed = sum(labels)
    print(f"{len(records)} traces ({mixed} mixed, {len(records) - mixed} not), mean {chars:,.0f} characters, "
          f"{sum(1 for r in records if r['source']['language'] == 'zh')} Chinese\n")
    print(markdown_table(["method", "TP", "FP", "FN", "precision", "recall", "traces/s", "ms/trace"], rows))
    print()
    names = list(methods)
    print(markdown_table(["case (rejected / records)", *names],
                         [[case, *(per_case[case].get(n, "") for n in names)] for case in per_case]))


if __name__ == "__main__":
    main()
