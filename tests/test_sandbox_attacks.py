"""Programs written to game the HumanEval score or to leave something behind
on the host: every one is scored fail and contained.

The verdict comes from a trusted interpreter that sees only plain data, so
forged markers, always-equal objects and lies about the protocol fail; the
file system is read-only but a capped scratch that vanishes, so nothing is
left on the host's disks (tests marked `confined` need root and mount
namespaces, as the sandbox does)."""
import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ncalm.eval.reasoning import humaneval
from ncalm.eval.reasoning.sandbox import Limits, run_program


def _confinable() -> bool:
    probe = "import ctypes, sys; sys.exit(ctypes.CDLL(None).unshare(0x48020000) != 0)"
    return os.geteuid() == 0 and subprocess.run([sys.executable, "-c", probe]).returncode == 0


confined = pytest.mark.skipif(not _confinable(), reason="needs root and mount namespaces, as the sandbox's confinement")
ADD_ONE = humaneval.Problem("T/add", 'def f(x):\n    """x + 1"""\n',
                            "def check(candidate):\n    for x in (2, 5, -1):\n        assert candidate(x) == x + 1\n", "f")
FORGED = json.dumps({"passed": True, "detail": ""})


def judge(completion: str, problem: humaneval.Problem = ADD_ONE, **limits):
    [result] = humaneval.evaluate([(problem, completion)], Limits(timeout_s=10.0, **limits))
    return result


def test_a_correct_completion_passes():
    assert judge("    return x + 1\n").passed


@pytest.mark.parametrize("completion, detail", [
    # Objects that compare equal to anything: only plain data crosses to the tests.
    ("    class A:\n        def __eq__(self, other):\n            return True\n    return A()\n", "not plain data"),
    ("    class A(int):\n        def __eq__(self, other):\n            return True\n    return A(0)\n", "AssertionError"),
    ("    class A(list):\n        def __eq__(self, other):\n            return True\n    return A()\n", "AssertionError"),
    ("    class A:\n        def __repr__(self):\n            return '__import__(\"os\")'\n    return A()\n",
     "not plain data"),
    ("    return (i for i in [x + 1])\n", "not plain data"),
    ("    return f\n", "not plain data"),
    # A program that answers True to everything, through the launcher's own repr.
    ("    return x\nimport builtins\nbuiltins.repr = lambda value: \"('ok', True)\"\n", "AssertionError"),
    # Frame walk to the launcher's private reply stream: forge a verdict and exit with its own exit.
    ("    return x\nimport sys\nf = sys._getframe()\nwhile 'replies' not in f.f_locals:\n    f = f.f_back\n"
     f"f.f_locals['replies'].write(\"('ready',)\\n\" + {FORGED!r} + '\\n')\nf.f_locals['replies'].flush()\n"
     "f.f_locals['exit_now'](0)\n", "not plain data"),
    # The same forgery to every file descriptor it may hold, and to the streams.
    ("    return x\nimport posix\nfor fd in range(64):\n    try:\n"
     f"        posix.write(fd, ({FORGED!r} + '\\n').encode())\n    except OSError:\n        pass\n"
     f"print({FORGED!r})\n", "not plain data"),
    ("    import os\n    os._exit(0)\n", "exited with code 0 before answering"),
    ("    raise SystemExit(0)\n", "SystemExit"),
    ("    return 'x' * (8 << 20)\n", "over 4194304 bytes"),
    ("    r = []\n    for _ in range(100000):\n        r = [r]\n    return r\n", "RecursionError|not plain data"),
])
def test_forged_and_wrong_answers_fail(completion, detail):
    result = judge(completion)
    assert result.status == "failed"
    assert any(part in result.detail for part in detail.split("|")), result.detail


@confined
@pytest.mark.parametrize("reach", [
    "posix.kill(posix.getppid(), 9)",  # the trusted runner: another user's process
    f"open(f'/proc/{{posix.getppid()}}/fd/1', 'w').write({FORGED!r})",  # its verdict pipe
    "open(f'/proc/{posix.getppid()}/mem', 'wb')",
])
def test_the_trusted_runner_is_out_of_reach(reach):
    result = judge(f"    return x\nimport posix\n{reach}\n")
    assert result.status == "failed" and ("PermissionError" in result.detail or "Read-only" in result.detail)


def test_helpers_come_from_the_trusted_prompt():
    # HumanEval/38 style: the tests encode with the prompt's helper. A completion that
    # redefines the helper as the identity would pass in a harness that runs it with the tests.
    problem = humaneval.Problem("T/dec", "def enc(s):\n    return s[::-1]\n\ndef dec(s):\n",
                                "def check(candidate):\n    assert candidate(enc('abc')) == 'abc'\n", "dec")
    assert judge("    return s[::-1]\n", problem).passed
    assert not judge("    return s\n\ndef enc(s):\n    return s\n", problem).passed


def test_failure_detail_is_capped_and_marked_untrusted():
    result = run_program("raise ValueError('\\x1b[2J\\n' + 'A' * (16 << 20))\n")
    assert result.status == "failed" and len(result.detail) <= 600
    assert result.detail.startswith("program error (untrusted): ")
    assert "\x1b" not in result.detail and "\n" not in result.detail


def _host_targets(tmp_path: Path) -> list[str]:
    """Directories of the host an unprivileged program could write to without the sandbox: every
    world-writable one under the usual roots, every mount point, and this test's own directory."""
    found = {str(tmp_path), str(Path(__file__).parent)}
    found.update(line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines())
    for top in ("/run", "/var", "/tmp", "/dev", "/opt", "/srv", "/home", "/mnt", "/media"):
        for d, subdirs, _ in os.walk(top):
            if os.stat(d).st_mode & 0o002:
                found.add(d)
            if d.count("/") > 3:
                subdirs.clear()
    return sorted(d for d in found if os.path.isdir(d) and not d.startswith(("/proc", "/sys")))


@confined
def test_nothing_reaches_the_hosts_disks(tmp_path):
    tmp_path.chmod(0o777)  # even a world-writable directory
    name = f"ncalm-leak-{secrets.token_hex(4)}"
    targets = _host_targets(tmp_path)
    program = (f"import os\nwritten = []\nfor d in {targets!r}:\n    try:\n"
               f"        open(os.path.join(d, {name!r}), 'w').write('x' * 1000)\n        written.append(d)\n"
               "    except OSError:\n        pass\n"
               "assert set(written) >= {'/tmp', '/var/tmp', '/dev/shm'} & set(" + repr(targets) + "), written\n")
    assert run_program(program, Limits(timeout_s=20.0)).passed  # the scratch aliases take the files ...
    assert [d for d in targets if os.path.exists(os.path.join(d, name))] == []  # ... and vanish with them


@confined
@pytest.mark.parametrize("program, error", [
    # The 5 x 16 MiB into /run/lock and the scratch places: the total, not each file, is capped.
    ("for i, d in enumerate(['.', '/tmp', '/var/tmp', '/dev/shm', '/run/lock']):\n"
     "    open(f'{d}/{NAME}{i}', 'wb').write(b'x' * (16 << 20))\n", "No space left on device"),
    ("for i in range(100000):\n    open(f'{NAME}{i}', 'w').close()\n", "No space left on device"),
])
def test_scratch_is_capped_in_bytes_and_files(program, error):
    name = f"ncalm-fill-{secrets.token_hex(4)}"
    result = run_program(f"NAME = {name!r}\n" + program, Limits(timeout_s=20.0))
    assert result.status == "failed" and error in result.detail
    assert not any(list(Path(d).glob(name + "*")) for d in (".", "/tmp", "/var/tmp", "/dev/shm", "/run/lock"))


@confined
def test_shared_memory_segments_vanish_with_the_program():
    key = 0x6E630000 + secrets.randbelow(1 << 16)
    program = (f"import ctypes\nid = ctypes.CDLL(None).shmget({key}, 1 << 20, 0o1600)\nassert id >= 0\n")
    assert run_program(program).passed
    assert str(key) not in Path("/proc/sysvipc/shm").read_text().split()


@confined
def test_no_network():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        result = run_program(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n")
    assert result.status == "failed" and "Error" in result.detail
