"""Child side of ncalm.eval.reasoning.sandbox: confine this process, then run
untrusted code in it.

Run as `python -I sandbox_launcher.py` with a JSON request on stdin. It
depends on the standard library only, because it runs before (and must not
trust) anything on the untrusted side. Order matters: limits and network
isolation need privileges, so they come before the switch to the
unprivileged user, and the HumanEval guard comes last because it removes the
functions the earlier steps use. The program's own output is discarded; the
launcher's stdout carries only the pass marker, its stderr only the
traceback of a failure.
"""
import builtins
import ctypes
import faulthandler
import json
import os
import resource
import sys
import traceback

_CLONE_NEWNET = 0x40000000
_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
_PR_SET_PDEATHSIG = 1
_SIGKILL = 9
# Scratch space the program may fill: private tmpfs mounts, gone with the process.
_PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")
_TMP_SIZE = "size=64m,mode=1777"


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _isolate_network() -> None:
    # An empty network namespace has no interfaces but a down loopback, so
    # any connect() fails at once; it needs CAP_SYS_ADMIN, and without it
    # the code simply runs with the host network (best effort by design).
    try:
        _libc().unshare(_CLONE_NEWNET)
    except (OSError, AttributeError):
        pass


def _private_tmp() -> None:
    # Files the program writes to /tmp or /dev/shm would otherwise outlive it
    # (and fill the host's disk). In a mount namespace of its own, fresh
    # size-capped tmpfs mounts replace them and vanish when it exits. Needs
    # CAP_SYS_ADMIN; best effort like the network. The working directory was
    # entered before, so it stays reachable.
    libc = _libc()
    try:
        if libc.unshare(_CLONE_NEWNS) != 0:
            return
        if libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
            return
        for path in _PRIVATE_TMP:
            if os.path.isdir(path):
                libc.mount(b"tmpfs", path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, _TMP_SIZE.encode())
    except (OSError, AttributeError):
        pass


def _die_with_parent() -> None:
    # If the evaluator dies (SIGTERM, crash), a sleeping program would run on:
    # the CPU-time limit never fires. Set after the uid switch, which clears it.
    try:
        _libc().prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _set_limits(limits: dict) -> None:
    for name, value in (
        ("RLIMIT_CPU", limits["cpu_s"]),
        ("RLIMIT_AS", limits["memory_bytes"]),
        ("RLIMIT_DATA", limits["memory_bytes"]),
        ("RLIMIT_FSIZE", limits["max_file_bytes"]),
        ("RLIMIT_NPROC", limits["max_processes"]),
        ("RLIMIT_CORE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))


def _drop_privileges(uid, gid) -> None:
    if uid is None:
        return
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise SystemExit("sandbox: could not drop privileges")


def reliability_guard() -> None:
    """Disable destructive functions, as openai/human-eval's
    execution.reliability_guard does. Not a security boundary on its own
    (the uid switch and rlimits are); it stops honest-mistake damage."""
    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    builtins.help = None
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
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    subprocess.Popen = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


def main() -> None:
    request = json.loads(sys.stdin.read())
    os.chdir(request["workdir"])
    if request["uid"] is not None:
        _isolate_network()
        _private_tmp()
    _set_limits(request["limits"])
    _drop_privileges(request["uid"], request["gid"])
    _die_with_parent()
    marker, exit_now = request["marker"], os._exit
    code = compile(request["source"], "<program>", "exec")
    del request
    results, errors = _discard_program_output()
    reliability_guard()
    try:
        exec(code, {"__name__": "__main__", "__builtins__": builtins})
    except BaseException:  # SystemExit too: a program that exits early did not pass
        traceback.print_exc(file=errors)
        errors.flush()
        exit_now(1)
    # The marker (unknown to the program) separates "ran to the end" from a
    # program that calls os._exit(0) halfway.
    results.write("\n" + marker + "\n")
    results.flush()
    exit_now(0)


def _discard_program_output():
    """Send the program's stdout and stderr (fds 1 and 2) to /dev/null, as
    openai/human-eval's swallow_io does; return private copies of the
    originals for the marker and the traceback.

    Captured, a correct program's prints would count against the file-size
    limit and fail it. The copies are as secret as before: a program that
    looks for them can write to them, as it could to stdout (the marker
    stays unknown to it)."""
    results = os.fdopen(os.dup(1), "w")  # os.dup: not inherited by programs the code starts
    errors = os.fdopen(os.dup(2), "w")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    return results, errors


if __name__ == "__main__":
    main()
