"""distill's grading against math-verify's own labelled test pairs (and against a plain math-verify call).

math-verify's repository tests hold (gold, pred, expected) triples in `@pytest.mark.parametrize`
lists (tests/test_all.py, test_boxed.py, test_numina_cases.py, test_open_thoughts.py,
test_yujianll.py, test_strict.py: 269 in all). This script reads them from a checkout at run time
(nothing of it is copied into distill) with `ast`: each list is `ast.literal_eval`ed; the one entry
that is an f-string of `math.<function>(<number>)` (test_float_precision) is formatted by a tiny
evaluator that allows only that shape.

Each pair is graded three ways:
- distill: `distill.grading.grade_detailed(pred, gold)`, the way the filter grades a trace (pred as
  the answer text, gold as the reference), in this process, with the filter's 5 s timeout;
  a None verdict (cannot tell) counts as "not graded equal";
- math-verify: a plain call, `verify(parse(gold), parse(pred))` with every option at its default;
- math-verify as its test calls it (the test's extraction targets and options): a check that the
  reader found the right triples (it must agree 100 %).

Extra columns. Some tests set a math-verify option per row (`precision`, `strict`,
`allow_set_relation_comp`); distill has no such options, so every row is judged against its label
as written, with distill's fixed behaviour: decimals are compared at the precision they show (the
`precision` column plays no part), a relation against the interval it denotes is compared both ways
(as `allow_set_relation_comp=True`), and a function's renamed argument is allowed (as `f(x)` vs
`f(y)` with `strict=False`), but no other variable renaming (math-verify's `strict=False` pairs any
free variables by position). Two pairs appear twice with opposite labels, once per setting of
`strict` / `allow_set_relation_comp`; whichever way a grader decides, it disagrees with one row of
each, and the report names them ("option rows").

    python benchmarks/grading_vs_math_verify.py --math-verify-tests /tmp/mv/tests
    python benchmarks/grading_vs_math_verify.py --math-verify-tests /tmp/mv/tests --json out.json
    python benchmarks/grading_vs_math_verify.py --math-verify-tests /tmp/mv/tests --pairs tests/data/grading_pairs.jsonl
    python benchmarks/grading_vs_math_verify.py --pairs tests/data/grading_issue27.jsonl   # per kind

With `--pairs`, distill's own labelled set (tests/data/grading_pairs.jsonl: answer text, reference,
equal, note) is graded both ways too: distill as the filter grades an answer text
(`grade_detailed`), math-verify alone as `verify(parse(f"${reference}$"), parse(answer))` (the
references are written bare, as a dataset's answer column is).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEST_FILES = ("test_all.py", "test_boxed.py", "test_numina_cases.py", "test_open_thoughts.py",
              "test_yujianll.py", "test_strict.py")
LABEL_COLUMNS = ("expected", "result")
OPTION_COLUMNS = ("precision", "strict", "allow_set_relation_comp")


@dataclass
class Case:
    source: str
    """file::test function"""
    gold: str
    pred: str
    equal: bool
    options: dict[str, Any] = field(default_factory=dict)
    """the row's math-verify option columns (precision, strict, allow_set_relation_comp)"""
    call: dict[str, Any] = field(default_factory=dict)
    """how the test calls math-verify: match_types and fixed keyword options (None: plain parse/verify)"""


# ---------------------------------------------------------------- reading the tests


def _format_math_fstring(node: ast.JoinedStr) -> str:
    """f"{math.sqrt(17):.15f}" and the like: only calls of a `math` function on number literals."""
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value))
            continue
        call = value.value
        if not (isinstance(value, ast.FormattedValue) and isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)
                and call.func.value.id == "math" and not call.keywords):
            raise ValueError(f"unsupported f-string at line {node.lineno}")
        number = getattr(math, call.func.attr)(*(ast.literal_eval(a) for a in call.args))
        spec = "".join(str(ast.literal_eval(v)) for v in value.format_spec.values) if value.format_spec else ""
        parts.append(format(number, spec))
    return "".join(parts)


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.JoinedStr):
        return _format_math_fstring(node)
    if isinstance(node, (ast.Tuple, ast.List)):
        return [_literal(element) for element in node.elts]
    return ast.literal_eval(node)


def _call_of(function: ast.FunctionDef) -> dict[str, Any]:
    """How the test function calls math-verify: compare_strings' match_types and literal options."""
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "compare_strings":
            call: dict[str, Any] = {"match_types": ["latex", "expr"]}
            for keyword in node.keywords:
                with contextlib.suppress(ValueError):  # a row column (precision=precision): read from the row
                    call[keyword.arg] = ast.literal_eval(keyword.value)
            return call
    return {}


def read_cases(tests_dir: Path) -> list[Case]:
    cases = []
    for name in TEST_FILES:
        tree = ast.parse((tests_dir / name).read_text(), filename=name)
        for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            for decorator in function.decorator_list:
                if not (isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "pytest.mark.parametrize"):
                    continue
                columns = [c.strip() for c in ast.literal_eval(decorator.args[0]).split(",")]
                call = _call_of(function)
                for row in _literal(decorator.args[1]):
                    values = dict(zip(columns, row, strict=True))
                    label = next(values[c] for c in LABEL_COLUMNS if c in values)
                    cases.append(Case(f"{name}::{function.name}", values["gold"], values["pred"], bool(label),
                                      {c: values[c] for c in OPTION_COLUMNS if c in values}, call))
    return cases


# ---------------------------------------------------------------- graders


def distill_grade(pred: str, gold: str) -> bool | None:
    """The filter's grading of `pred` as the teacher's final answer: its extracted answer (the boxes,
    '####', 'answer:'), else the whole pred, compared with the fast path, then math-verify."""
    from distill.grading import extract_answer, fast_verdict, slow_grade

    answer = extract_answer(pred) or pred.strip()
    verdict = fast_verdict(answer, gold)
    return verdict if verdict is not None else slow_grade(answer, gold, timeout=5.0).verdict


def distill_grade_answer_text(answer_text: str, reference: str) -> bool | None:
    """The filter's grading of an answer text (distill's labelled pairs are written as answer texts)."""
    from distill.grading import grade_detailed

    return grade_detailed(answer_text, reference, timeout=5.0).verdict


def math_verify_plain(pred: str, gold: str) -> bool:
    from math_verify import parse, verify

    return bool(verify(parse(gold), parse(pred)))


def math_verify_wrapped_reference(answer_text: str, reference: str) -> bool:
    """math-verify alone on an answer text and a bare reference: the reference in `$…$` (as a
    dataset's answer column is written, without delimiters), the answer text as it is."""
    wrapped = reference if "$" in reference or "\\boxed" in reference else f"${reference}$"
    return math_verify_plain(answer_text, wrapped)


def math_verify_as_tested(case: Case) -> bool:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    if not case.call:
        return math_verify_plain(case.pred, case.gold)
    targets = [LatexExtractionConfig(boxed_match_priority=0) if t == "latex" else ExprExtractionConfig()
               for t in case.call["match_types"]]
    options = {"precision": 6, "strict": True, "allow_set_relation_comp": False,
               **{k: v for k, v in case.call.items() if k != "match_types"}, **case.options}
    return bool(verify(parse(case.gold, targets), parse(case.pred, targets), float_rounding=options["precision"],
                       strict=options["strict"], allow_set_relation_comp=options["allow_set_relation_comp"]))


# ---------------------------------------------------------------- scoring


@dataclass
class Score:
    name: str
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    unknown: int = 0
    """verdicts None (counted as not equal)"""
    seconds: float = 0.0
    disagreements: list[tuple[str, str, str, bool, Any]] = field(default_factory=list)

    def add(self, source: str, gold: str, pred: str, equal: bool, verdict: bool | None) -> None:
        self.unknown += verdict is None
        graded = verdict is True
        if graded and equal:
            self.tp += 1
        elif graded:
            self.fp += 1
        elif equal:
            self.fn += 1
        else:
            self.tn += 1
        if graded != equal:
            self.disagreements.append((source, gold, pred, equal, verdict))

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    def row(self) -> list[str]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        specificity = self.tn / (self.tn + self.fp) if self.tn + self.fp else 1.0
        return [self.name, f"{self.total - len(self.disagreements)}/{self.total}",
                f"{self.fn} / {self.fp}", f"{precision:.3f}", f"{recall:.3f}",
                f"{self.tn}/{self.tn + self.fp} ({specificity:.3f})", str(self.unknown), f"{self.seconds:.1f}"]


HEADERS = ["grader", "agree", "equal graded unequal / unequal graded equal", "precision", "recall",
           "unequal pairs kept unequal", "None", "seconds"]


def table(scores: list[Score]) -> str:
    from distill.report import markdown_table

    return markdown_table(HEADERS, [s.row() for s in scores])


def _short(text: str, width: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width // 2 - 2] + " … " + text[-(width // 2 - 2):]


def run(items: list[tuple[str, str, str, bool]], graders: dict[str, Any]) -> list[Score]:
    scores = []
    for name, grader in graders.items():
        score = Score(name)
        started = time.process_time()
        for source, gold, pred, equal in items:
            score.add(source, gold, pred, equal, grader(pred, gold))
        score.seconds = time.process_time() - started
        scores.append(score)
    return scores


def option_rows(cases: list[Case]) -> set[int]:
    """Rows whose (gold, pred) also appears with the opposite label under another option setting."""
    labels: dict[tuple[str, str], set[bool]] = {}
    for case in cases:
        labels.setdefault((case.gold, case.pred), set()).add(case.equal)
    return {i for i, c in enumerate(cases) if c.options and len(labels[(c.gold, c.pred)]) > 1}


def _math_verify_tests(tests_dir: Path) -> dict[str, Any]:
    cases = read_cases(tests_dir)
    contradictory = option_rows(cases)
    per_file = {}
    for case in cases:
        per_file[case.source.split("::")[0]] = per_file.get(case.source.split("::")[0], 0) + 1
    print(f"math-verify tests: {len(cases)} pairs ({', '.join(f'{k} {v}' for k, v in per_file.items())}); "
          f"{sum(c.equal for c in cases)} equal, {sum(not c.equal for c in cases)} unequal")

    items = [(c.source, c.gold, c.pred, c.equal) for c in cases]
    scores = run(items, {"distill": distill_grade, "math-verify (plain call)": math_verify_plain})
    as_tested = Score("math-verify (as its tests call it)")
    for case in cases:
        as_tested.add(case.source, case.gold, case.pred, case.equal, math_verify_as_tested(case))
    print(table([*scores, as_tested]))
    distill = scores[0]
    print(f"\ndistill's disagreements ({len(distill.disagreements)}; * = an option row, whose pair has the "
          "opposite label under the other option setting):")
    index = {(c.source, c.gold, c.pred, c.equal): i for i, c in enumerate(cases)}
    for source, gold, pred, equal, verdict in distill.disagreements:
        i = index[(source, gold, pred, equal)]
        mark = "*" if i in contradictory else " "
        print(f"{mark} {source} {cases[i].options or ''}\n    gold {_short(gold)!r}\n    pred {_short(pred)!r}\n"
              f"    label {'equal' if equal else 'unequal'}, distill {verdict}")

    return {"math_verify_tests": {s.name: {**dict(zip(HEADERS, s.row())), "disagreements": s.disagreements}
                                  for s in [*scores, as_tested]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--math-verify-tests", type=Path,
                        help="the tests/ folder of a math-verify checkout")
    parser.add_argument("--pairs", type=Path, action="append", default=[],
                        help="distill's own labelled pairs (jsonl: answer, reference, equal[, kind]); repeatable")
    parser.add_argument("--skip-math-verify-tests", action="store_true",
                        help="grade only the --pairs files")
    parser.add_argument("--json", type=Path, help="write the scores and disagreements here")
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    import math_verify  # noqa: F401 - sympy's import is not the graders' time

    report: dict[str, Any] = {}
    if args.math_verify_tests and not args.skip_math_verify_tests:
        report.update(_math_verify_tests(args.math_verify_tests))
    for path in args.pairs:
        pairs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        graders = {"distill": distill_grade_answer_text, "math-verify alone": math_verify_wrapped_reference}
        own = run([(p.get("kind", "") + ": " + p.get("note", ""), p["reference"], p["answer"], p["equal"])
                   for p in pairs], graders)
        print(f"\ndistill's labelled pairs ({path}): {len(pairs)} pairs, {sum(p['equal'] for p in pairs)} equal")
        print(table(own))
        kinds = sorted({p["kind"] for p in pairs if "kind" in p})
        if kinds:
            print("\nper kind (agree with the label; pairs equal / unequal):")
            rows = []
            for kind in kinds:
                subset = [(p["note"], p["reference"], p["answer"], p["equal"]) for p in pairs if p.get("kind") == kind]
                scores = run(subset, graders)
                rows.append([kind, f"{sum(e for *_, e in subset)} / {sum(not e for *_, e in subset)}",
                             *(f"{s.total - len(s.disagreements)}/{s.total} (fp {s.fp})" for s in scores)])
            from distill.report import markdown_table
            print(markdown_table(["kind", "equal / unequal", *graders], rows))
        for score in own:
            for source, gold, pred, equal, _ in score.disagreements:
                print(f"  {score.name}: {'missed' if equal else 'FALSE POSITIVE'}: ref {_short(gold)!r} "
                      f"answer {_short(pred)!r} ({source})")
        report[f"pairs:{path}"] = {s.name: {**dict(zip(HEADERS, s.row())), "disagreements": s.disagreements}
                                   for s in own}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
