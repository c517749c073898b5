"""The filter's checks, one literal record at a time: record in, verdict out, through the very
check objects the filter builds from its FilterConfig and runs."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from distill.checks import (
    CHECKS,
    SELECTIONS,
    Check,
    CheckSummary,
    build_checks,
    checks_help,
    default_checks,
    option_table,
    registered,
)
from distill.checks.language import detect_language, measure_language
from distill.checks.repetition import longest_loop
from distill.checks.selection import select_samples
from distill.config import MUST_MATCH, Options, field_docs, project, require
from distill.errors import ConfigError
from distill.filter.config import FilterConfig
from distill.filter.report import FilterStats
from distill.options import R1_INSTRUCTION
from distill.shape import CANONICAL, TraceShape


def trace(completion: str, *, prompt: str = "What is 5 + 7?", finish: str = "stop", **extra) -> dict:
    return {"id": "p:0", "prompt_id": "p", "sample": 0, "messages": [{"role": "user", "content": prompt}],
            "reference": "12", "completion": completion, "finish_reason": finish, **extra}


def check(name: str, **options):
    """The check `name` exactly as the filter builds it from a FilterConfig with these options."""
    return CHECKS[name].from_config(FilterConfig(traces="t.jsonl", out="k.jsonl", **options))


GOOD = "<think>\nFive plus seven is twelve, since 5 + 7 = 12.\n</think>\n\nThe answer is $\\boxed{12}$."

# ---------------------------------------------------------------- format


@pytest.mark.parametrize("completion, problem", [
    (GOOD, ""),
    ("  \n" + GOOD, ""),  # leading whitespace is fine
    ("<think>\nFive plus seven is twelve.\n\nThe answer is 12.", "1× <think>, 0× </think>"),
    ("Five plus seven.\n</think>\n\n12", "0× <think>, 1× </think>"),
    (GOOD + "\n<think>\nagain\n</think>\n\n12", "2× <think>, 2× </think>"),
    ("Sure! " + GOOD, "text before <think>"),
    ("<think>\n\n</think>\n\n12", "empty reasoning"),
    ("<think>\nFive plus seven is twelve.\n</think>\n\n", "no answer after the reasoning"),
    (GOOD + "<|im_end|>", "leftover <|im_end|>"),
    (GOOD + "<｜end▁of▁sentence｜>", "leftover <｜end▁of▁sentence｜>"),
    ("<think>\nok<|eot_id|>\n</think>\n\n12", "leftover <|eot_id|>"),
])
def test_format(completion, problem):
    record, details = trace(completion), {}
    assert check("format").run(record, details) is (problem == "")
    assert details.get("format", "") == problem


def test_format_with_other_markers_and_a_separate_reasoning_field():
    record = trace("<reasoning>Five plus seven.</reasoning>\nThe answer is 12.")
    assert check("format").run(record) is False
    tags = check("format", think_open="<reasoning>", think_close="</reasoning>")
    assert tags.run(record) is True
    # a <think> inside would break the <think> block the record is kept as
    assert tags.problem(trace("<reasoning>Use <think> here.</reasoning>\n12")) == \
        "<think> or </think> inside the reasoning or the answer"
    field = check("format", reasoning_field="reasoning_content")
    api = trace("The answer is $\\boxed{12}$.", reasoning_content="Five plus seven is twelve.")
    assert field.run(api) is True
    assert field.run(trace("The answer is 12.", reasoning_content="")) is False
    assert field.problem(trace(GOOD, reasoning_content="x")) == "think markers in the answer"
    assert field.problem(trace("12", reasoning_content="a </think> b")) == "think markers in the reasoning"
    assert field.problem(trace("12")) == "no string field 'reasoning_content'"


# ---------------------------------------------------------------- finish, length


def test_finish_rejects_a_truncated_trace():
    truncated = trace("<think>\nFive plus seven is twel", finish="length")
    assert check("finish").run(truncated) is False
    assert check("format").run(truncated) is False  # and it is not repaired into something that passes
    assert check("finish").run(trace(GOOD)) is True
    assert check("finish").run({"completion": GOOD}) is None


def test_length_uses_the_student_tokenizer_else_completion_tokens(tmp_path):
    from distill.tiny import build_tokenizer

    tokenizer = build_tokenizer("qwen")
    tokenizer.save_pretrained(tmp_path / "student")
    record = trace(GOOD, completion_tokens=5)
    student_tokens = len(tokenizer(GOOD, add_special_tokens=False)["input_ids"])
    assert student_tokens > 5
    details = {}
    assert check("length", tokenizer=str(tmp_path / "student"), max_tokens=student_tokens).run(record, details)
    assert details == {"tokens": student_tokens}
    assert check("length", tokenizer=str(tmp_path / "student"), max_tokens=student_tokens - 1).run(record) is False
    assert check("length", max_tokens=5).run(record) is True          # the teacher's count
    assert check("length", max_tokens=4).run(record) is False
    assert check("length", max_tokens=4).run(trace(GOOD)) is None     # nothing to measure with
    assert check("length").run(record) is True                        # no limit: measured only


def test_length_repetition_and_language_read_the_same_full_text(tmp_path):
    """The reasoning field is part of what the student learns, so every check measures it."""
    from distill.tiny import build_tokenizer

    build_tokenizer("qwen").save_pretrained(tmp_path / "student")
    loop = " ".join(["Let me recompute the sum of the first ten squares to make sure the total is right."] * 6)
    api = trace("The answer is $\\boxed{385}$.", reasoning_content=loop)
    inline = trace(f"<think>\n{loop}\n</think>\n\nThe answer is $\\boxed{{385}}$.")
    for name, options in (("length", {"tokenizer": str(tmp_path / "student")}), ("repetition", {}),
                          ("language", {})):
        field, think = check(name, reasoning_field="reasoning_content", **options), check(name, **options)
        field_details, think_details = {}, {}
        assert field.run(api, field_details) == think.run(inline, think_details), name
        assert field_details == think_details and field_details, name
    assert check("repetition", reasoning_field="reasoning_content").run(api) is False


# ---------------------------------------------------------------- language

LATEX_HEAVY_ENGLISH = r"""<think>
Okay, so I need to evaluate $\int_0^1 x^2 \, dx$. By the power rule, $\int x^n dx = \frac{x^{n+1}}{n+1} + C$,
so we get $\left[\frac{x^3}{3}\right]_0^1 = \frac{1}{3}$. Let me double-check with a Riemann sum:
$$\lim_{n \to \infty} \sum_{k=1}^{n} \frac{k^2}{n^3} = \lim_{n\to\infty} \frac{(n+1)(2n+1)}{6n^2} = \frac{1}{3}.$$
Let $f(x) = x^2$ and $F(x) = x^3/3$; then $F'(x) = f(x)$, and $\gcd(3, 9) = 3$ is irrelevant here.
```python
from sympy import integrate, symbols
x = symbols("x")
print(integrate(x**2, (x, 0, 1)))  # 1/3
```
With α = 2 and θ = π/4 nothing changes. Vectors $\vec{AB}$ and $\overrightarrow{CD}$ don't matter either.
</think>

The integral equals $\boxed{\frac{1}{3}}$."""


def test_latex_heavy_english_reasoning_passes():
    record = trace(LATEX_HEAVY_ENGLISH, prompt="Compute $\\int_0^1 x^2\\,dx$.")
    assert check("language").run(record) is True
    target, measure = check("language").measure(record)
    assert target == "en" and measure.score == 1.0 and measure.foreign_run == 0


def test_english_trace_with_a_chinese_sentence_fails():
    completion = GOOD.replace("12.\n</think>", "12. 所以答案是十二，我们再检查一遍。\n</think>")
    record = trace(completion)
    assert check("language").run(record) is False
    _, measure = check("language").measure(record)
    assert measure.foreign_run >= 10
    assert "所以答案是十二" in measure.foreign_example


def test_a_long_english_trace_with_one_chinese_sentence_still_fails():
    # the share stays above 0.95: the run of foreign characters is what catches it
    long_english = " ".join(["We add the two numbers carefully and check each digit once more."] * 40)
    record = trace(f"<think>\n{long_english} 让我们再验证一下。\n</think>\n\n$\\boxed{{12}}$")
    _, measure = check("language").measure(record)
    assert measure.score > 0.95
    assert check("language").run(record) is False


def test_chinese_trace_with_an_english_sentence_fails_and_math_terms_do_not_count():
    chinese = ("<think>\n好的，我需要计算 $5+7$。设 $f(x) = x^2$，gcd(4, 6) = 2，x_1 和 x_2 是两个根，"
               "用 sin 和 cos 也可以。所以结果是 12。\n</think>\n\n答案是 $\\boxed{12}$。")
    prompt = "计算 5 加 7 等于多少？\n" + R1_INSTRUCTION
    assert check("language").run(trace(chinese, prompt=prompt)) is True
    mixed = chinese.replace("所以结果是", "Wait, let me double check this calculation again. 所以结果是")
    assert check("language").run(trace(mixed, prompt=prompt)) is False


def test_a_term_quoted_from_the_prompt_is_not_a_switch():
    prompt = "Use the idea known as 勾股定理 to find the hypotenuse of a 3-4-5 triangle."
    completion = ("<think>\nThe problem mentions “勾股定理”, which is the Pythagorean theorem, so the "
                  "hypotenuse is $\\sqrt{9+16} = 5$.\n</think>\n\n$\\boxed{5}$")
    assert check("language").run(trace(completion, prompt=prompt)) is True
    chinese_prompt = "利用 Fibonacci sequence 求第 10 项。"
    chinese = "<think>\n题目提到了 Fibonacci sequence，第 10 项是 55，我们逐项相加验证。\n</think>\n\n$\\boxed{55}$"
    assert check("language").run(trace(chinese, prompt=chinese_prompt)) is True


def test_target_language_is_detected_from_the_prompt():
    assert detect_language("求 $x^2=4$ 的解。\n" + R1_INSTRUCTION) == "zh"  # the English instruction is ignored
    assert detect_language("What is 5 + 7?\n" + R1_INSTRUCTION) == "en"
    assert detect_language("次の方程式を解いてください：$x^2=4$") == "ja"
    assert detect_language("Найдите сумму корней уравнения.") == "ru"
    assert detect_language("$x^2 = 4$") is None
    french = "Trouvez la somme des racines de l'équation suivante et justifiez votre réponse."
    assert detect_language(french, ("en", "fr")) == "fr"
    assert detect_language(french) == "en"  # the script alone only knows it is Latin


def test_english_inside_french_reasoning_needs_the_sentence_identifier():
    prompt = "Trouvez la somme des racines de l'équation suivante et justifiez votre réponse."
    french = ("<think>\nNous devons trouver la somme des racines de cette équation du second degré. "
              "D'après les relations de Viète, la somme vaut moins b sur a, donc elle est égale à deux.\n"
              "</think>\n\nLa somme vaut $\\boxed{2}$.")
    english = french.replace("D'après les relations de Viète, la somme vaut moins b sur a, donc elle est égale "
                             "à deux.", "By Vieta's formulas the sum of the roots is minus b over a, so it "
                                        "equals two.")
    assert check("language").run(trace(french, prompt=prompt)) is True
    assert check("language").run(trace(english, prompt=prompt)) is False
    assert check("language", language_detector="script").run(trace(english, prompt=prompt)) is True  # script only: blind


def test_all_math_cannot_be_judged():
    record = trace("<think>\n$5+7=12$\n</think>\n\n$\\boxed{12}$")
    assert check("language").run(record) is None
    assert measure_language("$x^2$ = 4", "zh").score is None


# ---------------------------------------------------------------- repetition

LOOP_SENTENCE = "Let me recompute the sum of the first ten squares to make sure the total is right."


def test_a_looping_trace_fails():
    looping = trace("<think>\nWe need the sum of squares. " + " ".join([LOOP_SENTENCE] * 10)
                    + "\n</think>\n\n$\\boxed{385}$")
    assert check("repetition").run(looping) is False
    assert longest_loop(looping["completion"], 20) >= 8


def test_the_same_paragraph_again_and_again_fails_but_twice_passes():
    paragraph = ("First I square each number from one to ten, then I add the squares in pairs so the partial "
                 "sums stay small, and finally I compare the total with the closed form n(n+1)(2n+1)/6.")
    four_times = trace("<think>\n" + "\n\n".join([paragraph] * 4) + "\n</think>\n\n$\\boxed{385}$")
    twice = trace("<think>\n" + paragraph + "\n\nLet me redo that.\n\n" + paragraph + "\n</think>\n\n$\\boxed{385}$")
    assert check("repetition").run(four_times) is False
    assert check("repetition").run(twice) is True


def test_short_refrains_and_enumerations_are_not_loops():
    refrains = " ".join(f"Wait, let me check. {i} squared is {i * i}." for i in range(1, 30))
    assert check("repetition").run(trace(f"<think>\n{refrains}\n</think>\n\n$\\boxed{{385}}$")) is True


def test_a_chinese_loop_fails():
    sentence = "让我们再重新计算一遍这个平方和，确保最后的总数是正确的。"
    looping = trace("<think>\n" + sentence * 8 + "\n</think>\n\n$\\boxed{385}$")
    assert check("repetition").run(looping) is False
    assert check("repetition").run(trace("<think>\n" + sentence + "\n</think>\n\n$\\boxed{385}$")) is True


# ---------------------------------------------------------------- selection


def test_selection_drops_duplicates_then_keeps_k():
    texts = ["a", "b", "a", "c", "d"]
    lengths = [5, 1, 5, 3, 2]
    assert select_samples(texts, lengths, prompt_id="p", keep_per_prompt=None) == [True, True, False, True, True]
    assert select_samples(texts, lengths, prompt_id="p", keep_per_prompt=2, select_by="shortest") == \
        [False, True, False, False, True]
    assert select_samples(texts, lengths, prompt_id="p", keep_per_prompt=2, select_by="first") == \
        [True, True, False, False, False]
    random_pick = select_samples(texts, lengths, prompt_id="p", keep_per_prompt=2, select_by="random", seed=3)
    assert sum(random_pick) == 2 and random_pick[2] is False
    assert random_pick == select_samples(texts, lengths, prompt_id="p", keep_per_prompt=2, seed=3)
    picks = {tuple(select_samples(texts, lengths, prompt_id="p", keep_per_prompt=2, seed=s)) for s in range(20)}
    assert len(picks) > 1  # the seed matters


# ---------------------------------------------------------------- the registry


@dataclass(kw_only=True)
class ShoutOptions(Options):
    shout_limit: int | None = field(default=None, metadata=MUST_MATCH)
    """shout: reject an answer with more than this many capital letters (default: only one all in capitals)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.shout_limit is None or self.shout_limit >= 0, "shout_limit", "must be at least 0")


class ShoutSummary(CheckSummary):
    """The report's `shout` section: how many capitals the answers had."""

    def __init__(self, name, cfg):
        super().__init__(name, cfg)
        self.capitals = 0

    def add(self, record, details, kept):
        self.capitals += details.get("capitals", 0)

    def write(self, data, this_run):
        data["shout"] = {"capitals": self.capitals}

    @staticmethod
    def lines(data):
        return [f"shout: {data['shout']['capitals']} capitals"] if "shout" in data else []


@dataclass(frozen=True)
class ShoutCheck(Check):
    """A check added the documented way (one module: its options, its report section, the class, registered):
    rejects an answer in capitals."""

    name: ClassVar[str] = "shout"
    option_group: ClassVar[type[Options]] = ShoutOptions
    options_that_need_it: ClassVar[tuple[str, ...]] = ("shout_limit",)
    summary: ClassVar[type[CheckSummary]] = ShoutSummary
    options: ShoutOptions = field(default_factory=ShoutOptions)
    shape: TraceShape = CANONICAL

    @classmethod
    def from_config(cls, cfg):
        return cls(project(ShoutOptions, cfg), shape=cfg.shape)

    def run(self, record, details=None):
        answer = self.shape.answer(record)
        capitals = sum(c.isupper() for c in answer)
        if details is not None:
            details["capitals"] = capitals
        limit = self.options.shout_limit
        return not answer.isupper() if limit is None else capitals <= limit


@pytest.fixture
def registry():
    """The registry, restored after the test (which registers a check of its own)."""
    saved = dict(CHECKS), dict(SELECTIONS)
    yield CHECKS
    for entries, before in zip((CHECKS, SELECTIONS), saved):
        entries.clear()
        entries.update(before)


def test_a_registered_check_runs_in_the_filter_through_the_object_its_test_runs(tmp_path, monkeypatch, registry):
    from distill.filter import filter_traces
    from distill.filter import run as filter_run

    registry["shout"] = ShoutCheck
    built = []
    real_build = filter_run.build_checks
    monkeypatch.setattr(filter_run, "build_checks", lambda cfg: built.append(real_build(cfg)) or built[-1])
    records = [trace(GOOD), {**trace(GOOD.replace("The answer is $\\boxed{12}$.", "TWELVE!")), "id": "p:1", "sample": 1}]
    traces = tmp_path / "t.jsonl"
    traces.write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = FilterConfig(traces=str(traces), out=str(tmp_path / "k.jsonl"), workers=1, checks=["format", "shout"])
    report = filter_traces(cfg)

    shout = check("shout")  # what a test of the check runs ...
    assert shout in built[-1] and type(built[-1][-1]) is ShoutCheck  # ... is what the filter ran
    kept, rejected = ([json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
                      for name in ("k.jsonl", "k.rejects.jsonl"))
    assert [r["id"] for r in kept] == ["p:0"] and [r["id"] for r in rejected] == ["p:1"]
    for out, record in ((kept[0], records[0]), (rejected[0], records[1])):
        details = {}
        assert out["verdicts"]["shout"] is shout.run(record, details)
        assert out["filter_details"]["capitals"] == details["capitals"]
    assert rejected[0]["rejected_by"] == ["shout"]
    assert report.data["checks"]["shout"]["rejected"] == 1  # the report counts it like any other check
    assert report.data["shout"] == {"capitals": 1 + 6}  # and gives it its own section ('The answer', 'TWELVE!')
    assert "shout: 7 capitals" in report.format().splitlines()
    with pytest.raises(ConfigError, match="unknown check 'shuot'.*did you mean 'shout'"):
        FilterConfig(traces="t.jsonl", out="k.jsonl", checks=["shuot"])


def test_a_check_added_in_one_place_is_selectable_with_its_options_help_and_report(registry):
    registry["shout"] = ShoutCheck  # all it takes: no other file knows the name

    cfg = FilterConfig(traces="t.jsonl", out="k.jsonl", checks=["format", "shout", "selection"])
    assert cfg.checks == ["format", "shout", "selection"] and [type(c) for c in build_checks(cfg)][-1] is ShoutCheck
    assert FilterConfig(traces="t.jsonl", out="k.jsonl").checks[-3:] == ["correctness", "shout", "selection"]  # default on
    assert option_table()["shout_limit"] == "shout"
    assert "repetition, correctness, shout, selection (the default)" in checks_help()
    assert field_docs(FilterConfig)["checks"] == checks_help()  # --checks' help, read as the CLI reads it
    assert FilterStats.of(cfg).summaries["shout"].name == "shout"

    # its group composed into the filter config (the one line that gives it flags and YAML keys): the option is
    # validated by the group, and refused without its check, like every option in the table
    @dataclass(kw_only=True)
    class ShoutingFilterConfig(FilterConfig, ShoutOptions):
        pass

    assert check("format") == CHECKS["format"].from_config(ShoutingFilterConfig(traces="t", out="k.jsonl"))
    shouting = ShoutingFilterConfig(traces="t.jsonl", out="k.jsonl", checks=["shout"], shout_limit=3)
    assert build_checks(shouting)[0].options.shout_limit == 3
    with pytest.raises(ConfigError, match="--shout-limit must be at least 0"):
        ShoutingFilterConfig(traces="t.jsonl", out="k.jsonl", checks=["shout"], shout_limit=-1)
    with pytest.raises(ConfigError, match="--shout-limit needs the 'shout' check, which --checks leaves out; "
                                          "add shout to --checks or drop --shout-limit"):
        ShoutingFilterConfig(traces="t.jsonl", out="k.jsonl", checks=["format"], shout_limit=3)


def test_the_option_table_and_the_default_list_are_derived_from_the_checks():
    assert option_table() == {"max_tokens": "length", "tokenizer": "length", "decontaminate": "contamination",
                              "drop_unverified": "correctness", "judge": "judge", "keep_per_prompt": "selection"}
    assert default_checks() == ("format", "finish", "length", "language", "repetition", "correctness", "selection")
    assert checks_help() == ("Checks to run, comma-separated: format, finish, length, language, repetition, "
                             "correctness, selection (the default), and contamination, judge.")
    with_judge = FilterConfig(traces="t.jsonl", out="k.jsonl", judge="m", judge_backend="hf")
    assert with_judge.checks == [*default_checks()[:-1], "judge", "selection"]  # an opt-in check's option joins it


def test_every_check_owns_its_options_and_the_filter_config_composes_them():
    fields = {f.name: f for f in dataclasses.fields(FilterConfig)}
    for name, check in registered().items():
        group = check.option_group
        if group is None:
            continue
        assert issubclass(FilterConfig, group), f"{name}: FilterConfig must inherit {group.__name__}"
        own = {f.name: f for f in dataclasses.fields(group)}
        assert all(fields[option] is own[option] for option in own)  # the group's fields, not copies
        assert set(check.options_that_need_it) <= set(own), name


def test_every_registered_check_is_built_from_the_filter_config_in_registry_order():
    cfg = FilterConfig(traces="t.jsonl", out="k.jsonl", reasoning_field="reasoning_content", max_tokens=9)
    checks = build_checks(cfg)
    default = [cls for cls in CHECKS.values() if cls.default_on]  # not the opt-in ones
    assert [type(c) for c in checks] == default and {"contamination", "judge"} == set(CHECKS) - set(cfg.checks)
    assert [c.name for c in checks] == [c.name for c in default] == list(cfg.checks[:-1])  # selection: last
    assert all(getattr(c, "shape", cfg.shape) == cfg.shape for c in checks)
    assert checks[2].options.max_tokens == 9


LATIN = ("en", "fr", "de", "es", "it", "pt")
PLAIN_MATH = [  # hard negatives: English with math written as plain text, Unicode and code (issue 14.3)
    "Then set u = t² + 7, du = 2t dt, so t dt = du. Now we integrate both sides to get the result we need.",
    "Then du/dx = -1/x², so du = -dx/x². We substitute this back into the integral and simplify it again.",
    "Let f(x) = ln x, so f′(x) = 1/x and dy = y′ dx. Hence ∫ dx/x = ln|x| + C, as we expected from the start.",
    "The speed is v = d/t = 120 km / 2 h = 60 km/h, and the area is 3 cm² + 4 cm² = 7 cm² in total here.",
    "We call np.linspace(a, b, n) and then arr.reshape(n, m) to get the grid of points for the plot we want.",
    "So a² + b² = c², with a = 3 and b = 4, which gives c = 5; the triangle is right-angled as we claimed.",
]


@pytest.mark.parametrize("text", PLAIN_MATH)
def test_english_with_plain_text_math_is_english(text):
    measure = measure_language(text, "en", "", LATIN)
    assert measure.score == 1.0 and measure.foreign_run == 0, measure


@pytest.mark.parametrize("text, foreign", [
    (PLAIN_MATH[0] + " Donc nous avons trouvé que la somme des deux nombres est égale à douze.", "Donc nous"),
    (PLAIN_MATH[1] + " 所以答案是十二，我们再检查一遍。", "所以答案"),
])
def test_a_foreign_sentence_beside_plain_text_math_is_still_found(text, foreign):
    measure = measure_language(text, "en", "", LATIN)
    assert measure.foreign_run >= 4 and measure.foreign_example.startswith(foreign), measure
