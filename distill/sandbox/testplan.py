"""Run a task's test code on the trusted side; only the calls of the solution's functions go to the sandbox.

A test such as `assert add(1, 2) == 3` (MBPP) or HumanEval's `def check(candidate): assert
candidate([1, 2]) == [2, 3]` is read with `ast` and interpreted here, by a small evaluator that knows
literals, arithmetic, comparisons, a few pure builtins and `math`. A call of any other name is a call
of the solution: its arguments must be plain data computed here, and it is answered by the sandboxed
process with a plain value (`distill.sandbox.plain`). The assert itself is evaluated here, on that
value. So the solution never sees a test's source or its expected values, and whatever it returns, or
prints, or patches inside its own process, the comparison is made by code it cannot reach.

The test code runs twice: once to list the calls (their values unknown), then, once the sandbox has
answered them, to check every assert. Test code this evaluator cannot follow (a lambda, `import
random`, a helper function, an argument made from another call's result, a branch on a result) is
refused with the reason (`Undecomposable`); the verdict is then None, never a run of the test inside
the solution's process.
"""

from __future__ import annotations

import ast
import builtins
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from distill.sandbox.plain import NotPlain, encode


class Undecomposable(Exception):
    """Test code the trusted side cannot run by itself (the verdict is None)."""


class TestFailed(Exception):
    """A test that did not pass: `where` is the statement, `why` what went wrong."""

    def __init__(self, where: str, why: str, note: str = ""):
        super().__init__(f"{why} at `{where}`{note}")


class MissingResult(Exception):
    """The sandboxed program ended before it answered call `index`."""

    def __init__(self, index: int):
        self.index = index


@dataclass(frozen=True)
class SolutionFunction:
    """A function that lives in the sandboxed process, called by its name there."""

    name: str


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()  # a call's value on the first pass


@dataclass(frozen=True)
class Call:
    name: str
    args: list
    kwargs: dict
    where: str


@dataclass
class Answer:
    """What the sandbox sent back for one call."""

    value: Any = None
    raised: str | None = None
    """'ValueError: ...' when the call raised."""
    timeout: bool = False
    not_plain: str | None = None
    """The call returned something that is not plain data (a subclass, an object with __eq__...)."""


MAX_LOOP = 100_000
MAX_SIZE = 10_000_000  # elements or digits an operation here may produce from a solution's value
MATH = {name: getattr(math, name) for name in (
    "isclose", "sqrt", "fabs", "floor", "ceil", "pi", "e", "inf", "nan", "isnan", "isinf", "log", "log2",
    "log10", "exp", "factorial", "gcd", "comb", "perm", "prod", "fsum", "sin", "cos", "tan", "hypot")}


def _range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_SIZE:
        raise TestFailed("range(...)", f"a range of {len(r)} items is too large to check")
    return r


SAFE_BUILTINS: dict[str, Callable] = {
    "abs": abs, "all": all, "any": any, "bool": bool, "bytes": bytes, "chr": chr, "dict": dict,
    "divmod": divmod, "enumerate": enumerate, "float": float, "frozenset": frozenset, "int": int,
    "isinstance": isinstance, "len": len, "list": list, "max": max, "min": min, "ord": ord,
    "range": _range, "repr": repr, "reversed": reversed, "round": round, "set": set, "sorted": sorted,
    "str": str, "sum": sum, "tuple": tuple, "type": type, "zip": zip,
    "print": lambda *args, **kwargs: None,  # a test's debugging output is not part of the check
}
SAFE_METHODS = {"lower", "upper", "strip", "lstrip", "rstrip", "split", "splitlines", "join", "startswith",
                "endswith", "replace", "count", "index", "find", "keys", "values", "items", "get",
                "isdigit", "isalpha", "copy"}
PLAIN_TYPES = (str, bytes, list, tuple, dict, set, frozenset)
MODULES = {"math": MATH}


class _Module(dict):
    pass


def _guarded_binop(op: ast.operator, left: Any, right: Any) -> Any:
    """Arithmetic that a solution's value cannot turn into a hang or a memory bomb here."""
    if isinstance(op, ast.Pow) and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 \
            and right * max(1, abs(left).bit_length()) > MAX_SIZE * 4:
        raise TestFailed("**", "an exponent too large to check")
    if isinstance(op, ast.LShift) and isinstance(right, int) and right > MAX_SIZE * 4:
        raise TestFailed("<<", "a shift too large to check")
    if isinstance(op, ast.Mult):
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(times, int) \
                    and len(seq) * times > MAX_SIZE:
                raise TestFailed("*", "a repetition too large to check")
    return BINOPS[type(op)](left, right)


BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
          ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitOr: operator.or_,
          ast.BitAnd: operator.and_, ast.BitXor: operator.xor}
UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg, ast.Not: operator.not_, ast.Invert: operator.invert}
COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
           ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}


@dataclass
class TestRun:
    """One pass over the test code. `answers` None: the first pass (list the calls)."""

    answers: list[Answer] | None = None
    calls: list[Call] = field(default_factory=list)
    where: str = ""

    # ------------------------------------------------------------ statements

    def run_statements(self, statements: list[ast.stmt], env: dict) -> None:
        for statement in statements:
            self.run_statement(statement, env)

    def run_statement(self, node: ast.stmt, env: dict) -> None:
        if isinstance(node, ast.Assert):
            self.where = _clip(ast.unparse(node))
            first_call = len(self.calls)
            value = self.eval(node.test, env)
            if self.answers is not None and not _truth(value, self.where):
                returned = "; ".join(f"{call.name}(…) returned {_clip(repr(answer.value), 80)}" for call, answer
                                     in zip(self.calls[first_call:], self.answers[first_call:]))
                raise TestFailed(self.where, "AssertionError", f" ({returned})" if returned else "")
        elif isinstance(node, ast.Assign):
            value = self.eval(node.value, env)
            for target in node.targets:
                self.bind(target, value, env)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            current = self.eval(node.target, env)
            value = self.eval(node.value, env)
            env[node.target.id] = UNKNOWN if UNKNOWN in (current, value) else \
                _guarded_binop(node.op, current, value)
        elif isinstance(node, ast.Expr):
            if not isinstance(node.value, ast.Constant):  # a docstring does nothing
                self.where = _clip(ast.unparse(node))
                self.eval(node.value, env)
        elif isinstance(node, ast.For) and not node.orelse:
            iterable = self.known(self.eval(node.iter, env), "a loop over a solution's result")
            for count, item in enumerate(iterable):
                if count >= MAX_LOOP:
                    raise Undecomposable(f"a loop of more than {MAX_LOOP} rounds")
                self.bind(node.target, item, env)
                self.run_statements(node.body, env)
        elif isinstance(node, ast.If):
            test = self.known(self.eval(node.test, env), "a branch on a solution's result")
            self.run_statements(node.body if test else node.orelse, env)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self.run_import(node, env)
        elif not isinstance(node, ast.Pass):
            raise Undecomposable(f"line {node.lineno}: `{_clip(ast.unparse(node), 60)}` "
                                 f"({type(node).__name__} statements are not supported)")

    def run_import(self, node: ast.Import | ast.ImportFrom, env: dict) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in MODULES:
                    raise Undecomposable(f"line {node.lineno}: `import {alias.name}`")
                env[alias.asname or alias.name] = _Module(MODULES[alias.name])
            return
        module = MODULES.get(node.module or "")
        for alias in node.names:
            if module is None or alias.name not in module:
                raise Undecomposable(f"line {node.lineno}: `from {node.module} import {alias.name}`")
            env[alias.asname or alias.name] = module[alias.name]

    def bind(self, target: ast.expr, value: Any, env: dict) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            items = list(self.known(value, "unpacking a solution's result"))
            if len(items) != len(target.elts):
                raise TestFailed(self.where, f"cannot unpack {len(items)} values into {len(target.elts)}")
            for element, item in zip(target.elts, items):
                self.bind(element, item, env)
        else:
            raise Undecomposable(f"assignment to `{ast.unparse(target)}`")

    # ------------------------------------------------------------ expressions

    def known(self, value: Any, what: str) -> Any:
        if value is UNKNOWN:
            raise Undecomposable(what)
        return value

    def eval(self, node: ast.expr, env: dict) -> Any:
        method = getattr(self, f"eval_{type(node).__name__}", None)
        if method is None:
            raise Undecomposable(f"`{_clip(ast.unparse(node), 60)}` ({type(node).__name__} is not supported)")
        return method(node, env)

    def eval_Constant(self, node: ast.Constant, env: dict) -> Any:
        return node.value

    def eval_Name(self, node: ast.Name, env: dict) -> Any:
        value = self.callee(node, env)
        if isinstance(value, SolutionFunction):
            raise Undecomposable(f"`{node.id}` is used other than by calling it")
        return value

    def callee(self, node: ast.Name, env: dict) -> Any:
        if node.id in env:
            return env[node.id]
        if node.id in SAFE_BUILTINS:
            return SAFE_BUILTINS[node.id]
        if node.id in MODULES:  # imported by the prompt or the setup, not by the test itself
            return _Module(MODULES[node.id])
        if hasattr(builtins, node.id):
            raise Undecomposable(f"the builtin `{node.id}` is not supported")
        return SolutionFunction(node.id)  # defined by the solution (or the task's setup)

    def elements(self, nodes: list[ast.expr], env: dict) -> list:
        values = []
        for node in nodes:
            if isinstance(node, ast.Starred):
                values.extend(self.known(self.eval(node.value, env), "unpacking a solution's result"))
            else:
                values.append(self.eval(node, env))
        return values

    # a container holding an unknown value is unknown as a whole (first pass)
    def eval_List(self, node: ast.List, env: dict) -> Any:
        values = self.elements(node.elts, env)
        return UNKNOWN if UNKNOWN in values else values

    def eval_Tuple(self, node: ast.Tuple, env: dict) -> Any:
        values = self.elements(node.elts, env)
        return UNKNOWN if UNKNOWN in values else tuple(values)

    def eval_Set(self, node: ast.Set, env: dict) -> Any:
        values = self.elements(node.elts, env)
        return UNKNOWN if UNKNOWN in values else set(values)

    def eval_Dict(self, node: ast.Dict, env: dict) -> Any:
        if None in node.keys:
            raise Undecomposable("`**` in a dict display")
        keys, values = self.elements(node.keys, env), self.elements(node.values, env)
        return UNKNOWN if UNKNOWN in keys else dict(zip(keys, values))

    def eval_UnaryOp(self, node: ast.UnaryOp, env: dict) -> Any:
        operand = self.eval(node.operand, env)
        return UNKNOWN if operand is UNKNOWN else UNARY[type(node.op)](operand)

    def eval_BinOp(self, node: ast.BinOp, env: dict) -> Any:
        left, right = self.eval(node.left, env), self.eval(node.right, env)
        return UNKNOWN if UNKNOWN in (left, right) else _guarded_binop(node.op, left, right)

    def eval_BoolOp(self, node: ast.BoolOp, env: dict) -> Any:
        value = None
        for index, operand in enumerate(node.values):
            value = self.eval(operand, env)
            if value is UNKNOWN:
                # the rest may or may not run once the value is known: they must make no call
                if any(_calls_anything(rest) for rest in node.values[index + 1:]):
                    raise Undecomposable(f"`{_clip(ast.unparse(node), 60)}` calls on after a solution's result")
                return UNKNOWN
            if _truth(value, self.where) == isinstance(node.op, ast.Or):
                return value
        return value

    def eval_IfExp(self, node: ast.IfExp, env: dict) -> Any:
        test = self.eval(node.test, env)
        if test is UNKNOWN:
            if _calls_anything(node.body) or _calls_anything(node.orelse):
                raise Undecomposable(f"`{_clip(ast.unparse(node), 60)}` branches on a solution's result")
            return UNKNOWN
        return self.eval(node.body if _truth(test, self.where) else node.orelse, env)

    def eval_Compare(self, node: ast.Compare, env: dict) -> Any:
        values = [self.eval(node.left, env), *(self.eval(c, env) for c in node.comparators)]
        if UNKNOWN in values:
            return UNKNOWN
        return all(_truth(COMPARE[type(op)](a, b), self.where)
                   for op, a, b in zip(node.ops, values, values[1:]))

    def eval_Subscript(self, node: ast.Subscript, env: dict) -> Any:
        value, index = self.eval(node.value, env), self.eval(node.slice, env)
        return UNKNOWN if UNKNOWN in (value, index) else value[index]

    def eval_Slice(self, node: ast.Slice, env: dict) -> Any:
        parts = [None if part is None else self.eval(part, env) for part in (node.lower, node.upper, node.step)]
        return UNKNOWN if UNKNOWN in parts else slice(*parts)

    def eval_Attribute(self, node: ast.Attribute, env: dict) -> Any:
        value = self.eval(node.value, env)
        if isinstance(value, _Module) and node.attr in value:
            return value[node.attr]
        if value is UNKNOWN:
            return UNKNOWN if node.attr in SAFE_METHODS else self.known(value, f"`.{node.attr}` of a result")
        if type(value) in PLAIN_TYPES and node.attr in SAFE_METHODS:
            return getattr(value, node.attr)
        raise Undecomposable(f"`{_clip(ast.unparse(node), 60)}`")

    def eval_ListComp(self, node: ast.ListComp, env: dict) -> Any:
        return self.comprehension(node, env, list)

    def eval_GeneratorExp(self, node: ast.GeneratorExp, env: dict) -> Any:
        return self.comprehension(node, env, list)  # eager: both passes make the same calls

    def eval_SetComp(self, node: ast.SetComp, env: dict) -> Any:
        return self.comprehension(node, env, set)

    def comprehension(self, node: ast.ListComp | ast.GeneratorExp | ast.SetComp, env: dict, kind: type) -> Any:
        if len(node.generators) != 1 or node.generators[0].is_async:
            raise Undecomposable(f"`{_clip(ast.unparse(node), 60)}` (nested comprehension)")
        generator = node.generators[0]
        iterable = self.known(self.eval(generator.iter, env), "a loop over a solution's result")
        scope = dict(env)
        values = []
        for count, item in enumerate(iterable):
            if count >= MAX_LOOP:
                raise Undecomposable(f"a comprehension of more than {MAX_LOOP} items")
            self.bind(generator.target, item, scope)
            conditions = [self.known(self.eval(c, scope), "a condition on a solution's result")
                          for c in generator.ifs]
            if all(conditions):
                values.append(self.eval(node.elt, scope))
        if UNKNOWN in values:
            return UNKNOWN
        return kind(values)

    def eval_Call(self, node: ast.Call, env: dict) -> Any:
        function = self.callee(node.func, env) if isinstance(node.func, ast.Name) else self.eval(node.func, env)
        args = self.elements(node.args, env)
        kwargs = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                raise Undecomposable("`**` in a call")
            kwargs[keyword.arg] = self.eval(keyword.value, env)
        if isinstance(function, SolutionFunction):
            return self.call_solution(function, args, kwargs, node)
        if function is UNKNOWN:
            return UNKNOWN
        if UNKNOWN in args or UNKNOWN in kwargs.values():
            return UNKNOWN
        return function(*args, **kwargs)

    def call_solution(self, function: SolutionFunction, args: list, kwargs: dict, node: ast.Call) -> Any:
        if UNKNOWN in args or UNKNOWN in kwargs.values():
            raise Undecomposable(f"`{_clip(ast.unparse(node), 60)}`: an argument is another call's result")
        for value in (*args, *kwargs.values()):
            try:
                encode(value)
            except NotPlain as exc:
                raise Undecomposable(f"`{_clip(ast.unparse(node), 60)}`: an argument is not plain data ({exc})") from None
        index = len(self.calls)
        self.calls.append(Call(function.name, args, kwargs, self.where))
        if self.answers is None:
            return UNKNOWN
        if index >= len(self.answers):
            raise MissingResult(index)
        answer = self.answers[index]
        call = _clip(ast.unparse(node), 60)
        if answer.timeout:
            raise TestFailed(self.where, f"timeout: {call} ran past the per-test limit")
        if answer.raised is not None:
            raise TestFailed(self.where, f"{call} raised {_clip(answer.raised)}")
        if answer.not_plain is not None:
            raise TestFailed(self.where, f"{call} returned {answer.not_plain}, which is not plain data")
        return answer.value


def _truth(value: Any, where: str) -> bool:
    """bool() of a value made here from plain data (never of an object the solution made)."""
    return bool(value)


def _calls_anything(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) for n in ast.walk(node))


def _clip(text: str, size: int = 120) -> str:
    return text if len(text) <= size else text[:size] + "…"


def parse_tests(tests: list[str]) -> list[ast.stmt]:
    """An assert list (MBPP) as statements; a test that does not parse is a reference problem."""
    statements: list[ast.stmt] = []
    for i, test in enumerate(tests):
        try:
            statements += ast.parse(test).body
        except SyntaxError as exc:
            raise ValueError(f"tests[{i}] is not Python: {exc.msg}") from None
    return statements


def humaneval_check(test: str, entry_point: str) -> tuple[list[ast.stmt], list[ast.stmt], dict]:
    """(module statements, check's body, the env check runs in) of a HumanEval `test`."""
    try:
        module = ast.parse(test)
    except SyntaxError as exc:
        raise ValueError(f"'test' is not Python: {exc.msg}") from None
    checks = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if len(checks) != 1 or len(checks[0].args.args) != 1:
        raise ValueError("'test' must define check(candidate) once")
    rest = [n for n in module.body if n is not checks[0]]
    parameter = checks[0].args.args[0].arg
    return rest, checks[0].body, {parameter: SolutionFunction(entry_point)}


def plan_calls(run: Callable[[TestRun], None]) -> list[Call]:
    """The calls the tests make (first pass), or Undecomposable."""
    first = TestRun()
    try:
        run(first)
    except TestFailed as exc:  # the test code fails on its own, before any result is known
        raise Undecomposable(f"the test code fails by itself: {exc}") from None
    except Undecomposable:
        raise
    except Exception as exc:
        raise Undecomposable(f"the test code fails by itself: {type(exc).__name__}: {exc}") from None
    return first.calls


def check_answers(run: Callable[[TestRun], None], answers: list[Answer]) -> None:
    """Second pass: raise TestFailed (or MissingResult) unless every assert holds on `answers`."""
    second = TestRun(answers=answers)
    try:
        run(second)
    except (TestFailed, MissingResult, Undecomposable):
        raise
    except Exception as exc:  # the test's own code on a result, e.g. a str + an int
        raise TestFailed(second.where, f"{type(exc).__name__}: {_clip(str(exc))}") from None
