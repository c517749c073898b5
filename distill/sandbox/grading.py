"""Grade a model's code answer against a code reference, in the sandbox.

Three reference formats (`format` may be left out; it is then inferred from the keys):

    humaneval  {"prompt": "def f(x):\\n    \\"\\"\\"...\\"\\"\\"\\n", "test": "def check(candidate): ...",
                "entry_point": "f"}
    assert     {"tests": ["assert f(1) == 2", ...], "setup": "import math"}        (MBPP)
    stdio      {"tests": [{"input": "1 2\\n", "output": "3\\n"}, ...]}           (competitive programming)

A verdict is (True, "") when every test passes, (False, why) when the code fails a test, errors,
or hits a limit, and (None, why) when it cannot be told: no code in the answer, a reference that is
not a code task, or a sandbox that cannot run code here.
"""

from __future__ import annotations

import ast
import itertools
import secrets
import textwrap

from distill.sandbox.extract import extract_code
from distill.sandbox.limits import SandboxLimits
from distill.sandbox.runner import SandboxResult, run_sandboxed

FORMATS = ("humaneval", "assert", "stdio")
Verdict = tuple[bool | None, str]

# The code and its tests run in one namespace whose __name__ is not "__main__", as in HumanEval's
# and MBPP's own harnesses: a solution's `if __name__ == "__main__":` demo (which may read stdin)
# does not run. The marker printed after the tests tells "all tests ran" from "the solution called
# exit(0) before the tests" — which would otherwise pass.
# The traceback is printed by the traceback module, which (unlike the interpreter's own printer)
# reads the solution's lines from linecache, so a failure names the failing assert.
_HARNESS = """\
import linecache, sys, traceback
source = {source!r}
linecache.cache["<solution>"] = (len(source), None, source.splitlines(True), "<solution>")
try:
    exec(compile(source, "<solution>", "exec"), {{"__name__": "solution", "__builtins__": __builtins__}})
except Exception:
    traceback.print_exc()
    sys.exit(1)
print({marker!r})
"""


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
    try:
        if task_format == "stdio":
            return grade_stdio(code, stdio_tests(reference), limits)
        if task_format == "humaneval":
            return grade_with_harness(humaneval_source(code, reference), limits)
        return grade_with_harness(assert_source(code, reference), limits)
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
    """The prompt, the completion and `check(entry_point)` as one program.

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
    return f"{solution}\n\n{test}\n\ncheck({entry_point})\n"


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
    tests = reference.get("tests")
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        raise ReferenceProblem("'tests' must be a list of assert statements")
    setup = _text(reference, "setup", required=False)
    return "\n\n".join([setup, code, "\n".join(tests)]) + "\n"


def grade_with_harness(source: str, limits: SandboxLimits | None) -> Verdict:
    marker = f"distill-tests-passed-{secrets.token_hex(8)}"
    result = run_sandboxed(_HARNESS.format(source=source, marker=marker), limits=limits)
    if result.status == "error":
        return None, f"sandbox error: {result.detail}"
    if result.status != "ok":
        return False, describe_failure(result)
    if result.stdout.rstrip().rsplit("\n", 1)[-1] != marker:
        return False, "the program exited before all tests ran (exit() in the solution?)"
    return True, ""


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


def grade_stdio(code: str, tests: list[tuple[str, str]], limits: SandboxLimits | None) -> Verdict:
    """One sandboxed run per test (each gets the full limits); stops at the first failure."""
    for i, (given, expected) in enumerate(tests, 1):
        result = run_sandboxed(code, stdin=given, limits=limits)
        where = f"test {i} of {len(tests)}"
        if result.status == "error":
            return None, f"sandbox error: {result.detail}"
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
