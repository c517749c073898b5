"""The code sandbox: run model-written code against tests, isolated from the machine that grades it.

    from distill.sandbox import SandboxLimits, grade_code

    verdict, reason = grade_code(completion, {"tests": ["assert add(1, 2) == 3"]})

The verdict is decided here, never in the process that runs the code: the tests are interpreted
on this side (`testplan`), the sandboxed program only answers the calls of the solution with plain
values (`plain`), and stdio output is compared here.

Each run gets a fresh directory (its cwd, HOME and /tmp: a sized tmpfs), a minimal environment, closed stdin,
resource limits, a uid of its own, new network/PID/mount namespaces where the kernel allows them, a
seccomp filter on sockets and a wall-clock timeout that kills every process it started. Where the
kernel refuses a layer the run falls back and a warning says what is missing (README, "Code sandbox").
"""

from distill.sandbox.extract import extract_code
from distill.sandbox.grading import FORMATS, code_format, grade_code
from distill.sandbox.limits import SandboxLimits
from distill.sandbox.pool import SandboxPool
from distill.sandbox.runner import Isolation, SandboxResult, run_sandboxed

__all__ = ["FORMATS", "Isolation", "SandboxLimits", "SandboxPool", "SandboxResult", "code_format",
           "extract_code", "grade_code", "run_sandboxed"]
