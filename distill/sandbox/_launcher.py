"""The sandbox launcher: a standalone script (standard library only) that runs one program in isolation.

`distill.sandbox.runner` starts it as `python -I -S _launcher.py CONFIG_JSON`, with the program's
stdin/stdout/stderr already connected and a status pipe whose number is in the config. It is a
script, not an imported module, because namespaces, fork and setuid need a fresh single-threaded
process: doing this work in the caller (a thread pool, maybe a GPU job) is unsafe.

Three processes:

    launcher   in the caller's namespaces; unshares new ones, then waits for init
      init     PID 1 of the new PID namespace; private /tmp and /proc, wall-clock timeout,
               kills whatever the program left, reports the outcome
        program  unprivileged uid, resource limits, no new privileges, seccomp; exec python main.py

Every isolation layer is tried and its result reported as a JSON line on the status pipe, so the
caller can say exactly what held; a layer the kernel refuses is reported, never silently assumed.
"""

import contextlib
import ctypes
import errno
import json
import os
import resource
import signal
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = (("network", CLONE_NEWNET), ("pid", CLONE_NEWPID), ("mount", CLONE_NEWNS),
              ("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS))

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 0x400, 0x800, 0x200000
# statvfs flag -> mount flag: a remount inside a user namespace must keep the flags it inherited
STATVFS_TO_MS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                 (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME))
NR_MOUNT_SETATTR = 442  # the same on x86_64 and aarch64
AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = -100, 0x8000, 0x1

PR_SET_PDEATHSIG = 1
PR_SET_SECCOMP = 22
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2

# World-writable directories: a process with any uid can leave files there, so they are replaced by
# the run's own directory. /tmp comes last because the work directory itself lives under it.
SHARED_WRITABLE_DIRS = ("/var/tmp", "/dev/shm", "/run/lock", "/tmp")

libc = ctypes.CDLL(None, use_errno=True)
status_fd = -1


def report(**fields) -> None:
    """One JSON line on the status pipe (short lines: atomic even with several writers)."""
    os.write(status_fd, (json.dumps(fields) + "\n").encode())


def call(name: str, *args) -> None:
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when the one that started it dies (a crashed grader leaves no sandbox)."""
    call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os._exit(1)


def map_own_ids(uid: int, gid: int) -> None:
    """Inside a new user namespace, map our uid/gid (read before the unshare: inside an unmapped
    namespace they read as 65534) to themselves, for a caller that is not root.

    The creator of a user namespace holds every capability inside it until it execs as a non-root
    uid, which is what lets an ordinary user create the other namespaces and mounts below."""
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


def unshare_namespaces(enabled: set) -> dict:
    """Try each namespace on its own, so one the kernel refuses does not cost the others."""
    layers = {}
    if os.geteuid() != 0 and "user" in enabled:
        try:
            uid, gid = os.getuid(), os.getgid()
            call("unshare", CLONE_NEWUSER)
            map_own_ids(uid, gid)
            layers["user"] = True
        except OSError as exc:
            layers["user"], layers["user_error"] = False, exc.strerror
    for name, flag in NAMESPACES:
        if name not in enabled:
            layers[name] = False
            continue
        try:
            call("unshare", flag)
            layers[name] = True
        except OSError as exc:
            layers[name], layers[f"{name}_error"] = False, exc.strerror
    if layers["mount"]:
        # Without this, on a host whose / is a shared mount (systemd), the bind mounts made below
        # would propagate back to the host.
        try:
            call("mount", None, b"/", None, MS_REC | MS_PRIVATE, None)
        except OSError as exc:
            layers["mount"], layers["mount_error"] = False, exc.strerror
    return layers


def sized_workdir(workdir: str, size_bytes: int, uid: int) -> bool:
    """Put a tmpfs of `size_bytes` on the work directory (the program copied into it): all the code
    writes to /tmp and its cwd counts against one cap (ENOSPC past it), in memory, gone with the run."""
    with open(os.path.join(workdir, "main.py"), "rb") as f:
        program = f.read()
    options = f"size={size_bytes},nr_inodes=16384,mode=0700,uid={uid},gid={uid}"
    try:
        call("mount", b"tmpfs", workdir.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode())
    except OSError:
        return False
    path = os.path.join(workdir, "main.py")
    with open(path, "wb") as f:
        f.write(program)
    os.chmod(path, 0o644)
    return True


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def read_only_host(protect: list) -> str:
    """For a caller that is not root (the code keeps its uid, so its files): make every mount
    read-only in this mount namespace ('all'), or where the kernel lacks mount_setattr (< 5.12) the
    caller's home ('home'); '' when neither held. Mounts made after this (the sized /tmp) are writable."""
    attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    if libc.syscall(NR_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)) == 0:
        return "all"
    try:
        for path in protect:
            inherited = 0
            for st_flag, ms_flag in STATVFS_TO_MS:
                inherited |= ms_flag if os.statvfs(path).f_flag & st_flag else 0
            call("mount", path.encode(), path.encode(), None, MS_BIND | MS_REC, None)
            call("mount", None, path.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY | inherited, None)
    except OSError:
        return ""
    return "home"


def private_tmp(workdir: str) -> bool:
    """Mount the work directory over every world-writable directory: writes to /tmp stay in the run."""
    targets = []
    for path in SHARED_WRITABLE_DIRS:
        real = os.path.realpath(path)
        if os.path.isdir(real) and real not in targets:
            targets.append(real)
    try:
        for target in targets:
            call("mount", workdir.encode(), target.encode(), None, MS_BIND, None)
    except OSError:
        return False
    return os.path.realpath("/tmp") in targets


def private_proc() -> bool:
    """A /proc of the new PID namespace only: host processes (and their command lines) are not visible."""
    try:
        call("mount", b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        return True
    except OSError:
        return False


def set_limits(limits: dict, layers: dict) -> None:
    nproc = limits["processes"]
    if os.geteuid() != 0 and not layers.get("user"):
        # Without a user namespace RLIMIT_NPROC counts every process of the caller's uid on the
        # host, so grant the run its share on top of what the user already has running.
        nproc += count_processes_of(os.getuid())
    pairs = {
        resource.RLIMIT_AS: limits["memory_bytes"],
        resource.RLIMIT_CPU: limits["cpu_seconds"],
        resource.RLIMIT_FSIZE: limits["file_bytes"],
        resource.RLIMIT_NOFILE: limits["open_files"],
        resource.RLIMIT_NPROC: nproc,
        resource.RLIMIT_CORE: 0,
    }
    for which, value in pairs.items():
        soft = hard = value
        if which == resource.RLIMIT_CPU:
            hard = value + 1  # SIGXCPU at the soft limit, SIGKILL a second later if it is caught
        resource.setrlimit(which, (soft, hard))


def count_processes_of(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                count += os.stat(f"/proc/{entry}").st_uid == uid
    return count


def drop_privileges(uid: int) -> bool:
    """Switch root to the run's own uid/gid (and no groups).

    As root, RLIMIT_NPROC is not enforced at all (nor for CAP_SYS_RESOURCE / CAP_SYS_ADMIN), file
    permissions do not apply and any process can be signalled. A uid of its own, used by no other
    process on the host, makes the process limit count exactly this run, and confines kill(-1),
    ptrace and /proc/<pid>/environ to the run's own processes."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    return os.getresuid() == (uid, uid, uid)


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


# audit arch, socket(2), io_uring_setup(2) per architecture
SECCOMP_ARCHES = {"x86_64": (0xC000003E, 41, 425), "aarch64": (0xC00000B7, 198, 425)}


def install_seccomp() -> bool:
    """Refuse every socket but AF_UNIX, and io_uring (whose IORING_OP_SOCKET would bypass the check).

    The network namespace already cuts the network; this keeps it cut where the kernel refuses a
    namespace (e.g. a Docker container without CAP_SYS_ADMIN), and costs nothing where it does not.
    A foreign syscall ABI (i386 int 0x80, x32) could reach sockets through socketcall, so it is
    refused outright."""
    arch = SECCOMP_ARCHES.get(os.uname().machine)
    if arch is None:
        return False
    audit_arch, nr_socket, nr_io_uring_setup = arch
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000
    program = [
        (ld_abs, 0, 0, 4),                         # 0  A = seccomp_data.arch
        (jeq, 1, 0, audit_arch),                   # 1  native ABI: go on
        (ret, 0, 0, deny | errno.ENOSYS),          # 2  foreign ABI: refuse
        (ld_abs, 0, 0, 0),                         # 3  A = seccomp_data.nr
        (jge, 0, 1, 0x40000000),                   # 4  x32 syscall numbers
        (ret, 0, 0, deny | errno.ENOSYS),          # 5
        (jeq, 0, 1, nr_io_uring_setup),            # 6
        (ret, 0, 0, deny | errno.ENOSYS),          # 7
        (jeq, 1, 0, nr_socket),                    # 8  socket(): look at the domain
        (ret, 0, 0, allow),                        # 9  anything else is allowed
        (ld_abs, 0, 0, 16),                        # 10 A = low word of args[0] (domain)
        (jeq, 0, 1, 1),                            # 11 AF_UNIX
        (ret, 0, 0, allow),                        # 12
        (ret, 0, 0, deny | errno.EACCES),          # 13 AF_INET, AF_INET6, AF_PACKET, ...
    ]
    filters = (SockFilter * len(program))(*[SockFilter(*op) for op in program])
    fprog = SockFprog(len(program), filters)
    try:
        call("prctl", PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0)
        return True
    except OSError:
        return False


def strict_problems(layers: dict) -> list:
    problems = []
    if not (layers.get("uid") or layers.get("read_only")):
        problems.append("code running as your own user could write your home directory (no user and "
                        "mount namespace to make it read-only)")
    if not (layers.get("network") or layers.get("seccomp")):
        problems.append("the network is not cut (no network namespace, no seccomp)")
    if not (layers.get("uid") or layers.get("user")):
        problems.append("the code would keep the caller's privileges (no uid switch, no user namespace)")
    if not (layers.get("pid") or layers.get("uid")):
        problems.append("escaped processes could not be found (no PID namespace, no uid of its own)")
    return problems


def refuse(message: str, layers: dict) -> None:
    report(error=message, layers=layers)
    os._exit(127)


def switch_uid(cfg: dict, layers: dict) -> None:
    layers["uid"] = False
    if cfg["uid"] is None:  # not root: the user namespace (if any) is the privilege boundary
        return
    try:
        layers["uid"] = drop_privileges(cfg["uid"])
    except OSError as exc:
        layers["uid_error"] = exc.strerror
    if not layers["uid"]:
        # Never a fallback: as root no process limit binds, and a fork bomb takes the host.
        refuse("refused to run the code as root: switching to an unprivileged uid failed "
               f"({layers.get('uid_error', 'uid unchanged')}); the launcher needs CAP_SETUID", layers)


def exec_program(cfg: dict, layers: dict, home: str) -> None:
    """In the program's process: limits, privileges, filters, then exec. Never returns."""
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(home)
        set_limits(cfg["limits"], layers)
        # If a run ever drives the host out of memory, its OOM killer takes the code first. Written
        # while privileged: after the uid switch the process is not dumpable and /proc/self is root's.
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
        switch_uid(cfg, layers)
        call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # no setuid binary can hand privileges back
        layers["seccomp"] = "seccomp" in cfg["layers"] and install_seccomp()
        problems = strict_problems(layers)
        if problems and not (layers.get("uid") or layers.get("read_only")):
            # Never a fallback: with your uid and your home writable, the code could plant a line
            # in ~/.bashrc that runs later, outside any sandbox.
            refuse("refused to run the code as your own user: " + "; ".join(problems) + ". Run as root, "
                   "in a container, or allow unprivileged user namespaces "
                   "(sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces)", layers)
        if cfg["strict"] and problems:
            refuse("strict isolation refused to run the code: " + "; ".join(problems) + ". Run it where the "
                   "kernel allows these namespaces (as root, or with unprivileged user namespaces "
                   "enabled), or turn --strict-isolation off to fall back with a warning", layers)
        report(layers=layers)
        os.execve(cfg["argv"][0], cfg["argv"], dict(cfg["env"], HOME=home, TMPDIR=home, PWD=home))
    except BaseException as exc:  # report why, whatever it was: the caller turns it into status 'error'
        report(error=f"could not start the program: {exc!r}")
    os._exit(127)


def supervise(pid: int, timeout: float) -> tuple:
    """Wait for the program, reaping every orphan handed to us, until it exits, the wall-clock
    deadline passes or the caller asks us to stop (SIGTERM). Returns (wait status, rusage, reason)."""
    deadline = time.monotonic() + timeout
    reason = None
    while True:
        while True:
            try:
                child, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                child = 0
            if child == 0:
                break
            if child == pid:
                return status, usage, None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            reason = "timeout"
            break
        info = signal.sigtimedwait([signal.SIGCHLD, signal.SIGTERM], remaining)
        if info is not None and info.si_signo == signal.SIGTERM:
            reason = "stopped"
            break
    os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    return status, usage, reason


def kill_uid(uid: int) -> None:
    """Kill every process of `uid`: kill(-1) sent *as* that uid reaches exactly them, wherever they went."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setresuid(uid, uid, uid)
            for _ in range(10000):
                os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:  # nothing left to signal
            os._exit(0)
        except BaseException:
            os._exit(1)
        os._exit(1)
    os.waitpid(pid, 0)


def children() -> list:
    pids = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


def kill_descendants() -> None:
    """As a child subreaper, kill our children until none is left: each death hands its own
    children (daemons included, setsid or not) to us for the next round."""
    for _ in range(10000):
        pids = children()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def kill_leftovers(cfg: dict, layers: dict) -> None:
    """Whatever the program started must not outlive the run. With a PID namespace the kernel kills
    it all when init exits; without one, kill by the run's uid, or else by descent."""
    if layers.get("pid"):
        return
    if layers.get("uid"):
        kill_uid(cfg["uid"])
    kill_descendants()


def outcome(status: int, usage, reason) -> dict:
    result = {"reason": reason, "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
              "max_rss_kb": usage.ru_maxrss}
    if os.WIFSIGNALED(status):
        result["signal"] = os.WTERMSIG(status)
    else:
        result["exit_code"] = os.WEXITSTATUS(status)
    return result


def run_init(cfg: dict, layers: dict) -> int:
    call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if not layers["pid"]:
        call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans come to us, not to the host's init
    home = cfg["workdir"]
    if cfg["uid"] is None:
        layers["read_only"] = layers["mount"] and read_only_host(cfg["protect"])
    layers["tmp_cap"] = layers["mount"] and sized_workdir(
        cfg["workdir"], cfg["tmp_bytes"], os.getuid() if cfg["uid"] is None else cfg["uid"])
    layers["private_tmp"] = layers["mount"] and private_tmp(cfg["workdir"])
    if layers["private_tmp"]:
        home = "/tmp"
    layers["private_proc"] = layers["mount"] and layers["pid"] and private_proc()
    # Blocked before the fork so no SIGCHLD or SIGTERM is lost; sigtimedwait collects them.
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD, signal.SIGTERM])
    pid = os.fork()
    if pid == 0:
        exec_program(cfg, layers, home)
    status, usage, reason = supervise(pid, cfg["timeout"])
    kill_leftovers(cfg, layers)
    report(outcome=outcome(status, usage, reason))
    return 0


def main(argv: list) -> int:
    global status_fd
    cfg = json.loads(argv[1])
    status_fd = cfg["status_fd"]
    os.set_inheritable(status_fd, False)  # the program must not be able to forge a report
    die_with_parent(cfg["parent_pid"])
    layers = unshare_namespaces(set(cfg["layers"]))
    init = os.fork()  # after unshare(CLONE_NEWPID) the next child is PID 1 of the new namespace
    if init == 0:
        try:
            code = run_init(cfg, layers)
        except BaseException as exc:
            report(error=f"sandbox init failed: {exc!r}")
            code = 1
        os._exit(code)
    # The caller stops a run (output over the cap) with SIGTERM; init does the clean-up.
    signal.signal(signal.SIGTERM, lambda *_: os.kill(init, signal.SIGTERM))
    _, status = os.waitpid(init, 0)
    return os.waitstatus_to_exitcode(status)


def reap_uid_main(argv: list) -> int:
    """`_launcher.py --kill-uid UID`: the caller's last resort after a run was killed from outside."""
    kill_uid(int(argv[2]))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--kill-uid":
        sys.exit(reap_uid_main(sys.argv))
    try:
        code = main(sys.argv)
    except Exception as exc:
        if status_fd >= 0:
            report(error=f"sandbox launcher failed: {exc!r}")
        raise
    sys.exit(code)
