"""Run untrusted Python programs in separate, confined processes, and judge
them from outside.

Each program runs in its own child process (`sandbox_launcher.py`): a fresh
working directory, rlimits on CPU time, address space and number of
processes, a wall-clock timeout that kills the whole process group, the
HumanEval `reliability_guard`, and -- when the evaluator runs as root -- an
unprivileged user id of its own, an empty network namespace, every file
system read-only except a private, size- and file-count-capped scratch that
vanishes with it, and death with the evaluator. Generated code never runs in
this process. What the program prints is discarded (as openai/human-eval
does), so a correct program that prints much still passes.

The verdict is not the program's to give: a separate trusted interpreter
(`trusted_runner.py`) runs the tests and calls the program's function over a
pipe, passing and receiving plain data only (values that round-trip through
repr), so neither objects that compare equal to anything nor a program that
walks its frames to forge a marker can pass. A plain program without tests
passes when it ran to its end; that is its own report, no score. Failure
details are capped and mark the program's own text as untrusted. Without
root most of the isolation is missing; isolation_warning() says so.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from ncalm.eval.reasoning.sandbox_launcher import UNSHARE
from ncalm.settings import Settings, at_least, positive, setting

_RUNNER = Path(__file__).with_name("trusted_runner.py")
# A fresh uid per run: the process limit then counts only that run's
# processes (parallel runs cannot starve each other), and every leftover
# process can be found and killed by uid. The range sits above login users
# and is rarely used by anything else.
_UID_BASE, _UID_SPAN = 2_000_000_000, 100_000_000
_PROBE = "import collections, hashlib, json, math, re, string, typing"


@dataclass(frozen=True)
class Limits(Settings):
    """Resource limits for one program run."""

    timeout_s: float = setting(5.0, "wall-clock seconds", check=positive)
    memory_bytes: int = setting(1 << 30, "address space", check=at_least(1))
    max_processes: int = setting(16, "processes of its user id", check=at_least(1))
    scratch_bytes: int = setting(16 << 20, "bytes written in all (without root: to each file)", check=at_least(1))
    scratch_files: int = setting(256, "files in the scratch", check=at_least(1))


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one run: status is "passed", "failed" or "timed out"."""

    status: str
    detail: str
    elapsed_s: float
    returncode: int | None

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _mapped(uid: int) -> bool:
    # Inside a user namespace only mapped ids can be switched to.
    try:
        lines = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return False
    triples = [lines[i:i + 3] for i in range(0, len(lines), 3)]
    return any(int(lo) <= uid < int(lo) + int(n) for _, lo, n in triples)


def _pick_ids() -> tuple[int | None, int | None]:
    if os.geteuid() != 0:
        return None, None  # already unprivileged: nothing to drop
    uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
    if _mapped(uid):
        return uid, uid
    import pwd

    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


@lru_cache(maxsize=None)
def _can_confine() -> bool:
    probe = f"import ctypes, sys; sys.exit(ctypes.CDLL(None).unshare({UNSHARE}) != 0)"  # as the launcher
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0


def isolation_warning() -> str | None:
    """Why generated code would run less confined than the module docstring says, or None."""
    if os.geteuid() != 0:
        return ("not running as root, so the sandbox cannot give generated code a user id of its own: it runs "
                "as you and can read or change your files, signal your processes and reach this evaluator "
                "(limits and the timeout still apply); evaluate untrusted models in a container or VM")
    if not _can_confine():
        return ("no mount namespaces here (a container without CAP_SYS_ADMIN?): generated code can write "
                "wherever its user id may and reach the network")
    uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
    if not _mapped(uid):
        return ("private user ids are not mapped in this user namespace: generated code runs as 'nobody', "
                "shared by parallel runs, so a leftover process of one run cannot be told from another's")
    return None


def _pids_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines())
        except (OSError, ValueError):
            continue  # the process ended while we looked
        # Zombies are already dead; they only wait for their parent to reap them.
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            pids.append(int(entry.name))
    return pids


def _kill_all(pgid: int, uid: int | None) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if uid is None or uid < _UID_BASE:
        return  # a shared uid (nobody) may belong to other runs: group kill only
    # Children that left the process group (setsid) are still ours by uid.
    for _ in range(100):
        pids = _pids_of(uid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


@lru_cache(maxsize=None)
def sandbox_python() -> str:
    """The interpreter for sandboxed programs.

    The evaluator's own interpreter may live where the unprivileged user
    cannot read its standard library (e.g. pyenv under a 0700 /root); then a
    system interpreter is used. The choice is made by running a probe.
    """
    if os.geteuid() != 0:
        return sys.executable
    candidates = [sys.executable]
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        found = shutil.which("python3", path=directory)
        if found and os.path.realpath(found) not in map(os.path.realpath, candidates):
            candidates.append(found)
    for python in candidates:
        if probe_python(python).passed:
            return python
    raise RuntimeError(
        f"no Python interpreter among {candidates} can import the standard library "
        "as an unprivileged user; pass python= (--sandbox-python) explicitly")


def probe_python(python: str) -> ExecResult:
    """Whether ``python`` runs a program in the sandbox that imports the standard library."""
    return run_program(_PROBE, Limits(timeout_s=30), python=python)


def run_program(source: str, limits: Limits = Limits(), python: str | None = None,
                tests: str | None = None, entry_point: str = "") -> ExecResult:
    """Execute Python `source` in a confined child process and judge it.

    With `tests` (trusted code defining ``check(candidate)``), it passes when
    ``check`` returns, run outside the sandbox with ``candidate`` calling the
    program's function `entry_point`; without, when the program runs to its
    end without an exception. `python` is the program's interpreter (default:
    `sandbox_python()`).
    """
    python = python or sandbox_python()
    uid, gid = _pick_ids()
    root = Path(tempfile.mkdtemp(prefix="ncalm-sandbox-"))
    try:
        os.chmod(root, 0o711)  # the child may pass through, not list
        work = root / "work"
        work.mkdir(mode=0o700)
        if uid is not None:
            os.chown(work, uid, gid)
        launch = {
            "source": source, "entry_point": entry_point, "uid": uid, "gid": gid, "workdir": str(work),
            "limits": {**asdict(limits), "cpu_s": math.ceil(limits.timeout_s) + 1},
        }
        request = json.dumps({"python": python, "launch": launch, "tests": tests}).encode()
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work),
               "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1"}
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-I", "-S", str(_RUNNER)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root, env=env,
                                start_new_session=True, close_fds=True)
        try:
            out, err = proc.communicate(request, timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_all(proc.pid, uid)
            proc.communicate()
            return ExecResult("timed out", f"timed out after {limits.timeout_s:g} s", time.monotonic() - start, None)
        _kill_all(proc.pid, uid)
        elapsed = time.monotonic() - start
        try:
            verdict = json.loads(out.decode().splitlines()[-1])
        except (IndexError, ValueError):
            lines = err.decode("utf-8", "replace").strip().splitlines() or [f"exit code {proc.returncode}"]
            return ExecResult("failed", f"the trusted runner failed: {lines[-1][:300]}", elapsed, proc.returncode)
        return ExecResult("passed" if verdict["passed"] else "failed", verdict["detail"], elapsed, proc.returncode)
    finally:
        shutil.rmtree(root, ignore_errors=True)
