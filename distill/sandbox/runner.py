"""Run one untrusted Python program in the sandbox and report what happened.

The isolation itself is done by `_launcher.py`, a separate process (see its docstring for the
process tree); this module prepares the run (a fresh work directory, the run's own uid, the
interpreter), collects capped output, turns the launcher's reports into a `SandboxResult`, cleans
up, and says loudly — once per process — which isolation layer the kernel refused here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from distill.sandbox.limits import SandboxLimits

logger = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("_launcher.py")
LAYERS = ("user", "network", "pid", "mount", "ipc", "uts", "seccomp")
# The code's whole environment: no token, key or proxy setting of the caller's reaches it. glibc
# reserves 64 MiB of address space per thread arena, which under RLIMIT_AS would let a program with
# a dozen threads fail at a fraction of its memory limit; two arenas are plenty.
PROGRAM_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "MALLOC_ARENA_MAX": "2"}
# Each run gets a uid of its own from this range (no /etc/passwd entry needed): far above real and
# container sub-uids, and below 2**31 for tools that read uids as signed. A uid shared between runs
# (say `nobody`) would share one RLIMIT_NPROC budget and let one run kill another's processes.
UID_BASE, UID_SPAN = 2_100_000_000, 40_000_000
SHARED_WRITABLE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
# Time the launcher gets past the wall-clock limit to kill, clean up and report before it is
# itself killed from here.
BACKSTOP_SECONDS = 10.0
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT}
READY = "distill-sandbox-ready"


@dataclass(frozen=True)
class Isolation:
    """Which isolation layers held for a run (the kernel may refuse some; see `problems`)."""

    uid: int | None = None
    """The run's own uid, or None when the code ran with the caller's."""
    uid_switch: bool = False
    user_namespace: bool = False
    network_namespace: bool = False
    pid_namespace: bool = False
    mount_namespace: bool = False
    private_tmp: bool = False
    tmp_cap: bool = False
    """The code's /tmp and cwd are a tmpfs of max_disk_mb (a cap on all it writes)."""
    read_only: str = ""
    """Not root: 'all' (every host mount read-only for the code) or 'home' (your home only); '' as root."""
    private_proc: bool = False
    seccomp: bool = False
    refused: dict[str, str] = field(default_factory=dict)
    """Namespace -> the kernel's error, for each one it refused."""

    @classmethod
    def from_report(cls, layers: dict, uid: int | None) -> Isolation:
        refused = {key.removesuffix("_error"): value for key, value in layers.items() if key.endswith("_error")}
        return cls(uid=uid if layers.get("uid") else None, uid_switch=bool(layers.get("uid")),
                   user_namespace=bool(layers.get("user")), network_namespace=bool(layers.get("network")),
                   pid_namespace=bool(layers.get("pid")), mount_namespace=bool(layers.get("mount")),
                   private_tmp=bool(layers.get("private_tmp")), tmp_cap=bool(layers.get("tmp_cap")),
                   read_only=layers.get("read_only") or "", private_proc=bool(layers.get("private_proc")),
                   seccomp=bool(layers.get("seccomp")), refused=refused)

    @property
    def network_cut(self) -> bool:
        return self.network_namespace or self.seccomp

    def problems(self) -> list[str]:
        """One sentence per missing layer: what the code can do here that it could not elsewhere."""
        def why(name: str) -> str:
            return f" ({self.refused[name]})" if name in self.refused else ""

        problems = []
        if not self.network_cut:
            problems.append("THE NETWORK IS NOT CUT: the kernel refused a network namespace"
                            f"{why('network')} and the seccomp filter, so model-written code can open "
                            "connections")
        elif not self.network_namespace:
            problems.append(f"no network namespace{why('network')}: the network is cut only by a seccomp "
                            "filter on socket() (Unix sockets stay open)")
        if os.geteuid() == 0 and not self.uid_switch:
            problems.append("the switch to an unprivileged uid failed, so code is refused (run as root "
                            "it would escape the process limit and could write every file)")
        elif os.geteuid() != 0 and self.read_only != "all":
            problems.append("as a non-root user the code runs with your uid: it can read your files (not "
                            "your environment); your home is read-only for it but other directories you "
                            "can write are not (the kernel lacks mount_setattr)" if self.read_only else
                            "as a non-root user the code runs with your uid: it can read your files (not "
                            "your environment), but every mount is read-only for it")
        if not self.pid_namespace and not self.uid_switch:
            problems.append(f"no PID namespace{why('pid')}: processes are found by descent only, so one "
                            "that escapes its parent could outlive the run")
        if not self.private_proc:
            problems.append("no private /proc: the code can see the host's processes and their command "
                            "lines (never pass secrets as command-line arguments)")
        if self.private_tmp and not self.tmp_cap:
            problems.append("no size cap on /tmp (the kernel refused a tmpfs): the code can fill the "
                            "disk, up to max_file_mb per file")
        if not self.private_tmp:
            problems.append(f"no private /tmp{why('mount')}: files the code leaves in world-writable "
                            "directories are removed after the run" if self.uid_switch else
                            f"no private /tmp{why('mount')}: the code can leave files in /tmp")
        return problems


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed run did."""

    status: str
    """ok | failed (non-zero exit) | timeout (wall clock or CPU) | oom | crashed (SIGSEGV & co.) |
    killed (another signal) | output_limit | error (the sandbox itself could not run the code)."""
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    truncated: bool
    """stdout or stderr was cut at the output cap."""
    duration: float
    """Wall-clock seconds of the whole run, sandbox start-up included."""
    cpu_seconds: float | None = None
    max_rss_mb: float | None = None
    """Peak resident memory of the code's largest process."""
    detail: str = ""
    """A human-readable reason for any status but ok."""
    isolation: Isolation | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_sandboxed(program: str, *, stdin: str = "", limits: SandboxLimits | None = None,
                  timeout: float | None = None) -> SandboxResult:
    """Run the Python source `program` in the sandbox, feeding it `stdin`, for `timeout` seconds of
    wall clock (default: `limits.wall_seconds`).

    Never raises for what the code does: a failure, a limit hit or a sandbox that cannot work here
    all come back as a status. The first run in a process picks the interpreter and logs a warning
    for every isolation layer this machine refuses.
    """
    limits = limits or SandboxLimits()
    interpreter, problem = choose_interpreter(limits)
    if interpreter is None:
        return error_result(problem)
    if timeout is not None:
        limits = dataclasses.replace(limits, wall_seconds=timeout)
    return run_program(program, stdin=stdin, limits=limits, interpreter=interpreter)


def error_result(detail: str, duration: float = 0.0, isolation: Isolation | None = None) -> SandboxResult:
    return SandboxResult(status="error", exit_code=None, signal=None, stdout="", stderr="", truncated=False,
                         duration=duration, detail=detail, isolation=isolation)


_interpreter_lock = threading.Lock()


def choose_interpreter(limits: SandboxLimits) -> tuple[str | None, str]:
    with _interpreter_lock:  # one probe, even when a whole pool starts at once
        return _probe_interpreters(limits.sandbox_python, limits.strict_isolation, os.geteuid())


@functools.cache
def _probe_interpreters(python: str | None, strict: bool, euid: int) -> tuple[str | None, str]:
    """The first candidate interpreter that starts in the sandbox, or (None, why none did).

    A Python installed under a private home (pyenv in /root is 0700) cannot be run by the run's
    unprivileged uid, so the system python3 is tried next; the code sees that interpreter's standard
    library and site-packages, not this virtualenv's."""
    limits = SandboxLimits(strict_isolation=strict)
    failures = []
    for candidate in interpreter_candidates(python):
        result = run_program(f"print({READY!r})", limits=limits, interpreter=candidate)
        if result.ok and result.stdout.strip() == READY:
            logger.debug("code sandbox: running code with %s", candidate)
            warn_about(result.isolation)
            return candidate, ""
        if result.detail.startswith(("strict isolation refused", "refused to run the code")):
            return None, result.detail  # the isolation, not the interpreter: no other one would do
        failures.append(f"{candidate}: {result.detail or result.stderr.strip()[-300:] or result.status}")
    return None, ("the code sandbox cannot start Python here: " + "; ".join(failures)
                  + ". Set sandbox_python to an interpreter every user can run (e.g. /usr/bin/python3)")


def interpreter_candidates(python: str | None) -> list[str]:
    if python is not None:
        return [python]
    paths = [getattr(sys, "_base_executable", None), sys.executable,
             *(os.path.join(d, "python3") for d in ("/usr/local/bin", "/usr/bin", "/bin"))]
    candidates: list[str] = []
    for path in paths:
        if path and os.path.exists(path):
            real = os.path.realpath(path)
            if real not in candidates:
                candidates.append(real)
    return candidates


_warned: set[str] = set()


def warn_about(isolation: Isolation | None) -> None:
    for problem in isolation.problems() if isolation else []:
        if problem not in _warned:
            _warned.add(problem)
            logger.warning("code sandbox: %s. See README.md, 'Code sandbox'.", problem)


_uids_in_use: set[int] = set()
_uid_lock = threading.Lock()


@contextlib.contextmanager
def run_uid() -> Iterator[int | None]:
    """A uid no other run uses, while the run lasts (None when not root: we cannot switch uid)."""
    if os.geteuid() != 0:
        yield None
        return
    with _uid_lock:
        uid = UID_BASE + secrets.randbelow(UID_SPAN)
        while uid in _uids_in_use:
            uid = UID_BASE + secrets.randbelow(UID_SPAN)
        _uids_in_use.add(uid)
    try:
        yield uid
    finally:
        with _uid_lock:
            _uids_in_use.discard(uid)


WORKDIR_PREFIX = "distill-sandbox-"


def homes() -> list[str]:
    """This user's home directories ($HOME and the password entry's), made read-only for code that
    keeps our uid where the kernel cannot make every mount read-only."""
    candidates = [os.path.expanduser("~")]
    with contextlib.suppress(KeyError, ImportError):
        import pwd

        candidates.append(pwd.getpwuid(os.getuid()).pw_dir)
    found: list[str] = []
    for path in candidates:
        real = os.path.realpath(path)
        if real != "/" and os.path.isdir(real) and real not in found:
            found.append(real)
    return found


def _workdir_owner_tag() -> str:
    """'<PID namespace>-<pid>' of this process: a work directory whose owner is dead is stale."""
    namespace = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    return f"{namespace}-{os.getpid()}"


def remove_stale_work_directories() -> None:
    """Remove the work directories of graders that were killed before they could clean up.

    Only directories made in this PID namespace by a process that no longer exists are touched;
    another live grader's (or another container's) runs are left alone."""
    namespace = _workdir_owner_tag().split("-")[0]
    parent = tempfile.gettempdir()
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        parts = name[len(WORKDIR_PREFIX):].split("-")
        if (name.startswith(WORKDIR_PREFIX) and len(parts) == 3 and parts[0] == namespace
                and parts[1].isdigit() and not _alive(int(parts[1]))):
            remove_tree(os.path.join(parent, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


@contextlib.contextmanager
def work_directory(uid: int | None) -> Iterator[str]:
    """A fresh directory (the code's cwd, HOME and /tmp), removed with all it holds afterwards."""
    remove_stale_work_directories()
    path = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{_workdir_owner_tag()}-")
    try:
        if uid is not None:
            os.chown(path, uid, uid)
        yield path
    finally:
        remove_tree(path)


def remove_tree(path: str) -> None:
    """Remove a directory the code wrote in. Permissions are only ever changed inside it."""
    root = os.path.abspath(path)

    def make_writable_and_retry(func, failed_path, exc_info):
        if isinstance(exc_info[1], FileNotFoundError):
            return
        # Code running as our own user (no uid switch) may have left a directory without write or
        # search permission; give it back to ourselves and retry.
        parent = os.path.dirname(os.path.abspath(failed_path))
        if parent == root or parent.startswith(root + os.sep):
            with contextlib.suppress(OSError):
                os.chmod(parent, stat.S_IRWXU)
        with contextlib.suppress(FileNotFoundError):
            func(failed_path)

    if os.path.lexists(root):
        shutil.rmtree(root, onerror=make_writable_and_retry)


def remove_files_owned_by(uid: int, roots: tuple[str, ...] = SHARED_WRITABLE_DIRS) -> None:
    """Without a private /tmp the code could leave files in world-writable directories; its uid is
    its own, so everything that uid owns there is exactly what it left."""
    for root in roots:
        try:
            entries = list(os.scandir(root))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_uid == uid:
                if stat.S_ISDIR(info.st_mode):
                    remove_tree(entry.path)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
            elif stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IWOTH:
                remove_files_owned_by(uid, (entry.path,))


@contextlib.contextmanager
def stdin_file(text: str) -> Iterator[int]:
    """The code's stdin: /dev/null, or an unlinked file holding `text` (a pipe could block us)."""
    if not text:
        with open(os.devnull, "rb") as null:
            yield null.fileno()
        return
    with tempfile.TemporaryFile() as f:
        f.write(text.encode("utf-8"))
        f.seek(0)
        yield f.fileno()


def run_program(program: str, *, stdin: str = "", limits: SandboxLimits, interpreter: str,
                layers: tuple[str, ...] = LAYERS) -> SandboxResult:
    """One sandboxed run with a given interpreter; `layers` can switch isolation layers off (for tests)."""
    started = time.monotonic()
    with run_uid() as uid:
        with work_directory(uid) as workdir:
            Path(workdir, "main.py").write_text(program, encoding="utf-8")
            Path(workdir, "main.py").chmod(0o644)
            cfg = {"parent_pid": os.getpid(), "uid": uid, "workdir": workdir, "layers": list(layers),
                   "tmp_bytes": limits.max_disk_mb << 20, "protect": homes(),
                   "strict": limits.strict_isolation, "timeout": limits.wall_seconds,
                   "limits": limits.launcher_limits(), "env": PROGRAM_ENV,
                   "argv": [interpreter, "-I", "-B", "-X", "utf8", "main.py"]}
            try:
                collected = launch_and_collect(cfg, stdin, cap=limits.max_output_kb << 10,
                                               deadline=started + limits.wall_seconds + BACKSTOP_SECONDS)
            except OSError as exc:  # the host is out of processes, memory or file descriptors
                return error_result(f"could not start the sandbox: {exc}", time.monotonic() - started)
            reports = parse_reports(collected.status)
            isolation = Isolation.from_report(reports.get("layers", {}), uid)
            if uid is not None and "outcome" not in reports and not isolation.pid_namespace:
                kill_uid(uid)  # the launcher died or was killed before it could clean up
        if uid is not None and not isolation.private_tmp:
            remove_files_owned_by(uid)
    return classify(reports, collected, limits, duration=time.monotonic() - started, isolation=isolation)


def launch_and_collect(cfg: dict, stdin: str, *, cap: int, deadline: float) -> Collected:
    status_r, status_w = os.pipe()
    try:
        with stdin_file(stdin) as stdin_fd:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps({**cfg, "status_fd": status_w})],
                stdin=stdin_fd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(status_w,),
                cwd="/", env=PROGRAM_ENV, start_new_session=True)
    except BaseException:
        os.close(status_r)
        raise
    finally:
        os.close(status_w)  # the launcher holds the only write end: EOF means it and init are gone
    with os.fdopen(status_r, "rb") as status_pipe:
        return collect(proc, status_pipe, cap=cap, deadline=deadline)


def kill_uid(uid: int) -> None:
    subprocess.run([sys.executable, "-I", "-S", str(LAUNCHER), "--kill-uid", str(uid)], env=PROGRAM_ENV,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60, check=False)


@dataclass
class Collected:
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    status: bytearray = field(default_factory=bytearray)
    overflow: bool = False
    backstop: bool = False


def collect(proc: subprocess.Popen, status_pipe, *, cap: int, deadline: float) -> Collected:
    """Read stdout/stderr (each kept up to `cap` bytes) and the status pipe until all three close,
    which happens only once every process of the run is gone. Past the cap the run is stopped (the
    rest is read and dropped so nothing blocks); past `deadline` the launcher is killed outright."""
    collected = Collected()
    buffers = {proc.stdout: collected.stdout, proc.stderr: collected.stderr, status_pipe: collected.status}
    with selectors.DefaultSelector() as selector:
        for stream in buffers:
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                collected.backstop = True
                break
            for key, _ in selector.select(remaining):
                data = os.read(key.fd, 1 << 16)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                buffer = buffers[key.fileobj]
                if key.fileobj is status_pipe:
                    buffer += data
                    continue
                room = max(0, cap - len(buffer))
                buffer += data[:room]
                if len(data) > room and not collected.overflow:
                    collected.overflow = True
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGTERM)  # the launcher asks init to stop the run
    if collected.backstop:
        kill_group(proc)
    try:
        proc.wait(timeout=BACKSTOP_SECONDS)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return collected


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and init (one process group): init's death takes its PID namespace with it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def parse_reports(raw: bytes) -> dict:
    reports: dict = {}
    for line in bytes(raw).decode("utf-8", "replace").splitlines():
        with contextlib.suppress(ValueError):
            message = json.loads(line)
            if isinstance(message, dict):
                reports.update(message)
    return reports


def classify(reports: dict, collected: Collected, limits: SandboxLimits, *, duration: float,
             isolation: Isolation) -> SandboxResult:
    stdout = bytes(collected.stdout).decode("utf-8", "replace")
    stderr = bytes(collected.stderr).decode("utf-8", "replace")
    outcome = reports.get("outcome")
    if "error" in reports or outcome is None:
        detail = reports.get("error") or ("the sandbox was killed after it failed to stop the code in time"
                                          if collected.backstop else "the sandbox launcher died")
        return error_result(detail, duration, isolation)
    exit_code, sig = outcome.get("exit_code"), outcome.get("signal")
    cpu = outcome.get("cpu_seconds")
    status, detail = status_of(exit_code, sig, cpu, outcome.get("reason"), collected.overflow, stderr, limits)
    return SandboxResult(status=status, exit_code=exit_code, signal=sig, stdout=stdout, stderr=stderr,
                         truncated=collected.overflow, duration=duration, cpu_seconds=cpu,
                         max_rss_mb=round(outcome.get("max_rss_kb", 0) / 1024, 1), detail=detail,
                         isolation=isolation)


def status_of(exit_code: int | None, sig: int | None, cpu_seconds: float | None, reason: str | None,
              overflow: bool, stderr: str, limits: SandboxLimits) -> tuple[str, str]:
    """(status, detail) of a finished run, from how the code ended and why we stopped it."""
    if overflow:
        return "output_limit", f"the code wrote more than {limits.max_output_kb} KiB to stdout or stderr"
    if reason == "timeout":
        return "timeout", f"wall-clock limit of {limits.wall_seconds:g} s"
    cpu_spent = cpu_seconds is not None and cpu_seconds >= limits.cpu_seconds
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_spent):
        return "timeout", f"CPU time limit of {limits.cpu_seconds} s"
    if sig is not None:
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return ("crashed" if sig in CRASH_SIGNALS else "killed"), f"killed by {name}"
    if exit_code == 0:
        return "ok", ""
    last_line = stderr.strip().rsplit("\n", 1)[-1]
    if last_line.startswith("MemoryError"):
        return "oom", f"memory limit of {limits.memory_mb} MiB"
    return "failed", f"exit code {exit_code}"
