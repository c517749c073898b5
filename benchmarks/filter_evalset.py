"""A labelled evaluation set for `distill filter`: synthetic R1-style traces, clean
ones and ones with one injected fault each, at known rates. Deterministic (seeded).

Each record is a trace in the design-doc format; `source.case` names what was
done to it and `source.faults` lists the checks that should reject it (the
ground truth for precision / recall). Clean cases include hard negatives that a
careless check rejects: LaTeX-heavy reasoning, code blocks, variable and
function names in Chinese text, prompt terms quoted in another script,
equivalent answer forms (\\frac{1}{2} vs 0.5), short phrases R1 really repeats,
a derivation written out twice.

    python benchmarks/filter_evalset.py --out /tmp/evalset.jsonl --prompts 400

Also used by eval_filter_checks.py, compare_language_id.py and bench_filter.py.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
MAX_TOKENS = 2048
"""The --max-tokens the set is labelled for (token counts are characters / 4, written to completion_tokens)."""

# ---------------------------------------------------------------- sentence banks

EN = [
    "Okay, so I need to figure out {task}.",
    "Let me start by writing down what we know: $a = {a}$ and $b = {b}$.",
    "First, I'll compute ${a} \\times {b} = {ab}$.",
    "Wait, let me double-check that step: ${a} + {b} = {s}$, which matches what I had before.",
    "Hmm, maybe there is a simpler way to see this without so much computation.",
    "Alternatively, I could substitute $x = {x}$ into $f(x) = {a}x^2 + {b}$ and get $f({x}) = {fx}$.",
    "That seems right, but let me verify the arithmetic one more time, carefully.",
    "So the numerator is {a} and the denominator is {b}, which gives $\\frac{{{a}}}{{{b}}}$ before simplifying.",
    "I remember that for any integer $n$, the square $n^2$ is congruent to $0$ or $1$ modulo $4$.",
    "Let me define $S_n = \\sum_{{k=1}}^{{n}} k = \\frac{{n(n+1)}}{{2}}$, so that $S_{{{a}}} = {sa}$.",
    "Using the quadratic formula $x = \\frac{{-b \\pm \\sqrt{{b^2 - 4ac}}}}{{2a}}$ we can get both roots directly.",
    "If $x_1 = {a}$ and $x_2 = {b}$ are the roots, then by Vieta's formulas $x_1 + x_2 = {s}$ and $x_1 x_2 = {ab}$.",
    "Now, the greatest common divisor satisfies $\\gcd({a}, {b}) \\cdot \\operatorname{{lcm}}({a}, {b}) = {ab}$.",
    "Let me think about whether the case $n = {x}$ needs to be treated separately here.",
    "Putting these together, the total comes out to ${s} + {ab} = {t}$, assuming I have not dropped a term.",
    "Is there any case I missed? I should consider the boundary values as well, where $x \\to 0$.",
    "Actually, no, that is not quite right, because the sign changes when we cross $x = {x}$.",
    "So far we have three equations and three unknowns, which should determine everything uniquely.",
]
EN_CODE = ("Let me check this numerically with a quick script:\n```python\ndef f(n):\n    return sum(k * k for k in "
           "range(1, n + 1))\n\nprint(f({a}))\n```\nRunning it prints {sq}, consistent with the closed form.")
ZH = [
    "好的，我现在需要解决这个问题：{task_zh}。",
    "首先，已知 $a = {a}$，$b = {b}$。",
    "先计算 ${a} \\times {b} = {ab}$。",
    "等等，让我再检查一下这一步：${a} + {b} = {s}$，和之前的结果一致。",
    "嗯，也许有更简单的方法，不需要这么多计算。",
    "或者，把 $x = {x}$ 代入 $f(x) = {a}x^2 + {b}$，得到 $f({x}) = {fx}$。",
    "这样看起来是对的，不过我还是要一步一步仔细验证一下计算。",
    "设 $S_n = \\sum_{{k=1}}^{{n}} k = \\frac{{n(n+1)}}{{2}}$，那么 $S_{{{a}}} = {sa}$。",
    "这里 x_1 和 x_2 是方程的两个根，根据韦达定理，x_1 + x_2 = {s}，x_1 x_2 = {ab}。",
    "用 gcd 和 lcm 的关系：gcd(a, b) · lcm(a, b) = ab，所以乘积等于 {ab}。",
    "我们需要讨论 $n = {x}$ 这种情况是否要单独处理。",
    "把这些结果合起来，总和是 ${s} + {ab} = {t}$，前提是我没有漏掉任何一项。",
    "还有没有遗漏的情况？边界值也要考虑，比如 $x \\to 0$ 的时候。",
    "不对，这样说不太准确，因为经过 $x = {x}$ 时符号会改变。",
    "目前我们有三个方程和三个未知数，应该可以唯一确定所有的量。",
    "用 sin 和 cos 表示的话，$\\sin^2 \\theta + \\cos^2 \\theta = 1$ 总是成立的。",
]
ZH_CODE = ("用一段程序验证一下：\n```python\ndef f(n):\n    return sum(k * k for k in range(1, n + 1))\n\n"
           "print(f({a}))\n```\n运行结果是 {sq}，和公式一致。")
FR = ["Attendez, je dois vérifier encore une fois ce calcul avant de continuer.",
      "Donc la somme des deux racines est bien égale à ce que nous avons trouvé plus haut.",
      "Il faut maintenant considérer le cas où la variable est négative."]
# short phrases R1 really repeats: must not count as a loop
EN_REFRAINS = ["Wait, let me check.", "Hmm.", "Let me verify.", "Okay."]
ZH_REFRAINS = ["等等，让我检查一下。", "嗯。", "验证一下。"]
LEFTOVERS = ["<|im_end|>", "<｜end▁of▁sentence｜>", "<|eot_id|>", "<|endoftext|>"]


PLAIN_MATH = [  # what R1 writes without LaTeX; py3langid read the first four as another language
    "Then set u = t² + 7, du = 2t dt, so t dt = du/2.",
    "Then du/dx = -1/x², so du = -dx/x².",
    "Now du = 3x² dx, so x² dx = du/3.",
    "Put u = 1 + e^x, du = e^x dx, so dx = du/(u - 1).",
    "So a² + b² = c², a = 3, b = 4, so c = 5.",
    "Then v = d/t = 120 km / 2 h = 60 km/h.",
    "So np.linspace(0, 1, n), arr.reshape(n, m), f(x) ≈ x³/3.",
    "Let f(x) = ln x, so f′(x) = 1/x, ∫ dx/x = ln|x| + C.",
]
PLAIN_MATH_ZH = ["令 u = t² + 7，则 du = 2t dt，所以 t dt = du/2。", "由 du/dx = -1/x² 得 du = -dx/x²。",
                 "速度 v = d/t = 120 km / 2 h = 60 km/h。"]


def _numbers(rng: random.Random) -> dict[str, Any]:
    a, b, x = rng.randint(2, 97), rng.randint(2, 97), rng.randint(2, 19)
    return {"a": a, "b": b, "x": x, "ab": a * b, "s": a + b, "t": a + b + a * b, "fx": a * x * x + b,
            "sa": a * (a + 1) // 2, "sq": a * (a + 1) * (2 * a + 1) // 6}


EN_OPENERS = ["Now, ", "Next, ", "Also, ", "Then, ", "OK, ", "So, ", "Actually, ", "Right, ", "Well, ",
              "Hmm, ", "Alright, ", "In that case, ", "On the other hand, ", "By the way, "]
ZH_OPENERS = ["然后，", "接下来，", "另外，", "现在，", "其实，", "好，", "那么，", "同时，", "再看，", "换句话说，",
              "此外，", "这时，"]


def _sentence(rng: random.Random, bank: list[str], task: str, task_zh: str, used: set[str] | None = None) -> str:
    """A sentence of `bank` with fresh numbers and often an opener; one without numbers is used once
    per trace (`used`): a real trace does not say the same fixed sentence over and over unless it loops."""
    choices = [t for t in bank if "{" in t or used is None or t not in used]
    template = rng.choice(choices)
    if used is not None and "{" not in template:
        used.add(template)
    sentence = template.format(task=task, task_zh=task_zh, **_numbers(rng))
    if used is not None and rng.random() < 0.5:
        if bank[0] in EN or bank[-1] in EN:
            sentence = rng.choice(EN_OPENERS) + sentence[0].lower() + sentence[1:]
        else:
            sentence = rng.choice(ZH_OPENERS) + sentence
    return sentence


def _reasoning(rng: random.Random, lang: str, task: str, task_zh: str, target_chars: int,
               code: bool = False) -> list[str]:
    """Paragraphs of reasoning, about `target_chars` long, with no accidental loop."""
    bank = EN if lang == "en" else ZH
    used: set[str] = set()
    paragraphs = [bank[0].format(task=task, task_zh=task_zh, **_numbers(rng))]
    length = len(paragraphs[0])
    while length < target_chars:
        paragraph = (" " if lang == "en" else "").join(_sentence(rng, bank[1:], task, task_zh, used)
                                                       for _ in range(rng.randint(2, 4)))
        paragraphs.append(paragraph)
        length += len(paragraph) + 2
    if code:
        paragraphs.insert(rng.randint(1, len(paragraphs)), (EN_CODE if lang == "en" else ZH_CODE)
                          .format(**_numbers(rng)))
    return paragraphs


# ---------------------------------------------------------------- problems and answers


def _problem(rng: random.Random) -> dict[str, Any]:
    """A problem with its reference, a correct answer in the reference's form, an equivalent
    form in another spelling, and a wrong answer."""
    kind = rng.choice(["int", "int", "frac", "sqrt", "poly", "choice"])
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    if kind == "int":
        return {"task": f"the value of {a} \\times {b} + {a}", "task_zh": f"{a} 乘以 {b} 再加 {a} 的值",
                "reference": str(a * b + a), "equivalent": f"{a * b + a}.0", "wrong": str(a * b + a + 1)}
    if kind == "frac":
        value = Fraction(a, 2 * b if a % 2 else 4 * b)
        denominator = value.denominator
        while denominator % 2 == 0 or denominator % 5 == 0:
            denominator //= 2 if denominator % 2 == 0 else 5
        decimal = str(float(value)) if denominator == 1 else None  # a terminating decimal
        ref = f"\\frac{{{value.numerator}}}{{{value.denominator}}}"
        return {"task": f"the probability that both events happen, given rates {a} and {b}",
                "task_zh": f"两个事件同时发生的概率（参数为 {a} 和 {b}）", "reference": ref,
                "equivalent": decimal or f"\\dfrac{{{value.numerator}}}{{{value.denominator}}}",
                "wrong": f"\\frac{{{value.numerator + 1}}}{{{value.denominator}}}"}
    if kind == "sqrt":
        k, m = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7])
        return {"task": f"the length of the diagonal when the side is {k}", "task_zh": f"边长为 {k} 时对角线的长度",
                "reference": f"{k}\\sqrt{{{m}}}", "equivalent": f"\\sqrt{{{k * k * m}}}",
                "wrong": f"{k + 1}\\sqrt{{{m}}}"}
    if kind == "poly":
        return {"task": f"the expansion of $(x+{a})^2$", "task_zh": f"$(x+{a})^2$ 的展开式",
                "reference": f"x^2+{2 * a}x+{a * a}", "equivalent": f"(x+{a})^2",
                "wrong": f"x^2+{a}x+{a * a}"}
    letter = rng.choice("ABCD")
    return {"task": f"which option (A-D) is correct for {a} and {b}",
            "task_zh": f"对于 {a} 和 {b}，哪个选项（A-D）是正确的", "reference": letter,
            "equivalent": f"\\text{{({letter})}}", "wrong": "ABCD"[("ABCD".index(letter) + 1) % 4]}


# ---------------------------------------------------------------- realistic answers

HEAVY_KINDS = ("matrix", "interval", "set", "point", "nested_fraction", "polynomial", "radical", "pi")
"""Answer forms of real R1 math output (MATH-style references) that math-verify takes 30-500 ms to compare."""
TIMEOUT_KINDS = ("binomial_sum", "power_tower")
"""Answers whose comparison runs into math-verify's 5 s timeout (sympy expands or evaluates them)."""
REALISTIC_SHARES = {"simple": 0.45, "heavy": 0.535, "timeout": 0.015}
"""Problems of each kind in the realistic mix (see `realistic_problem`)."""


def _frac(numerator: int, denominator: int) -> str:
    value = Fraction(numerator, denominator)
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def _unreduced(numerator: int, denominator: int, factor: int) -> str:
    """The same value as `_frac`, written unreduced (`\\dfrac{6}{8}` for 3/4): equal, but not as a string."""
    value = Fraction(numerator, denominator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\dfrac{{{abs(value.numerator) * factor}}}{{{value.denominator * factor}}}"


def _expanded(roots: list[int]) -> str:
    """The monic polynomial with these integer roots, expanded: x^4 - 2x^3 - 13x^2 + 14x + 24."""
    coefficients = [1]
    for root in roots:  # multiply by (x - root)
        coefficients = [a - root * b for a, b in zip([*coefficients, 0], [0, *coefficients])]
    degree = len(roots)
    terms = []
    for power, c in zip(range(degree, -1, -1), coefficients):
        if c == 0:
            continue
        body = ("" if abs(c) == 1 and power else str(abs(c))) + ("x" if power else "") + \
               (f"^{power}" if power > 1 else "")
        terms.append(("-" if c < 0 else ("+" if terms else "")) + body)
    return " ".join(t if i == 0 else f"{t[0]} {t[1:]}" for i, t in enumerate(terms))


def _factored(roots: list[int]) -> str:
    return "".join(f"(x {'-' if r >= 0 else '+'} {abs(r)})" for r in roots)


def _heavy_problem(rng: random.Random, kind: str) -> dict[str, Any]:
    """reference / equivalent (another spelling of the same value, so math-verify must decide) / wrong,
    in one of the forms R1 writes for MATH-style problems."""
    a, b, c, d = (rng.randint(2, 12) for _ in range(4))
    if kind == "matrix":
        entries = [_frac(a, b), str(-c), str(d), _frac(c, a)]
        equivalent = [_unreduced(a, b, 2), str(-c), str(d), _unreduced(c, a, 3)]
        wrong = [_frac(a, b), str(-c), str(d + 1), _frac(c, a)]

        def matrix(e: list[str], spaced: bool = True) -> str:
            sep = " & " if spaced else "&"
            return f"\\begin{{pmatrix}} {e[0]}{sep}{e[1]} \\\\ {e[2]}{sep}{e[3]} \\end{{pmatrix}}"
        return {"task": "the matrix $\\mathbf{M}$", "task_zh": "矩阵 $\\mathbf{M}$",
                "reference": matrix(entries), "equivalent": matrix(equivalent, False), "wrong": matrix(wrong)}
    if kind == "interval":
        low, high = -a, b
        return {"task": f"all $x$ with $(x + {a})(x - {b}) \\ge 0$", "task_zh": f"满足 $(x + {a})(x - {b}) \\ge 0$ 的 $x$",
                "reference": f"(-\\infty, {low}] \\cup [{high}, \\infty)",
                "equivalent": f"\\left(-\\infty, {low}\\right] \\cup \\left[{high}, +\\infty\\right)",
                "wrong": f"(-\\infty, {low}) \\cup [{high}, \\infty)"}
    if kind == "set":
        values = sorted(rng.sample(range(-9, 20), 4))
        shuffled = values[:]
        while shuffled == values:
            rng.shuffle(shuffled)
        wrong = [*values[:-1], values[-1] + 1]
        return {"task": "all integer solutions", "task_zh": "所有整数解",
                "reference": "\\{" + ", ".join(map(str, values)) + "\\}",
                "equivalent": "\\{" + ", ".join(map(str, shuffled)) + "\\}",
                "wrong": "\\{" + ", ".join(map(str, wrong)) + "\\}"}
    if kind == "point":
        return {"task": "the intersection point", "task_zh": "交点坐标",
                "reference": f"\\left( {_frac(a, b)}, {_frac(-c, d)} \\right)",
                "equivalent": f"\\left({_unreduced(a, b, 2)}, {_unreduced(-c, d, 2)}\\right)",
                "wrong": f"\\left( {_frac(a, b)}, {_frac(c, d)} \\right)"}
    if kind == "nested_fraction":
        terms = [a, b, c]

        def nested(t: list[int]) -> str:
            return f"\\frac{{1}}{{{t[0]} + \\frac{{1}}{{{t[1]} + \\frac{{1}}{{{t[2]}}}}}}}"

        value = 1 / (Fraction(terms[0]) + 1 / (Fraction(terms[1]) + Fraction(1, terms[2])))
        return {"task": "the value of the continued fraction", "task_zh": "连分数的值",
                "reference": _frac(value.numerator, value.denominator), "equivalent": nested(terms),
                "wrong": nested([a, b, c + 1])}
    if kind == "polynomial":
        roots = rng.sample([r for r in range(-6, 7) if r], 4)
        wrong = _expanded(roots).rsplit(" ", 1)
        wrong_constant = int(wrong[1]) + 1
        return {"task": "the monic quartic with the given roots", "task_zh": "具有给定根的首一四次多项式",
                "reference": _expanded(roots), "equivalent": _factored(roots),
                "wrong": f"{wrong[0]} {wrong_constant}"}
    if kind == "radical":
        k = rng.choice([2, 3, 5, 6, 7, 10, 11])
        return {"task": "the exact distance", "task_zh": "精确距离",
                "reference": f"\\frac{{{a} + \\sqrt{{{k}}}}}{{{b}}}",
                "equivalent": f"\\frac{{{a}}}{{{b}}} + \\frac{{\\sqrt{{{k}}}}}{{{b}}}",
                "wrong": f"\\frac{{{a} - \\sqrt{{{k}}}}}{{{b}}}"}
    if kind == "pi":
        angle = Fraction(a, b + a)  # a proper fraction of π in lowest terms
        p, q = angle.numerator, angle.denominator
        return {"task": "the angle in radians", "task_zh": "弧度制下的角",
                "reference": f"\\frac{{{p if p > 1 else ''}\\pi}}{{{q}}}", "equivalent": f"\\frac{{{p}}}{{{q}}}\\pi",
                "wrong": f"\\frac{{{p + 1}\\pi}}{{{q}}}"}
    if kind == "binomial_sum":  # sympy expands the sum symbolically: past 5 s
        n = rng.randint(60, 80)
        return {"task": f"the expansion of $(x + 1)^{{{n}}}$ in closed form", "task_zh": f"$(x + 1)^{{{n}}}$ 的展开式",
                "reference": f"(x + 1)^{{{n}}}", "equivalent": f"\\sum_{{k=0}}^{{{n}}} \\binom{{{n}}}{{k}} x^k",
                "wrong": f"(x + 1)^{{{n + 1}}}"}
    if kind == "power_tower":  # sympy evaluates both towers: past 5 s (the wrong one may time out too)
        base = rng.randint(7, 12)
        return {"task": "the larger of the two numbers", "task_zh": "两个数中较大的那个",
                "reference": f"{base}^{{{base}^{{{base}}}}}",
                "equivalent": f"({base}^{{{base}}})^{{{base}^{{{base - 1}}}}}",
                "wrong": f"{base}^{{{base}^{{{base + 1}}}}}"}
    raise ValueError(f"unknown answer kind {kind!r}")


def realistic_problem(rng: random.Random) -> dict[str, Any]:
    """A problem of the realistic answer mix (`REALISTIC_SHARES`): the simple forms of `_problem`
    (integers, fractions, roots, polynomials, choices), heavy LaTeX answers (matrices, intervals,
    sets, points with \\left…\\right, nested fractions, expanded vs factored polynomials, radicals,
    multiples of π), and answers that run into math-verify's timeout."""
    group = rng.choices(list(REALISTIC_SHARES), list(REALISTIC_SHARES.values()))[0]
    if group == "simple":
        return _problem(rng)
    problem = _heavy_problem(rng, rng.choice(HEAVY_KINDS if group == "heavy" else TIMEOUT_KINDS))
    problem["kind"] = group
    return problem


def _final(lang: str, answer: str) -> str:
    return (f"**Final Answer**\nThe answer is $\\boxed{{{answer}}}$." if lang == "en"
            else f"**最终答案**\n答案是 $\\boxed{{{answer}}}$。")


def _join(paragraphs: list[str], answer: str, lang: str) -> str:
    return "<think>\n" + "\n\n".join(paragraphs) + "\n</think>\n\n" + _final(lang, answer)


# ---------------------------------------------------------------- cases

# case -> (share of samples, checks that must reject it)
CASES: dict[str, tuple[float, tuple[str, ...]]] = {
    "clean": (0.40, ()),
    "clean_latex_code": (0.05, ()),            # hard negative: code block, heavy LaTeX
    "clean_equivalent_answer": (0.05, ()),     # hard negative: \frac{1}{2} vs 0.5, \sqrt{8} vs 2\sqrt{2}
    "clean_quoted_prompt_term": (0.03, ()),    # hard negative: a prompt term in the other script
    "clean_refrains": (0.03, ()),              # hard negative: short phrases repeated, a derivation twice
    "clean_plain_math": (0.03, ()),            # hard negative: math in plain text and Unicode, units, code names
    "format_no_close": (0.015, ("format",)),
    "format_two_blocks": (0.015, ("format",)),
    "format_empty_answer": (0.01, ("format", "correctness")),
    "format_leftover_token": (0.015, ("format",)),
    "truncated": (0.04, ("finish", "format", "correctness")),
    "overlong": (0.03, ("length",)),
    "lang_sentence": (0.04, ("language",)),    # one sentence in the other language (zh in en, en in zh)
    "lang_paragraph": (0.02, ("language",)),   # a whole paragraph
    "lang_clause": (0.02, ("language",)),      # a short fragment (6 words, 7-9 characters) after a sentence
    "lang_third_language": (0.015, ("language",)),  # French in English (same script), Japanese in Chinese
    "wrong_answer": (0.06, ("correctness",)),
    "no_answer": (0.015, ("correctness",)),
    "loop_sentence": (0.03, ("repetition",)),
    "loop_paragraph": (0.02, ("repetition",)),
    "duplicate": (0.03, ("selection",)),
}


def _other_language_sentence(rng: random.Random, lang: str, task: str, task_zh: str) -> str:
    return _sentence(rng, ZH[1:] if lang == "en" else EN[1:], task, task_zh)


def _clause(rng: random.Random, lang: str) -> str:
    if lang == "en":
        return rng.choice(["所以答案应该是这个", "我们再验证一遍", "这一步需要小心", "先把两边同时平方"])
    return rng.choice(["so we need to check this again", "which gives us the final result",
                       "let me think about this differently", "and that is exactly what we want"])


def make_prompt(rng: random.Random, lang: str, problem: dict[str, Any]) -> str:
    """The problem text; one prompt in five names a term in the other script (problem['term'])."""
    task, task_zh = problem["task"], problem["task_zh"]
    problem["term"] = None
    if rng.random() < 0.2:
        if lang == "en":
            problem["term"] = rng.choice(["中国剩余定理", "鸡兔同笼", "勾股定理"])
            return f"Using the idea known as {problem['term']}, find {task}."
        problem["term"] = rng.choice(["Fibonacci sequence", "Chinese Remainder Theorem", "pigeonhole principle"])
        return f"利用 {problem['term']}，求{task_zh}。"
    return f"Find {task}." if lang == "en" else f"求{task_zh}。"


def build_case(rng: random.Random, case: str, lang: str, problem: dict[str, Any],
               target_chars: int) -> tuple[str, str]:
    """(completion, finish_reason) of one sample of `case`."""
    task, task_zh = problem["task"], problem["task_zh"]
    paragraphs = _reasoning(rng, lang, task, task_zh, target_chars, code=case == "clean_latex_code")
    answer, finish = problem["reference"], "stop"
    if case == "clean_latex_code":
        paragraphs.insert(1, "$$\\int_0^1 x^2\\,dx = \\left[\\frac{x^3}{3}\\right]_0^1 = \\frac{1}{3}, \\quad "
                             "\\sum_{k=1}^{n} \\binom{n}{k} = 2^n - 1$$")
    elif case == "clean_plain_math":
        paragraphs.insert(rng.randint(1, len(paragraphs)), rng.choice(PLAIN_MATH if lang == "en" else PLAIN_MATH_ZH))
    elif case == "clean_equivalent_answer":
        answer = problem["equivalent"]
    elif case == "clean_quoted_prompt_term":
        term = problem["term"]
        paragraphs.insert(1, f"The problem mentions “{term}”, so I should use that idea here." if lang == "en"
                          else f"题目提到了 {term}，所以这里应该用这个思路。")
    elif case == "clean_refrains":
        refrains = EN_REFRAINS if lang == "en" else ZH_REFRAINS
        for _ in range(5):
            paragraphs.insert(rng.randint(1, len(paragraphs)), rng.choice(refrains))
        derivation = paragraphs[1]
        paragraphs.insert(rng.randint(2, len(paragraphs)), ("Let me redo that derivation: " if lang == "en"
                                                            else "让我重新推导一遍：") + derivation)
    elif case == "lang_sentence":
        at = rng.randint(1, len(paragraphs) - 1)
        paragraphs[at] += " " + _other_language_sentence(rng, lang, task, task_zh)
    elif case == "lang_paragraph":
        other = "zh" if lang == "en" else "en"
        paragraphs.insert(rng.randint(1, len(paragraphs)),
                          " ".join(_sentence(rng, (ZH if other == "zh" else EN)[1:], task, task_zh) for _ in range(3)))
    elif case == "lang_clause":  # a fragment of 4-8 words / characters after a sentence
        at = rng.randint(1, len(paragraphs) - 1)
        paragraphs[at] += (" " if lang == "en" else "") + _clause(rng, lang) + ("。" if lang == "en" else ".")
    elif case == "lang_third_language":
        if lang == "en":  # French: the same script as English
            paragraphs[rng.randint(1, len(paragraphs) - 1)] += " " + rng.choice(FR)
        else:  # Japanese in Chinese: kana is its own script
            paragraphs[rng.randint(1, len(paragraphs) - 1)] += " ちょっと待って、もう一度計算を確認してみましょう。"
    elif case == "wrong_answer":
        answer = problem["wrong"]
    elif case == "loop_sentence":
        sentence = _sentence(rng, EN[1:] if lang == "en" else ZH[1:], task, task_zh)
        paragraphs.insert(rng.randint(1, len(paragraphs)), " ".join([sentence] * rng.randint(6, 30)))
    elif case == "loop_paragraph":
        at = rng.randint(1, len(paragraphs) - 1)
        paragraphs[at:at + 1] = [paragraphs[at]] * rng.randint(3, 6)
    elif case == "overlong":
        paragraphs += _reasoning(rng, lang, task, task_zh, MAX_TOKENS * 4 + 400)[1:]
    completion = _join(paragraphs, answer, lang)
    if case == "format_no_close":
        completion = completion.replace("\n</think>\n", "\n\n", 1)
    elif case == "format_two_blocks":
        completion = completion.replace("\n</think>\n", "\n</think>\n<think>\nLet me reconsider.\n</think>\n", 1)
    elif case == "format_empty_answer":
        completion = completion.split("</think>")[0] + "</think>\n\n"
    elif case == "format_leftover_token":
        completion += rng.choice(LEFTOVERS)
    elif case == "truncated":
        completion = completion[: rng.randint(len(completion) // 4, completion.index("</think>") - 1)]
        finish = "length"
    elif case == "no_answer":
        completion = completion.rsplit("\n\n", 1)[0] + ("\n\nSo that is the result." if lang == "en"
                                                        else "\n\n这就是结果。")
    return completion, finish


def build_evalset(prompts: int = 400, samples: int = 4, seed: int = 0, target_chars: tuple[int, int] = (1200, 3500),
                  zh_share: float = 0.3, cases: dict[str, tuple[float, tuple[str, ...]]] | None = None,
                  answers: str = "simple") -> list[dict]:
    """`prompts` × `samples` labelled records (see module doc). `answers`: "simple" (integers, fractions,
    roots, short polynomials, choices) or "realistic" (`realistic_problem`: heavy LaTeX and timeouts too)."""
    if answers not in ("simple", "realistic"):
        raise ValueError(f"answers must be simple or realistic (got {answers!r})")
    rng = random.Random(seed)
    cases = cases or CASES
    names, weights = list(cases), [share for share, _ in cases.values()]
    records = []
    for p in range(prompts):
        lang = "zh" if rng.random() < zh_share else "en"
        problem = _problem(rng) if answers == "simple" else realistic_problem(rng)
        prompt = make_prompt(rng, lang, problem)
        prompt_id = f"p{p:05d}"
        previous: list[str] = []
        for s in range(samples):
            case = rng.choices(names, weights)[0]
            if (case == "duplicate" and not previous) or (case == "clean_quoted_prompt_term" and not problem["term"]):
                case = "clean"
            if case == "duplicate":
                completion, finish = previous[0], "stop"
            else:
                completion, finish = build_case(rng, case, lang, problem, rng.randint(*target_chars))
            if case in ("clean", "clean_equivalent_answer", "clean_latex_code") and finish == "stop":
                previous.append(completion)
            records.append({
                "id": f"{prompt_id}:{s}", "prompt_id": prompt_id, "sample": s,
                "messages": [{"role": "user", "content": f"{prompt}\n{INSTRUCTION}"}],
                "reference": problem["reference"], "completion": completion, "finish_reason": finish,
                "completion_tokens": len(completion) // 4, "teacher": "synthetic-r1",
                "params": {"temperature": 0.6, "top_p": 0.95, "max_tokens": MAX_TOKENS * 2, "seed": seed},
                "source": {"case": case, "language": lang, "faults": list(cases[case][1]),
                           **({"answer_kind": problem.get("kind", "simple")} if answers == "realistic" else {})},
            })
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--prompts", type=int, default=400)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    records = build_evalset(args.prompts, args.samples, args.seed)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    print(f"{len(records)} records -> {args.out}")
    print(dict(Counter(r["source"]["case"] for r in records).most_common()))


if __name__ == "__main__":
    main()
