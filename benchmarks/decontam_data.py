"""Labelled data for decontamination, written by this script (seeded) into tests/data/:

- decontam_benchmark.jsonl: a stand-in benchmark of 200 MATH-style problems (50 kinds of problem, 4
  each with other numbers and wording). MATH-500 cannot be downloaded here; these are written to look
  like it (LaTeX, 'Express your answer as a common fraction.', definitions such as palindromes).
- decontam_clean.jsonl: 400 competition-style prompts that are not benchmark problems (100 other
  kinds, 4 each) but share the benchmark's generic phrasing: the same openings ('What is the sum of
  all possible values of', 'How many positive integers less than', 'A palindrome is a number that
  reads the same forward and backward.'), closings, runs of numbers ('1, 2, 3, 4, 5, 6, 7, 8').
- decontam_rephrased.jsonl: per benchmark kind, its first problem rephrased (same numbers, other
  words), with other numbers (same words), translated (French, Spanish, German, Russian, Chinese:
  one language per kind, 25 kinds), and a 'near' negative: the same opening and setting, another
  problem. Each row: text, label (contaminated or not), kind (rephrase, numbers, translation, near),
  benchmark row.
- decontam_disguised.jsonl: verbatim, re-spaced and re-cased copies, invisible characters between
  and inside words (U+200B, U+00AD, U+2060), Cyrillic look-alike letters, `x²` for `x^2`, and the short problems
  with generate's default template appended.

    python benchmarks/decontam_data.py            # rewrites the four files (the same bytes each time)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "data"
R1 = "Please reason step by step, and put your final answer within \\boxed{}."

# Each benchmark kind: (params(rng) -> dict, wordings: [template, …] (the benchmark uses them in turn),
# rephrase template, translation template or None, near-negative template).
# A template is str.format'ed with the params.


def _ints(rng: random.Random, a: int, b: int, c: int = 2, d: int = 9) -> dict[str, int]:
    """Two distinct numbers a, b drawn from [a, b], and two distinct c, d from [c, d]."""
    first, second = rng.sample(range(a, b + 1), 2), rng.sample(range(c, d + 1), 2)
    return {"a": first[0], "b": first[1], "c": second[0], "d": second[1]}


BENCH = [
    (lambda r: _ints(r, a=2, b=9, c=10, d=60),
     ["What is the sum of all possible values of $x$ such that $x^2 - {a}x = {c}$?",
      "What is the sum of all possible values of $x$ if $x^2 - {a}x - {c} = 0$?"],
     "Add up every value of $x$ that satisfies the equation $x^2 - {a}x = {c}$. What total do you get?",
     "Quelle est la somme de toutes les valeurs possibles de $x$ telles que $x^2 - {a}x = {c}$ ?",
     "What is the sum of all possible values of $x$ such that $|x - {a}| = {c}$ and $x$ is an integer multiple of 3?"),
    (lambda r: _ints(r, a=3, b=9),
     ["A palindrome is a number that reads the same forward and backward. How many three-digit palindromes are divisible by {a}?",
      "A palindrome is a number that reads the same forward and backward. How many four-digit palindromes are multiples of {a}?"],
     "Numbers such as 121 or 545 read identically from left to right and from right to left. Count the three-digit numbers of this kind that are multiples of {a}.",
     "Un palíndromo es un número que se lee igual de izquierda a derecha que de derecha a izquierda. ¿Cuántos palíndromos de tres cifras son divisibles entre {a}?",
     "A palindrome is a number that reads the same forward and backward. What is the smallest five-digit palindrome whose digits sum to {b}?"),
    (lambda r: _ints(r, a=2, b=12, c=2, d=9),
     ["Let $f(x) = {a}x + {c}$ and $g(x) = x^2 - {d}$. What is $f(g({c}))$?",
      "Let $f(x) = {a}x - {c}$ and $g(x) = x^2 + {d}$. Find $g(f({c}))$."],
     "Given the functions $f$ defined by ${a}x + {c}$ and $g$ defined by $x^2 - {d}$, evaluate $f$ at the value $g({c})$.",
     "Sei $f(x) = {a}x + {c}$ und $g(x) = x^2 - {d}$. Was ist $f(g({c}))$?",
     "Let $f(x) = {a}x + {c}$. For what value of $x$ is $f(x)$ equal to its own inverse $f^{{-1}}(x)$?"),
    (lambda r: _ints(r, a=5, b=12),
     ["How many positive integers less than $1000$ are divisible by neither ${a}$ nor ${b}$?",
      "How many positive integers less than $500$ are divisible by ${a}$ or ${b}$ but not both?"],
     "Among the whole numbers from 1 to 999, count those that are not multiples of ${a}$ and not multiples of ${b}$.",
     "Сколько натуральных чисел, меньших $1000$, не делятся ни на ${a}$, ни на ${b}$?",
     "How many positive integers less than $1000$ have digits that sum to ${b}$?"),
    (lambda r: _ints(r, a=3, b=8, c=2, d=6),
     ["Find the number of ordered pairs $(m, n)$ of positive integers such that $m + n = {b}{a}$ and $\\gcd(m, n) = {a}$.",
      "Find the number of ordered pairs $(a, b)$ of positive integers with $ab = {b}00$ and $\\gcd(a, b) = {c}$."],
     "Count the pairs of positive whole numbers $(m, n)$, order mattering, whose sum is ${b}{a}$ and whose greatest common divisor is ${a}$.",
     "求满足 $m + n = {b}{a}$ 且 $\\gcd(m, n) = {a}$ 的正整数有序对 $(m, n)$ 的个数。",
     "Find the number of ordered pairs $(m, n)$ of positive integers such that $m^2 - n^2 = {b}{a}$."),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7),
     ["A bag contains ${a}$ red marbles and ${b}$ blue marbles. Two marbles are drawn at random without replacement. What is the probability that both are red? Express your answer as a common fraction.",
      "A box holds ${a}$ white balls and ${b}$ black balls. Three balls are drawn at random without replacement. What is the probability that all three are black? Express your answer as a common fraction."],
     "There are ${a}$ red and ${b}$ blue marbles in a bag, and you take out two of them at random, one after the other, keeping the first. How likely is it that you hold two red marbles? Give a fraction.",
     "Un sac contient ${a}$ billes rouges et ${b}$ billes bleues. On tire au hasard deux billes sans remise. Quelle est la probabilité que les deux soient rouges ?",
     "A bag contains ${a}$ red marbles and ${b}$ blue marbles. Marbles are drawn one at a time until a blue marble appears. What is the expected number of draws?"),
    (lambda r: _ints(r, a=3, b=15, c=4, d=20),
     ["In right triangle $ABC$ with $\\angle C = 90^\\circ$, we have $AC = {a}$ and $BC = {c}$. What is $\\sin A$?",
      "In right triangle $PQR$ with $\\angle Q = 90^\\circ$, $PQ = {a}$ and $QR = {c}$. Find $\\tan P$."],
     "Triangle $ABC$ has a right angle at $C$; its legs are $AC = {a}$ and $BC = {c}$. Compute the sine of the angle at $A$.",
     "En el triángulo rectángulo $ABC$ con $\\angle C = 90^\\circ$, se tiene $AC = {a}$ y $BC = {c}$. ¿Cuánto vale $\\sin A$?",
     "In right triangle $ABC$ with $\\angle C = 90^\\circ$, the altitude from $C$ has length ${a}$. If $AB = {d}$, what is the area of the triangle?"),
    (lambda r: _ints(r, a=2, b=9, c=10, d=99),
     ["What is the remainder when ${a}^{{{d}}}$ is divided by ${b}$?",
      "Find the remainder when ${a}^{{{d}}} + {c}$ is divided by $7$."],
     "Divide ${a}$ raised to the power ${d}$ by ${b}$. Which remainder is left over?",
     "Quel est le reste de la division de ${a}^{{{d}}}$ par ${b}$ ?",
     "What is the remainder when $1 + 2 + 3 + \\cdots + {d}$ is divided by ${b}$?"),
    (lambda r: _ints(r, a=2, b=6, c=3, d=12),
     ["The sum of the first ${d}$ terms of an arithmetic sequence is ${d}0$, and the common difference is ${a}$. What is the first term?",
      "The sum of the first ${d}$ terms of a geometric sequence with common ratio ${a}$ is ${d}{c}$. What is the first term?"],
     "An arithmetic progression with common difference ${a}$ has its first ${d}$ terms adding up to ${d}0$. Determine its opening term.",
     "Die Summe der ersten ${d}$ Glieder einer arithmetischen Folge ist ${d}0$, und die Differenz ist ${a}$. Wie lautet das erste Glied?",
     "The sum of the first ${d}$ terms of an arithmetic sequence is ${d}0$. What is the sum of the first ${d}$ terms of the sequence of their squares, if every term equals the first?"),
    (lambda r: _ints(r, a=4, b=12, c=2, d=8),
     ["A circle of radius ${a}$ is inscribed in a square. What is the area of the region inside the square but outside the circle? Express your answer in terms of $\\pi$.",
      "A circle of radius ${a}$ is circumscribed about a square. What is the area of the region inside the circle but outside the square? Express your answer in terms of $\\pi$."],
     "A square has a circle of radius ${a}$ drawn inside it, touching all four sides. Find the area that lies in the square and not in the circle, in terms of $\\pi$.",
     None,
     "A circle of radius ${a}$ is inscribed in a square. A smaller circle is tangent to two sides of the square and to the first circle. What is its radius?"),
    (lambda r: _ints(r, a=3, b=9, c=20, d=50),
     ["How many ways are there to put ${b}$ indistinguishable balls into ${a}$ distinguishable boxes?",
      "How many ways are there to put ${b}$ distinguishable balls into ${a}$ indistinguishable boxes?"],
     "In how many different ways can ${b}$ identical balls be distributed among ${a}$ different boxes?",
     "Wie viele Möglichkeiten gibt es, ${b}$ ununterscheidbare Kugeln auf ${a}$ unterscheidbare Kisten zu verteilen?",
     "How many ways are there to arrange the letters of the word BALLOON so that the two L's are not adjacent?"),
    (lambda r: _ints(r, a=2, b=7, c=3, d=9),
     ["If $\\log_{{{a}}} x = {c}$, what is $\\log_{{{a}}} (x^{{{b}}})$?",
      "If $\\log_{{{a}}} (x + {c}) = {b}$, what is $x$?"],
     "Suppose the base-${a}$ logarithm of $x$ equals ${c}$. Compute the base-${a}$ logarithm of $x$ raised to the ${b}$th power.",
     "Если $\\log_{{{a}}} x = {c}$, чему равно $\\log_{{{a}}} (x^{{{b}}})$?",
     "If $\\log_{{{a}}} x + \\log_{{{a}}} (x - {c}) = {b}$, what is the product of all solutions $x$?"),
    (lambda r: _ints(r, a=2, b=9, c=3, d=8),
     ["Compute $\\dbinom{{{d}}}{{{c}}}$.",
      "Compute $\\dbinom{{{d}}}{{{a}}} + \\dbinom{{{d}}}{{{c}}}$."],
     "Evaluate the binomial coefficient ${d}$ choose ${c}$.",
     "Calcule $\\dbinom{{{d}}}{{{c}}}$.",
     "Compute $\\displaystyle\\sum_{{k=0}}^{{{d}}} (-1)^k \\dbinom{{{d}}}{{k}} k^2$."),
    (lambda r: _ints(r, a=10, b=40, c=2, d=5),
     ["The average of ${d}$ numbers is ${b}$. If one number is removed, the average of the remaining numbers is ${a}$. What number was removed?",
      "The mean of ${d}$ test scores is ${b}$. After one more test, the mean of all scores is ${a}$. What was the score on the last test?"],
     "${d}$ numbers have mean ${b}$. Taking one of them away leaves numbers whose mean is ${a}$. Which number was taken away?",
     "La media de ${d}$ números es ${b}$. Si se elimina un número, la media de los restantes es ${a}$. ¿Qué número se eliminó?",
     "The average of ${d}$ consecutive odd integers is ${b}$. What is the largest of these integers?"),
    (lambda r: _ints(r, a=2, b=9, c=1, d=6),
     ["Find all real numbers $x$ such that $\\sqrt{{x + {b}}} = x - {c}$.",
      "Find all real numbers $x$ such that $\\sqrt{{{a}x + {b}}} = x + {c}$."],
     "Determine every real solution of the equation in which the square root of $x + {b}$ equals $x - {c}$.",
     "Trouver tous les nombres réels $x$ tels que $\\sqrt{{x + {b}}} = x - {c}$.",
     "Find all real numbers $x$ such that $\\sqrt[3]{{x + {b}}} + \\sqrt[3]{{x - {c}}} = 2$."),
    (lambda r: _ints(r, a=20, b=90, c=2, d=5),
     ["A train travels ${b}$ miles in ${c}$ hours. At the same rate, how many miles will it travel in ${d}$ hours?",
      "A car travels ${b}$ kilometers on ${c}$ liters of fuel. How many liters does it need to travel ${a}0$ kilometers?"],
     "Going at a constant speed, a train covers ${b}$ miles every ${c}$ hours. How far does it go in ${d}$ hours?",
     "Ein Zug fährt ${b}$ Meilen in ${c}$ Stunden. Wie viele Meilen fährt er bei gleicher Geschwindigkeit in ${d}$ Stunden?",
     "A train leaves a station at ${c}$ p.m. going ${b}$ miles per hour, and a second train leaves at ${d}$ p.m. going faster. When do they meet?"),
    (lambda r: _ints(r, a=2, b=9, c=10, d=30),
     ["What is the greatest common divisor of ${c}{a}$ and ${d}{b}$?",
      "What is the least common multiple of ${c}$, ${d}$ and ${a}{b}$?"],
     "Find the largest whole number that divides both ${c}{a}$ and ${d}{b}$ exactly.",
     "${c}{a}$ 和 ${d}{b}$ 的最大公约数是多少？",
     "What is the greatest common divisor of $n^2 + {a}$ and $(n+1)^2 + {a}$ for $n = {d}$?"),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7),
     ["The polynomial $x^3 - {a}x^2 + {b}x - {c}$ has roots $r$, $s$, and $t$. What is $r^2 + s^2 + t^2$?",
      "The polynomial $x^3 + {a}x^2 - {b}x + {c}$ has roots $p$, $q$, and $r$. Find $\\frac{{1}}{{p}} + \\frac{{1}}{{q}} + \\frac{{1}}{{r}}$."],
     "Let $r$, $s$, $t$ be the three roots of $x^3 - {a}x^2 + {b}x - {c}$. Find the sum of their squares.",
     "Le polynôme $x^3 - {a}x^2 + {b}x - {c}$ a pour racines $r$, $s$ et $t$. Que vaut $r^2 + s^2 + t^2$ ?",
     "The polynomial $x^3 - {a}x^2 + {b}x - {c}$ is divided by $x - {d}$. What is the remainder?"),
    (lambda r: _ints(r, a=5, b=15, c=2, d=4),
     ["Two fair ${b}$-sided dice are rolled. What is the probability that the sum of the numbers rolled is ${a}$? Express your answer as a common fraction.",
      "Two fair six-sided dice are rolled. What is the probability that the product of the numbers rolled is a multiple of ${d}$? Express your answer as a common fraction."],
     "You roll a pair of fair dice with ${b}$ faces each. How likely is it that the two numbers add up to ${a}$? Answer with a fraction.",
     "Se lanzan dos dados justos de ${b}$ caras. ¿Cuál es la probabilidad de que la suma sea ${a}$?",
     "Two fair ${b}$-sided dice are rolled. What is the expected value of the larger of the two numbers rolled?"),
    (lambda r: _ints(r, a=3, b=12, c=2, d=9),
     ["What is the smallest positive integer $n$ such that ${b}n$ is a perfect square and ${d}n$ is a perfect cube?",
      "What is the smallest positive integer $n$ such that $n$ leaves a remainder of ${c}$ when divided by ${a}$ and a remainder of ${a}$ when divided by ${d}$?"],
     "Find the least positive whole number $n$ for which ${b}n$ is a square number and ${d}n$ is a cube number.",
     "Was ist die kleinste positive ganze Zahl $n$, für die ${b}n$ eine Quadratzahl und ${d}n$ eine Kubikzahl ist?",
     "What is the smallest positive integer $n$ such that $n!$ ends in exactly ${b}$ zeros?"),
    (lambda r: _ints(r, a=2, b=8, c=3, d=6),
     ["Simplify $\\frac{{{a}x^2 + {b}x}}{{{a}x}}$.",
      "Simplify $\\sqrt{{{b}}} \\cdot \\sqrt{{{a}{b}}}$."],
     "Reduce the expression ${a}x^2 + {b}x$ divided by ${a}x$ to its simplest form.",
     None,
     "Simplify $\\frac{{{a}}}{{x - {c}}} - \\frac{{{b}}}{{x + {c}}}$ into a single fraction."),
    (lambda r: _ints(r, a=3, b=9, c=10, d=40),
     ["A rectangle has a perimeter of ${d}$ units and its length is ${a}$ times its width. What is the area of the rectangle, in square units?",
      "A rectangle has a perimeter of ${d}$ units and a diagonal of length ${c}$ units. What is its area, in square units?"],
     "The length of a rectangle is ${a}$ times its width, and the distance around it is ${d}$ units. Find how many square units it encloses.",
     "Прямоугольник имеет периметр ${d}$ единиц, а его длина в ${a}$ раза больше ширины. Чему равна площадь прямоугольника?",
     "A rectangle has a perimeter of ${d}$ units. What is the largest possible area of such a rectangle if its sides are whole numbers?"),
    (lambda r: _ints(r, a=2, b=9, c=1, d=5),
     ["Solve for $x$: ${a}^{{x + {c}}} = {a}^{{{d}}} \\cdot {a}^{{{b}}}$.",
      "Solve for $x$: ${b}^{{x}} = {a}^{{{d}x - {c}}}$."],
     "Which $x$ makes ${a}$ to the power $x + {c}$ equal to the product of ${a}^{{{d}}}$ and ${a}^{{{b}}}$?",
     "Résoudre en $x$ : ${a}^{{x + {c}}} = {a}^{{{d}}} \\cdot {a}^{{{b}}}$.",
     "Solve for $x$: $\\log_{a} (x + {c}) = {d}$ where the base is ${a}$."),
    (lambda r: _ints(r, a=5, b=20, c=2, d=9),
     ["How many diagonals does a convex polygon with ${b}$ sides have?",
      "The interior angles of a convex polygon with ${b}$ sides are all equal. What is the measure of each interior angle, in degrees?"],
     "A convex ${b}$-gon is drawn. Count the segments joining two of its vertices that are not sides.",
     "¿Cuántas diagonales tiene un polígono convexo de ${b}$ lados?",
     "How many triangles can be formed whose vertices are vertices of a convex polygon with ${b}$ sides and whose sides are all diagonals?"),
    (lambda r: _ints(r, a=2, b=7, c=3, d=11),
     ["Find the units digit of ${b}^{{{d}{c}}}$.",
      "Find the units digit of the sum $1! + 2! + 3! + \\cdots + {d}!$."],
     "What is the last digit of ${b}$ raised to the power ${d}{c}$?",
     "Finde die Einerziffer von ${b}^{{{d}{c}}}$.",
     "Find the tens digit of ${b}^{{{d}{c}}}$."),
    (lambda r: _ints(r, a=2, b=9, c=3, d=7),
     ["The function $f$ satisfies $f(x) + {a}f(1 - x) = {c}x^2$ for all real numbers $x$. Find $f({d})$.",
      "The function $g$ satisfies $g(x + y) = g(x) g(y)$ for all real $x$ and $y$, and $g({a}) = {b}$. Find $g({d})$."],
     "For every real $x$, a function $f$ obeys $f(x) + {a} f(1 - x) = {c} x^2$. What is the value of $f$ at ${d}$?",
     None,
     "The function $f$ satisfies $f(f(x)) = x$ for all real numbers $x$, and $f({a}) = {b}$. Find $f({b})$."),
    (lambda r: _ints(r, a=2, b=5, c=6, d=12),
     ["Let $z = {a} + {b}i$. Compute $|z^2|$.",
      "Let $z = {a} - {b}i$. Compute $z \\cdot \\overline{{z}}$."],
     "For the complex number $z$ equal to ${a}$ plus ${b}i$, find the modulus of $z$ squared.",
     "Soit $z = {a} + {b}i$. Calculer $|z^2|$.",
     "Let $z$ be a complex number with $|z| = {b}$. Find the maximum value of $|z - {a}|$."),
    (lambda r: _ints(r, a=3, b=8, c=2, d=6),
     ["A regular hexagon has side length ${a}$. What is its area? Express your answer in simplest radical form.",
      "An equilateral triangle has side length ${b}$. What is its area? Express your answer in simplest radical form."],
     "Each side of a regular six-sided polygon measures ${a}$. How large is its area, written in simplest radical form?",
     "Ein regelmäßiges Sechseck hat die Seitenlänge ${a}$. Wie groß ist sein Flächeninhalt?",
     "A regular hexagon has side length ${a}$. What is the length of its longest diagonal?"),
    (lambda r: _ints(r, a=10, b=50, c=2, d=4),
     ["A store sells pencils at ${c}$ for $\\$1$ and pens at ${d}$ for $\\$3$. How much do ${a}$ pencils and ${a}$ pens cost together, in dollars?",
      "A store sells notebooks at $\\${d}$ each and gives a ${a}\\%$ discount on orders of ${b}$ or more. How much do ${b}$ notebooks cost?"],
     "Pencils cost $\\$1$ for every ${c}$ and pens cost $\\$3$ for every ${d}$. What is the total price of ${a}$ pencils together with ${a}$ pens?",
     "Una tienda vende lápices a ${c}$ por $\\$1$ y bolígrafos a ${d}$ por $\\$3$. ¿Cuánto cuestan juntos ${a}$ lápices y ${a}$ bolígrafos?",
     "A store sells pencils at ${c}$ for $\\$1$. If the price rises by ${a}\\%$, how many pencils can be bought with $\\${b}$?"),
    (lambda r: _ints(r, a=2, b=9, c=3, d=8),
     ["Evaluate $\\left\\lfloor \\sqrt{{{d}{b}}} \\right\\rfloor$.",
      "Evaluate $\\left\\lceil \\frac{{{d}{b}}}{{{c}}} \\right\\rceil$."],
     "What is the greatest integer not exceeding the square root of ${d}{b}$?",
     "Вычислите $\\left\\lfloor \\sqrt{{{d}{b}}} \\right\\rfloor$.",
     "Evaluate $\\sum_{{k=1}}^{{{d}{b}}} \\left\\lfloor \\sqrt{{k}} \\right\\rfloor$."),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7),
     ["The vertices of a triangle are $({c}, {a})$, $({d}, {a})$, and $({c}, {b})$. What is the area of the triangle?",
      "The vertices of a quadrilateral are $(0, 0)$, $({d}, 0)$, $({d}, {b})$, and $({c}, {a})$. What is its area?"],
     "Find the area of the triangle whose corners are the points $({c}, {a})$, $({d}, {a})$ and $({c}, {b})$.",
     "三角形的顶点为 $({c}, {a})$、$({d}, {a})$ 和 $({c}, {b})$。这个三角形的面积是多少？",
     "The vertices of a triangle are $({c}, {a})$, $({d}, {a})$, and $({c}, {b})$. What are the coordinates of its centroid?"),
    (lambda r: _ints(r, a=2, b=6, c=10, d=20),
     ["What is the value of $x$ in the equation $\\frac{{1}}{{x}} + \\frac{{1}}{{{a}x}} = \\frac{{1}}{{{b}}}$?",
      "What is the value of $x$ in the equation $\\frac{{x}}{{{a}}} + \\frac{{x}}{{{b}}} = {c}$?"],
     "Find $x$ if one over $x$ plus one over ${a}x$ equals one over ${b}$.",
     "Quelle est la valeur de $x$ dans l'équation $\\frac{{1}}{{x}} + \\frac{{1}}{{{a}x}} = \\frac{{1}}{{{b}}}$ ?",
     "What is the value of $x$ in the equation $\\frac{{1}}{{x}} + \\frac{{1}}{{x + {a}}} = \\frac{{1}}{{{b}}}$, where $x > 0$?"),
    (lambda r: _ints(r, a=4, b=9, c=2, d=5),
     ["How many distinct arrangements of the letters in the word PROBLEM are there if the vowels must be next to each other?",
      "How many distinct arrangements of the letters in the word COMBINATORICS are there?"],
     "In how many ways can the letters of PROBLEM be ordered so that its two vowels stand side by side?",
     "Wie viele verschiedene Anordnungen der Buchstaben des Wortes PROBLEM gibt es, wenn die Vokale nebeneinander stehen müssen?",
     "How many distinct arrangements of the letters in the word PROBLEM begin and end with a consonant?"),
    (lambda r: _ints(r, a=2, b=8, c=3, d=9),
     ["What is the area of the region enclosed by the graph of $|x| + |{a}y| = {b}$?",
      "What is the area of the region enclosed by the graphs of $y = |x - {c}|$ and $y = {d}$?"],
     "Find the area of the shape bounded by the curve $|x| + |{a}y| = {b}$ in the coordinate plane.",
     "Чему равна площадь области, ограниченной графиком $|x| + |{a}y| = {b}$?",
     "What is the perimeter of the region enclosed by the graph of $|x| + |{a}y| = {b}$?"),
    (lambda r: _ints(r, a=100, b=999, c=2, d=9),
     ["The number ${b}$ is written as the sum of distinct powers of $2$. What is the least possible sum of the exponents?",
      "The number ${a}$ is written in base ${d}$. What is the sum of its digits?"],
     "Write ${b}$ as a sum of different powers of two. What is the smallest the sum of the exponents can be?",
     "El número ${b}$ se escribe como suma de potencias distintas de $2$. ¿Cuál es la menor suma posible de los exponentes?",
     "The number ${b}$ is written in base $2$. How many of its digits are zeros?"),
    (lambda r: _ints(r, a=2, b=9, c=3, d=6),
     ["If $x + \\frac{{1}}{{x}} = {b}$, what is the value of $x^2 + \\frac{{1}}{{x^2}}$?",
      "If $x - \\frac{{1}}{{x}} = {c}$, what is the value of $x^3 - \\frac{{1}}{{x^3}}$?"],
     "A number $x$ plus its reciprocal equals ${b}$. Find $x$ squared plus the reciprocal of $x$ squared.",
     "Si $x + \\frac{{1}}{{x}} = {b}$, ¿cuál es el valor de $x^2 + \\frac{{1}}{{x^2}}$?",
     "If $x + \\frac{{1}}{{x}} = {b}$, what is the largest possible value of $x$?"),
    (lambda r: _ints(r, a=20, b=80, c=3, d=7),
     ["In a class of ${b}$ students, ${a}$ play soccer, ${d}{c}$ play basketball, and ${c}$ play both. How many students play neither sport?",
      "In a survey of ${b}$ people, ${a}$ like tea and ${d}{c}$ like coffee. At least how many people like both?"],
     "${b}$ students are in a class. ${a}$ of them play soccer, ${d}{c}$ play basketball, and ${c}$ do both. How many do neither?",
     "In einer Klasse mit ${b}$ Schülern spielen ${a}$ Fußball, ${d}{c}$ Basketball und ${c}$ beides. Wie viele spielen keine der beiden Sportarten?",
     "In a class of ${b}$ students, each student plays at most one sport. How many ways can a soccer captain and a basketball captain be chosen?"),
    (lambda r: _ints(r, a=2, b=9, c=3, d=8),
     ["Find the distance between the points $({a}, {c})$ and $({d}, {b})$.",
      "Find the midpoint of the segment with endpoints $({a}, {c})$ and $({d}, {b})$."],
     "How far apart are the points $({a}, {c})$ and $({d}, {b})$ in the plane?",
     "Trouver la distance entre les points $({a}, {c})$ et $({d}, {b})$.",
     "Find the equation of the perpendicular bisector of the segment from $({a}, {c})$ to $({d}, {b})$."),
    (lambda r: _ints(r, a=2, b=7, c=3, d=9),
     ["For how many integer values of $n$ is the value of $\\frac{{{d}{c}}}{{n + {a}}}$ an integer?",
      "For how many integer values of $n$ between $1$ and ${d}00$ inclusive does $\\frac{{n}}{{{d}{c}}}$ have a terminating decimal?"],
     "Count the integers $n$ for which ${d}{c}$ divided by $n + {a}$ is a whole number.",
     "Für wie viele ganze Zahlen $n$ ist $\\frac{{{d}{c}}}{{n + {a}}}$ eine ganze Zahl?",
     "For how many integer values of $n$ is $n^2 + {a}n + {d}$ a perfect square?"),
    (lambda r: _ints(r, a=2, b=9, c=3, d=7),
     ["The line $y = {a}x + {c}$ intersects the parabola $y = x^2 + {b}$ at two points. What is the sum of their $x$-coordinates?",
      "The line $y = {a}x - {c}$ is tangent to the parabola $y = x^2 + k$. What is $k$?"],
     "Where the line $y = {a}x + {c}$ crosses the parabola $y = x^2 + {b}$, two points appear. Add their $x$-coordinates.",
     "Прямая $y = {a}x + {c}$ пересекает параболу $y = x^2 + {b}$ в двух точках. Чему равна сумма их абсцисс?",
     "The line $y = {a}x + {c}$ intersects the circle $x^2 + y^2 = {b}{d}$ at two points. What is the distance between them?"),
    (lambda r: _ints(r, a=3, b=9, c=2, d=5),
     ["Express $0.\\overline{{{a}{b}}}$ as a common fraction in lowest terms.",
      "Express $1.\\overline{{{d}}} + 0.\\overline{{{c}{a}}}$ as a common fraction in lowest terms."],
     "Write the repeating decimal $0.{a}{b}{a}{b}{a}{b}\\ldots$ as a fraction in lowest terms.",
     "Exprime $0.\\overline{{{a}{b}}}$ como una fracción irreducible.",
     "Express $0.\\overline{{{a}{b}}}$ in base $5$."),
    (lambda r: _ints(r, a=2, b=8, c=3, d=6),
     ["How many positive divisors does ${d}!$ have?",
      "What is the sum of the positive divisors of ${b}{a}{c}$?"],
     "Count the positive integers that divide ${d}$ factorial.",
     "${d}!$ 有多少个正因数？",
     "How many positive divisors of ${d}!$ are perfect squares?"),
    (lambda r: _ints(r, a=2, b=9, c=10, d=40),
     ["A ladder ${c}$ feet long leans against a vertical wall. Its bottom is ${a}$ feet from the wall. How high up the wall does the ladder reach?",
      "A ladder ${d}$ feet long leans against a wall. Its top slides down ${a}$ feet. How far does its bottom slide out, if it started ${c}$ feet from the wall?"],
     "The foot of a ${c}$-foot ladder stands ${a}$ feet from a wall it leans on. Find the height its top reaches on the wall.",
     "Une échelle de ${c}$ pieds est appuyée contre un mur vertical. Son pied est à ${a}$ pieds du mur. À quelle hauteur l'échelle touche-t-elle le mur ?",
     "A ladder ${c}$ feet long leans against a vertical wall. What is the largest area of the triangle formed by the ladder, the wall and the ground?"),
    (lambda r: _ints(r, a=2, b=9, c=3, d=7),
     ["Let $a$ and $b$ be positive real numbers such that $a + b = {b}$. Find the minimum value of $\\frac{{1}}{{a}} + \\frac{{{a}}}{{b}}$.",
      "Let $x$ and $y$ be positive real numbers such that $xy = {d}$. Find the minimum value of $x + {c}y$."],
     "Positive reals $a$ and $b$ add up to ${b}$. What is the least possible value of $1/a + {a}/b$?",
     None,
     "Let $a$ and $b$ be positive real numbers such that $a + b = {b}$. Find the maximum value of $a^2 b$."),
    (lambda r: _ints(r, a=2, b=6, c=3, d=5),
     ["A cube has edge length ${b}$. A sphere is inscribed in the cube. What is the volume of the sphere? Express your answer in terms of $\\pi$.",
      "A cylinder has radius ${c}$ and height ${d}$. A cone with the same base and height is removed. What volume remains? Express your answer in terms of $\\pi$."],
     "A sphere sits inside a cube of edge ${b}$, touching every face. Find its volume in terms of $\\pi$.",
     "Ein Würfel hat die Kantenlänge ${b}$. Eine Kugel ist dem Würfel einbeschrieben. Wie groß ist das Volumen der Kugel?",
     "A cube has edge length ${b}$. What is the length of the longest segment that fits inside the cube?"),
    (lambda r: _ints(r, a=2, b=9, c=3, d=7),
     ["What is the $ {d}$th term of the sequence $1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, \\ldots$ of positive integers that do not contain the digit $9$?",
      "What is the ${b}0$th term of the sequence $1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, \\ldots$ of positive integers that do not contain the digit $0$?"],
     "List the positive integers, leaving out every number with a 9 among its digits. Which number is in position ${d}$?",
     "¿Cuál es el término ${d}$ de la sucesión de enteros positivos que no contienen el dígito $9$?",
     "What is the sum of the first ${d}$ terms of the sequence $1, 2, 3, 4, 5, 6, 7, 8, 10, 11, \\ldots$ of positive integers that do not contain the digit $9$?"),
    (lambda r: _ints(r, a=2, b=9, c=3, d=5),
     ["Find the maximum value of ${c}\\sin x + {d}\\cos x$ over all real numbers $x$.",
      "Find the minimum value of $\\sin^4 x + \\cos^4 x$ over all real numbers $x$."],
     "As $x$ ranges over the reals, how large can ${c}\\sin x + {d}\\cos x$ get?",
     "Найдите наибольшее значение выражения ${c}\\sin x + {d}\\cos x$ при всех действительных $x$.",
     "Find the number of solutions of ${c}\\sin x + {d}\\cos x = {a}$ in the interval $[0, 2\\pi)$."),
    (lambda r: _ints(r, a=2, b=9, c=3, d=7),
     ["Two complementary angles are in a ratio of ${c}:{a}$. What is the measure, in degrees, of the smaller angle?",
      "The measures of the angles of a triangle are in the ratio ${a}:{c}:{d}$. What is the measure, in degrees, of the largest angle?"],
     "A pair of angles adding up to $90^\\circ$ have sizes in the ratio ${c}$ to ${a}$. How many degrees is the smaller one?",
     "Deux angles complémentaires sont dans le rapport ${c}:{a}$. Quelle est la mesure, en degrés, du plus petit angle ?",
     "Two complementary angles differ by ${b}$ degrees. What is the measure, in degrees, of their product divided by ten?"),
    (lambda r: _ints(r, a=2, b=9, c=3, d=7),
     ["Find the inverse of the matrix $\\begin{{pmatrix}} {a} & {c} \\\\ {b} & {d} \\end{{pmatrix}}$. If the inverse does not exist, then enter the zero matrix.",
      "Compute $\\begin{{pmatrix}} {a} & {c} \\\\ {b} & {d} \\end{{pmatrix}}^2$."],
     "Give the inverse of the $2 \\times 2$ matrix with rows $({a}, {c})$ and $({b}, {d})$, or the zero matrix when it has none.",
     None,
     "Find the determinant of the matrix $\\begin{{pmatrix}} {a} & {c} & 1 \\\\ {b} & {d} & 1 \\\\ 1 & 1 & 1 \\end{{pmatrix}}$."),
    (lambda r: _ints(r, a=2, b=9, c=3, d=7),
     ["How many of the first ${d}00$ positive integers are perfect squares or perfect cubes?",
      "How many of the first ${d}00$ positive integers are neither perfect squares nor perfect cubes?"],
     "Among the numbers $1, 2, \\ldots, {d}00$, count those that are the square of an integer or the cube of an integer.",
     "Combien des ${d}00$ premiers entiers positifs sont des carrés parfaits ou des cubes parfaits ?",
     "How many of the first ${d}00$ positive integers are perfect squares whose digits sum to ${b}$?"),
]

# Clean kinds: other problems in the benchmark's phrasing. (params, template)
CLEAN = [
    (lambda r: _ints(r, a=2, b=9, c=10, d=60), "What is the sum of all possible values of $k$ for which the quadratic $x^2 + kx + {d} = 0$ has two distinct integer roots?"),
    (lambda r: _ints(r, a=2, b=9, c=10, d=60), "What is the sum of all possible values of $n$ such that $n^2 + {a}n + {d}$ is divisible by $n + 1$?"),
    (lambda r: _ints(r, a=2, b=9, c=10, d=60), "What is the sum of all possible values of the digit $A$ if the number $A{b}{a}A$ is divisible by $11$?"),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7), "A palindrome is a number that reads the same forward and backward. What is the largest palindrome less than ${d}000$ that is the product of two two-digit numbers ending in {c}?"),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7), "A palindrome is a number that reads the same forward and backward. Find the number of palindromes between ${a}00$ and ${b}00$ whose middle digit is even."),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7), "A palindrome is a number that reads the same forward and backward. If a six-digit palindrome is divided by ${c}{d}$, what remainders are possible?"),
    (lambda r: _ints(r, a=5, b=12, c=2, d=9), "How many positive integers less than $1000$ are equal to ${d}$ times the sum of their digits?"),
    (lambda r: _ints(r, a=5, b=12, c=2, d=9), "How many positive integers less than $500$ have exactly ${a}$ positive divisors?"),
    (lambda r: _ints(r, a=5, b=12, c=2, d=9), "How many positive integers less than $10{c}0$ can be written as the difference of two perfect squares?"),
    (lambda r: _ints(r, a=3, b=8, c=2, d=6), "Find the number of ordered pairs $(x, y)$ of integers such that $x^2 + y^2 = {b}{c}5$."),
    (lambda r: _ints(r, a=3, b=8, c=2, d=6), "Find the number of ordered pairs $(a, b)$ of positive integers such that $\\frac{{1}}{{a}} + \\frac{{1}}{{b}} = \\frac{{1}}{{{d}}}$."),
    (lambda r: _ints(r, a=3, b=8, c=2, d=6), "Find the number of ordered triples $(a, b, c)$ of nonnegative integers with $a + b + c = {b}$ and $a \\le b \\le c$."),
    (lambda r: _ints(r, a=2, b=12, c=2, d=9), "Let $f(x) = x^2 - {a}x + {d}$. For how many real values of $c$ does $f(f(c)) = c$?"),
    (lambda r: _ints(r, a=2, b=12, c=2, d=9), "Let $f(x) = \\frac{{{a}x + {c}}}{{x - {d}}}$. Find the range of $f$."),
    (lambda r: _ints(r, a=2, b=12, c=2, d=9), "Let $f(x) = |x - {a}| + |x + {d}|$. What is the minimum value of $f(x)$?"),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7), "A bag contains ${a}$ red marbles and ${b}$ blue marbles. Marbles are drawn with replacement until two of the same color have been drawn in a row. What is the probability that this happens on the third draw? Express your answer as a common fraction."),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7), "A jar contains ${a}$ quarters and ${b}$ dimes. A coin is drawn at random. What is the expected value of the coin, in cents?"),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7), "A committee of ${c}$ people is chosen at random from ${a}$ teachers and ${b}$ students. What is the probability that it has at least one teacher? Express your answer as a common fraction."),
    (lambda r: _ints(r, a=3, b=15, c=4, d=20), "In right triangle $ABC$ with $\\angle C = 90^\\circ$, the median from $A$ has length ${b}$ and the median from $B$ has length ${d}$. What is $AB$?"),
    (lambda r: _ints(r, a=3, b=15, c=4, d=20), "In triangle $ABC$, $AB = {b}$, $BC = {d}$, and $CA = {b}{c}$. What is the length of the altitude from $B$?"),
    (lambda r: _ints(r, a=3, b=15, c=4, d=20), "In right triangle $DEF$, the hypotenuse is ${d}$ and one angle is $30^\\circ$. What is the perimeter of the triangle?"),
    (lambda r: _ints(r, a=2, b=9, c=10, d=99), "What is the remainder when the product $1 \\cdot 3 \\cdot 5 \\cdots {d}$ of odd numbers is divided by ${b}$?"),
    (lambda r: _ints(r, a=2, b=9, c=10, d=99), "What is the remainder when $x^{{{d}}}$ is divided by $x^2 - 1$?"),
    (lambda r: _ints(r, a=2, b=9, c=10, d=99), "What is the remainder when the ${d}$th Fibonacci number is divided by ${b}$?"),
    (lambda r: _ints(r, a=2, b=6, c=3, d=12), "The first term of a geometric sequence is ${a}$ and the ${c}$rd term is ${d}{b}$. What is the sum of the first ${b}$ terms if the ratio is positive?"),
    (lambda r: _ints(r, a=2, b=6, c=3, d=12), "The second and fifth terms of an arithmetic sequence are ${d}$ and ${d}{b}$. What is the twentieth term?"),
    (lambda r: _ints(r, a=2, b=6, c=3, d=12), "An infinite geometric series has first term ${d}$ and sum ${d}{a}$. What is its common ratio? Express your answer as a common fraction."),
    (lambda r: _ints(r, a=4, b=12, c=2, d=8), "A circle of radius ${a}$ is tangent to both axes and to the line $x + y = {d}{b}$. How many such circles are there?"),
    (lambda r: _ints(r, a=4, b=12, c=2, d=8), "A semicircle is drawn on each side of a square of side ${b}$. What is the area of the region covered by exactly two semicircles? Express your answer in terms of $\\pi$."),
    (lambda r: _ints(r, a=4, b=12, c=2, d=8), "Two circles of radius ${a}$ have centers ${d}$ units apart. What is the area of their overlap? Express your answer in terms of $\\pi$."),
    (lambda r: _ints(r, a=3, b=9, c=20, d=50), "How many ways are there to choose ${a}$ of the first ${c}$ positive integers so that no two chosen numbers are consecutive?"),
    (lambda r: _ints(r, a=3, b=9, c=20, d=50), "How many ways are there to tile a $2 \\times {b}$ board with $1 \\times 2$ dominoes?"),
    (lambda r: _ints(r, a=3, b=9, c=20, d=50), "How many ways are there to walk from $(0, 0)$ to $({b}, {a})$ using unit steps right and up that never pass through $(2, 2)$?"),
    (lambda r: _ints(r, a=2, b=7, c=3, d=9), "If $\\log_{{{a}}} {d} = x$ and $\\log_{{{d}}} {b} = y$, express $\\log_{{{a}}} {b}$ in terms of $x$ and $y$."),
    (lambda r: _ints(r, a=2, b=7, c=3, d=9), "If $2^x = {c}$ and $3^y = {b}$, what is $6^{{xy}}$ in terms of known numbers, if $x = y$?"),
    (lambda r: _ints(r, a=2, b=7, c=3, d=9), "How many digits does ${a}^{{{d}0}}$ have when written in base ten?"),
    (lambda r: _ints(r, a=2, b=9, c=3, d=8), "Compute the number of subsets of $\\{{1, 2, 3, 4, 5, 6, 7, 8\\}}$ whose sum is divisible by ${c}$."),
    (lambda r: _ints(r, a=2, b=9, c=3, d=8), "Compute $\\displaystyle\\prod_{{k=2}}^{{{d}}} \\left(1 - \\frac{{1}}{{k^2}}\\right)$."),
    (lambda r: _ints(r, a=10, b=40, c=2, d=5), "The median of a set of ${d}$ distinct positive integers is ${b}$ and their mean is ${a}$. What is the largest possible value of the largest integer?"),
    (lambda r: _ints(r, a=10, b=40, c=2, d=5), "The mode of a list of ${d}$ integers is ${a}$ and the range is ${b}$. What is the smallest possible sum of the list?"),
    (lambda r: _ints(r, a=10, b=40, c=2, d=5), "The ages of ${d}$ siblings average ${a}$ years, and no two siblings are the same age. How old can the oldest be at most?"),
    (lambda r: _ints(r, a=2, b=9, c=1, d=6), "Find all real numbers $x$ such that $\\lfloor x \\rfloor + \\{{x\\}} \\cdot {b} = {d}$."),
    (lambda r: _ints(r, a=2, b=9, c=1, d=6), "Find all real numbers $x$ such that $x^4 - {b}x^2 + {d} = 0$. Enter all the solutions, separated by commas."),
    (lambda r: _ints(r, a=2, b=9, c=1, d=6), "Find all real numbers $x$ such that $|x - {a}| + |x - {b}| = {d}{a}$."),
    (lambda r: _ints(r, a=20, b=90, c=2, d=5), "A boat goes ${b}$ miles downstream in ${c}$ hours and returns in ${d}$ hours. What is the speed of the current, in miles per hour?"),
    (lambda r: _ints(r, a=20, b=90, c=2, d=5), "A cyclist rides ${a}$ miles at ${b}$ miles per hour and then ${a}$ miles at ${d}$ miles per hour. What is her average speed for the whole ride?"),
    (lambda r: _ints(r, a=20, b=90, c=2, d=5), "A pump fills a tank in ${c}$ hours and a drain empties it in ${d}$ hours. How long does it take to fill the tank with both open?"),
    (lambda r: _ints(r, a=2, b=9, c=10, d=30), "What is the greatest common divisor of all numbers of the form $n^{{{c}}} - n$ for integers $n$?"),
    (lambda r: _ints(r, a=2, b=9, c=10, d=30), "What is the least common multiple of the first ${c}$ positive integers divided by their greatest common divisor?"),
    (lambda r: _ints(r, a=2, b=9, c=10, d=30), "What is the greatest common divisor of $2^{{{d}}} - 1$ and $2^{{{c}}} - 1$?"),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7), "The polynomial $p(x)$ has degree ${a}$, leading coefficient $1$, and $p(k) = k$ for $k = 1, 2, \\ldots, {a}$. Find $p({d})$."),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7), "The roots of $x^2 - {b}x + {c} = 0$ are $a$ and $b$. Find the quadratic whose roots are $a^2$ and $b^2$."),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7), "The polynomial $x^4 + {a}x^3 + {b}x^2 + {a}x + 1$ is palindromic. Find the sum of the squares of its roots."),
    (lambda r: _ints(r, a=5, b=15, c=2, d=4), "Three fair coins and one fair die are tossed. What is the probability of exactly ${c}$ heads and an even number? Express your answer as a common fraction."),
    (lambda r: _ints(r, a=5, b=15, c=2, d=4), "A fair ${b}$-sided die is rolled until a ${d}$ appears. What is the expected number of rolls?"),
    (lambda r: _ints(r, a=5, b=15, c=2, d=4), "Two cards are drawn from a standard deck. What is the probability that both are aces or both are kings? Express your answer as a common fraction."),
    (lambda r: _ints(r, a=3, b=12, c=2, d=9), "What is the smallest positive integer with exactly ${b}$ positive divisors?"),
    (lambda r: _ints(r, a=3, b=12, c=2, d=9), "What is the smallest positive integer that is the sum of two cubes in two different ways, divided by ${d}$ and rounded down?"),
    (lambda r: _ints(r, a=3, b=12, c=2, d=9), "What is the smallest positive integer $k$ such that $k \\cdot {b}{d}$ ends in the digits $00$?"),
    (lambda r: _ints(r, a=2, b=8, c=3, d=6), "Simplify $\\left(\\frac{{{a}}}{{{c}}}\\right)^{{-{a}}} \\cdot \\left(\\frac{{{c}}}{{{a}}}\\right)^{{{c}}}$."),
    (lambda r: _ints(r, a=2, b=8, c=3, d=6), "Simplify $(x + {a})(x - {a}) - (x - {c})^2$."),
    (lambda r: _ints(r, a=2, b=8, c=3, d=6), "Simplify $\\frac{{\\sqrt{{{b}}} + \\sqrt{{{a}}}}}{{\\sqrt{{{b}}} - \\sqrt{{{a}}}}}$ by rationalizing the denominator."),
    (lambda r: _ints(r, a=3, b=9, c=10, d=40), "A rectangle is inscribed in a circle of radius ${c}$. What is the largest possible perimeter of the rectangle?"),
    (lambda r: _ints(r, a=3, b=9, c=10, d=40), "A rectangular garden of area ${d}0$ square feet is fenced on three sides. What is the least length of fence needed?"),
    (lambda r: _ints(r, a=3, b=9, c=10, d=40), "A rectangle with integer sides has area equal to ${a}$ times its perimeter. How many such rectangles are there?"),
    (lambda r: _ints(r, a=2, b=9, c=1, d=5), "Solve for $x$: ${a}^{{2x}} - {b} \\cdot {a}^x + {d}{a} = 0$, giving the sum of all solutions."),
    (lambda r: _ints(r, a=2, b=9, c=1, d=5), "Solve for $x$: $\\frac{{x + {a}}}{{x - {c}}} = \\frac{{x - {d}}}{{x + {b}}}$."),
    (lambda r: _ints(r, a=2, b=9, c=1, d=5), "Solve for $x$ in the system $x + y = {b}$, $x - y = {d}$, and report $xy$."),
    (lambda r: _ints(r, a=5, b=20, c=2, d=9), "How many sides does a regular polygon have if each exterior angle measures ${d}$ degrees more than each interior angle of an equilateral triangle?"),
    (lambda r: _ints(r, a=5, b=20, c=2, d=9), "How many squares of any size are there on a ${d} \\times {d}$ grid of points?"),
    (lambda r: _ints(r, a=5, b=20, c=2, d=9), "How many lines of symmetry does a regular polygon with ${b}$ sides have, plus its rotational symmetries?"),
    (lambda r: _ints(r, a=2, b=7, c=3, d=11), "Find the last two digits of ${d}^{{{d}}}$."),
    (lambda r: _ints(r, a=2, b=7, c=3, d=11), "Find the units digit of the number of subsets of a set with ${d}$ elements."),
    (lambda r: _ints(r, a=2, b=7, c=3, d=11), "Find the sum of the digits of $10^{{{d}}} - {b}$."),
    (lambda r: _ints(r, a=2, b=5, c=6, d=12), "Let $w$ be a complex number with $w^{{{c}}} = 1$ and $w \\ne 1$. Compute $1 + w + w^2 + \\cdots + w^{{{c}}}$."),
    (lambda r: _ints(r, a=2, b=5, c=6, d=12), "Let $z$ be a complex number such that $z + \\frac{{1}}{{z}} = {a}\\cos {d}^\\circ$. Find $z^{{{c}}} + \\frac{{1}}{{z^{{{c}}}}}$."),
    (lambda r: _ints(r, a=2, b=5, c=6, d=12), "Compute $(1 + i)^{{{d}}}$."),
    (lambda r: _ints(r, a=3, b=8, c=2, d=6), "A regular octagon has side length ${a}$. What is the distance between two opposite sides?"),
    (lambda r: _ints(r, a=3, b=8, c=2, d=6), "An isosceles trapezoid has bases ${b}$ and ${d}{c}$ and legs ${d}$. What is its area?"),
    (lambda r: _ints(r, a=3, b=8, c=2, d=6), "A rhombus has diagonals of length ${b}$ and ${d}$. What is its perimeter?"),
    (lambda r: _ints(r, a=10, b=50, c=2, d=4), "A store raised the price of a jacket by ${a}\\%$ and later lowered it by ${a}\\%$. What percent of the original price is the final price?"),
    (lambda r: _ints(r, a=10, b=50, c=2, d=4), "A baker sells muffins at $\\${c}$ each and cookies at $\\$1$ each. She sold ${b}$ items for $\\${b}{d}$. How many muffins did she sell?"),
    (lambda r: _ints(r, a=10, b=50, c=2, d=4), "Tickets cost $\\${d}$ for adults and $\\${c}$ for children. If ${b}$ tickets brought in $\\${a}0$, how many were for children?"),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7), "The vertices of a square are $(0, 0)$, $({d}, {c})$, $({d} - {c}, {d} + {c})$ and $(-{c}, {d})$. What is its area?"),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7), "The points $(1, {a})$, $({c}, {b})$ and $({d}, k)$ lie on one line. Find $k$."),
    (lambda r: _ints(r, a=3, b=9, c=2, d=7), "The graph of $y = {a}x^2 + {b}x + {c}$ is reflected across the $x$-axis. What is the $y$-intercept of the new graph?"),
    (lambda r: _ints(r, a=2, b=9, c=3, d=6), "If $x^2 + y^2 = {b}{d}$ and $xy = {d}$, what is the value of $(x + y)^2$?"),
    (lambda r: _ints(r, a=2, b=9, c=3, d=6), "If $a + b = {b}$ and $a - b = {c}$, what is the value of $a^2 - b^2$?"),
    (lambda r: _ints(r, a=2, b=9, c=3, d=6), "If $3x + 2y = {b}{c}$ and $x - y = {a}$, what is the value of $x$?"),
    (lambda r: _ints(r, a=20, b=80, c=3, d=7), "In a group of ${b}$ people, everyone shakes hands with everyone else exactly once. How many handshakes take place?"),
    (lambda r: _ints(r, a=20, b=80, c=3, d=7), "In a round-robin tournament with ${d}$ teams, each pair plays ${c}$ games. How many games are played in all?"),
    (lambda r: _ints(r, a=20, b=80, c=3, d=7), "In how many ways can ${d}$ people sit around a round table if two particular people refuse to sit together?"),
    (lambda r: _ints(r, a=2, b=7, c=3, d=9), "For how many positive integers $n \\le {d}00$ is $n^2 + 1$ divisible by ${b}$?"),
    (lambda r: _ints(r, a=2, b=7, c=3, d=9), "For how many values of the digit $A$ is the six-digit number $1{d}{c}A{b}A$ divisible by $4$?"),
    (lambda r: _ints(r, a=2, b=7, c=3, d=9), "For how many ordered pairs of digits $(A, B)$ is $A{b}B{c}$ divisible by ${d}$?"),
    (lambda r: _ints(r, a=3, b=9, c=2, d=5), "Express $\\frac{{{a}}}{{{b}{d}}}$ as a decimal rounded to the nearest thousandth."),
    (lambda r: _ints(r, a=3, b=9, c=2, d=5), "Express the sum $\\frac{{1}}{{{c}}} + \\frac{{1}}{{{a}}} + \\frac{{1}}{{{b}}}$ as a common fraction."),
    (lambda r: _ints(r, a=3, b=9, c=2, d=5), "Express $1{d}{a}_{{{b}}}$ in base $10$."),
    (lambda r: _ints(r, a=2, b=9, c=3, d=7), "The numbers $1, 2, 3, 4, 5, 6, 7, 8$ are written on eight cards. How many ways can the cards be split into two piles of four with equal sums?"),
    (lambda r: _ints(r, a=2, b=9, c=3, d=7), "The numbers $1, 2, 3, 4, 5, 6, 7, 8$ are placed at the vertices of a cube. What is the largest possible sum of the products over the ${a}$ faces meeting at one vertex, on average?"),
]
assert len(BENCH) == 50 and len(CLEAN) == 100, (len(BENCH), len(CLEAN))


def _fill(template: str, params: dict[str, int]) -> str:
    return template.format(**params)


def benchmark(rng: random.Random) -> tuple[list[str], list[dict[str, int]]]:
    """4 problems per kind (its wordings in turn, other numbers each time); the first one's params."""
    problems, firsts, kinds = [], [], []
    for kind, (params_of, wordings, *_) in enumerate(BENCH):
        for i in range(4):
            text, params = _distinct(rng, params_of, wordings[i % len(wordings)], problems)
            if i == 0:
                firsts.append(params)
            if text is not None:
                problems.append(text)
                kinds.append(kind)
    BENCH_KINDS[:] = kinds
    return problems, firsts


BENCH_KINDS: list[int] = []
"""The kind (index in BENCH) of each benchmark problem, filled by `benchmark`."""


def _distinct(rng: random.Random, params_of, template: str, taken: list[str]) -> tuple[str | None, dict[str, int]]:
    """The template filled with numbers that make a text not in `taken` (None when it has no numbers to vary)."""
    for _ in range(50):
        params = params_of(rng)
        text = _fill(template, params)
        if text not in taken:
            return text, params
    return None, params


def other_numbers(rng: random.Random, params_of, params: dict[str, int]) -> dict[str, int]:
    while True:
        changed = params_of(rng)
        if changed != params:
            return changed


def _sprinkle(words: list[str], invisible: str) -> str:
    """An invisible character after every space and inside every longer word: 'pal\u00adin…'."""
    return (" " + invisible).join(word[:len(word) // 2] + invisible + word[len(word) // 2:] if len(word) > 3 else word
                                  for word in words)


def main() -> None:
    rng = random.Random(27)
    problems, firsts = benchmark(rng)
    clean = []
    for params_of, template in CLEAN:
        for _ in range(4):
            text = _distinct(rng, params_of, template, clean)[0]
            if text is not None:
                clean.append(text)
    assert len(set(problems)) == len(problems) and len(set(clean)) == len(clean)
    rows = []
    for kind, (params_of, wordings, rephrase, translation, near) in enumerate(BENCH):
        params = firsts[kind]
        row = problems.index(_fill(wordings[0], params)) + 1  # the kind's first problem, from 1 as distill counts
        rows.append({"text": _fill(rephrase, params), "contaminated": True, "kind": "rephrase", "row": row})
        rows.append({"text": _fill(wordings[0], other_numbers(rng, params_of, params)), "contaminated": True,
                     "kind": "numbers", "row": row})
        if translation is not None:
            rows.append({"text": _fill(translation, params), "contaminated": True, "kind": "translation", "row": row})
        rows.append({"text": _fill(near, params), "contaminated": False, "kind": "near", "row": row})
    short = [p for p in problems if len(p.split()) < 8]
    disguised = []
    for i, problem in enumerate(problems[::5]):
        row = problems.index(problem) + 1
        words = problem.split(" ")
        disguised += [
            {"text": problem, "kind": "verbatim", "row": row},
            {"text": "   ".join(words).upper(), "kind": "re-spaced, re-cased", "row": row},
            {"text": _sprinkle(words, ["\u200b", "\u00ad", "\u2060"][i % 3]), "kind": "invisible characters",
             "row": row},
            {"text": problem.replace("a", "а").replace("e", "е").replace("o", "о"), "kind": "look-alike letters",
             "row": row},
            {"text": problem.replace("^2", "²").replace("^3", "³"), "kind": "superscripts", "row": row},
        ]
    for problem in short:
        disguised.append({"text": f"{problem}\n{R1}", "kind": "short, with the template",
                          "row": problems.index(problem) + 1})
    OUT.mkdir(parents=True, exist_ok=True)
    for name, items in (("decontam_benchmark", [{"problem": p, "kind": k} for p, k in zip(problems, BENCH_KINDS)]),
                        ("decontam_clean", [{"problem": p} for p in clean]),
                        ("decontam_rephrased", rows), ("decontam_disguised", disguised)):
        with open(OUT / f"{name}.jsonl", "w", encoding="utf-8") as out:
            for item in items:
                out.write(json.dumps(item, ensure_ascii=False) + "\n")
        print(f"{name}.jsonl: {len(items)} rows")


if __name__ == "__main__":
    main()
