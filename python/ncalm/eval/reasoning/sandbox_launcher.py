"""Untrusted side of ncalm.eval.reasoning.sandbox: confine this process, run the
program, then answer calls of one of its functions.

Run as `python -I sandbox_launcher.py` by trusted_runner.py. It depends on
the standard library only, because it runs before (and must not trust)
anything on the untrusted side. Protocol, one line each on stdin/stdout: the
request (JSON); the answer `('ready',)` once the program ran to its end;
then per call `(args, kwargs)` the answer `('ok', value)`. Any failure is
answered `('raise', type name, text)`. Values travel as repr() and are read
back with literal(): plain data only (why: see ncalm.eval.reasoning.sandbox).

Order matters: namespaces and limits need privileges, so they come before
the switch to the unprivileged user, and the HumanEval guard comes last
because it removes functions the earlier steps use.
"""
import ast
import builtins
import ctypes
import faulthandler
import json
import math
import os
import resource
import struct
import sys

# Mount, network and System V IPC namespaces of its own: what the program
# mounts, connects to or leaves in shared memory ends with it.
_CLONE_NEWNS, _CLONE_NEWNET, _CLONE_NEWIPC = 0x00020000, 0x40000000, 0x08000000
UNSHARE = _CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWIPC
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_PRIVATE = 0x2, 0x4, 0x1000, 0x40000
_SYS_MOUNT_SETATTR, _AT_FDCWD, _AT_RECURSIVE = 442, -100, 0x8000  # 442 on all architectures but alpha
_MOUNT_ATTR_RDONLY, _MOUNT_ATTR_NOSUID = 0x1, 0x2
PR_SET_PDEATHSIG, SIGKILL = 1, 9  # the launcher and trusted_runner die with their parent
# Where programs expect to write scratch files: all are the private scratch.
_SCRATCH_ALIASES = ("/var/tmp", "/dev/shm", "/tmp")
TEXT_CHARS = 300  # of untrusted text in a message


class SandboxError(Exception):
    """The confinement could not be set up as asked: the program does not run."""


class _Floats(ast.NodeTransformer):
    def visit_Name(self, node):  # repr() writes inf and nan as bare names
        return ast.Constant(getattr(math, node.id)) if node.id in ("inf", "nan") else node


def literal(text: str):
    """The plain value (None, bool, int, float, complex, str, bytes, tuple,
    list, dict, set) that repr() wrote as `text`; ValueError, SyntaxError,
    RecursionError or MemoryError for anything else."""
    return ast.literal_eval(_Floats().visit(ast.parse(text, mode="eval")))


def _check(result: int, what: str) -> None:
    if result != 0:
        raise SandboxError(f"cannot {what}: {os.strerror(ctypes.get_errno())}")


def _confine(workdir: str, uid: int, gid: int, limits: dict) -> None:
    """Make every file system read-only but a size- and inode-capped tmpfs
    scratch (the working directory, also /tmp, /var/tmp and /dev/shm) that
    vanishes with the process, and cut the network. Needs CAP_SYS_ADMIN;
    without mount namespaces (a container without it) the program runs
    unconfined, as isolation_warning() announces."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(UNSHARE) != 0:
        os.chdir(workdir)
        return
    # Read-only by construction, not a list of known writable places: one
    # recursive call covers every mount, also those added to the host later.
    attr = ctypes.create_string_buffer(
        struct.pack("QQQQ", _MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID, 0, _MS_PRIVATE, 0), 32)
    _check(libc.syscall(_SYS_MOUNT_SETATTR, _AT_FDCWD, b"/", _AT_RECURSIVE, attr, 32),
           "make the file system read-only (mount_setattr, Linux >= 5.12)")
    options = (f"size={limits['scratch_bytes']},nr_inodes={limits['scratch_files'] + 1},mode=700,"
               f"uid={uid},gid={gid}")
    _check(libc.mount(b"tmpfs", workdir.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options.encode()),
           "mount the scratch tmpfs")
    os.chdir(workdir)
    for path in _SCRATCH_ALIASES:  # "." is the scratch even once /tmp (above workdir) is covered
        if os.path.isdir(path):
            _check(libc.mount(b".", path.encode(), None, _MS_BIND, None), f"bind the scratch to {path}")


def _set_limits(limits: dict) -> None:
    for name, value in (
        ("RLIMIT_CPU", limits["cpu_s"]),
        ("RLIMIT_AS", limits["memory_bytes"]),
        ("RLIMIT_DATA", limits["memory_bytes"]),
        ("RLIMIT_FSIZE", limits["scratch_bytes"]),  # the only write cap where there is no scratch tmpfs
        ("RLIMIT_NPROC", limits["max_processes"]),
        ("RLIMIT_CORE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))


def _drop_privileges(uid, gid) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise SandboxError("could not drop privileges")


def _die_with_parent() -> None:
    # If the runner dies, a sleeping program would run on: the CPU-time limit
    # never fires. Set after the uid switch, which clears it.
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def reliability_guard() -> None:
    """Disable destructive functions, as openai/human-eval's
    execution.reliability_guard does. Not a security boundary on its own
    (the uid switch, read-only mounts and rlimits are); it stops honest-mistake damage."""
    faulthandler.disable()
    for name in ("exit", "quit", "help"):
        setattr(builtins, name, None)
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in (
        "kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir",
        "setuid", "fork", "forkpty", "killpg", "rename", "renames", "truncate",
        "replace", "unlink", "fchmod", "fchown", "chmod", "chown", "chroot",
        "lchflags", "lchmod", "lchown", "getcwd", "chdir",
    ):
        setattr(os, name, None)
    import shutil
    import subprocess
    for name in ("rmtree", "move", "chown"):
        setattr(shutil, name, None)
    subprocess.Popen = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


def _private_streams():
    """Private copies of stdin and stdout for the protocol; fds 0-2 become
    /dev/null, so the program's prints are discarded (as openai/human-eval's
    swallow_io does) and cannot garble the replies. A program that finds the
    copies can only garble its own replies: it holds nothing that decides its
    verdict."""
    calls = os.fdopen(os.dup(0), "r")  # os.dup: not inherited by programs the code starts
    replies = os.fdopen(os.dup(1), "w")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    return calls, replies


def _failure(exc: BaseException) -> tuple:
    try:
        text = str(exc)[:TEXT_CHARS]
    except BaseException:  # a program's exception may refuse str()
        text = ""
    return ("raise", type(exc).__name__[:TEXT_CHARS], text)


def main() -> None:
    calls, replies = _private_streams()
    exit_now = os._exit

    def answer(reply: tuple) -> None:
        try:
            text = repr(reply)  # the program's own __repr__ runs here: literal() reads only plain data
        except BaseException as exc:
            text = repr(_failure(exc))
        replies.write(text + "\n")
        replies.flush()

    try:
        request = json.loads(calls.readline())
        if request["uid"] is None:
            os.chdir(request["workdir"])
        else:
            _confine(request["workdir"], request["uid"], request["gid"], request["limits"])
        _set_limits(request["limits"])
        if request["uid"] is not None:
            _drop_privileges(request["uid"], request["gid"])
        _die_with_parent()
        code = compile(request["source"], "<program>", "exec")
    except BaseException as exc:  # SyntaxError, SandboxError: the program did not run
        answer(_failure(exc))
        exit_now(1)
    entry_point = request["entry_point"]
    del request
    reliability_guard()
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(code, namespace)
    except BaseException as exc:  # SystemExit too: a program that exits early did not run to its end
        answer(_failure(exc))
        exit_now(1)
    answer(("ready",))
    for line in calls:
        try:
            args, kwargs = literal(line)
            answer(("ok", namespace[entry_point](*args, **kwargs)))
        except BaseException as exc:
            answer(_failure(exc))
    exit_now(0)


if __name__ == "__main__":
    main()
