"""Grade a model's code answer against a code reference, in the sandbox.

Three reference formats (`format` may be left out; it is then inferred from the keys):

    humaneval  {"prompt": "def f(x):\\n    \\"\\"\\"...\\"\\"\\"\\n", "test": "def check(candidate): ...",
                "entry_point": "f"}
    assert     {"tests": ["assert f(1) == 2", ...], "setup": "import math"}        (MBPP)
    stdio      {"tests": [{"input": "1 2\\n", "output": "3\\n"}, ...]}           (competitive programming)

A verdict is (True, "") when every test passes, (False, why) when the code fails a test, errors,
or hits a limit (a timeout included), and (None, why) when it cannot be told: no code in the answer,
a reference that is not a code task, tests the trusted side cannot run by itself (`testplan`), or a
sandbox that cannot run code here. The tests never enter the sandboxed process (README, "Code
sandbox", threat model).
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import math
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from distill.sandbox import plain
from distill.sandbox.extract import extract_code
from distill.sandbox.limits import SandboxLimits
from distill.sandbox.runner import SandboxResult, run_sandboxed
from distill.sandbox.testplan import (
    Answer,
    MissingResult,
    TestFailed,
    TestRun,
    Undecomposable,
    check_answers,
    humaneval_check,
    parse_tests,
    plan_calls,
)

FORMATS = ("humaneval", "assert", "stdio")
Verdict = tuple[bool | None, str]

# The program in the sandbox: the solution (never the tests), then each call the trusted side sent
# on stdin, answered one line per call on stdout. It runs as a module whose __name__ is not
# "__main__", as in HumanEval's and MBPP's own harnesses, so a solution's `if __name__ ==
# "__main__":` demo does not run. Everything it writes is untrusted: a line is only a value the
# solution chose to return, and what is compared with it never enters this process.
_CALL_HARNESS = """\
{plain}
import signal, traceback


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _main():
    answers = os.fdopen(os.dup(1), "w", encoding="ascii")
    os.dup2(2, 1)  # the solution's own prints go to stderr, not between the answers
    sys.stdout = sys.stderr
    calls = [decode(line) for line in sys.stdin.read().splitlines()]
    namespace = {{"__name__": "solution", "__builtins__": __builtins__}}
    try:
        exec(compile({source!r}, "<solution>", "exec"), namespace)
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
    signal.signal(signal.SIGALRM, _alarm)
    for name, args, kwargs in calls:
        try:
            signal.setitimer(signal.ITIMER_REAL, {per_test!r})
            if name not in namespace:
                raise NameError(f"name {{name!r}} is not defined")
            value = namespace[name](*args, **kwargs)
            signal.setitimer(signal.ITIMER_REAL, 0)
            try:
                line = encode(("value", value))
            except NotPlain as exc:
                line = encode(("not_plain", str(exc)))
        except _Timeout:
            line = encode(("timeout", None))
        except BaseException as exc:
            signal.setitimer(signal.ITIMER_REAL, 0)
            line = encode(("raised", f"{{type(exc).__name__}}: {{exc}}"[:300]))
        answers.write(line + "\\n")
        answers.flush()
        if line.startswith('{{"tuple":["timeout"'):
            break  # that test failed: the rest need not run


import os, sys
_main()
"""
_PLAIN_SOURCE = Path(plain.__file__).read_text(encoding="utf-8")


class ReferenceProblem(ValueError):
    """The reference is not a usable code task (a data problem: the verdict is None)."""


def grade_code(answer: str, reference: dict, limits: SandboxLimits | None = None) -> Verdict:
    """Run the answer's final code block against `reference`'s tests in the sandbox."""
    try:
        task_format = code_format(reference)
    except ReferenceProblem as exc:
        return None, f"reference is not a code task: {exc}"
    code = extract_code(answer)
    if code is None:
        return None, "no code block in the answer"
    limits = limits or SandboxLimits()
    try:
        if task_format == "stdio":
            return grade_stdio(code, stdio_tests(reference), limits)
        if task_format == "humaneval":
            return grade_calls(humaneval_source(code, reference), humaneval_tests(reference), limits)
        return grade_calls(assert_source(code, reference), assert_tests(reference), limits)
    except ReferenceProblem as exc:
        return None, f"reference is not a code task: {exc}"


def code_format(reference: dict) -> str:
    """The reference's format: its `format` key, else inferred from its keys."""
    if not isinstance(reference, dict):
        raise ReferenceProblem(f"expected an object with tests, got {type(reference).__name__}")
    declared = reference.get("format")
    if declared is not None:
        if declared not in FORMATS:
            raise ReferenceProblem(f"unknown format {declared!r}; use one of {', '.join(FORMATS)}")
        return declared
    tests = reference.get("tests")
    if "entry_point" in reference and ("test" in reference or isinstance(tests, str)):
        return "humaneval"
    if isinstance(tests, list) and tests and all(isinstance(t, str) for t in tests):
        return "assert"
    if isinstance(tests, list) and tests and all(isinstance(t, dict) and "input" in t for t in tests):
        return "stdio"
    raise ReferenceProblem("cannot tell its format: give 'format' (humaneval, assert or stdio), or "
                           "'test' + 'entry_point', or 'tests' as a list of asserts or of {input, output}")


def _text(reference: dict, key: str, *, required: bool = True) -> str:
    value = reference.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ReferenceProblem(f"'{key}' must be a string, got {type(value).__name__}")
    return value


def humaneval_source(code: str, reference: dict) -> str:
    """The prompt and the completion as one program (the test is never part of it).

    A completion that defines the entry point is a whole function: it comes after the prompt (whose
    imports and helpers it may use) and replaces the prompt's stub. Anything else continues the
    prompt as the function's body, indented if the model wrote it flush left."""
    prompt = _text(reference, "prompt", required=False)
    test = reference["test"] if "test" in reference else reference.get("tests")
    if not isinstance(test, str):
        raise ReferenceProblem("'test' must be a string defining check(candidate)")
    entry_point = _text(reference, "entry_point")
    if not entry_point.isidentifier():
        raise ReferenceProblem(f"'entry_point' must be a function name, got {entry_point!r}")
    if defines_function(code, entry_point):
        solution = "\n".join([_as_preamble(prompt), code])
    else:
        first_line = next((line for line in code.splitlines() if line.strip()), "")
        body = code if first_line[:1] in (" ", "\t") else textwrap.indent(code, "    ")
        solution = prompt if prompt.endswith("\n") or not prompt else prompt + "\n"
        solution += body
    return solution + "\n"


def humaneval_tests(reference: dict) -> Callable[[TestRun], None]:
    """HumanEval's `test` (module statements, then check's body with candidate = the entry point)."""
    test = reference["test"] if "test" in reference else reference.get("tests")
    try:
        module, check, env = humaneval_check(test, reference["entry_point"])
    except ValueError as exc:
        raise ReferenceProblem(str(exc)) from None

    def run(tests: TestRun) -> None:
        scope: dict = {}
        tests.run_statements(module, scope)
        tests.run_statements(check, {**scope, **env})

    return run


def _as_preamble(prompt: str) -> str:
    """The prompt as code that compiles on its own (a bare signature gets a `pass` body)."""
    for candidate in (prompt, prompt.rstrip() + "\n    pass\n"):
        try:
            ast.parse(candidate)
            return candidate
        except SyntaxError:
            continue
    return ""


def defines_function(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
               for node in tree.body)


def assert_source(code: str, reference: dict) -> str:
    """The task's setup and the solution (the asserts are never part of it)."""
    return "\n\n".join([_text(reference, "setup", required=False), code]) + "\n"


def assert_tests(reference: dict) -> Callable[[TestRun], None]:
    tests = reference.get("tests")
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        raise ReferenceProblem("'tests' must be a list of assert statements")
    try:
        statements = parse_tests(tests)
    except ValueError as exc:
        raise ReferenceProblem(str(exc)) from None
    return lambda run: run.run_statements(statements, {})


def grade_calls(source: str, tests: Callable[[TestRun], None], limits: SandboxLimits) -> Verdict:
    """Run the tests here; the sandbox only answers the calls of the solution's functions.

    Each call has `wall_seconds` (an alarm in the sandboxed process: a solution that turns it off
    only meets the run's own limit) and the run as a whole min(total_seconds, wall_seconds per call
    plus one for start-up), enforced from outside."""
    try:
        calls = plan_calls(tests)
    except Undecomposable as exc:
        return None, f"the tests cannot be checked outside the solution's process: {exc}"
    if not calls:
        return None, "the tests call no function of the solution"
    budget = limits.wall_seconds * (len(calls) + 1)
    timeout = min(limits.total_seconds, budget)
    program = _CALL_HARNESS.format(plain=_PLAIN_SOURCE, source=source, per_test=limits.wall_seconds)
    stdin = "".join(plain.encode((call.name, call.args, call.kwargs)) + "\n" for call in calls)
    # RLIMIT_CPU is per process: one process answers every call, so it gets the run's whole budget
    run_limits = dataclasses.replace(limits, cpu_seconds=max(limits.cpu_seconds, math.ceil(timeout)))
    result = run_sandboxed(program, stdin=stdin, limits=run_limits, timeout=timeout)
    if result.status == "error":
        return None, f"sandbox error: {result.detail}"
    try:
        check_answers(tests, read_answers(result.stdout))
    except TestFailed as exc:
        return False, f"failed: {exc}"
    except MissingResult as exc:
        where = f"test {exc.index + 1} of {len(calls)} (`{calls[exc.index].where}`)"
        if result.status == "timeout" and result.detail.startswith("wall-clock"):
            which = (f"the total cap of {timeout:g} s" if timeout < budget else
                     f"the per-test limit of {limits.wall_seconds:g} s")
            return False, f"timeout: {where} did not finish within {which}"
        if result.ok:
            return False, f"the program exited before all tests ran, at {where} (exit() in the solution?)"
        return False, describe_failure(result)
    except Undecomposable as exc:
        return None, f"the tests cannot be checked outside the solution's process: {exc}"
    if not result.ok:
        return False, describe_failure(result)
    return True, ""


def read_answers(stdout: str) -> list[Answer]:
    """The sandbox's answers, one line per call, decoded strictly; a line that is not one ends them."""
    answers = []
    for line in stdout.splitlines():
        try:
            kind, body = plain.decode(line)
        except (plain.NotPlain, TypeError, ValueError):
            break
        if kind == "value":
            answers.append(Answer(value=body))
        elif kind == "timeout":
            answers.append(Answer(timeout=True))
        elif kind == "raised" and type(body) is str:
            answers.append(Answer(raised=body))
        elif kind == "not_plain" and type(body) is str:
            answers.append(Answer(not_plain=_clip(body)))
        else:
            break
    return answers


def stdio_tests(reference: dict) -> list[tuple[str, str]]:
    tests = reference.get("tests")
    if not isinstance(tests, list) or not tests:
        raise ReferenceProblem("'tests' must be a non-empty list of {input, output}")
    pairs = []
    for i, test in enumerate(tests):
        if not (isinstance(test, dict) and isinstance(test.get("input"), str)
                and isinstance(test.get("output"), str)):
            raise ReferenceProblem(f"tests[{i}] must be {{\"input\": str, \"output\": str}}")
        pairs.append((test["input"], test["output"]))
    return pairs


def grade_stdio(code: str, tests: list[tuple[str, str]], limits: SandboxLimits) -> Verdict:
    """One sandboxed run per test, each with `wall_seconds`, all within `total_seconds`; stops at the
    first failure. This side reads the output and compares it."""
    deadline = time.monotonic() + limits.total_seconds
    for i, (given, expected) in enumerate(tests, 1):
        where = f"test {i} of {len(tests)}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, f"{where}: timeout: the total cap of {limits.total_seconds:g} s ran out"
        timeout = min(limits.wall_seconds, remaining)
        result = run_sandboxed(code, stdin=given, limits=limits, timeout=timeout)
        if result.status == "error":
            return None, f"sandbox error: {result.detail}"
        if result.status == "timeout" and result.detail.startswith("wall-clock"):
            which = (f"the per-test limit of {limits.wall_seconds:g} s" if timeout == limits.wall_seconds
                     else f"the total cap of {limits.total_seconds:g} s")
            return False, f"{where}: timeout: {which}"
        if result.status != "ok":
            return False, f"{where}: {describe_failure(result)}"
        if not same_output(result.stdout, expected):
            return False, f"{where}: expected {_clip(expected)!r}, got {_clip(result.stdout)!r}"
    return True, ""


def normalize_output(text: str) -> list[list[str]]:
    """Lines of whitespace-separated tokens: spacing, trailing spaces and blank end lines do not count."""
    return [line.split() for line in text.strip().splitlines()]


def same_output(actual: str, expected: str) -> bool:
    return normalize_output(actual) == normalize_output(expected)


def describe_failure(result: SandboxResult) -> str:
    """One line: the status and, for an exception, its last line and the failing line of code."""
    if result.status != "failed":
        return f"{result.status}: {result.detail}"
    return f"failed: {error_summary(result.stderr) or result.detail}"


def error_summary(stderr: str) -> str:
    """'AssertionError at `assert f(2) == 4`' from a traceback (the innermost line of the solution)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    exception = lines[-1].strip()
    code_line = ""
    for previous, line in itertools.pairwise(lines):
        if previous.lstrip().startswith('File "<solution>"') and not line.lstrip().startswith("File "):
            code_line = line.strip()
    summary = f"{exception} at `{code_line}`" if code_line else exception
    return _clip(summary, 300)


def _clip(text: str, size: int = 120) -> str:
    return text if len(text) <= size else text[:size] + "…"
