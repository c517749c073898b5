"""Answer extraction and grading (distill.grading, distill.grading_pool), including a real math-verify hang in the pool."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest

import distill.grading
from distill.grading import (
    ANSWER_WINDOW,
    Grade,
    answer_window,
    as_number,
    boxed_answers,
    choice_reference,
    extract_answer,
    extract_choice,
    fast_verdict,
    grade,
    grade_detailed,
    last_boxed,
    normalize_answer,
    notation,
    parse_math,
    rename_bound_variables,
    rounding_places,
    slow_grade,
)
from distill.grading_pool import GradingPool
from tests import reward_hacks


@pytest.mark.parametrize("text, answer", [
    ("so the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("first \\boxed{3}, then finally \\boxed{\\{1, \\{2\\}\\}}", "\\{1, \\{2\\}\\}"),
    ("nested \\boxed{\\sqrt{\\frac{a}{b}}} end", "\\sqrt{\\frac{a}{b}}"),
    ("\\fbox{42}", "42"),
    ("$\\boxed 7$", "7"),
    ("cut off at \\boxed{\\frac{1}{2", None),  # a truncated box is no answer, not the box before it
    ("no box at all", None),
])
def test_last_boxed(text, answer):
    assert last_boxed(text) == answer


def test_grading_modules_import_only_the_ones_below_them():
    # verdicts -> extraction -> normalisation, the order in which an answer is graded: a rule never
    # reaches back into finding the answer, and the package's __init__ only re-exports
    below = {"normalisation": set(), "notation": set(), "extraction": {"normalisation", "notation"},
             "verdicts": {"extraction", "notation", "normalisation"}}
    package = Path(distill.grading.__file__).parent
    for module, allowed in below.items():
        tree = ast.parse((package / f"{module}.py").read_text())
        names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        names += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
        imported = {name.removeprefix("distill.grading").lstrip(".") or "__init__" for name in names
                    if name == "distill.grading" or name.startswith("distill.grading.")}
        assert imported <= allowed, f"distill.grading.{module} imports {sorted(imported - allowed)}"


def test_extract_answer_falls_back_to_the_configured_patterns():
    assert extract_answer("The answer is $\\boxed{12}$.") == "12"
    assert extract_answer("Natalia sold 48 clips.\n#### 72") == "72"
    assert extract_answer("Therefore, the final answer is: $\\frac{3}{4}$.") == "\\frac{3}{4}"
    assert extract_answer("Answer: 7") == "7"
    assert extract_answer("I am not sure.") is None
    assert extract_answer("Result => 9", patterns=["boxed", r"Result => (\S+)"]) == "9"
    assert extract_answer("Answer: 7", patterns=["boxed"]) is None


def test_answer_patterns_search_a_bounded_window_at_the_end():
    prose = "We double-check the arithmetic once more. " * 100
    assert len(prose) > ANSWER_WINDOW
    assert extract_answer("Answer: 7\n" + prose) is None  # stated too far before the end to be the final answer
    assert extract_answer(prose + "\nAnswer: 7") == "7"
    assert extract_answer("\\boxed{7}\n" + prose) == "7"  # a box is found anywhere (a linear scan)
    assert extract_choice(prose + " B") is None            # the end of a long text is no letter answer
    bomb = " " * 200_000  # a whitespace bomb: runs of spaces are one space, so the window stays small
    padded = "The answer is" + bomb + "7" + bomb + "." + bomb
    assert len(answer_window(padded)) == len("The answer is 7 .")
    assert extract_answer(padded) == "7"
    assert extract_answer("answer: a" + bomb + "b", [r"answer: (.+?)\s*$"]) == "a b"  # a user's pattern too
    assert extract_choice(padded.replace("7", "(B)")) == {"B"}


def test_plainly_equal_answers_take_the_fast_path():
    assert normalize_answer("$\\dfrac{1}{2}$.") == "\\frac{1}{2}"
    assert normalize_answer("30^\\circ") == "30"
    assert normalize_answer("1,000") == "1000"
    assert as_number("\\frac{1}{2}") == (0.5, True)
    assert as_number("0.5") == (0.5, False)
    assert fast_verdict("0.5", "\\frac{1}{2}") is True
    assert fast_verdict("\\left( 1, 2 \\right)", "(1,2)") is True
    assert fast_verdict("41", "42") is False            # two exact numbers: decided here
    # a decimal against an exact number: within the precision the decimal shows
    assert fast_verdict("0.333", "\\frac{1}{3}") is True
    assert fast_verdict("0.334", "\\frac{1}{3}") is False
    assert fast_verdict("0.3333333", "\\frac{1}{3}") is None  # past six places: math-verify rounds
    assert fast_verdict("x+1", "1+x") is None


def test_boxed_half_equals_point_five():
    assert grade("So the probability is $\\boxed{\\frac{1}{2}}$.", "0.5") is True
    assert grade("So the probability is $\\boxed{0.5}$.", "\\frac{1}{2}") is True


def test_math_verify_decides_what_the_fast_path_cannot():
    assert grade("$\\boxed{(x+1)^2}$", "x^2+2x+1") is True
    assert grade("$\\boxed{(x-1)^2}$", "x^2+2x+1") is False
    assert grade("$\\boxed{\\sqrt{8}}$", "2\\sqrt{2}") is True
    assert grade_detailed("$\\boxed{\\sqrt{8}}$", "2\\sqrt{2}").reason == "math-verify"
    assert grade("$\\boxed{3}$", ["2", "3"]) is True  # a list holds acceptable answers
    assert grade("no final answer here", "3") is False
    assert grade("$\\boxed{3}$", None) is None


GIANT = "9" * 5000  # past Python's int-string limit (4,300 digits), where int() raises ValueError


@pytest.mark.parametrize("answer, reference, verdict", [
    (GIANT, "3", False), (f"\\frac{{{GIANT}}}{{2}}", "1", False), (f"0.{GIANT}", "1", False),
    (f"{GIANT}/7", "3", False),
    ("3", GIANT, None), ("3", [GIANT, "4"], None), ("3", [GIANT, "3"], True),
    (GIANT, GIANT, True),  # the same digits need no conversion
])
def test_numbers_past_the_int_string_limit_get_a_verdict(answer, reference, verdict):
    assert grade(f"\\boxed{{{answer}}}", reference) is verdict
    assert as_number(GIANT) is None


def test_math_verify_reads_a_giant_number_as_unparsable():
    # why the quick path decides: math-verify swallows the ValueError and calls a giant reference unequal
    assert slow_grade(GIANT, GIANT).verdict is False and slow_grade("3", GIANT).verdict is False


def test_multiple_choice_letters():
    assert extract_choice("The answer is (C).") == frozenset("C")
    assert extract_choice("$\\boxed{\\text{(B)}}$") == frozenset("B")
    assert extract_choice("$\\boxed{A, C}$") == frozenset("AC")
    assert grade("After checking each option, the answer is $\\boxed{J}$", "J") is True
    assert grade("**Answer: B**", "(B)") is True
    assert grade("The answer is (D).", "B") is False
    assert grade_detailed("I cannot decide.", "B").reason == "no choice letter"


def test_several_boxes_are_one_answer_as_math_verify_joins_them():
    assert boxed_answers("\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}") == ["(2, 2)", "(6, 2)"]
    assert boxed_answers("\\boxed{5}. So \\boxed{5}") == ["5"]  # a repeated box counts once
    assert boxed_answers("\\boxed{1}" + " we check it again with care" * 3 + " \\boxed{2}") == ["2"]  # too far apart
    assert boxed_answers("\\boxed{1}, \\boxed{\\frac{1}{2") is None  # the last box is cut off
    assert boxed_answers("no box") is None
    # one answer string: graded, shown and voted on (distill eval's majority vote normalises it)
    joined = extract_answer("$\\boxed{1}$ and $\\boxed{2}$")
    assert joined == "1, 2" and normalize_answer(joined) == normalize_answer("1,2")
    assert extract_choice("\\boxed{A} or \\boxed{C}") == frozenset("AC")  # hedging is two letters


def test_a_final_answer_stated_after_the_last_box_is_the_answer():
    worked = "First $\\boxed{200}$, then $\\boxed{255}$. Final Answer: The final answer is $10,455$. I hope it is correct."
    assert extract_answer(worked) == "10,455"
    assert extract_answer("So $\\boxed{5}$.\n\nThe answer is consistent with the figure.") == "5"  # no math stated
    assert extract_answer("$\\boxed{5}$\n#### 6") == "6"  # any pattern restates: GSM8K's #### too
    assert extract_answer("The answer is $5$ and $6$") == "$5$ and $6$"  # two spans stay two spans
    # a prose restatement is no answer; a bold line or a heading is
    assert extract_answer("So $\\boxed{(2,3)}$. The answer is the point (2, 3), which lies on both lines.") == "(2,3)"
    assert extract_answer("**Final Answer:** 12,000,045") == "12,000,045"
    assert extract_answer("## Final Answer\n\\[\n\\frac{3}{4}\n\\]") == "\\frac{3}{4}"
    assert extract_answer("Final Answer: $\\frac{1}{2}$, since half of 10 is 5.") == "\\frac{1}{2}"


def test_a_short_answer_that_opens_with_its_letter():
    assert extract_choice("D. It cannot be A or B") == frozenset("D")
    assert extract_choice("**(B)** since the others fail") == frozenset("B")
    assert extract_choice("A student would pick B here.") is None  # an article
    assert extract_choice("A. " + "We check each option in turn. " * 20) is None  # too long: a list item


def test_renaming_only_bound_variables():
    assert rename_bound_variables("C(n) = 542n + 500", "C(x) = 542x + 500") == "C(x) = 542x + 500"
    assert rename_bound_variables("\\sum_{i=1}^{n} i^2", "\\sum_{k=1}^{n} k^2") == "\\sum_{k=1}^{n} k^2"
    assert rename_bound_variables("f(n) = 2n", "2x") == "f(x) = 2x"
    assert rename_bound_variables("f(y) = y + x", "f(x) = x + y") == "f(y) = y + x"  # x is taken
    assert rename_bound_variables("y^2 + 1", "x^2 + 1") == "y^2 + 1"  # free: never renamed
    assert rename_bound_variables("P(B) = 0.5", "P(A) = 0.5") == "P(B) = 0.5"  # an event, not an argument
    assert rename_bound_variables("f(x, y) = \\text{max}", "f(a, a) = 1") == "f(x, y) = \\text{max}"  # not one-to-one


def test_decimals_are_compared_at_the_places_they_show():
    assert rounding_places("(0.6, 2.6667]", "(\\frac{3}{5}, \\frac{8}{3}]") == 4
    assert rounding_places("0.3", "\\frac{1}{3}") == 6  # one significant digit: no rounding
    assert rounding_places("0.333", "0.33") == 6  # decimals on both sides: either may be exact
    assert rounding_places("\\frac{1}{3}", "0.33") == 2
    assert rounding_places("3.14", "\\pi") == 6  # a closed form is not to be estimated


def test_a_letter_reference_may_carry_its_option_text():
    assert choice_reference("(B) 42") == (frozenset("B"), "42")
    assert choice_reference("B: \\frac{1}{2}") == (frozenset("B"), "\\frac{1}{2}")
    assert choice_reference("b") == (frozenset("B"), None)
    assert choice_reference("(a) 12 (b) 15") is None  # an answer in parts
    assert choice_reference("C(x) = 2x") is None


def test_latex_that_cannot_be_parsed_is_not_read_as_the_number_it_starts_with():
    def values(text: str) -> list:  # parse's sympy values, without the text it falls back to
        return [value for value in parse_math(text) if not isinstance(value, str)]

    assert values("3 \\foo{x}") == []
    assert [str(v) for v in values("1 + \\frac{1}{\\mathrm{e}}")] == ["1 + 1/e"]  # read whole, not as 1
    assert values("The largest $n$ is 34.") == [34]  # a number in the prose after the math
    assert values("Answer $ \n 9 \n $") == []  # inline math does not span lines


@pytest.mark.parametrize("function, text, rewritten", [
    (notation.unicode_as_latex, "(-∞, 0) ∪ [3, ∞)", "(-\\infty, 0) \\cup [3, \\infty)"),
    (notation.unicode_as_latex, "±√2", "\\pm \\sqrt{2}"),
    (notation.unicode_as_latex, "√(x+1) + x²", "\\sqrt{x+1} + x^{2}"),
    (notation.brace_arguments, "\\frac{1+a}b", "\\frac{1+a}{b}"),
    (notation.brace_arguments, "\\dfrac\\pi4 + \\frac{\\frac12}{3}", "\\frac{\\pi}{4} + \\frac{\\frac{1}{2}}{3}"),
    (notation.parenthesise_arguments, "\\cot x \\cdot \\ln(\\cos x)", "\\cot(x) \\cdot \\ln(\\cos(x))"),
    (notation.parenthesise_arguments, "\\sin^2 x + \\log_{2} 8x", "\\sin^2(x) + \\log_{2}(8x)"),
    (notation.parenthesise_arguments, "\\sin(x)", "\\sin(x)"),
    (notation.ordinals_as_numbers, "7^{\\text{th}}", "7"),
    (notation.ordinals_as_numbers, "21st", "21"),
    (notation.ordinals_as_numbers, "4\\theta", "4\\theta"),
    (notation.degrees_as_radians, "45^{\\circ}", "45\\cdot\\frac{\\pi}{180}"),
    (notation.strip_units, "3 \\text{ cm}, 4 \\text{ cm}", "3, 4"),
    (notation.strip_units, "\\frac{109}{3}\\text{ seconds}", "\\frac{109}{3}"),
    (notation.strip_units, "12 \\mathrm{cm}^2", "12"),
    (notation.strip_units, "3 square units", "3"),
    (notation.strip_units, "2m", "2m"),                        # a bare letter is a variable
    (notation.strip_units, "\\frac{1}{2}m", "\\frac{1}{2}m"),
    (notation.strip_units, "\\text{no solution}", "\\text{no solution}"),
    (notation.strip_units, "2 \\text{ or } 3", "2 \\text{ or } 3"),
    (notation.strip_units, "10 \\pi", "10 \\pi"),
    (notation.matrix_as_tuple, "\\begin{pmatrix} 1 \\\\ 2 \\\\ 3 \\end{pmatrix}", "(1, 2, 3)"),
    (notation.matrix_as_tuple, "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4\\end{pmatrix}",
     "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4\\end{pmatrix}"),
    (notation.set_builder_condition, "\\{x \\mid -2<x<2\\}", ("x", "-2<x<2")),
    (notation.relations_as_intervals, "x<0 \\text{ or } x\\ge 3", "(-\\infty, 0) \\cup [3, \\infty)"),
    (notation.relations_as_intervals, "5 > x > -1", "(-1, 5)"),
    (notation.relations_as_intervals, "x < 1 \\text{ or } y > 2", None),  # two variables
    (notation.drop_component_names, "x = 1, \\ y = 5", "1, 5"),
    (notation.drop_component_names, "k_{\\min} = n+1", "n+1"),
    (notation.drop_component_names, "(x, y) = (1, 5)", "(1, 5)"),
    (notation.drop_component_names, "x = 1, y < 5", "x = 1, y < 5"),
    (notation.plus_minus_expansions, "(\\pm 1, \\pm 2)", ["( 1,  2), ( 1, - 2), (- 1,  2), (- 1, - 2)"]),
    (notation.plus_minus_expansions, "(\\pm 1, \\mp 2)", ["( 1, - 2), (- 1,  2)"]),
    (notation.plus_minus_expansions, "1 \\pm \\sqrt{2}", ["1 + \\sqrt{2}, 1 - \\sqrt{2}"]),
    (notation.top_level_items, "(1, 2), 3, 1,000, 11,\\! 111", ["(1, 2)", "3", "1,000", "11,\\! 111"]),
])
def test_notation_rewrites(function, text, rewritten):
    assert function(text) == rewritten


def test_the_pair_is_rewritten_by_what_the_other_side_writes():
    assert notation.canonical_pair("45^\\circ", "\\frac{\\pi}{4}") == ("45\\cdot\\frac{\\pi}{180}", "\\frac{\\pi}{4}")
    assert notation.canonical_pair("30^\\circ", "30") == ("30^\\circ", "30")  # no π: a degree sign is dropped later
    assert notation.canonical_pair("x<0 \\text{ or } x\\ge 3", "x < 0") == ("x<0 \\text{ or } x\\ge 3", "x < 0")
    assert notation.canonical_pair("\\{x \\mid -2<x<2\\}", "-2<x<2")[0] == "(-2, 2)"
    assert notation.canonical_pair("x = 1, y = 5", "x = 1, y = 5") == ("x = 1, y = 5", "x = 1, y = 5")
    assert notation.canonical_pair("the point (2, 3) lies on it", "(2, 3)")[0] == "the point (2, 3) lies on it"


def test_exact_numbers_math_verify_rounds_together_are_unequal():
    assert grade("$\\boxed{\\frac{1}{3^{41}}}$", "\\frac{1}{3^{40}}") is False
    assert grade("$\\boxed{10^{-21}}$", "10^{-20}") is False
    assert grade("$\\boxed{\\frac{1}{10^{20}}}$", "10^{-20}") is True
    assert grade("$\\boxed{3.141593}$", "\\pi") is True  # a decimal keeps math-verify's rounding


PAIRS = [json.loads(line) for line in (Path(__file__).parent / "data" / "grading_pairs.jsonl").read_text().splitlines()]
ISSUE27 = [json.loads(line) for line in
           (Path(__file__).parent / "data" / "grading_issue27.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("pair", ISSUE27, ids=[f"{pair['kind']}: {pair['note']}" for pair in ISSUE27])
def test_labelled_notation_pairs(pair):
    """The kinds of issue 27 (lists with units, tiny magnitudes, units and angles, set and interval
    notation, unicode, vectors, ±, named components, text answers, extraction, parsing), each with hard
    negatives; benchmarks/grading_vs_math_verify.py --pairs reports them against math-verify alone."""
    assert grade(pair["answer"], pair["reference"], timeout=None) is pair["equal"]


@pytest.mark.parametrize("pair", PAIRS, ids=[pair["note"] for pair in PAIRS])
def test_labelled_pairs(pair):
    """distill's own labelled pairs (benchmarks/grading_vs_math_verify.py --pairs reports them against
    math-verify alone): every equal pair graded equal, every hard negative unequal."""
    assert grade(pair["answer"], pair["reference"], timeout=None) is pair["equal"]


MBPP_ADD = {"tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]}


def test_code_answers_run_in_the_sandbox():
    pytest.importorskip("distill.sandbox")
    right = "<think>\nAdd them.\n</think>\n\n```python\ndef add(a, b):\n    return a + b\n```"
    wrong = right.replace("a + b", "a - b")
    assert grade(right, MBPP_ADD) is True
    graded = grade_detailed(wrong, MBPP_ADD)
    assert graded.verdict is False and "assert add(1, 2) == 3" in graded.reason
    assert grade_detailed("I would write a loop.", MBPP_ADD) == Grade(False, "no code block")


HANG = "$\\boxed{10^{10^{10}}}$"  # sympy tries to evaluate the power: minutes, not milliseconds


def test_a_hanging_math_verify_call_times_out_and_the_pool_survives():
    with GradingPool(workers=1, timeout=1.0) as pool:
        start = time.perf_counter()
        grades = pool.grade_many([(HANG, "7"), ("$\\boxed{(x+1)^2}$", "x^2+2x+1"),
                                  ("$\\boxed{\\sqrt{8}}$", "2\\sqrt{2}")])
        elapsed = time.perf_counter() - start
        assert [g.verdict for g in grades] == [None, True, True]
        assert grades[0].reason == "timeout"
        assert pool.stats.timeouts == 1 and pool.stats.killed == 0  # the timer inside the worker fired
        assert elapsed < 10
        # the same worker keeps grading
        assert pool.grade_many([("$\\boxed{(x-1)^2}$", "x^2+2x+1")])[0].verdict is False


def test_a_hang_the_timer_cannot_reach_is_killed_and_the_worker_replaced():
    # without the in-worker timer (as on a platform without SIGALRM, or a hang inside C code)
    # only the parent's deadline is left: the worker is killed, a new one takes over, and the
    # batch the hang was in is graded again answer by answer
    # 2 s: a first parse in a new worker takes more than 0.5 s on a loaded machine, and would time out too
    with GradingPool(workers=1, timeout=2.0, kill_grace=0.5, in_worker_timer=False, batch_size=2) as pool:
        grades = pool.grade_many([(HANG, "7"), ("$\\boxed{\\sqrt{8}}$", "2\\sqrt{2}"),
                                  ("$\\boxed{(x+1)^2}$", "x^2+2x+1")])
        assert [(g.verdict, g.reason) for g in grades] == [(None, "timeout"), (True, "math-verify"),
                                                           (True, "math-verify")]
        assert pool.stats.killed == 2  # the batch [hang, sqrt], then the hang alone
        assert pool.stats.timeouts == 1
        assert pool.grade_many([("$\\boxed{(x-1)^2}$", "x^2+2x+1")])[0].verdict is False


def test_the_pool_grades_each_distinct_pair_once():
    with GradingPool(workers=1) as pool:
        items = [("$\\boxed{(x+1)^2}$", "x^2+2x+1")] * 3 + [("$\\boxed{12}$", "12")]
        grades = pool.grade_many(items)
        assert [g.verdict for g in grades] == [True, True, True, True]
        assert pool.stats.graded == 1 and pool.stats.cache_hits == 2  # '12' never left this process


@pytest.mark.parametrize(("name", "answer", "reference"), reward_hacks.HEDGES, ids=[h[0] for h in reward_hacks.HEDGES])
def test_an_answer_that_hedges_is_wrong(name, answer, reference):
    assert grade(answer, reference) is False


@pytest.mark.parametrize(("answer", "reference"), reward_hacks.HONEST)
def test_the_honest_answers_beside_the_hedges_are_right(answer, reference):
    assert grade(answer, reference) is True
