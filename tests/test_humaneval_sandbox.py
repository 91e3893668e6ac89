"""HumanEval harness and sandbox: canonical solutions pass; wrong, looping,
memory-hungry, forking and destructive programs fail without harm."""
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ncalm.eval.reasoning import humaneval
from ncalm.eval.reasoning.sandbox import Limits, run_program, sandbox_python

DATA = Path(__file__).parent / "fixtures" / "humaneval"  # all 164 problems
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the uid switch only happens when run as root")


@pytest.fixture(scope="module")
def problems():
    return humaneval.load_problems(DATA / "HumanEval.jsonl.gz")


def test_all_canonical_solutions_pass(problems):
    assert len(problems) == 164
    results = humaneval.evaluate([(p, p.canonical_solution) for p in problems],
                                 Limits(timeout_s=20.0), workers=4)
    failed = [(p.task_id, r.detail) for p, r in zip(problems, results) if not r.passed]
    assert failed == []


def test_wrong_solution_fails(problems):
    p = problems[0]  # has_close_elements
    [result] = humaneval.evaluate([(p, "    return False\n")])
    assert result.status == "failed" and "AssertionError" in result.detail


def test_infinite_loop_is_killed_at_timeout(problems):
    start = time.monotonic()
    [result] = humaneval.evaluate([(problems[0], "    while True:\n        pass\n")],
                                  Limits(timeout_s=1.0))
    assert result.status == "timed out"
    assert time.monotonic() - start < 6.0


def test_memory_bomb_is_stopped_by_the_limit():
    bomb = "hoard = []\nwhile True:\n    hoard.append(bytearray(8 << 20))\n"
    result = run_program(bomb, Limits(timeout_s=30.0, memory_bytes=256 << 20))
    assert result.status == "failed" and "MemoryError" in result.detail
    assert result.elapsed_s < 15.0  # the limit stopped it, not the timeout


@needs_root
def test_fork_bomb_is_stopped_by_the_process_limit(monkeypatch):
    # posix.fork bypasses the guard's os.fork = None, so only RLIMIT_NPROC stops it.
    # The uids this test's runs draw, so that the last check looks at its own processes only:
    # other sandbox runs on the machine (a parallel test session) use other uids of the range.
    from ncalm.eval.reasoning import sandbox

    drawn, draw = [], sandbox.secrets.randbelow
    monkeypatch.setattr(sandbox.secrets, "randbelow", lambda n: drawn.append(draw(n)) or drawn[-1])
    bomb = ("import posix, time\nn = 0\ntry:\n    while True:\n        if posix.fork() == 0:\n"
            "            time.sleep(60)\n            posix._exit(0)\n        n += 1\n"
            "except OSError as e:\n    raise SystemExit(f'fork refused after {n} children: {e}')\n")
    result = run_program(bomb, Limits(timeout_s=20.0, max_processes=8))
    assert result.status == "failed" and "fork refused after" in result.detail
    assert int(result.detail.split("after ")[1].split()[0]) < 8
    assert result.elapsed_s < 10.0
    # A classic exponential bomb: every child forks too; all are gone afterwards.
    result = run_program("import posix\nwhile True:\n    posix.fork()\n",
                         Limits(timeout_s=2.0, max_processes=8))
    assert not result.passed
    assert drawn and [pid for d in drawn for pid in sandbox._pids_of(sandbox._UID_BASE + d)] == []


@pytest.fixture
def victim():
    # A root-owned file in a world-readable directory: visible to the child,
    # so only permissions and the guard protect it. As root, in "/": the sandbox
    # replaces /tmp, /var/tmp and /dev/shm with private ones, and the checkout
    # may lie under any of them. Without root nothing is private: the usual /tmp.
    directory = Path(tempfile.mkdtemp(prefix=".ncalm-victim-", dir="/" if os.geteuid() == 0 else None))
    try:
        directory.chmod(0o755)
        target = directory / "precious.txt"
        target.write_text("keep me")
        target.chmod(0o644)
        assert run_program(f"assert open({str(target)!r}).read() == 'keep me'\n").passed, "the child cannot see it"
        yield target
    finally:
        shutil.rmtree(directory)


@pytest.mark.parametrize("attack, expected", [
    ("import os\nos.remove(PATH)\n", "TypeError"),            # disabled by the guard
    ("import shutil\nshutil.rmtree(DIR)\n", "TypeError"),     # disabled by the guard
    ("import subprocess\nsubprocess.run(['rm', '-rf', DIR])\n", "TypeError"),
    # Read-only mounts (or, without mount namespaces, the other uid) refuse it.
    pytest.param("import posix\nposix.unlink(PATH)\n", "Read-only file system|PermissionError", marks=needs_root),
    pytest.param("open(PATH, 'w').write('gone')\n", "Read-only file system|PermissionError", marks=needs_root),
])
def test_file_outside_workdir_survives(victim, attack, expected):
    source = f"PATH = {str(victim)!r}\nDIR = {str(victim.parent)!r}\n" + attack
    result = run_program(source)
    assert result.status == "failed" and re.search(expected, result.detail)
    assert victim.read_text() == "keep me"


@needs_root
def test_child_is_unprivileged_in_a_fresh_workdir():
    probe = ("import os, posix\nassert posix.getuid() != 0 and posix.geteuid() != 0\n"
             "assert posix.listdir('.') == []\nopen('scratch.txt', 'w').write('x')\n")
    assert run_program(probe).passed
    assert run_program(probe).passed  # the next run does not see the previous scratch file


def _can_unshare_mounts() -> bool:
    probe = "import ctypes, sys; sys.exit(ctypes.CDLL(None).unshare(0x20000) != 0)"
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0


@needs_root
def test_scratch_outside_the_workdir_vanishes_with_the_program():
    if not _can_unshare_mounts():
        pytest.skip("no mount namespaces here: /tmp cannot be made private")
    name = f"ncalm-escape-{secrets.token_hex(4)}"
    dirs = [d for d in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(d)]
    program = "".join(f"open({d + '/' + name!r}, 'w').write('x' * 1000)\n" for d in dirs)
    assert run_program(program).passed  # the program may use them ...
    assert [d for d in dirs if Path(d, name).exists()] == []  # ... but nothing is left on the host


@needs_root
def test_a_sleeping_program_dies_with_its_evaluator():
    # The CPU limit never fires for a sleeper: the launcher must not outlive the evaluator.
    python = sandbox_python()  # chosen here, so that the evaluator's only child is the sleeper
    evaluator = subprocess.Popen(
        [sys.executable, "-c", "from ncalm.eval.reasoning.sandbox import Limits, run_program; "
                               f"run_program('import time\\ntime.sleep(1000)', Limits(timeout_s=600), {python!r})"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        for _ in range(100):  # wait for the launcher to start
            children = _children(evaluator.pid)
            if children:
                break
            time.sleep(0.1)
        assert children, "the sandbox did not start"
        time.sleep(0.5)  # past the uid switch and the parent-death signal
    finally:
        evaluator.kill()
        evaluator.wait()
    for _ in range(50):
        if not any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in children):
            return
        time.sleep(0.1)
    pytest.fail(f"sandbox processes {children} outlived the evaluator")


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _state(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


@pytest.mark.parametrize("source", ["import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n"])
def test_exiting_early_is_not_passing(source):
    assert run_program(source + "raise AssertionError\n").status == "failed"


def test_the_tests_run_outside_against_the_program():
    p = humaneval.Problem("T/0", "def f(x):\n", "def check(c):\n    assert c(2) == 3\n    assert f(4) == 5\n", "f")
    assert [r.passed for r in humaneval.evaluate([(p, "    return x + 1\n"), (p, "    return 3\n")])] == [True, False]


def test_missing_isolation_is_announced(monkeypatch):
    from ncalm.eval.reasoning import sandbox

    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    assert "not running as root" in sandbox.isolation_warning()
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0)
    monkeypatch.setattr(sandbox, "_can_confine", lambda: False)
    assert "no mount namespaces" in sandbox.isolation_warning()
    monkeypatch.setattr(sandbox, "_can_confine", lambda: True)
    monkeypatch.setattr(sandbox, "_mapped", lambda uid: False)
    assert "runs as 'nobody'" in sandbox.isolation_warning()
    monkeypatch.setattr(sandbox, "_mapped", lambda uid: True)
    assert sandbox.isolation_warning() is None


def test_program_output_is_discarded_not_held_against_it():
    # As openai/human-eval: prints are swallowed, so they cannot hit the file-size limit.
    chatty = ("import os, sys\nblock = 'x' * (1 << 16)\nfor _ in range(40):\n    print(block)\n"
              "    sys.stderr.write(block)\n    os.write(1, block.encode())\n")
    limits = Limits(timeout_s=20.0, scratch_bytes=1 << 20)  # 2.5 MiB to each stream, 1 MiB allowed
    assert run_program(chatty, limits).passed
    result = run_program(chatty + "raise ValueError('after all that output')\n", limits)
    assert result.status == "failed" and result.detail.endswith("'ValueError: after all that output'")
    assert not run_program("print('\\n' * 3)\nimport os\nos._exit(0)\n").passed  # printing is no pass
